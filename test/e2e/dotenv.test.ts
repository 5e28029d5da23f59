// Issue 17's checks on a real host: hard secret values, set with `ops secrets set` (the real CLI), deployed
// with the default .env readers, are read back byte for byte from the live release's .env by python-dotenv
// and Node's dotenv (on the runner, after fetching the file), and reach the pipeline's own commands (a hook)
// exactly; a hook printing the password of database_url shows ***; a value the readers would corrupt makes
// the deploy (and its dry run) refuse before anything changes, naming the variable, never printing the value.
//
// The programs are a plain static server (not the sample app, which issue 18 rebuilds): what is checked
// here is the file and the pipeline's commands; the app's own reading is the sample app's e2e test.
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { MemoryReporter } from '../../core/report.ts';
import { generateIdentity, SecretsFile, setEnvRule, fromPlain, type MapNode } from '../../core/secrets/index.ts';
import { sshRun } from '../hosts/index.ts';
import { runOps } from '../support/cli.ts';
import { dotenvDir, readReal } from '../support/real-dotenv.ts';
import { appRepo, labEnvironment, testConfig } from './support.ts';

const PID = process.pid;
const DB_PASSWORD = `s3cr%40t-${PID}-db`;
const DB_URL = `postgresql+asyncpg://app_${PID}:${DB_PASSWORD}@10.230.0.1:5432/app_${PID}`;
const ADMIN_PASSWORD = `adm1n-${PID}-"quoted"`;
/** A map member holding $ forms: the .env's JSON writes $ as \u0024, so python-dotenv has no ${...} to interpolate. */
const OPS_PASSWORD = `0ps-$\${HOME}-$USER-$$-${PID}-Sekr3t`;

/** Hard values the default readers (python-dotenv + node-dotenv) must carry exactly. */
const HARD: string[] = [
  `pa$$w0rd-${PID}`,
  '$HOME and $1 and a$',
  'say "hi"',
  "it's",
  'C:\\path\\new\\table',
  'back`tick`',
  'ends with a backslash\\',
  '\\n is not a line break',
  'two\nlines',
  'trailing newline\n',
  'crlf\r\nline and a lone\rcr',
  '\ttabs\tand  spaces  ',
  '  leading spaces',
  'hash # not a comment',
  '#starts with a hash',
  'key=value==',
  'unicode: é ß 漢字 😀',
  `{"json": "x$y", "q": "it's"}`,
  '-----BEGIN KEY-----\nAAAA+/==\n-----END KEY-----\n',
  `${'long-'.repeat(1000)}$`,
];

/** What the default readers cannot carry: python-dotenv interpolates ${...}; no quoting holds ', " and a line break for both. */
const REFUSED = { interpolated: `x\${HOME}y-${PID}-Sekr1t`, mixed: `it's "quoted"\nline-${PID}-Sekr2t` };

let config: Record<string, unknown>;

const cli = (argv: string[], input = '') => runOps(argv, { root: lab.project.root, processEnv: { PATH: process.env.PATH, HOME: process.env.HOME, USER: 'e2e' }, input });
const sha256 = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
/** A root-readable file of the host, byte for byte. */
// The environment's private key outside its repository, where a real one lives (inside, ops warns on each use).
const KEY = join(mkdtempSync(join(tmpdir(), 'ops-dotenv-key-')), 'age-key.txt');
const fetchFile = async (path: string) => Buffer.from((await sshRun(lab.host, `sudo base64 -w0 ${path}`)).stdout.trim(), 'base64');

const lab = labEnvironment(
  'dot',
  async (host) => {
    const base = testConfig([host], await appRepo(), 'unused');
    const hook = [
      'python3 -c \'import os, hashlib, json, urllib.parse; e = os.environ',
      'print("HOOK-SUMS", json.dumps({k: hashlib.sha256(os.fsencode(e[k])).hexdigest() for k in sorted(e) if k.startswith("HARD_")}))',
      'print("HOOK-PASSWORD", urllib.parse.urlparse(e["APP_DATABASE_URL"]).password)',
      'print("HOOK-ADMIN", json.loads(e["TOOLS_PASSWORDS"])["admin@example.org"])',
      'print("HOOK-OPS", json.loads(e["TOOLS_PASSWORDS"])["ops@example.org"])',
      'print("HOOK-RAW", e["TOOLS_PASSWORDS"])\'',
    ].join('; ');
    config = {
      ...base,
      secrets: { age_key_file: KEY },
      // A static server in a directory without secrets: no dependencies to install, nothing reading .env.
      release: { python_requirements: '', node_dir: '', build: 'true', migrate: 'true', before_switch: [hook] },
      programs: { web: { command: '{python} -m http.server {port} --bind 127.0.0.1 --directory migrations', port: 3579, health: '/' } },
      routes: { '/': 'web' },
      env: {
        APP_DATABASE_URL: { secret: 'database_url' },
        TOOLS_PASSWORDS: { secret: 'passwords' },
        ...Object.fromEntries(HARD.map((_, i) => [`HARD_${i}`, { secret: `hard.v${i}` }])),
      },
    };
    return config;
  },
  {
    ready: async ({ project }) => {
      const id = await generateIdentity();
      const dir = join(project.root, 'environments', 'e2e');
      writeFileSync(KEY, id.keyFile, { mode: 0o600 });
      await setEnvRule(project.root, 'e2e', [id.recipient]);
      await SecretsFile.create(join(dir, 'secrets.sops.yaml'), fromPlain({ database_url: DB_URL, passwords: { 'admin@example.org': ADMIN_PASSWORD, 'ops@example.org': OPS_PASSWORD } }) as MapNode, { recipients: [id.recipient] }).save();
      // The hard values go in as a user puts them: a one-line value with the newline echo adds (`ops secrets set` drops
      // it), one with a line break as a file gives it (kept exact), one ending in a newline with --exact.
      for (const [i, v] of HARD.entries()) {
        const r = /[\r\n]/.test(v) ? await cli(['secrets', 'set', 'e2e', `hard.v${i}`, ...(/[\r\n]/.test(v.replace(/\r?\n$/, '')) ? [] : ['--exact'])], v) : await cli(['secrets', 'set', 'e2e', `hard.v${i}`], `${v}\n`);
        expect(r.code, r.err).toBe(0);
      }
    },
  },
);

describe.sequential('.env fidelity on a real host', () => {
  it("hard secrets reach the release's .env byte for byte for python-dotenv and Node's dotenv, and the hooks exactly; the URL password is masked", async () => {
    const reporter = new MemoryReporter();
    await deploy(lab.project.ctx(reporter), lab.project.env(), { ref: 'v1' });

    const dotenv = await fetchFile('/srv/sample/current/.env');
    const { dir, remove } = dotenvDir(dotenv.toString('utf8'));
    const keys = HARD.map((_, i) => `HARD_${i}`);
    try {
      for (const reader of ['python-dotenv', 'node-dotenv'] as const)
        for (const { how, values } of await readReal(reader, dir, keys)) {
          expect(keys.map((k) => values[k]), how).toEqual(HARD);
          expect(values.APP_DATABASE_URL, how).toBe(DB_URL);
          expect(JSON.parse(values.TOOLS_PASSWORDS!), how).toEqual({ 'admin@example.org': ADMIN_PASSWORD, 'ops@example.org': OPS_PASSWORD });
        }
    } finally {
      remove();
    }
    // Both files private to the app user.
    expect((await sshRun(lab.host, 'sudo stat -c "%a %U" /srv/sample/current/.env /srv/sample/current/.ops-environ')).stdout.trim().split('\n')).toEqual(['600 sample', '600 sample']);

    // The hook saw every value exactly (hashes of the bytes in its environment), and printed secrets masked.
    const log = reporter.text();
    const sums = JSON.parse(/HOOK-SUMS (\{.*\})/.exec(log)![1]!);
    expect(sums).toEqual(Object.fromEntries(keys.map((k, i) => [k, sha256(HARD[i]!)])));
    expect(log).toContain('HOOK-PASSWORD ***');
    expect(log).toContain('HOOK-ADMIN ***');
    expect(log).toContain('HOOK-OPS ***');
    // the variable as the hook got it: each member masked in the form the .env's JSON writes it (\u0024 for $)
    expect(log).toContain('HOOK-RAW {"admin@example.org":"***","ops@example.org":"***"}');
    for (const leak of [DB_PASSWORD, decodeURIComponent(DB_PASSWORD), ADMIN_PASSWORD, OPS_PASSWORD, 'Sekr3t', HARD[0]!]) expect(log).not.toContain(leak);
  }, 300_000);

  it('a value the readers would corrupt: the dry run and the deploy refuse before anything changes, naming it, never printing it', async () => {
    const before = { env: sha256(await fetchFile('/srv/sample/current/.env')), releases: (await sshRun(lab.host, 'sudo ls /srv/sample/releases')).stdout, audit: (await sshRun(lab.host, 'sudo wc -l < /srv/sample/.ops/audit.log')).stdout };
    for (const [name, value] of Object.entries(REFUSED)) expect((await cli(['secrets', 'set', 'e2e', `refused.${name}`], `${value}\n`)).code).toBe(0);
    lab.project.write({ ...config, env: { ...(config.env as object), BAD_INTERPOLATED: { secret: 'refused.interpolated' }, BAD_MIXED: { secret: 'refused.mixed' } } });

    for (const argv of [['deploy', 'e2e', '--ref', 'v2', '--dry-run'], ['deploy', 'e2e', '--ref', 'v2'], ['config', 'e2e']]) {
      const r = await cli(argv);
      // a value of the settings no reader carries is a usage error (exit 2, README "Exit status"), found before any host
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toContain('2 .env values of e2e cannot be written so that their readers read them back exactly (nothing was sent to any host)');
      expect(r.err).toContain('BAD_INTERPOLATED (secret "refused.interpolated"; read by python-dotenv, node-dotenv): python-dotenv replaces "${...}"');
      expect(r.err).toContain('BAD_MIXED (secret "refused.mixed"; read by python-dotenv, node-dotenv): no quoting is read the same by python-dotenv and node-dotenv');
      expect(r.err).toContain('change the value');
      for (const s of [r.out, r.err]) expect(s).not.toMatch(/Sekr[12]t/);
    }
    expect(sha256(await fetchFile('/srv/sample/current/.env'))).toBe(before.env);
    expect((await sshRun(lab.host, 'sudo ls /srv/sample/releases')).stdout).toBe(before.releases);
    expect((await sshRun(lab.host, 'sudo wc -l < /srv/sample/.ops/audit.log')).stdout).toBe(before.audit);
  }, 300_000);
});
