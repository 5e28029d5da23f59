// The CLI keeps parsed environment files between runs (cacheParsedYaml, core/config/environment.ts): what it gives
// back must be what the yaml library would have parsed, for the file's text of now.
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { cacheParsedYaml, readYamlFile } from '../../core/config/environment.ts';

afterEach(() => cacheParsedYaml(undefined));

function setUp(): { file: string; cache: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ops-yaml-cache-'));
  cacheParsedYaml(join(dir, 'parsed'));
  return { file: join(dir, 'environment.yml'), cache: join(dir, 'parsed') };
}

describe('parsed environment files kept between runs', () => {
  it('the second read gives what the first parsed, from the cache: aliases still one object, .inf and .nan kept', () => {
    const { file, cache } = setUp();
    const text = 'base: &b {port: 3000, weight: .inf}\nweb: *b\nratio: .nan\nwhen: 2026-01-01\nname: "x"\n';
    writeFileSync(file, text);
    const first = readYamlFile(file) as Record<string, Record<string, unknown>>;
    expect(readdirSync(cache)).toHaveLength(1);
    const second = readYamlFile(file) as Record<string, Record<string, unknown>>;
    expect(second).toEqual(parse(text));
    expect(second).not.toBe(first); // a copy each time: a caller changing it changes no other's
    expect(second.web).toBe(second.base);
    expect(second.base!.weight).toBe(Infinity);
    expect(Number.isNaN(second.ratio)).toBe(true);
  });

  it('an edited file is parsed again; an entry that cannot be read is parsed again and rewritten', () => {
    const { file, cache } = setUp();
    writeFileSync(file, 'a: 1\n');
    expect(readYamlFile(file)).toEqual({ a: 1 });
    writeFileSync(file, 'a: 2\n');
    expect(readYamlFile(file)).toEqual({ a: 2 });
    expect(readdirSync(cache)).toHaveLength(2);
    for (const name of readdirSync(cache)) writeFileSync(join(cache, name), 'not v8 data');
    expect(readYamlFile(file)).toEqual({ a: 2 });
    expect(readYamlFile(file)).toEqual({ a: 2 });
  });

  it('a file that is not valid YAML is refused each time, never kept', () => {
    const { file, cache } = setUp();
    writeFileSync(file, 'a: [1, 2\n');
    for (let i = 0; i < 2; i++) expect(() => readYamlFile(file, 'environments/x/environment.yml')).toThrow(/environments\/x\/environment\.yml is not valid YAML/);
    expect(() => readdirSync(cache)).toThrow();
  });

  it('keeps the 64 entries written last', () => {
    const { file, cache } = setUp();
    const entry = (text: string) => join(cache, createHash('sha256').update(`${process.version}\0${text}`).digest('hex'));
    for (let i = 0; i < 70; i++) {
      writeFileSync(file, `n: ${i}\n`);
      readYamlFile(file);
      // Written i seconds after the epoch's first million: the order does not hang on the clock's resolution.
      utimesSync(entry(`n: ${i}\n`), 1_000_000 + i, 1_000_000 + i);
    }
    expect(readdirSync(cache)).toHaveLength(64);
    expect(existsSync(entry('n: 5\n'))).toBe(false);
    expect(existsSync(entry('n: 6\n'))).toBe(true);
    expect(existsSync(entry('n: 69\n'))).toBe(true);
  });

  it('without a cache (the actions), nothing is written', () => {
    const { file, cache } = setUp();
    cacheParsedYaml(undefined);
    writeFileSync(file, 'a: 1\n');
    expect(readYamlFile(file)).toEqual({ a: 1 });
    expect(() => readdirSync(cache)).toThrow();
  });
});
