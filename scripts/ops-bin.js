#!/usr/bin/env node
// The package `bin`: runs the TypeScript CLI through tsx's loader (a runtime dependency).
import { register } from 'tsx/esm/api';

register();
await import('./ops.ts');
