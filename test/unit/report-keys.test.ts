// The `@ops key value` contract between step scripts and their parsers. TypeScript checks the two sides
// that are TypeScript (a script interpolates `${X_KEYS.key}`, a parser reads `reported(r, X_KEYS.key)`, a
// bare or misspelt key does not compile); this test checks what the compiler cannot see: keys written
// literally in shell (core/steps/sh/), and declared keys that no script emits any more.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseReports, reportKeys, reportLine } from '../../core/remote/types.ts';
import { LIBRARY_KEYS } from '../../core/steps/libraries.ts';

const STEPS = join(import.meta.dirname, '..', '..', 'core', 'steps');
const stepSources = readdirSync(STEPS).filter((f) => f.endsWith('.ts')).map((f) => ({ file: f, text: readFileSync(join(STEPS, f), 'utf8') }));
const libraries = readdirSync(join(STEPS, 'sh')).filter((f) => f.endsWith('.sh')).map((f) => ({ file: f, text: readFileSync(join(STEPS, 'sh', f), 'utf8') }));

/** Every `*_KEYS` record exported by core/steps/*.ts, by its export name. */
async function records(): Promise<Map<string, Record<string, string>>> {
  const out = new Map<string, Record<string, string>>();
  for (const { file } of stepSources) {
    const mod = (await import(join(STEPS, file))) as Record<string, unknown>;
    for (const [name, value] of Object.entries(mod)) if (name.endsWith('_KEYS')) out.set(name, value as Record<string, string>);
  }
  return out;
}

describe('report keys', () => {
  it('step modules emit only declared keys: no bare key after ops_report, no hand-written @ops line', () => {
    const code = (text: string) => text.split('\n').filter((l) => !/^\s*(\/\/|\/\*\*|\*)/.test(l)).join('\n');
    const bare = stepSources.flatMap(({ file, text }) => [...code(text).matchAll(/ops_report [a-z_]|@ops [a-z_]/g)].map((m) => `${file}: ${m[0]}`));
    expect(bare).toEqual([]);
  });

  it('every key a shell library reports is in LIBRARY_KEYS, and every one of those is reported', () => {
    const emitted = new Set(libraries.flatMap(({ text }) => [...text.matchAll(/ops_report ([a-z_]+)/g)].map((m) => m[1]!)));
    expect(emitted.size).toBeGreaterThan(3);
    expect([...emitted].sort()).toEqual(Object.keys(LIBRARY_KEYS).sort());
  });

  it("every key a step module declares is emitted by one of the modules' scripts", async () => {
    const all = await records();
    expect([...all.keys()]).toEqual(expect.arrayContaining(['RELEASE_KEYS', 'STATUS_KEYS', 'LOCK_KEYS', 'FACTS_KEYS', 'LIBRARY_KEYS']));
    const source = stepSources.map((s) => s.text).join('\n');
    const unused = [...all]
      .filter(([name]) => name !== 'LIBRARY_KEYS')
      .flatMap(([name, keys]) => Object.keys(keys).filter((k) => !source.includes(`\${${name}.${k}}`)).map((k) => `${name}.${k}`));
    expect(unused).toEqual([]);
  });

  it('a record maps each key to itself; a key that would not survive the line format is refused', () => {
    const keys = reportKeys('current', 'live_health');
    expect(keys).toEqual({ current: 'current', live_health: 'live_health' });
    expect(Object.isFrozen(keys)).toBe(true);
    expect(() => reportKeys('two words' as string)).toThrow(/report key "two words"/);
    expect(() => reportKeys('Slot')).toThrow(/lower-case/);
    expect(parseReports(`${reportLine(keys.current, 'a b')}\n${reportLine(keys.live_health, '')}`)).toEqual([
      ['current', 'a b'],
      ['live_health', ''],
    ]);
  });
});
