// An empty option value (--ref "$TAG" with TAG unset) is a usage error on every command, never "the default":
// one check in scripts/cli.ts, the words of `rollback --to ''`; no host is reached. So is a value forgotten (--ref
// followed by another option, or last): one line naming the option, not the argument parser's own words.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { allCommands } from '../../scripts/commands/index.ts';
import { runOps } from '../support/cli.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ops-cli-empty-'));
  writeFileSync(join(root, 'package.json'), '{}');
  mkdirSync(join(root, 'environments', 'x'), { recursive: true });
  writeFileSync(
    join(root, 'environments', 'x', 'environment.yml'),
    stringify({ app: 'sample', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'run', port: 3579 } }, routes: { '/': 'server' } }),
  );
});

describe('empty option values', () => {
  it.each([
    [['deploy', 'x', '--ref', ''], '--ref needs a branch, tag or sha, got an empty one'],
    [['deploy', 'x', '--dry-run', '--ref='], '--ref needs a branch, tag or sha, got an empty one'],
    [['diff', 'x', '--ref', ''], '--ref needs a branch, tag or sha, got an empty one'],
    [['initdata', 'x', '--file', ''], '--file needs a file, got an empty one'],
    [['rollback', 'x', '--to', ''], '--to needs a release id, got an empty one'],
    [['deploy', 'x', '--identity', ''], '--identity needs a value, got an empty one'],
  ])('ops %j is a usage error naming the option; no host is reached', async (argv, message) => {
    let connected = 0;
    const r = await runOps(argv, { root, processEnv: { PATH: process.env.PATH }, connector: async () => (connected++, new RecordingRemote()) });
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
    expect(connected).toBe(0);
  });
});

describe('an option given no value', () => {
  it('`ops deploy x --ref --json` says --ref needs a value in one line, in stderr and in the --json error, with the usage as hint', async () => {
    const r = await runOps(['deploy', 'x', '--ref', '--json'], { root, processEnv: { PATH: process.env.PATH } });
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.out) as { error: string; hint?: string };
    expect(doc.error).toBe('--ref needs a branch, tag or sha, got none');
    expect(doc.hint).toMatch(/^usage: ops deploy <env> .*\[--ref REF\]/);
    expect(r.err).toBe(`error: ${doc.error}\n  hint: ${doc.hint}\n`);
  });

  it('a switch given a value (`--dry-run=yes`, `--force=false`) says it takes none, in ops\'s words (not node\'s "Option \'--dry-run\' does not take an argument")', async () => {
    for (const [argv, flag] of [[['deploy', 'x', '--dry-run=yes'], '--dry-run'], [['deploy', 'x', '--force=false'], '--force']] as const) {
      const r = await runOps([...argv], { root, processEnv: { PATH: process.env.PATH } });
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toMatch(new RegExp(`^error: ${flag} takes no value: give ${flag} alone to turn it on, or leave it out\\n  hint: usage: ops deploy `));
    }
  });

  it('followed by a word starting with "-" that is no option of the command: the hint says how such a value is written', async () => {
    const r = await runOps(['initdata', 'x', '--file', '-data.yml'], { root, processEnv: { PATH: process.env.PATH } });
    expect(r.err).toMatch(/^error: --file needs a file, got none\n  hint: a value starting with "-" is written --file=-VALUE; usage: ops initdata /);
    expect((await runOps(['logs', 'x', '-n', '-f'], { root, processEnv: { PATH: process.env.PATH } })).err).toMatch(/^error: --lines needs a whole number, got none\n  hint: usage: ops logs /);
    // last on the line, after the environment: nothing followed it, so no word starting with "-" is explained
    for (const argv of [['deploy', 'x', '--ref'], ['logs', 'x', '-n'], ['secrets', 'show', 'x', '--key']])
      expect((await runOps(argv, { root, processEnv: { PATH: process.env.PATH } })).err, argv.join(' ')).toMatch(/^error: --\S+ needs [^\n]*, got none\n  hint: usage: ops /);
  });

  it('one whose values never start with "-" (a git ref, a release id, a branch, a number, a choice) says what it takes, not a --ref=-VALUE it would refuse', async () => {
    for (const [argv, said] of [
      [['deploy', 'x', '--ref', '--x'], '--ref takes a branch, tag or sha, which never starts with "-" (--x is read as an option)'],
      [['rollback', 'x', '--to', '-1'], '--to takes a release id, which never starts with "-" (-1 is read as an option)'],
      [['staging', 'rebuild', '--main', '-x'], '--main takes a branch name, which never starts with "-" (-x is read as an option)'],
      [['logs', 'x', '-n', '-5'], '--lines takes a whole number, which never starts with "-" (-5 is read as an option)'],
      [['logs', 'x', '--slot', '-x'], '--slot takes one of live, previous, both, which never starts with "-" (-x is read as an option)'],
    ] as const) {
      const r = await runOps([...argv], { root, processEnv: { PATH: process.env.PATH } });
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toContain(`  hint: ${said}; usage: ops `);
      expect(r.err, argv.join(' ')).not.toContain('=-VALUE');
    }
  });

  it('every option of every command that takes a value, followed by another option or last, or as its short form: "--<option> needs …, got none"', async () => {
    let checked = 0;
    for (const c of allCommands) {
      // --identity: on the commands that log in to hosts (the others refuse it as such: cli-messages-firstday)
      const specs = { ...c.options, ...(c.hosts && { identity: { type: 'string', short: 'i' } }) };
      for (const [name, spec] of Object.entries(specs)) {
        if (spec.type === 'boolean') continue;
        const forms = [[`--${name}`], [`--${name}`, '--help'], ...(spec.short ? [[`-${spec.short}`], [`-${spec.short}`, '--help']] : [])];
        for (const form of forms) {
          const argv = [...c.name.split(' '), ...form];
          const r = await runOps(argv, { root, processEnv: { PATH: process.env.PATH } });
          expect(r.code, argv.join(' ')).toBe(2);
          expect(r.err, argv.join(' ')).toMatch(new RegExp(`^error: --${name} needs [^\\n]*, got none\\n  hint: usage: ops ${c.name}[^\\n]*\\n$`));
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
  });
});
