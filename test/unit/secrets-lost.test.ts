// Secrets never lost nor silently changed: text UTF-8 cannot hold refused (a lone surrogate escape, bytes typed at a
// terminal that are not UTF-8), a new file encrypted to nobody the user is refused, and a new private key that
// cannot be printed undoes what it would have opened.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { type Env, ageKey, cli, editor, newEnv, open, sops, tempDir } from './secrets.helpers.ts';

describe('a lone surrogate escape (\\ud800) is refused, never stored as U+FFFD', () => {
  it('ops secrets encrypt: a JSON and a YAML file refused naming key and line, left as they were (the real sops refuses the YAML one, stores U+FFFD for the JSON one)', async () => {
    const e = await newEnv();
    const assets = join(e.root, 'environments', 'qa', 'assets');
    const json = join(assets, 'lone.json');
    const yaml = join(assets, 'lone.yml');
    const jsonText = '{\n  "ok": "fine",\n  "pw": "Zq8-\\ud800-x"\n}\n';
    const yamlText = 'ok: fine\nnested:\n  pw: "Zq8-\\udc00"\n';
    writeFileSync(json, jsonText);
    writeFileSync(yaml, yamlText);
    const rj = await cli(e.root, ['secrets', 'encrypt', json], e.env);
    expect(rj.code, rj.err).toBe(2);
    expect(rj.err).toMatch(/pw \(line 3, column \d+\): holds a \\uD800-\\uDFFF escape that is half of a surrogate pair/);
    expect(rj.err).not.toContain('Zq8');
    expect(readFileSync(json, 'utf8')).toBe(jsonText);
    const ry = await cli(e.root, ['secrets', 'encrypt', yaml], e.env);
    expect(ry.code, ry.err).toBe(2);
    expect(ry.err).toMatch(/nested\.pw \(line 3, column \d+\): holds a \\uD800-\\uDFFF escape/);
    expect(readFileSync(yaml, 'utf8')).toBe(yamlText);
    // the real sops refuses the YAML one ("invalid Unicode character escape code"); its JSON store (Go's
    // encoding/json) silently stores U+FFFD, the loss refused here
    const age = execFileSync('age-keygen', ['-y', e.keyFile], { encoding: 'utf8' }).trim();
    const plainYaml = join(tempDir(), 'lone.yaml');
    writeFileSync(plainYaml, yamlText);
    expect(sops(['encrypt', '--age', age, plainYaml], e.keyFile).err).toContain('invalid Unicode character escape');
    const plainJson = join(tempDir(), 'lone.json');
    writeFileSync(plainJson, jsonText);
    const encrypted = sops(['encrypt', '--age', age, plainJson], e.keyFile);
    expect(encrypted.code).toBe(0);
    writeFileSync(plainJson, encrypted.out);
    expect(sops(['decrypt', plainJson], e.keyFile).out).toContain('"Zq8-\uFFFD-x"');
    // a pair is one character: stored as such
    writeFileSync(json, '{"pw": "\\ud83d\\ude00"}\n');
    expect((await cli(e.root, ['secrets', 'encrypt', json], e.env)).code).toBe(0);
  }, 60_000);

  it('ops secrets edit: a value typed as "\\ud800" is refused and offered back; answered n, nothing changed', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const ed = editor(`printf '%s\\n' 'typed: "Zq8-\\ud800"' >> "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'n\n');
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(/typed \(line \d+, column \d+\): holds a \\uD800-\\uDFFF escape/);
    expect(r.err).not.toContain('Zq8');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  }, 60_000);
});

describe('a new secrets file encrypted to none of your keys is refused, as ops secrets encrypt refuses it', () => {
  /** qa with no secrets file yet, and a user holding another key than the one its rule lists. */
  async function strangerAndNoFile() {
    const e = await newEnv();
    rmSync(e.secrets);
    const stranger = ageKey();
    return { e, env: { SOPS_AGE_KEY_FILE: stranger.file } };
  }

  it('ops secrets set: refused, no file written; with --force created; with a key of yours created', async () => {
    const { e, env } = await strangerAndNoFile();
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'pw'], env, 'Zq8-value-lost');
    expect(r.code, r.err).toBe(1);
    expect(r.err).toContain('environments/qa/secrets.sops.yaml would be encrypted to age1');
    expect(r.err).toContain('you could no longer decrypt it');
    expect(r.err).toContain('ops secrets set qa pw --force');
    expect(existsSync(e.secrets)).toBe(false);
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'pw'], e.env, 'Zq8-value-kept')).code).toBe(0);
    rmSync(e.secrets);
    const forced = await cli(e.root, ['secrets', 'set', 'qa', 'pw', '--force'], env, 'Zq8-value-given');
    expect(forced.code, forced.err).toBe(0);
    expect(existsSync(e.secrets)).toBe(true);
  }, 60_000);

  it('ops secrets edit: refused before the editor opens, no file written; with --force the editor opens', async () => {
    const { e, env } = await strangerAndNoFile();
    const ed = editor(`printf 'pw: Zq8-typed\\n' >> "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...env, EDITOR: ed.cmd });
    expect(r.code, r.err).toBe(1);
    expect(r.err).toContain('ops secrets edit qa --force');
    expect(existsSync(ed.record)).toBe(false);
    expect(existsSync(e.secrets)).toBe(false);
    const forced = await cli(e.root, ['secrets', 'edit', 'qa', '--force'], { ...env, EDITOR: ed.cmd });
    expect(forced.code, forced.err).toBe(0);
    expect(existsSync(e.secrets)).toBe(true);
  }, 60_000);
});

const OPS = fileURLToPath(new URL('../../scripts/ops-bin.js', import.meta.url));

/**
 * `ops <argv>` as a process of its own in e's project, its stdout `to`: /dev/full (ENOSPC), a pipe whose reader is
 * gone before anything is written (EPIPE), /dev/null, or a pipe read. @returns exit code, stderr and what stdout read.
 */
async function opsTo(e: Env, argv: string[], to: '/dev/full' | 'closed pipe' | '/dev/null' | 'pipe', env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; err: string; out: string }> {
  const fd = to.startsWith('/dev/') ? openSync(to, 'w') : undefined;
  const child = spawn(process.execPath, [OPS, ...argv], { cwd: e.root, env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, NO_COLOR: '1', ...env }, stdio: ['ignore', fd ?? 'pipe', 'pipe'] });
  if (fd !== undefined) closeSync(fd);
  let out = '';
  if (to === 'closed pipe') child.stdout!.destroy();
  else child.stdout?.on('data', (c) => (out += String(c)));
  let err = '';
  child.stderr!.on('data', (c) => (err += String(c)));
  const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  return { code, err, out };
}

describe('a new private key that cannot be printed: nothing is left encrypted to it', () => {
  for (const to of ['/dev/full', 'closed pipe'] as const) {
    it(`ops env new, stdout ${to}: exit 1, nothing was changed (no folder, .sops.yaml as it was); made again at once`, async () => {
      const e = await newEnv();
      const rules = join(e.root, '.sops.yaml');
      const before = readFileSync(rules, 'utf8');
      const r = await opsTo(e, ['env', 'new', 'staging2'], to);
      expect(r.err).toMatch(/error: cannot print the new environment's private key to stdout \((no space left where it goes \(ENOSPC\)|the program reading it stopped reading \(EPIPE\))\): its secrets would be encrypted to a key nobody holds; nothing was changed/);
      expect(r.code, r.err).toBe(1);
      expect(existsSync(join(e.root, 'environments', 'staging2'))).toBe(false);
      expect(readFileSync(rules, 'utf8')).toBe(before);
      const again = await opsTo(e, ['env', 'new', 'staging2'], 'pipe');
      expect(again.code, again.err).toBe(0);
      expect(again.out).toMatch(/AGE-SECRET-KEY-1/);
    }, 60_000);

    it(`ops keygen, stdout ${to}: exit 1, said`, async () => {
      const e = await newEnv();
      const r = await opsTo(e, ['keygen'], to);
      expect(r.err).toContain('error: cannot print the new private key to stdout (');
      expect(r.err).not.toContain('AGE-SECRET-KEY');
      expect(r.code, r.err).toBe(1);
    }, 60_000);
  }

  it('stdout /dev/null: ops env new refused, nothing written, unless a --recipient is a key of yours; ops keygen refused', async () => {
    const e = await newEnv();
    const rules = join(e.root, '.sops.yaml');
    const before = readFileSync(rules, 'utf8');
    const r = await opsTo(e, ['env', 'new', 'staging2'], '/dev/null', e.env);
    expect(r.err).toContain("error: stdout is /dev/null: the new environment's private key, printed once, would be lost");
    expect(r.code, r.err).toBe(1);
    expect(existsSync(join(e.root, 'environments', 'staging2'))).toBe(false);
    expect(readFileSync(rules, 'utf8')).toBe(before);
    // someone else's key is no help to the user
    const other = ageKey();
    expect((await opsTo(e, ['env', 'new', 'staging2', '--recipient', other.recipient], '/dev/null', e.env)).code).toBe(1);
    const mine = execFileSync('age-keygen', ['-y', e.keyFile], { encoding: 'utf8' }).trim();
    const ok = await opsTo(e, ['env', 'new', 'staging2', '--recipient', mine], '/dev/null', e.env);
    expect(ok.code, ok.err).toBe(0);
    expect(existsSync(join(e.root, 'environments', 'staging2', 'secrets.sops.yaml'))).toBe(true);
    // an SSH key of the user's (~/.ssh/id_ed25519, which sops and ops decrypt with), its .pub line given whole
    const home = tempDir('ops-ssh-home-');
    mkdirSync(join(home, '.ssh'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ana@laptop', '-f', join(home, '.ssh', 'id_ed25519')]);
    const pub = readFileSync(join(home, '.ssh', 'id_ed25519.pub'), 'utf8').trim();
    const ssh = await opsTo(e, ['env', 'new', 'staging3', '--recipient', pub], '/dev/null', { HOME: home });
    expect(ssh.code, ssh.err).toBe(0);
    expect(existsSync(join(e.root, 'environments', 'staging3', 'secrets.sops.yaml'))).toBe(true);
    const k = await opsTo(e, ['keygen'], '/dev/null');
    expect(k.err).toContain('error: stdout is /dev/null: the new private key, printed once, would be lost');
    expect(k.code).toBe(1);
  }, 60_000);

  it('stdout /dev/null and a name already taken: the name is said (the real problem), not stdout', async () => {
    const e = await newEnv();
    const r = await opsTo(e, ['env', 'new', 'qa'], '/dev/null', e.env);
    expect(r.err).toContain('error: environments/qa already exists');
    expect(r.err).not.toContain('/dev/null');
    expect(r.code, r.err).toBe(1);
  }, 60_000);
});

const PTY = fileURLToPath(new URL('../support/on_terminal.py', import.meta.url));

describe('ops secrets set at a terminal: bytes typed that are not UTF-8 are refused, never stored as U+FFFD', () => {
  /** `ops secrets set qa typed_key` on a new terminal (on_terminal.py), `typed` sent as its bytes (\udcXX: the byte XX). */
  async function typedAtTerminal(e: Env, typed: string): Promise<{ out: string; exit: number }> {
    const spec = { argv: ['sh', '-c', 'node "$OPS" secrets set qa typed_key; echo "exit=$?"'], cwd: e.root, env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, OPS, TERM: 'xterm', ...e.env }, steps: [['value for typed_key', typed]] };
    const { stdout } = await promisify(execFile)('python3', [PTY, JSON.stringify(spec)], { encoding: 'utf8', timeout: 150_000 });
    const { out } = JSON.parse(stdout) as { out: string };
    return { out, exit: Number(/exit=(\d+)/.exec(out)?.[1] ?? -1) };
  }

  it('a latin1 é (the byte e9) typed: refused, saying the terminal is not UTF-8; nothing changed; UTF-8 é and a real U+FFFD stored', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const bad = await typedAtTerminal(e, 'Zq8-caf\udce9\r');
    expect(bad.out).toContain('error: the value typed for this key is not UTF-8 text');
    expect(bad.exit, bad.out).toBe(2);
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    const good = await typedAtTerminal(e, 'Zq8-café \uFFFD\r');
    expect(good.exit, good.out).toBe(0);
    expect((await open(e)).data.typed_key).toBe('Zq8-café \uFFFD');
  }, 120_000);
});

describe('a new key named in bytes that are not UTF-8 (they reach ops as U+FFFD) is refused', () => {
  it('ops secrets set qa "caf\\xe9" (a real argv byte): refused, nothing changed; an existing key so named is set', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const r = await promisify(execFile)('sh', ['-c', `printf 'Zq8-value' | node "$OPS" secrets set qa "$(printf 'caf\\351')"; echo "exit=$?"`], { cwd: e.root, env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, OPS, NO_COLOR: '1', ...e.env }, encoding: 'utf8' });
    expect(r.stderr).toContain('error: the key caf\uFFFD holds U+FFFD');
    expect(r.stdout).toContain('exit=2');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    // one that exists (made by edit, a real U+FFFD typed on purpose) is named as it is
    const ed = editor(`printf 'caf\\357\\277\\275: old\\n' >> "$1"`);
    expect((await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd })).code).toBe(0);
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'caf\uFFFD'], e.env, 'Zq8-new')).code).toBe(0);
    expect((await open(e)).data['caf\uFFFD']).toBe('Zq8-new');
  }, 60_000);
});
