// The release's .env, rendered from the environment's `env` map: plain values and references to secrets.
// Values are double-quoted with \ " $ ` escaped and newlines as \n: valid for `set -a; . ./.env` (the
// pipeline's app commands) and for dotenv parsers (python-dotenv, Node's dotenv), which the app uses.
import type { Environment } from './config/environment.ts';
import { OpsError } from './errors.ts';

export function lookup(tree: unknown, path: string): unknown {
  let node: unknown = tree;
  for (const key of path.split('.')) {
    if (node === null || typeof node !== 'object' || !(key in (node as object))) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

function asString(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

export function quoteDotenv(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$/g, '\\$').replace(/`/g, '\\`').replace(/\r?\n/g, '\\n')}"`;
}

/** Render .env; every missing secret is reported at once, before anything reaches a host. */
export function renderDotenv(env: Environment, secrets: unknown): string {
  const missing: string[] = [];
  const lines = [`# Rendered by ops-pipeline for ${env.name}: do not edit on the host, change environments/${env.name}/ instead.`];
  for (const [key, spec] of Object.entries(env.config.env)) {
    if (typeof spec === 'string') {
      lines.push(`${key}=${quoteDotenv(spec)}`);
      continue;
    }
    const value = lookup(secrets, spec.secret);
    if (value === undefined || value === null) {
      missing.push(`${key} needs the secret "${spec.secret}"`);
      continue;
    }
    lines.push(`${key}=${quoteDotenv(asString(value))}`);
  }
  if (missing.length)
    throw new OpsError(
      `environments/${env.name}/secrets.sops.yaml lacks ${missing.length} secret${missing.length > 1 ? 's' : ''} the .env needs:\n${missing.map((m) => `  - ${m}`).join('\n')}`,
      `add them: echo -n VALUE | ops secrets set ${env.name} <key>`,
    );
  return lines.join('\n') + '\n';
}
