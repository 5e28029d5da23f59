// Shell libraries (core/steps/sh/*.sh) are imported as their text: esbuild's `text` loader in the bundles
// (scripts/bundle-options.js), scripts/text-modules.js under tsx and vitest.
declare module '*.sh' {
  const text: string;
  export default text;
}
