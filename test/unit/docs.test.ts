// Every exported function of core/ has a doc comment (DEVELOPERS.md: shapes, units, errors, what is left on
// failure), and docs/architecture.md names only modules that exist.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? files(p) : e.endsWith('.ts') && !e.endsWith('.d.ts') ? [p] : [];
  });
}

/** Exported functions (and arrow functions) with no `/** ... *\/` right above them (line comments may sit between). */
function undocumented(file: string): { name: string; line: number }[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: { name: string; line: number }[] = [];
  let previous = '';
  lines.forEach((l, i) => {
    const m = /^export (?:async )?function (\w+)|^export const (\w+) = (?:async )?(?:\([^)]*\)|\w+)\s*(?::[^=]+)?=>/.exec(l);
    if (!m) return;
    const name = (m[1] ?? m[2])!;
    let j = i - 1;
    while (j >= 0 && lines[j]!.startsWith('//')) j--;
    // An overload's later signatures share the first one's comment.
    const overload = name === previous && /^export (?:async )?function \w+\b.*;$/.test(lines[j] ?? '');
    if (!overload && !(lines[j] ?? '').trimEnd().endsWith('*/')) out.push({ name, line: i + 1 });
    previous = name;
  });
  return out;
}

describe('documentation', () => {
  it('every exported function of core/ has a doc comment', () => {
    const all = files(join(ROOT, 'core'));
    expect(all.length).toBeGreaterThan(60);
    const missing = all.flatMap((f) => undocumented(f).map((u) => `${relative(ROOT, f)}:${u.line} ${u.name}`));
    expect(missing).toEqual([]);
  });

  it('docs/architecture.md names only files and folders that exist', () => {
    const text = readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8');
    const paths = [...text.matchAll(/`((?:core|actions|scripts|test|bench)\/[\w./<>*-]*)`/g)].map((m) => m[1]!).filter((p) => !/[<>*]/.test(p));
    expect(paths.length).toBeGreaterThan(15);
    expect(paths.filter((p) => !existsSync(join(ROOT, p)))).toEqual([]);
  });
});
