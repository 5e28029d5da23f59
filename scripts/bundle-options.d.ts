// Types for bundle-options.js (plain JS so the CLI launcher can use it without a TypeScript loader).
import type { BuildOptions } from 'esbuild';
export declare const bundleOptions: BuildOptions;
