// The CLI keeps parsed environment files between runs (cacheParsedYaml, core/config/environment.ts): what it gives
// back must be what the yaml library would have parsed, for the file's text of now.
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
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
    for (let i = 0; i < 2; i++) expect(() => readYamlFile(file, 'environments/x/environment.yml')).toThrow(/environments\/x\/environment\.yml:\d+:\d+: not valid YAML/);
    expect(() => readdirSync(cache)).toThrow();
  });

  it('keeps the 64 entries written last', () => {
    const { file, cache } = setUp();
    const written: string[] = [];
    for (let i = 0; i < 70; i++) {
      writeFileSync(file, `n: ${i}\n`);
      readYamlFile(file);
      const name = readdirSync(cache).find((n) => !written.includes(n))!;
      written.push(name);
      // Written i seconds after the epoch's first million: the order does not hang on the clock's resolution.
      utimesSync(join(cache, name), 1_000_000 + i, 1_000_000 + i);
    }
    expect(readdirSync(cache)).toHaveLength(64);
    expect(existsSync(join(cache, written[5]!))).toBe(false);
    expect(existsSync(join(cache, written[6]!))).toBe(true);
    expect(existsSync(join(cache, written[69]!))).toBe(true);
  });

  it('an entry with any one byte changed is not believed: the file is parsed again (v8 data with a changed byte often reads, as another value)', () => {
    const { file, cache } = setUp();
    const text = 'app: web\nhosts:\n  - {name: web1, address: 10.0.0.1, port: 22}\nrelease: {keep: 5}\n';
    writeFileSync(file, text);
    readYamlFile(file);
    const [name] = readdirSync(cache);
    const good = readFileSync(join(cache, name!));
    const wrong: string[] = [];
    for (let i = 0; i < good.length; i++) {
      const damaged = Buffer.from(good);
      damaged[i]! ^= 0x01;
      writeFileSync(join(cache, name!), damaged);
      const got = readYamlFile(file);
      if (JSON.stringify(got) !== JSON.stringify(parse(text))) wrong.push(`byte ${i}: ${JSON.stringify(got)}`);
    }
    expect(wrong).toEqual([]);
  });

  it("an entry is named by the yaml library's version too: one written by another version (same text, same Node) is not used", () => {
    const { file, cache } = setUp();
    // What another version of the library would have left under a name made of the text and Node's version only:
    // a well-formed entry (written by this cache, for another text) holding another value.
    writeFileSync(file, 'a: parsed by another version\n');
    readYamlFile(file);
    const [other] = readdirSync(cache);
    const text = 'a: 1\n';
    renameSync(join(cache, other!), join(cache, createHash('sha256').update(`${process.version}\0${text}`).digest('hex')));
    writeFileSync(file, text);
    expect(readYamlFile(file)).toEqual({ a: 1 });
  });

  it('without a cache (the actions), nothing is written', () => {
    const { file, cache } = setUp();
    cacheParsedYaml(undefined);
    writeFileSync(file, 'a: 1\n');
    expect(readYamlFile(file)).toEqual({ a: 1 });
    expect(() => readdirSync(cache)).toThrow();
  });
});
