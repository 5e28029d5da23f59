// Types for bundle-banner.js (plain JS so the CLI launcher can use it without a TypeScript loader).
export declare const banner: string;
