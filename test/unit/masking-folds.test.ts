// A secret a printer folds over lines shows on each line a piece of it, none the secret whole (core/report.ts
// Masker.hidePieces, core/steps/sh/mask.sh pieces): hex dumps (xxd, hexdump -C, od: 16 bytes a line, with a column of
// the characters), PyYAML's yaml.dump folding at 80 columns, Python's pprint splitting a string, a wrapping base64 of
// a document holding the secret anywhere. Each printed by the real program, masked by the runner and by the hosts'
// filter (the real Perl program, with the masks file a release writes).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exactFormsOf, Masker, MemoryReporter } from '../../core/report.ts';
import { MASK_FUNCTIONS } from '../../core/steps/libraries.ts';

const TOKEN = 'Zq7Wx9vLm3pR8sT2uV4yB6nC1dF5gH0j'; // 32 characters
const PASSPHRASE = 'orbit Kestrel 7 violet quarry Lantern 42 sable tundra Whistle 9 amber';
const KEY = 'sk-live-4f9a1c77e2b84d0f9c3e5a6b7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678'; // long: many lines

/** `text` through the hosts' filter (mask_text's Perl program) with the masks file a release writes for `secrets`. */
function hostMasked(secrets: string[], text: string): string {
  const forms = [...new Set(secrets.flatMap((v) => exactFormsOf(v)))].filter((f) => !/[\r\n]/.test(f)).sort((a, b) => b.length - a.length);
  const file = join(mkdtempSync(join(tmpdir(), 'ops-folds-')), 'masks');
  writeFileSync(file, `${forms.join('\n')}\n`);
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `${MASK_FUNCTIONS}\nLC_ALL=C perl -C0 -e "$MASK_PERL" 3<"$1"`, 'masks', file], { input: text, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

/** `text` masked by the runner (a reporter told of `secrets`). */
function runnerMasked(secrets: string[], text: string): string {
  const r = new MemoryReporter();
  for (const s of secrets) r.mask(s);
  return r.redact(text);
}

/** Every run of `n` characters of `s`. */
const windows = (s: string, n: number) => Array.from({ length: Math.max(0, s.length - n + 1) }, (_, k) => s.slice(k, k + n));

/**
 * What a masked text still shows of `secret`: each run of 8 of its characters, and of 16 hex digits of its bytes (in
 * a line with its spaces taken out: a dump's pairs and groups), found in a line.
 */
function shown(masked: string, secret: string): string[] {
  const hex = Buffer.from(secret).toString('hex');
  const found: string[] = [];
  for (const line of masked.split('\n')) {
    const packed = line.replace(/\s/g, '').toLowerCase();
    found.push(...windows(secret, 8).filter((w) => line.includes(w)), ...windows(hex, 16).filter((w, k) => k % 2 === 0 && packed.includes(w)));
  }
  return found;
}

const run = (command: string, args: string[], input: string) => execFileSync(command, args, { input, encoding: 'utf8' });

describe('a secret folded over lines: each piece hidden, by the runner and on the hosts', () => {
  it('in hex dumps (xxd, -g1, -u; hexdump -C; od -t x1z, od -An), wherever the secret starts in the 16 bytes of a line', () => {
    const dumps: string[] = [];
    for (const secret of [TOKEN, KEY])
      for (let at = 0; at < 16; at += 3) {
        const input = `${'k='.padEnd(at, '.')}${secret}\nend of the value\n`;
        dumps.push(run('xxd', [], input), run('xxd', ['-g1'], input), run('xxd', ['-u'], input), run('hexdump', ['-C'], input), run('od', ['-A', 'x', '-t', 'x1z'], input), run('od', ['-An', '-tx1'], input));
      }
    for (const dump of dumps) {
      // each dump shows the secret split over its lines: nothing but pieces
      expect(dump.split('\n').some((l) => l.includes(TOKEN) || l.includes(KEY))).toBe(false);
      expect(shown(dump, TOKEN).length + shown(dump, KEY).length).toBeGreaterThan(0);
      for (const masked of [runnerMasked([TOKEN, KEY], dump), hostMasked([TOKEN, KEY], dump)]) {
        expect([...shown(masked, TOKEN), ...shown(masked, KEY)], `${dump}\n${masked}`).toEqual([]);
        // the dump's other bytes stay shown: its offsets, and the text after the secret
        expect(masked).toMatch(/^0+ |^0+:|^ [0-9a-f]{2} /);
      }
    }
  });

  it("in PyYAML's yaml.dump folded at 80 columns (plain and double-quoted) and Python's pprint splitting a string over lines", () => {
    // a passphrase, one with a tab (YAML double-quotes it, folding with "\\" at the line's end), one twice as long, a long key
    const values = [PASSPHRASE, `${PASSPHRASE}\t${PASSPHRASE}`, `${PASSPHRASE} ${PASSPHRASE}`, KEY];
    const python = run(
      'python3',
      ['-c', 'import json, pprint, sys, yaml\nfor v in json.load(sys.stdin):\n  print(yaml.dump({"database_password": v}))\n  pprint.pprint({"settings": {"password": v, "debug": True}}, width=40)\n  pprint.pprint(v, width=30)'],
      JSON.stringify(values),
    );
    // folded: some line shows a piece of the passphrase and not all of it
    expect(python.split('\n').filter((l) => !l.includes(PASSPHRASE) && shown(l, PASSPHRASE).length > 0).length).toBeGreaterThanOrEqual(6);
    for (const masked of [runnerMasked(values, python), hostMasked(values, python)]) {
      expect([...shown(masked, PASSPHRASE), ...shown(masked, KEY)], `${python}\n${masked}`).toEqual([]);
      expect(masked).toContain('database_password: ***');
      expect(masked).toContain("'debug': True");
    }
  });

  it('in a wrapping base64 (GNU base64, openssl base64, Python base64.encodebytes) of a document holding the secret at any offset', () => {
    const docs = [0, 1, 2].map((pad) => `{"auths":{"registry.example.org":{"auth":"${'x'.repeat(pad)}"}},"password":"${KEY}","n":1}`);
    const out = docs.flatMap((d) => [run('base64', [], d), run('openssl', ['base64'], d), run('python3', ['-c', 'import base64, sys; print(base64.encodebytes(sys.stdin.buffer.read()).decode())'], d)]).join('');
    // what base64 of the key shows at each alignment to its 3-byte groups: the characters its bytes alone decide
    const aligned = [0, 1, 2].map((shift) => Buffer.concat([Buffer.alloc(shift), Buffer.from(KEY)]).toString('base64').slice(Math.ceil((8 * shift) / 6), Math.floor((8 * (shift + KEY.length)) / 6)));
    const leaks = (text: string) => text.split('\n').flatMap((l) => aligned.flatMap((a) => windows(a, 12).filter((w) => l.includes(w))));
    expect(leaks(out).length).toBeGreaterThan(0);
    for (const masked of [runnerMasked([KEY], out), hostMasked([KEY], out)]) {
      expect(leaks(masked), masked).toEqual([]);
      expect(masked).toContain('eyJhdXRocyI6eyJyZWdpc3RyeS5leGFtcGxlLm9yZyI6eyJhdXRoIjoi'); // the document's start stays
    }
  });

  it('leaves ordinary text as it is: the README, its hex dump and YAML, with long secrets registered; a weak value has no pieces', () => {
    const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8').split('\n').slice(0, 400).join('\n');
    const text = [readme, run('xxd', [], readme.slice(0, 4000)), run('hexdump', ['-C'], readme.slice(0, 2000)), run('python3', ['-c', 'import sys, yaml; print(yaml.dump({"readme": sys.stdin.read()[:3000]}))'], readme)].join('\n');
    const secrets = [TOKEN, KEY, PASSPHRASE, 'postgresql://app:Zq7Wx9vLm3pR8sT2@db.internal:5432/app'];
    expect(runnerMasked(secrets, text)).toBe(text);
    expect(hostMasked(secrets, text)).toBe(text);
    // a weak value (README "Weak values") shows too little to hide a piece of: a line ending with its start stays
    const weak = new Masker();
    weak.add('Password');
    expect(weak.redact('user\nPasswo')).toBe('user\nPasswo');
  });
});

describe('a fold is hidden only where the next lines go on with the secret', () => {
  const URL = 'postgresql://catalogage:Zq7Wx9vLm3pR8sT2@db-main.internal:5432/catalogage';
  const WORDY = 'Whistleblower-Kestrel-9f3Q7zLm2xR';

  it('leaves ordinary lines holding a piece of a secret readable: its start, its end, a word of it, a line alone inside it', () => {
    const log = [
      'Connecting to postgresql://catalogage', // the URL's scheme and user end the line
      'connection refused, retrying in 5s',
      'db-main.internal:5432/catalogage is down', // the URL's host and database start the line
      'catalogage', // a line lying inside the URL
      'reported by the Whistleblower-Kestrel', // a common word prefix of a secret ends the line
      'Kestrel-9f3Q7 is the next build', // and its next piece starts the next line, the secret never whole
      '  [postgresql://catalogage@db-main',
      '  replica]', // the fold breaks off: not the secret
    ].join('\n');
    for (const masked of [runnerMasked([URL, WORDY], log), hostMasked([URL, WORDY], log)]) expect(masked).toBe(log);
  });

  it('hides the pieces of real folds at any width: base64 -w N, xxd -c N, od -t x1 -w N, od -c, PyYAML and pprint at narrow widths', () => {
    const doc = `{"database_url":"${URL}","token":"${WORDY}","n":1}\n`;
    const outs: string[] = [];
    for (const w of [1, 3, 4, 7, 24, 60]) outs.push(run('base64', ['-w', String(w)], doc));
    for (const c of [1, 2, 4, 7]) outs.push(run('xxd', ['-c', String(c)], doc), run('od', ['-v', '-A', 'x', '-t', 'x1z', `-w${c}`], doc));
    outs.push(run('od', ['-v', '-c'], doc), run('od', ['-v', '-An', '-c'], doc));
    outs.push(run('python3', ['-c', 'import sys, yaml, pprint\nv = sys.argv[1]\nprint(yaml.dump({"url": v + " " + v}, width=20))\npprint.pprint({"url": v.replace("@", " @ ") + " tail"}, width=20)', URL], ''));
    const b64 = (s: string) => [0, 1, 2].map((shift) => Buffer.concat([Buffer.alloc(shift), Buffer.from(s)]).toString('base64').slice(Math.ceil((8 * shift) / 6), Math.floor((8 * (shift + s.length)) / 6)));
    // what a reader could put back together of the secrets: each line's text (without white space, quotes and od -c's
    // offset), hex pairs or base64 characters, joined
    const joined = (text: string) =>
      text
        .split('\n')
        .map((l) => l.replace(/^[0-9a-f]{6,7}(?= )|^[0-9a-f]{6,8}:? /, '').replace(/[\s'"[\]{}]/g, ''))
        .join('');
    // a dump line's hex: after its offset, up to two spaces (its column)
    const hexOf = (text: string) =>
      text
        .split('\n')
        .map((l) => l.replace(/^[0-9a-f]+:? /, '').split(/ {2,}/)[0]!.replace(/ /g, ''))
        .filter((h) => /^[0-9a-f]+$/.test(h))
        .join('');
    const leaks = (text: string) => {
      const flat = joined(text);
      const hex = hexOf(text);
      return [URL, WORDY].filter((s) => flat.includes(s.replace(/\s/g, '')) || hex.includes(Buffer.from(s).toString('hex')) || b64(s).some((b) => flat.includes(b.slice(2, -2))));
    };
    for (const out of outs) {
      expect(leaks(out), out).not.toEqual([]); // the tool's output holds a secret, folded
      for (const masked of [runnerMasked([URL, WORDY], out), hostMasked([URL, WORDY], out)]) expect(leaks(masked), `${out}\n${masked}`).toEqual([]);
    }
  });
});
