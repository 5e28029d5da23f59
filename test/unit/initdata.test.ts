// ops initdata before any host: the data file is checked the way the app's loader will read it (a YAML
// document), then sent whole. A file the loader reads must not be refused, and a broken one never leaves the runner.
import { PROVISIONED_KEYS } from '../../core/steps/system.ts';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync, spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, parseDocument, stringify } from 'yaml';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { LOCK_KEYS, LOCK_UNPROVISIONED_EXIT } from '../../core/steps/lock.ts';
import { RELEASE_KEYS } from '../../core/steps/release.ts';
import { environDigest, INITDATA_KEYS } from '../../core/steps/initdata.ts';
import { initdataSummary } from '../../core/ops/initdata.ts';
import { opsLines } from './reports.helpers.ts';
import { quote } from '../../core/shell.ts';
import { runOps } from '../support/cli.ts';
import { SAFE_LOAD_REPR, TRICKY, withPyyaml } from '../support/pyyaml.ts';
import { fromPlain, generateIdentity, isSopsText, SecretsFile, type MapNode } from '../../core/secrets/index.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ops-initdata-'));
  writeFileSync(join(root, 'package.json'), '{}');
  mkdirSync(join(root, 'environments', 'x'), { recursive: true });
  writeFileSync(
    join(root, 'environments', 'x', 'environment.yml'),
    stringify({ app: 'sample', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'run', port: 3579 } }, routes: { '/': 'server' } }),
  );
});

/**
 * `ops initdata x --file <text>` against a recorded host with a live release: the exit, stderr and what was
 * uploaded. `liveDigest`: what the host reports of the live release's environ (default: the one environment x
 * renders now, which has no env: an empty environ). `provisioned: false`: the host was never provisioned (nothing is live either).
 */
async function load(name: string, text: string | Uint8Array | undefined, options: { liveDigest?: string; args?: string[]; processEnv?: Record<string, string>; current?: string; provisioned?: false; loader?: { code: number; stderr: string } } = {}) {
  const file = join(root, name);
  if (text !== undefined) writeFileSync(file, text); // else: the file is there (an encrypted one)
  let host: RecordingRemote | undefined;
  const r = await runOps(['initdata', 'x', '--file', file, ...(options.args ?? [])], {
    root,
    processEnv: { PATH: process.env.PATH, ...options.processEnv },
    connector: async () =>
      (host = new RecordingRemote('web1', 'deploy', 'sample', (step) =>
        step.name === 'lock'
          ? options.provisioned === false
            ? { stdout: opsLines(PROVISIONED_KEYS, 'provisioned no'), code: LOCK_UNPROVISIONED_EXIT }
            : { stdout: opsLines({ ...PROVISIONED_KEYS, ...LOCK_KEYS, ...RELEASE_KEYS }, 'lock acquired', 'provisioned 2026-11-01T00:00:00Z', ...(options.current === '' ? [] : [`current ${options.current ?? '20261125T120000Z-0123456789ab'}`] as const)) }
          : step.name === 'initdata settings'
            ? { stdout: opsLines(INITDATA_KEYS, `environ_digest ${options.liveDigest ?? environDigest('')}`) }
            : step.name === 'initdata'
              ? options.loader
              : undefined,
      )),
  });
  const unlock = host?.runs.find((x) => x.step.name === 'unlock')?.stdin ?? '';
  // The audit line as the unlock appends it: one shell word (a ' in it written '\'').
  const audit = /'(\{"time":(?:[^']|'\\'')*\})'/.exec(unlock)?.[1]?.replaceAll("'\\''", "'");
  return { ...r, uploads: host?.uploads ?? [], steps: host?.stepNames() ?? [], runs: host?.runs ?? [], audit: audit === undefined ? undefined : (JSON.parse(audit) as Record<string, string>) };
}

/** What PyYAML (the sample app's loader: yaml.safe_load) makes of the text, as JSON; or its error. */
function pyyaml(text: string): { ok: boolean; out: string } {
  const r = spawnSync('python3', ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))'], { input: text, encoding: 'utf8' });
  return { ok: r.status === 0, out: r.stdout.trim() || r.stderr.trim().split('\n').pop()! };
}

describe('initdata: the file is checked as the loader will read it', () => {
  it('sends a file that shares defaults through an anchor used by many entries (PyYAML reads it)', async () => {
    let text = 'defaults: &user {role: user, password: __env__}\nusers:\n';
    for (let i = 0; i < 150; i++) text += `  - <<: *user\n    email: user${i}@example.org\n    name: "Utilisateur n°${i}"\n`;
    const py = pyyaml(text);
    expect(py.ok, py.out).toBe(true);
    const r = await load('anchors.yml', text);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.uploads).toHaveLength(1);
    expect(r.uploads[0]!.content.toString('utf8')).toBe(text);
    expect(r.steps).toContain('initdata');
  });

  it('checks a large file (20 000 entries sharing one anchor) in seconds', async () => {
    let text = 'defaults: &user {role: user}\nusers:\n';
    for (let i = 0; i < 20_000; i++) text += `  - <<: *user\n    email: user${i}@example.org\n`;
    const started = Date.now();
    const r = await load('large.yml', text);
    expect(r.code, r.err).toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000); // seconds when idle, more beside the suite; resolving each alias by a search of the whole document: hours
  });

  it('tells a large plain file from a sops one without parsing it (a 34 MB file: 170 s of 250 before anything was sent)', () => {
    let text = 'users:\n';
    for (let i = 0; i < 20_000; i++) text += `  - email: user${i}@example.org\n    name: "Utilisateur n°${i}"\n    roles: [user, reader]\n`;
    // timed against the parse the check needs anyway, on the same machine at the same time (load cancels out)
    let started = performance.now();
    parseDocument(text);
    const parse = performance.now() - started;
    started = performance.now();
    expect(isSopsText(text, 'yaml')).toBe(false);
    expect(performance.now() - started).toBeLessThan(parse); // it parsed the whole file: about 2.5 times the parse; without a parse, well under a hundredth of it
    // a sops file is still one, and a plain file naming sops, mac and lastmodified is still parsed and is not
    for (const f of ['secret.enc.yaml', 'secret.enc.json']) expect(isSopsText(readFileSync(join(DUMPS, '..', 'sops', f), 'utf8'), f.endsWith('json') ? 'json' : 'yaml'), f).toBe(true); // written by the real sops
    expect(isSopsText('notes: sops keeps a mac and lastmodified\n', 'yaml')).toBe(false);
  });

  it('refuses an alias bomb (nested aliases the loader would expand until the host runs out of memory) in one line, nothing sent', async () => {
    let text = 'a0: &a0 [x,x,x,x,x,x,x,x,x,x]\n';
    for (let i = 1; i <= 8; i++) text += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(',')}]\n`;
    const r = await load('bomb.yml', text);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/bomb\.yml makes more than 1000000 values by copying YAML aliases \(\*name\)/);
    expect(r.uploads).toHaveLength(0);
  });

  it('still refuses what is not one YAML document, before any step runs on the host', async () => {
    for (const [name, text, why] of [
      ['unclosed.yml', 'users: [unclosed\n', /not valid YAML/],
      // an unclosed [ or { followed by the next key: said as such, not as "bad indentation" (and never quoted)
      ['unclosed-list.yml', 'users: [Zq7-secret, b\ntags: []\n', /not valid YAML: at line 2, column 1: a \[\.\.\.\] or \{\.\.\.\} not closed before this line(?![^\n]*Zq7)/],
      ['unclosed-map.yml', 'users: {pw: Zq7-secret\ntags: []\n', /not valid YAML: at line 2, column 1: a \[\.\.\.\] or \{\.\.\.\} not closed before this line(?![^\n]*Zq7)/],
      ['two.yml', 'users: []\n---\ntags: []\n', /not valid YAML: at line 2, column 1: several YAML documents/],
      ['dup.yml', 'users: []\nusers: []\n', /not valid YAML: at line \d+, column \d+: a key given twice in the same map/],
      // never the text the parser met (a decrypted file holds secrets): "Invalid escape sequence \Zq"
      ['escape.yml', 'users: ["pa\\Zq7"]\n', /not valid YAML: at line 1, column \d+: an invalid escape sequence(?![^\n]*Zq)/],
      ['unknown-alias.yml', 'users: [*nobody]\n', /not valid YAML/],
    ] as const) {
      expect(pyyaml(text).ok, name).toBe(name === 'dup.yml'); // PyYAML takes the last of duplicate keys; YAML forbids them
      const r = await load(name, text);
      expect(r.code, name).toBe(2);
      expect(r.err, name).toMatch(why);
      expect(r.err, name).toMatch(/nothing was sent/);
      expect(r.uploads, name).toHaveLength(0);
    }
    // Nested a thousand levels deep: refused by name before the YAML parser (which it exhausts) reads it.
    const deep = await load('deep.yml', `users: ${'['.repeat(1000)}${']'.repeat(1000)}\n`);
    expect(deep.code).toBe(1);
    expect(deep.err).toMatch(/deep\.yml nests maps or lists more than 100 levels deep/);
    expect(deep.uploads).toHaveLength(0);
  });
});

describe('initdata: an encrypted file reaches the loader as its values', () => {
  it('strings a YAML 1.1 reader (PyYAML, the loader) would type otherwise when bare (12:30, 2024-01-15, yes, =) come back from the real PyYAML as the same strings', async () => {
    const id = await generateIdentity();
    const file = join(root, 'tricky.sops.yml');
    const data = { tags: TRICKY, users: [{ email: 'bob@example.org', password: '12:30', since: '2024-01-15', admin: 'yes', note: '=' }] };
    await SecretsFile.create(file, fromPlain(data) as MapNode, { recipients: [id.recipient] }).save({}, null);
    const r = await load('tricky.sops.yml', undefined, { processEnv: { SOPS_AGE_KEY: id.secret } });
    expect(r.code, r.err).toBe(0);
    expect(r.uploads).toHaveLength(1);
    const sent = r.uploads[0]!.content.toString('utf8');
    // as PyYAML reads the same data written as JSON (every string quoted): nothing retyped, nothing refused
    expect(withPyyaml(SAFE_LOAD_REPR, sent)).toEqual(withPyyaml(SAFE_LOAD_REPR, JSON.stringify(data)));
  });
});

describe('initdata: an encrypted JSON file reaches the loader as JSON PyYAML reads', () => {
  it('indented with spaces, not the tabs sops 3.13 writes JSON with (PyYAML refuses tabs), its floats as floats', async () => {
    const id = await generateIdentity();
    const file = join(root, 'data.sops.json');
    const data = { users: [{ email: 'bob@example.org', password: '12:30', admin: 'yes' }], big: 1e21, tiny: 1e-7, half: 0.5, n: 3 };
    await SecretsFile.create(file, fromPlain(data) as MapNode, { recipients: [id.recipient] }).save({}, null);
    expect(readFileSync(file, 'utf8')).toMatch(/^\t"/m);
    const r = await load('data.sops.json', undefined, { processEnv: { SOPS_AGE_KEY: id.secret } });
    expect(r.code, r.err).toBe(0);
    const sent = r.uploads[0]!.content.toString('utf8');
    expect(JSON.parse(sent)).toEqual(data);
    // its plaintext is JSON, not sops: the loader gets initdata.json (Django's loaddata knows no "sops" format, and the name would say encrypted)
    expect(r.runs.find((x) => x.step.name === 'initdata')?.step.script).toContain('OPS_INITDATA_FILE="$tmp"/initdata.json ');
    expect(withPyyaml(SAFE_LOAD_REPR, sent)).toEqual(withPyyaml(SAFE_LOAD_REPR, '{"users": [{"email": "bob@example.org", "password": "12:30", "admin": "yes"}], "big": 1.0e+21, "tiny": 1.0e-7, "half": 0.5, "n": 3}'));
  });
});

describe('initdata: a plain JSON file indented with tabs reaches the loader as the same JSON, which PyYAML reads', () => {
  it('tabs between tokens become spaces; a tab written \\t inside a string stays', async () => {
    const data = { users: [{ email: 'bob@example.org', note: 'a\tb', admin: 'yes' }], n: 3 };
    const r = await load('tabs.json', JSON.stringify(data, null, '\t') + '\n');
    expect(r.code, r.err).toBe(0);
    const sent = r.uploads[0]!.content.toString('utf8');
    expect(sent).not.toContain('\t');
    expect(JSON.parse(sent)).toEqual(data);
    expect(withPyyaml(SAFE_LOAD_REPR, sent)).toEqual(withPyyaml(SAFE_LOAD_REPR, JSON.stringify(data)));
  });
});

describe('initdata: a plain JSON file with a byte order mark (Notepad, PowerShell) and tabs', () => {
  it('is sent with spaces too, which PyYAML reads', async () => {
    const data = { users: [{ email: 'bob@example.org' }], n: 3 };
    const r = await load('bom.json', '\uFEFF' + JSON.stringify(data, null, '\t') + '\n');
    expect(r.code, r.err).toBe(0);
    const sent = r.uploads[0]!.content.toString('utf8');
    expect(sent).not.toContain('\t');
    expect(withPyyaml(SAFE_LOAD_REPR, sent)).toEqual(withPyyaml(SAFE_LOAD_REPR, JSON.stringify(data)));
  });
});

// Dumps made by the real pg_dump, pg_dumpall and gzip (test/fixtures/dumps/make.sh): owned by a role the
// environments lack, a GRANT to another, CREATE EXTENSION, \connect (--create, pg_dumpall).
const DUMPS = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'dumps');

describe('initdata: a database dump or another file that is not data for the loader', () => {
  it('a dump in each format pg_dump writes (plain, --create, -Fc, -Ft, -Fd, pg_dumpall, gzip\'d) is said as one, with the restore that loads it whole or not at all; nothing sent', async () => {
    for (const [name, what, restore] of [
      ['plain.sql', /a PostgreSQL plain SQL dump \(pg_dump\)/, /psql --single-transaction -v ON_ERROR_STOP=1 -d "\$DATABASE_URL" -f \S+plain\.sql/],
      ['create.sql', /a PostgreSQL plain SQL dump \(pg_dump --create\)/, /without --create .*psql --single-transaction -v ON_ERROR_STOP=1/],
      ['custom.dump', /a PostgreSQL custom-format dump \(pg_dump -Fc\)/, /pg_restore --single-transaction --exit-on-error --no-owner --no-privileges -d "\$DATABASE_URL" \S+custom\.dump/],
      ['tar.dump', /a PostgreSQL tar-format dump \(pg_dump -Ft\)/, /pg_restore --single-transaction --exit-on-error --no-owner --no-privileges/],
      ['directory.dump', /a PostgreSQL directory-format dump \(pg_dump -Fd\)/, /pg_restore --single-transaction --exit-on-error --no-owner --no-privileges -d "\$DATABASE_URL" \S+directory\.dump/],
      ['cluster.sql', /a PostgreSQL cluster dump \(pg_dumpall\)/, /as a superuser .*psql -v ON_ERROR_STOP=1 -f \S+cluster\.sql\), not into this environment's database/],
      ['plain.sql.gz', /a gzip-compressed PostgreSQL plain SQL dump \(pg_dump\)/, /gunzip -c \S+plain\.sql\.gz \| psql --single-transaction -v ON_ERROR_STOP=1 -d "\$DATABASE_URL" -f -/],
    ] as const) {
      cpSync(join(DUMPS, name), join(root, name), { recursive: true });
      const r = await load(name, undefined);
      expect(r.code, name).toBe(2);
      expect(r.err, name).toMatch(new RegExp(`${name} is ${what.source}, not a data file: initdata runs the app's loader \\(initdata.command\\) on a YAML or JSON file of data; it does not restore a database`));
      expect(r.err, name).toMatch(restore);
      // not the symptom a YAML, UTF-8 or file check meets in it
      expect(r.err, name).not.toMatch(/iconv|KEY: VALUE|sops edit|rmdir|not valid YAML|not UTF-8/);
      expect(r.err, name).toMatch(/nothing was sent/);
      expect(r.steps, name).toEqual([]);
    }
  });

  it('a dump or a data file over 2 GiB: said as what it is, or as too large, from its first MiB (it said ERR_FS_FILE_TOO_LARGE)', async () => {
    // sparse files: their size without the disk
    const dump = join(root, 'huge.dump');
    writeFileSync(dump, readFileSync(join(DUMPS, 'custom.dump')));
    truncateSync(dump, 3 * 2 ** 30);
    const r = await load('huge.dump', undefined);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/huge\.dump is a PostgreSQL custom-format dump \(pg_dump -Fc\), not a data file/);
    const text = join(root, 'huge.yml');
    writeFileSync(text, 'users:\n' + '  - email: a@example.org\n'.repeat(1000));
    truncateSync(text, 3 * 2 ** 30);
    const big = await load('huge.yml', undefined);
    expect(big.code).toBe(2);
    expect(big.err).toMatch(/huge\.yml is 3\.0 GiB: initdata sends a data file of at most 2 GiB\n.*split the data/);
    expect(big.steps).toEqual([]);
  });

  it('a path with spaces and quotes is shell-quoted in the command it gives', async () => {
    const name = "prod dump's copy.sql";
    const r = await load(name, readFileSync(join(DUMPS, 'plain.sql')));
    expect(r.code).toBe(2);
    expect(r.err).toContain(`-f ${quote(join(root, name))} `);
  });

  it('SQL written by hand, a compressed data file, binary data: said as what they are, nothing sent', async () => {
    const yaml = 'users:\n  - email: admin@example.org\n';
    for (const [name, content, why] of [
      ['seed.sql', 'BEGIN;\nINSERT INTO users (email) VALUES (\'a@example.org\');\nCOMMIT;\n', /seed\.sql is SQL statements, not a data file: .*hint: run them with the database's client/s],
      ['seed-comment.sql', '-- users: the admins\nINSERT INTO users (email) VALUES (\'a@example.org\');\n', /is SQL statements, not a data file/],
      ['initdata.yml.gz', execFileSync('gzip', ['-c'], { input: yaml }), /initdata\.yml\.gz is a gzip-compressed file, not a data file: .*decompress it \(gunzip -k \S+\)/s],
      ['initdata.yml.xz', execFileSync('xz', ['-c'], { input: yaml }), /is an xz-compressed file, not a data file: .*unxz -k/s],
      ['initdata.yml.zst', execFileSync('zstd', ['-c', '-q'], { input: yaml }), /is a zstd-compressed file, not a data file/],
      ['program', readFileSync(process.execPath).subarray(0, 16384), /program is binary data, not text, not a data file: initdata runs the app's loader \(initdata\.command\) on a YAML or JSON file of data\n/],
    ] as const) {
      const r = await load(name, content);
      expect(r.code, name).toBe(2);
      expect(r.err, name).toMatch(why);
      expect(r.err, name).not.toMatch(/iconv|KEY: VALUE|not valid YAML|not UTF-8/);
      expect(r.steps, name).toEqual([]);
    }
    // UTF-16 text holds NULs but is text: still said as UTF-16, with how to convert it
    const utf16 = await load('initdata-utf16.yml', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('users:\r\n  - email: a@example.org\r\n', 'utf16le')]));
    expect(utf16.code).toBe(2);
    expect(utf16.err).toMatch(/is UTF-16 text .* not UTF-8.*\n.*iconv -f utf-16 -t utf-8/);
  });

  it('an empty file, one of only comments, one line of text: refused, nothing sent (the loader read them as no data and succeeded)', async () => {
    for (const [name, text, why] of [
      ['empty.yml', '', /empty\.yml is empty: initial data is a YAML mapping or list/],
      ['comments.yml', '# users: to do\n\n', /comments\.yml holds no data \(only blank lines or comments\)/],
      ['null.yml', '~\n', /null\.yml holds no data/],
      ['word.yml', 'users\n', /word\.yml holds one text value, not data/],
    ] as const) {
      // the sample app's loader (yaml.safe_load(f) or {}) reads each as nothing to load, and exits 0
      expect(pyyaml(text).ok, name).toBe(true);
      const r = await load(name, text);
      expect(r.code, name).toBe(2);
      expect(r.err, name).toMatch(why);
      expect(r.err, name).toMatch(/nothing was sent/);
      expect(r.steps, name).toEqual([]);
    }
    // a list is data (a Django fixture is one)
    const list = await load('list.yml', '- email: a@example.org\n');
    expect(list.code).toBe(0);
    expect(list.uploads).toHaveLength(1);
  });
});

describe('initdata: a file that is not UTF-8 text', () => {
  it('is refused by byte offset and line, nothing sent (a Latin-1 é was loaded as U+FFFD)', async () => {
    for (const name of ['latin1.yml', 'latin1.json']) {
      const r = await load(name, Buffer.from(name.endsWith('.json') ? '{"users": [{"name": "Ren\xe9"}]}\n' : 'users:\n  - name: Ren\xe9\n', 'latin1'));
      expect(r.code, name).toBe(2);
      expect(r.err).toMatch(new RegExp(`${name} is not UTF-8 text: invalid byte at offset \\d+ \\(line \\d\\)`));
      expect(r.err).toContain('iconv -f latin1 -t utf-8');
      expect(r.uploads).toEqual([]);
      expect(r.steps).toEqual([]);
    }
  });
});

describe('initdata: the live release loads with the env and secrets the environment has now, or refuses', () => {
  it('refuses, before anything is uploaded, when the live release runs with other values (a secret set since the last deploy)', async () => {
    const r = await load('users.yml', 'users: []\n', { liveDigest: environDigest('TOOLS_PASSWORDS={"admin@example.org":"old"}\0') });
    expect(r.code).toBe(1);
    expect(r.err).toContain("the live release runs with other settings or secrets than environments/x now has: deploy first (ops deploy x), or pass --live-settings to load with the live release's");
    expect(r.err).not.toContain('old'); // digests only: no value
    expect(r.uploads).toEqual([]);
    expect(r.steps).not.toContain('initdata');
  });

  it('refused (no release live, other settings) or failed: one audit line on the host, failed, saying why as a refused deploy does', async () => {
    const none = await load('users.yml', 'users: []\n', { current: '' });
    expect(none.code).toBe(1);
    expect(none.err).toContain('no release is live on web1 yet');
    expect(none.audit).toMatchObject({ operation: 'initdata', result: 'failed', message: 'refused, nothing changed: no release is live on web1 yet' });
    // Never provisioned (nothing live there either): said first, with its fix, not as "no release is live".
    const bare = await load('users.yml', 'users: []\n', { current: '', provisioned: false });
    expect(bare.code).toBe(1);
    expect(bare.err).toContain('web1 is not provisioned for x (run: ops provision x): nothing was loaded');
    expect(bare.err).toContain('deploy first: ops deploy x');
    expect(bare.err).not.toContain('no release is live');
    expect(bare.uploads).toEqual([]);
    // Refused by the lock step, which took nothing there: nothing to let go, no audit line (nowhere to write it).
    expect(bare.steps).toEqual(['lock']);
    expect(bare.audit).toBeUndefined();
    const other = await load('users.yml', 'users: []\n', { liveDigest: 'none' });
    expect(other.audit).toMatchObject({ operation: 'initdata', result: 'failed', release: '20261125T120000Z-0123456789ab', message: expect.stringMatching(/^refused, nothing changed: the live release runs with other settings or secrets than environments\/x now has/) });
  });

  it('--json, refused or failed: the document a failed deploy or rollback has (environment, release, previous, live, each host\'s, reason), the release being the live one it loads into, null before it is read', async () => {
    const live = '20261125T120000Z-0123456789ab';
    const other = await load('users.yml', 'users: []\n', { liveDigest: 'none', args: ['--json'] });
    const doc = JSON.parse(other.out) as Record<string, unknown>;
    expect(doc).toMatchObject({ ok: false, environment: 'x', file: join(root, 'users.yml'), encrypted: false, release: live, previous: live, live, exitCode: 1 });
    expect(doc.hosts).toEqual([{ host: 'web1', release: live, previous: live, live }]);
    expect(doc.reason).toMatch(/^the live release runs with other settings/);
    // Before any host (no such file): nothing known of the releases, said so.
    const missing = await runOps(['initdata', 'x', '--file', join(root, 'nope.yml'), '--json'], { root, processEnv: { PATH: process.env.PATH } });
    expect(JSON.parse(missing.out)).toMatchObject({ ok: false, environment: 'x', release: null, releaseNote: expect.stringMatching(/^no release was loaded into/), previous: null, live: null, hosts: [{ host: 'web1', release: null, previous: null, live: null }], reason: expect.stringMatching(/does not exist/) });
  });

  it('a loader stopped part-way (its time limit, killed from outside) says what it may have left in the database, and how to give it longer', async () => {
    const env = join(root, 'environments', 'x', 'environment.yml');
    const config = readFileSync(env, 'utf8');
    try {
      writeFileSync(env, stringify({ ...(parse(config) as object), initdata: { timeout: 7200 } }));
      const timedOut = await load('users.yml', 'users: []\n', { loader: { code: 124, stderr: 'loaded 40000 of 90000 rows' } });
      expect(timedOut.code).toBe(1);
      expect(timedOut.runs.find((x) => x.step.name === 'initdata')?.step.timeout).toBe(7200);
      expect(timedOut.err).toContain('step "initdata" on web1 timed out after 7200 s');
      expect(timedOut.err).toContain('hint: a loader still running after initdata.timeout (7200 s) is stopped: for a large file, raise initdata.timeout; the initdata loader was stopped part-way: what it had written stays in the database unless it loads in one transaction');
      expect(timedOut.audit).toMatchObject({ operation: 'initdata', result: 'failed' });
      const killed = await load('users.yml', 'users: []\n', { loader: { code: 137, stderr: '' } });
      expect(killed.err).toMatch(/was stopped by SIGKILL from outside this run[\s\S]*hint: the initdata loader was stopped part-way: .*check the data, then run initdata again/);
      // a loader that failed on its own says its own words only
      const failed = await load('users.yml', 'users: []\n', { loader: { code: 1, stderr: 'initdata: nothing was loaded: connection refused' } });
      expect(failed.err).not.toContain('stopped part-way');
    } finally {
      writeFileSync(env, config);
    }
  });

  it('a live release with no environ file is not the same either', async () => {
    const r = await load('users.yml', 'users: []\n', { liveDigest: 'none' });
    expect(r.code).toBe(1);
    expect(r.err).toContain('has no environ file');
  });

  it('loads when they are the same; --live-settings loads without comparing', async () => {
    const same = await load('users.yml', 'users: []\n');
    expect(same.code, same.err).toBe(0);
    expect(same.steps.indexOf('initdata settings')).toBeGreaterThan(-1);
    expect(same.steps.indexOf('initdata settings')).toBeLessThan(same.steps.indexOf('initdata'));
    const live = await load('users.yml', 'users: []\n', { liveDigest: 'f'.repeat(64), args: ['--live-settings'] });
    expect(live.code, live.err).toBe(0);
    expect(live.steps).not.toContain('initdata settings');
    expect(live.steps).toContain('initdata');
  });

  it("environDigest is what the host computes (LC_ALL=C sort -z | sha256sum), whatever the records' order", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-environ-'));
    const records = ['B=2', 'A=é x\nsecond line', 'AB=1', 'A_=z', 'a=€', 'Z=💥', 'EMPTY='];
    const environ = records.map((r) => `${r}\0`).join('');
    writeFileSync(join(dir, 'environ'), environ);
    const host = execFileSync('bash', ['-c', 'LC_ALL=C sort -z -- "$1" | sha256sum', 'bash', join(dir, 'environ')], { encoding: 'utf8' }).split(' ')[0];
    expect(environDigest(environ)).toBe(host);
    expect(environDigest([...records].reverse().map((r) => `${r}\0`).join(''))).toBe(host);
    expect(environDigest(environ.replace('AB=1', 'AB=2'))).not.toBe(host);
  });

  it("the job summary keeps the loader's output as text: a line of backticks in it ends no code block (no markdown, no @mention from a host)", () => {
    const output = 'loaded 3 rows\n```\n# Deployed by nobody\n![x](https://evil.example/p.png) @acme/ops\n`````';
    const lines = initdataSummary({ environment: 'prod', file: 'initdata.yml', encrypted: false, hosts: [{ host: 'web1', release: 'r1', output }] }).split('\n');
    // CommonMark: a block opened by N backticks ends only at a line of N or more backticks (up to 3 spaces before).
    const open = lines.findIndex((l) => /^`{3,}$/.test(l));
    const fence = lines[open]!;
    const close = lines.findIndex((l, i) => i > open && new RegExp(`^ {0,3}\`{${fence.length},}\\s*$`).test(l));
    expect(lines.slice(open + 1, close).join('\n')).toBe(output);
  });
});

// Loaders choose their reader by the file's name: Django's loaddata by its last two extensions (json, xml, yaml;
// gz, zip, bz2, xz, lzma), and it refuses `.yml` ("yml is not a known serialization format"). The file was sent
// as initdata.yml whatever it was: every Django fixture failed, and a JSON or XML file reached a loader as YAML.
const DJANGO = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'django');

describe('initdata: the file reaches the loader under its own extensions, checked as the format they say', () => {
  /** The name the loader gets ($OPS_INITDATA_FILE's last part) and the uploaded file's, from the initdata step. */
  const sentAs = (r: Awaited<ReturnType<typeof load>>) => ({
    loader: /OPS_INITDATA_FILE="\$tmp"\/(\S+)/.exec(r.runs.find((x) => x.step.name === 'initdata')?.step.script ?? '')?.[1]?.replace(/^'(.*)'$/, '$1'),
    upload: r.uploads[0]?.path.replace(/^.*\/initdata-[0-9a-f]{12}/, ''),
  });

  it('a Django fixture (JSON, XML, as dumpdata writes them), a YAML file, one with several extensions or none', async () => {
    for (const [name, content, loader, upload] of [
      ['items.json', readFileSync(join(DJANGO, 'items.json')), 'initdata.json', '.json'],
      ['items.xml', readFileSync(join(DJANGO, 'items.xml')), 'initdata.xml', '.xml'],
      ['users.yaml', 'users: []\n', 'initdata.yaml', '.yaml'],
      ['users.yml', 'users: []\n', 'initdata.yml', '.yml'],
      ['seed.v2.YAML', 'users: []\n', 'initdata.v2.YAML', '.v2.YAML'],
      ['seed', 'users: []\n', 'initdata', ''],
    ] as const) {
      const r = await load(name, content);
      expect(r.code, `${name}: ${r.err}`).toBe(0);
      expect(sentAs(r), name).toEqual({ loader, upload });
      expect(r.uploads[0]!.content.toString('utf8'), name).toBe(content.toString());
    }
  });

  it('XML (or another format ops does not read) is sent as written, saying what was checked; named .xml but not XML, refused', async () => {
    const xml = await load('fixture.xml', readFileSync(join(DJANGO, 'items.xml')));
    expect(xml.code).toBe(0);
    expect(xml.err).toMatch(/fixture\.xml is sent as written, for the loader to read: ops reads YAML and JSON, not XML; it checked only that it is UTF-8 text, not a database dump, SQL, compressed or binary, not empty, and begins as XML/);
    const notXml = await load('fake.xml', readFileSync(join(DJANGO, 'items.json')));
    expect(notXml.code).toBe(2);
    expect(notXml.err).toMatch(/fake\.xml is named \.xml but is not XML/);
    expect(notXml.uploads).toHaveLength(0);
  });

  it('a .json file is checked as JSON: YAML in it is refused by place; valid JSON that is not YAML (a key given twice) is sent', async () => {
    const yaml = await load('users.json', 'users:\n  - email: a@example.org\n');
    expect(yaml.code).toBe(2);
    expect(yaml.err).toMatch(/users\.json is not valid JSON/);
    expect(yaml.uploads).toHaveLength(0);
    const scalar = await load('one.json', '"users"');
    expect(scalar.code).toBe(2);
    expect(scalar.err).toMatch(/one\.json holds one value, not data/);
    // JSON.parse (and Python's json, Django's reader) take the last; the YAML check refused it as a duplicate key
    const twice = await load('twice.json', '[{"model": "shop.item", "pk": 1, "pk": 2, "fields": {"name": "c"}}]');
    expect(twice.code, twice.err).toBe(0);
    expect(sentAs(twice).loader).toBe('initdata.json');
  });

  it('a name saying a compressed file, or with extensions unsafe on a command line: refused, nothing sent', async () => {
    for (const [name, why] of [
      ['items.json.gz', /items\.json\.gz is a compressed file by its name, not a data file: .*decompress it/s],
      ['items.yaml.bz2', /is a compressed file by its name/],
      ['items.json;rm -rf ~', /its extension ".json;rm -rf ~" holds characters other than letters, digits, - and _/],
      ["items.$(id).json", /holds characters other than letters/],
    ] as const) {
      const r = await load(name, readFileSync(join(DJANGO, 'items.json')));
      expect(r.code, name).toBe(2);
      expect(r.err, name).toMatch(why);
      expect(r.uploads, name).toHaveLength(0);
    }
  });
});

describe('initdata: faults a new user meets, each said as what it is', () => {
  it('a dump or SQL that sops encrypted whole (its binary store: {data: <the file>} once decrypted) is said as a sops-encrypted dump, with a restore reading sops decrypt; nothing sent', async () => {
    const id = await generateIdentity();
    const sops = (args: string[], input: string) => execFileSync('sops', ['encrypt', '--age', id.recipient, ...args, input], { cwd: root });
    cpSync(join(DUMPS, 'plain.sql'), join(root, 'whole.sql'));
    cpSync(join(DUMPS, 'custom.dump'), join(root, 'whole.dump'));
    writeFileSync(join(root, 'hand.sql'), 'INSERT INTO users (email) VALUES (\'a@example.org\');\n');
    for (const [name, made, what, restore] of [
      ['plain.sql.enc', sops([], 'whole.sql'), /a sops-encrypted PostgreSQL plain SQL dump \(pg_dump\)/, /sops decrypt --output-type binary \S+plain\.sql\.enc \| psql --single-transaction -v ON_ERROR_STOP=1 -d "\$DATABASE_URL" -f -/],
      ['plain.sops.yaml', sops(['--input-type', 'binary', '--output-type', 'yaml'], 'whole.sql'), /a sops-encrypted PostgreSQL plain SQL dump/, /sops decrypt --output-type binary \S+plain\.sops\.yaml \| psql/],
      ['custom.dump.enc', sops(['--input-type', 'binary'], 'whole.dump'), /a sops-encrypted PostgreSQL custom-format dump \(pg_dump -Fc\)/, /sops decrypt --output-type binary \S+custom\.dump\.enc \| pg_restore --single-transaction/],
      ['hand.sops.json', sops(['--input-type', 'binary', '--output-type', 'json'], 'hand.sql'), /a sops-encrypted SQL statements/, /sops decrypt --output-type binary \S+hand\.sops\.json \| psql/],
    ] as const) {
      const r = await load(name, made, { processEnv: { SOPS_AGE_KEY: id.secret } });
      expect(r.code, `${name}: ${r.err}`).toBe(2);
      expect(r.err, name).toMatch(what);
      expect(r.err, name).toMatch(/it does not restore a database/);
      expect(r.err, name).toMatch(restore);
      expect(r.uploads, name).toHaveLength(0);
    }
  });

  it('a .json file that is not JSON is refused by line and column, whatever JSON.parse says (it quotes the text and gives no place for a bare word, NaN, a comment)', async () => {
    for (const [text, place] of [
      ['{"users": [\n  {"email": bob}\n]}', /at line 2, column 13: a word not in double quotes/],
      ['{"users": [\n  {"email": "a@example.org"},\n]}', /at line 3, column 1: a comma before \], which JSON does not allow \(a trailing comma\)/],
      ["{'users': []}", /at line 1, column 2: a single quote/],
      ['// users\n{"users": []}', /at line 1, column 1: a comment, which JSON does not have/],
      ['{"n": NaN}', /at line 1, column 7: a word not in double quotes/],
      ['{"users": [\n', /at line 2, column 1: the text ends where a value was expected/],
      ['[{"a": 1}\n {"b": 2}]', /at line 2, column 2: a comma missing between two values/],
      ['{"p": "s3cr\tt"}', /at line 1, column 7: a string holding a control character \(a tab is written \\t/],
      ['{"p": 01}', /at line 1, column 8: a number JSON does not allow/],
      ['{"a": 1}}', /at line 1, column 9: more text after the JSON value/],
    ] as const) {
      const r = await load('bad.json', text);
      expect(r.code, text).toBe(2);
      expect(r.err, text).toMatch(new RegExp(`bad\\.json is not valid JSON ${place.source}`));
      // never the text itself (it may be a decrypted secret)
      expect(r.err, text).not.toMatch(/bob|NaN|s3cr/);
      expect(r.uploads, text).toHaveLength(0);
    }
  });

  it('--file naming a directory: told to give a file in it (its files named), not to remove it', async () => {
    const dir = join(root, 'fixtures.d');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'users.yaml'), 'users: []\n');
    writeFileSync(join(dir, 'tags.json'), '[]\n');
    const r = await load('fixtures.d', undefined);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/fixtures\.d: it is a directory, not an initdata file/);
    expect(r.err).toMatch(/give one file in it: \S+fixtures\.d\/tags\.json, \S+fixtures\.d\/users\.yaml/);
    expect(r.err).not.toMatch(/rmdir|move it aside/);
    const empty = join(root, 'empty.v2');
    mkdirSync(empty, { recursive: true });
    const e = await load('empty.v2', undefined);
    expect(e.err).toMatch(/empty\.v2: it is a directory, not an initdata file/);
    expect(e.err).not.toMatch(/rmdir|move it aside/);
  });

  it('the loader\'s path has dots only in the file\'s own name: its private directory has none (Django\'s loaddata read "/tmp/ops-initdata.AbC123/initdata" as the extension ".AbC123/initdata")', async () => {
    const r = await load('seed', 'users: []\n');
    expect(r.code, r.err).toBe(0);
    const script = r.runs.find((x) => x.step.name === 'initdata')!.step.script;
    const template = /mktemp -d (\S+)\)/.exec(script)![1]!;
    // the directory mktemp makes from the step's own template, and the file in it the loader gets
    const made = execFileSync('mktemp', ['-d', template.replace(/^\/tmp\//, `${root}/`)], { encoding: 'utf8' }).trim();
    const loaderPath = `${made}/${/OPS_INITDATA_FILE="\$tmp"\/(\S+)/.exec(script)![1]!.replace(/^'(.*)'$/, '$1')}`;
    expect(loaderPath.slice(root.length + 1)).not.toContain('.');
  });
});
