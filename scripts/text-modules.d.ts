// Types for text-modules.js (plain JS, loaded before any TypeScript loader).
import type { LoadHook } from 'node:module';
import type { Plugin } from 'vite';
export declare const TEXT_EXTENSIONS: string[];
export declare const load: LoadHook;
export declare const textModulesPlugin: Plugin;
