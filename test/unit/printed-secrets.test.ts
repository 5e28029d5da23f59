// No secret is ever printed, by kind: a URL's password written in environment.yml (every command masks it, `ops
// config` too: one openEnvironment, guarded), what errors quote of a file or an argument (a URL's password, a
// private key), a private key pasted into .sops.yaml, settings that must hold no password, and a value pasted as
// the key of `ops secrets set`. The real CLI (scripts/ops-bin.js) in a temporary project, as a user runs it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { maskSecretLike, oneLine } from '../../core/errors.ts';
import { MemoryReporter } from '../../core/report.ts';
import { hideSecrets, hideUrlCredentials, isPrivateKey, isTokenUser, privateKeysIn, urlCredentials, urlCredentialsIn } from '../../core/secrets/parts.ts';
import { newEnv, tempRoot } from './secrets.helpers.ts';

const BIN = fileURLToPath(new URL('../../scripts/ops-bin.js', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** `ops <argv>` as a process of its own, in project `root`, with `input` on stdin. */
function ops(root: string, argv: string[], input = '', env: NodeJS.ProcessEnv = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...argv], { env: { PATH: process.env.PATH, HOME: '/nonexistent', OPS_ROOT: root, NO_COLOR: '1', ...env }, encoding: 'utf8', input, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const PASSWORD = 'Zq9-hunter2-pw';
const DB_URL = `postgres://app:${PASSWORD}@db.internal/shop`;
/** A well-formed age private key nobody uses (the checksum of a key of age's own test vectors is not needed here). */
const PRIVATE_KEY = 'AGE-SECRET-KEY-1QXRVEJH9S4NQU0FPD6V79ESZQ8S6PXH3L8V40EVPTHFH6KNKD4DQ7SKC4Q';
/** A GitHub token written as a clone URL's user (no password): what `git clone https://TOKEN@github.com/...` takes. */
const TOKEN = 'ghp_0123456789abcdefABCDEF0123456789abcd';
const TOKEN_URL = `https://${TOKEN}@github.com/org/app.git`;
/** Tokens people write as a URL's user: GitHub's kinds, GitLab's, npm's, Slack's, and unprefixed ones (Gitea's 40 hex digits, an Azure DevOps PAT). */
const TOKENS = [
  TOKEN,
  'gho_16C7e42F292c6912E7710c838347Ae178B4a',
  'ghs_AbCdEf0123456789AbCdEf0123456789AbCd',
  'github_pat_11ABCDEFG0abcdefghijkl_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS',
  'glpat-xxxxxxxxxxxxxxxxxxxx',
  'gldt-Ab12Cd34Ef56Gh78Ij90',
  'npm_0123456789abcdefghijABCDEFGHIJ012345',
  'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx',
  '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b',
  'k3j5h2g7f8d9s0a1q2w3e4r5t6y7u8i9o0p1a2s3d4f5g6h7j8k9',
];
/** Tokens without a known prefix that a shape gives away: base64url with "-" and "_", a JWT, a UUID, an AWS access key id. */
const GENERATED = [
  'dGhpcyBpcyBh-c2VjcmV0X3Rva2Vu_Zm9y',
  'xK9-aB3_qZ7mN2pL8vR4tY6w',
  'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkZXBsb3kifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ',
  '123e4567-e89b-12d3-a456-426614174000',
  'AKIAIOSFODNN7EXAMPLE',
];
/** An AWS CodeCommit SSH URL: its user is the IAM SSH public key's id (APKA…), public like a user name. */
const CODECOMMIT = 'ssh://APKAEIBAERJR2EXAMPLE@git-codecommit.us-east-2.amazonaws.com/v1/repos/x';
/** Git's scp-like addresses with a token as the user, or after "oauth2:". */
const SCP_TOKEN = `${TOKEN}@github.com:org/app.git`;
const SCP_OAUTH = `oauth2:${TOKENS[4]}@gitlab.com:g/app.git`;
/** URLs and addresses whose user is a name: shown and accepted as they are. */
const NAMED = [
  'ssh://git@github.com/org/app.git',
  'git@github.com:org/app.git',
  'https://alice@gitlab.example.org/group/app.git',
  'deploy@host',
  'ssh://deploy@192.0.2.1:2222/srv/app',
  'https://svc_deploy_2024@git.example.org/app.git',
  'https://first.last@example.org/',
  'https://npm_ci@registry.example.org/',
  'https://ci-bot-0123456789-abcdef0123@git.example.org/',
  'https://serviceaccountfordeploys@git.example.org/',
  'deploy@host:path',
  'deploy:x@host:srv/app',
  'https://deploy-bot@git.example.org/ and https://ci_user@git.example.org/',
  'https://John-Smith-2024-Deploy-Bot@git.example.org/',
  CODECOMMIT,
];
const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

/** A project with environment `demo` whose environment.yml holds `settings` over a minimal valid one (or `text` as is). */
function project(settings: Record<string, unknown> | string): string {
  const root = tempRoot();
  const dir = join(root, 'environments', 'demo');
  const base = { app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: HOST_KEY }], programs: { server: { command: 'run', port: 3579, health: '/health' }, client: { command: 'run', port: 3000 } } };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'environment.yml'), typeof settings === 'string' ? settings : stringify({ ...base, ...settings }));
  return root;
}

describe('the detectors (core/secrets/parts.ts)', () => {
  it('find and hide a URL password in running text, and a private key however pasted', () => {
    expect(urlCredentialsIn(`psql ${DB_URL} -c 'select 1'`)).toEqual([PASSWORD, PASSWORD]);
    expect(urlCredentialsIn('https://user@host/x and https://host/y')).toEqual([]);
    expect(hideUrlCredentials(`got "${DB_URL}"`)).toBe('got "postgres://app:***@db.internal/shop"');
    expect(privateKeysIn(`# ${PRIVATE_KEY.toLowerCase()}, GE-SECRET-KEY-1ABC`)).toEqual([PRIVATE_KEY.toLowerCase(), 'GE-SECRET-KEY-1ABC']);
    expect(isPrivateKey(PRIVATE_KEY.slice(1))).toBe(true);
    expect(isPrivateKey('that is a private key (AGE-SECRET-KEY-…)')).toBe(false);
    // The shape as hints write it (`AGE-SECRET-KEY-1…`: the "1" is in every key) is no key: a hint stays readable.
    const hint = 'each non-comment line must be a private key AGE-SECRET-KEY-1… (or AGE-SECRET-KEY-PQ-1…)';
    expect(isPrivateKey(hint)).toBe(false);
    expect(hideSecrets(hint)).toBe(hint);
    expect(privateKeysIn('AGE-SECRET-KEY-1Q AGE-SECRET-KEY-PQ-1Q')).toEqual(['AGE-SECRET-KEY-1Q', 'AGE-SECRET-KEY-PQ-1Q']);
    const once = hideSecrets(`${PRIVATE_KEY} ${DB_URL}`);
    expect(once).not.toMatch(/Zq9|QXRVEJ/);
    expect(hideSecrets(once)).toBe(once);
  });

  it("find and hide a token written as a URL's user, keeping the scheme and host", () => {
    for (const token of TOKENS) {
      expect(isTokenUser(token), token).toBe(true);
      expect(urlCredentials(`https://${token}@git.example.org/app.git`), token).toEqual([token, token]);
      expect(urlCredentialsIn(`git clone https://${token}@github.com/org/app.git .`), token).toEqual([token, token]);
      expect(hideUrlCredentials(`git clone https://${token}@github.com/org/app.git .`)).toBe('git clone https://***@github.com/org/app.git .');
      expect(hideSecrets(`remote: "https://${token}@github.com/org/app.git"`)).toBe('remote: "https://***@github.com/org/app.git"');
    }
    // with a password too: the password hidden, and the user when it is a token
    expect(hideUrlCredentials(`https://x-access-token:${TOKENS[2]}@github.com/org/app.git`)).toBe('https://x-access-token:***@github.com/org/app.git');
    expect(urlCredentials(`https://oauth2:${TOKENS[4]}@gitlab.com/g/app.git`)).toEqual([TOKENS[4], TOKENS[4]]);
    expect(hideUrlCredentials(`https://${TOKEN}:x-oauth-basic@github.com/org/app.git`)).toBe('https://***:***@github.com/org/app.git');
    const once = hideSecrets(`${TOKEN_URL} ${DB_URL}`);
    expect(hideSecrets(once)).toBe(once);
  });

  it('leave a user that is a name shown: ssh://git@, git@host:, alice@, deploy@', () => {
    for (const text of NAMED) {
      expect(urlCredentialsIn(text), text).toEqual([]);
      expect(hideSecrets(text), text).toBe(text);
      expect(maskSecretLike(text), text).toBe(text);
    }
    for (const user of ['git', 'alice', 'deploy', 'npm_ci', 'ghp_short', 'serviceaccountfordeploys', 'ci-bot-0123456789-abcdef0123', '01234567890123456789012']) expect(isTokenUser(user), user).toBe(false);
  });

  it("find and hide a token in git's scp-like address (TOKEN@host:path, oauth2:TOKEN@host:path), as in a URL", () => {
    expect(urlCredentials(SCP_TOKEN)).toEqual([TOKEN, TOKEN]);
    expect(urlCredentials(SCP_OAUTH)).toEqual([TOKENS[4], TOKENS[4]]);
    expect(urlCredentialsIn(`git clone ${SCP_TOKEN} . && git remote add gl "${SCP_OAUTH}"`)).toEqual([TOKEN, TOKEN, TOKENS[4], TOKENS[4]]);
    expect(hideSecrets(`git clone ${SCP_TOKEN} .`)).toBe('git clone ***@github.com:org/app.git .');
    expect(maskSecretLike(`fatal: could not read from '${SCP_OAUTH}'`)).toBe("fatal: could not read from 'oauth2:***@gitlab.com:g/app.git'");
    const reporter = new MemoryReporter();
    reporter.mask(SCP_TOKEN);
    reporter.info(`token: ${TOKEN}`);
    expect(reporter.lines.at(-1)).toBe('token: ***');
  });

  it('find a token without a known prefix by its shape (base64url, JWT, hex), never a name people write', () => {
    for (const token of GENERATED) {
      expect(isTokenUser(token), token).toBe(true);
      expect(hideUrlCredentials(`https://${token}@git.example.org/app.git`), token).toBe('https://***@git.example.org/app.git');
    }
    for (const user of ['deploy-bot', 'ci_user', 'firstname.lastname', 'John-Smith-2024-Deploy-Bot', 'DeployBot_Production_2024', 'k8s-Prod-EU-West-1-Deployer', 'Build_Agent_Win2019_X64', 'release-2024-01-15-hotfix-3', 'user_12345678901234567890'])
      expect(isTokenUser(user), user).toBe(false);
  });

  it("an AWS identifier as the user (CodeCommit's SSH key id) is no secret: shown; an access key id is", () => {
    expect(isTokenUser('APKAEIBAERJR2EXAMPLE')).toBe(false);
    expect(urlCredentials(CODECOMMIT)).toEqual([]);
    expect(maskSecretLike(`cloning ${CODECOMMIT}`)).toBe(`cloning ${CODECOMMIT}`);
    expect(isTokenUser('AKIAIOSFODNN7EXAMPLE')).toBe(true);
  });

  it("a URL password holding '/' is read whole, as SQLAlchemy reads it: found, hidden and masked on its own", () => {
    const url = 'postgresql://app:pa/ss-Word@db/x';
    expect(urlCredentials(url)).toEqual(['pa/ss-Word', 'pa/ss-Word']);
    expect(urlCredentialsIn(`psql ${url} -c 'select 1'`)).toEqual(['pa/ss-Word', 'pa/ss-Word']);
    expect(hideSecrets(`"${url}"`)).toBe('"postgresql://app:***@db/x"');
    expect(urlCredentials('redis://:se?cr/et#1@cache:6379/0')).toEqual(['se?cr/et#1', 'se?cr/et#1']);
    const reporter = new MemoryReporter();
    reporter.mask(url);
    reporter.info('make_url(DATABASE_URL).password = pa/ss-Word');
    expect(reporter.lines.at(-1)).toBe('make_url(DATABASE_URL).password = ***');
    // a long line (minified code, a URL list) is read in one pass
    const started = Date.now();
    expect(hideSecrets('ab'.repeat(60_000))).toHaveLength(120_000);
    expect(hideSecrets('http://a:b/'.repeat(10_000))).toHaveLength(110_000);
    expect(Date.now() - started).toBeLessThan(1000);
    // a port is no password: https://host:8080/x@y holds none
    for (const text of ['https://host:8080/a@b', 'http://[::1]:8080/x@y', 'see http://host:/x@y']) {
      expect(urlCredentialsIn(text), text).toEqual([]);
      expect(hideSecrets(text), text).toBe(text);
    }
  });

  it("maskSecretLike (a server's words) hides them through the same detector, and still a password SQLAlchemy reads past a '/'", () => {
    expect(maskSecretLike(`fatal: could not read from ${TOKEN_URL}: token=abc123`)).toBe('fatal: could not read from https://***@github.com/org/app.git: token=***');
    expect(maskSecretLike('connect postgresql://app:ab/cd@db/app failed')).toBe('connect postgresql://app:***@db/app failed');
    expect(maskSecretLike(DB_URL)).toBe('postgres://app:***@db.internal/shop');
    expect(maskSecretLike('{"db_password": "x1", x"api_key"=y, my-token: z}')).toBe('{"db_password": ***, x"api_key"=***, my-token: ***}');
    // a long line (minified code in an error page) is read in one pass
    const started = Date.now();
    expect(maskSecretLike('ab'.repeat(60_000))).toHaveLength(120_000);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("maskSecretLike hides a credential of a documented shape anywhere in a server's words (GitHub, GitLab, npm, Slack, Stripe, AWS, JWT), never a commit sha, a sha256, a UUID or a word merely named like one", () => {
    const tokens = [
      'ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5', 'gho_16C7e42F292c6912E7710c838347Ae178B4a',
      `github_pat_11ABCDEFG0aBcDeFgHiJkL_${'mNoPqRsTuVwXyZ0123456789'.repeat(2)}aBcDeFgHiJk`,
      'glpat-Zq7Wx9vLm3pR8tY2uI4o', `npm_${'aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5'}`,
      'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx', 'xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkw', 'xapp-1-A0123456789-1234567890123-0123456789abcdef',
      'sk_live_51H8xYzAbCdEfGhIjKlMnOpQr', 'rk_test_51H8xYzAbCdEfGhIjKlMnOpQr', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      'AKIAIOSFODNN7EXAMPLE', 'ASIAY34FZKBOKMUTVV7A',
      'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
    ];
    for (const t of tokens) {
      for (const line of [`error: bad credentials ${t} (401)`, `{"detail":"invalid key '${t}'"}`, `GET /hook?k=${t}&x=1`]) expect(maskSecretLike(line), line).not.toContain(t);
      expect(isTokenUser(t), t).toBe(true); // and as a URL's user
    }
    const shown = [
      'deployed 3f786850e387550fdab836ed7e6dc881de23001b at 12:00', 'digest sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      'request 123e4567-e89b-12d3-a456-426614174000 failed', 'run npm_ci then sk_live_mode and ghp_example', 'Slack says xoxb- tokens start so; AKIA is a prefix',
      'ARN arn:aws:iam::123456789012:role/AROAEXAMPLEID1234567 ok',
    ];
    for (const line of shown) expect(maskSecretLike(line), line).toBe(line);
    // a cut word: a hash's start is shown, a token's never
    expect(oneLine(`sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`, 40)).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb924…');
    expect(oneLine(`/srv/app/releases/20261205-101010-3f786850e387550fdab836ed7e6dc881de23001b/server/app.py`, 60)).toMatch(/^\/srv\/app\/releases\/20261205-101010-3f78/);
    expect(oneLine(`Zq7Wx9vLm3pR8tY2uI4oAbCdEfGhIjKlMnOpQr/x`, 30)).toBe('…');
  });

  it('a secret holding a token URL masks the token printed on its own', () => {
    const reporter = new MemoryReporter();
    reporter.mask(TOKEN_URL);
    reporter.info(`token: ${TOKEN}`);
    expect(reporter.lines.at(-1)).toBe('token: ***');
  });
});

describe('a URL password written in environment.yml', () => {
  it('ops config masks it, as deploy and status do', () => {
    const root = project({ env: { DATABASE_URL: DB_URL }, programs: { server: { command: 'run', port: 3579, health: '/health', env: { MIRROR: `redis://:${PASSWORD}x@cache/0` } }, client: { command: 'run', port: 3000 } } });
    const r = ops(root, ['config', 'demo']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('DATABASE_URL: postgres://app:***@db.internal/shop');
    expect(r.out).toContain('MIRROR: redis://:***@cache/0');
    expect(r.out + r.err).not.toContain(PASSWORD);
  });

  it("ops config masks a token written as a URL's user, wherever the token shows, and keeps a user name", () => {
    const root = project({ env: { GIT_MIRROR: TOKEN_URL, TOKEN_AGAIN: `bearer ${TOKEN}`, PLAIN: 'ssh://git@github.com/org/app.git' } });
    const r = ops(root, ['config', 'demo']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('GIT_MIRROR: https://***@github.com/org/app.git');
    expect(r.out).toContain('TOKEN_AGAIN: bearer ***');
    expect(r.out).toContain('PLAIN: ssh://git@github.com/org/app.git');
    expect(r.out + r.err).not.toContain(TOKEN.slice(4));
    const json = ops(root, ['config', 'demo', '--json']);
    expect(json.out + json.err).not.toContain(TOKEN.slice(4));
  });

  it('every command, action and operation opens an environment through openEnvironment, never loadEnvironment itself', () => {
    const files = [
      ...readdirSync(join(REPO, 'scripts'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join('scripts', f)),
      ...readdirSync(join(REPO, 'actions'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && !f.includes('dist')).map((f) => join('actions', f)),
      ...readdirSync(join(REPO, 'core', 'ops')).filter((f) => f.endsWith('.ts') && f !== 'secrets.ts').map((f) => join('core', 'ops', f)),
    ];
    expect(files.length).toBeGreaterThan(20);
    const direct = files.filter((f) => /\bloadEnvironment\s*\(/.test(readFileSync(join(REPO, f), 'utf8')));
    expect(direct, 'use openEnvironment (core/ops/secrets.ts): it masks the URL passwords of the settings').toEqual([]);
  });
});

describe('errors quote no password and no private key', () => {
  it('a config error quoting a value', () => {
    const root = project({ env: { DATABASE_URL: DB_URL }, hosts: PRIVATE_KEY, domain: `${DB_URL}/and/more/words/to/make/it/long/enough/to/be/cut` });
    const r = ops(root, ['config', 'demo']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('has 2 problems');
    expect(r.err).toContain('got "postgres://app:***@db.internal/shop/and/more/words/to/mak..."');
    expect(r.err).toContain('got "<an age private key (AGE-SECRET-KEY-…), not shown>"');
    expect(r.err).not.toMatch(/Zq9|QXRVEJ/);
  });

  it("a config error quoting a value with a token as a URL's user", () => {
    const root = project({ domain: `${TOKEN_URL}/and/more` });
    const r = ops(root, ['config', 'demo']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('got "https://***@github.com/org/app.git/and/more"');
    expect(r.err).not.toContain(TOKEN.slice(4));
  });

  it('a YAML error: one line naming file:line:column, no line of the file quoted (a password on it stays unsaid)', () => {
    const root = project(`app: shop\nenv:\n  DATABASE_URL: ${DB_URL}: x: y\n`);
    const r = ops(root, ['config', 'demo']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: environments\/demo\/environment\.yml:3:\d+: not valid YAML: [^\n]+\n  hint: [^\n]+\n$/);
    expect(r.err).not.toContain('DATABASE_URL');
    expect(r.err).not.toContain(PASSWORD);
    const long = project(`app: shop\nenv:\n  ${'A'.repeat(50)}: postgres://app:${'p'.repeat(40)}@db/x: y: z\n`);
    expect(ops(long, ['config', 'demo']).err).not.toContain('ppp');
    const key = project(`app: shop\nkey: ${PRIVATE_KEY}: [\n`);
    expect(ops(key, ['config', 'demo']).err).not.toContain('QXRVEJ');
    const token = project(`app: shop\nenv:\n  MIRROR: ${TOKEN_URL}: x: y\n`);
    expect(ops(token, ['config', 'demo']).err).not.toContain(TOKEN.slice(4));
  });

  it('an argument error: a password or a private key where a name or an option value goes, with and without --json', () => {
    const root = project({});
    for (const argv of [['config', DB_URL], ['config', PRIVATE_KEY], ['logs', 'demo', '--lines', DB_URL], [DB_URL], ['deploy', 'demo', '--ref', DB_URL, '--json'], ['lock', PRIVATE_KEY]]) {
      const r = ops(root, argv);
      expect(r.code, argv.join(' ')).not.toBe(0);
      expect(r.err, argv.join(' ')).toMatch(/error: /);
      expect(r.out + r.err, argv.join(' ')).not.toMatch(/Zq9|QXRVEJ/);
    }
    expect(ops(root, ['config', DB_URL]).err).toContain('invalid environment name "postgres://app:***@db.internal/shop"');
    expect(ops(root, ['config', PRIVATE_KEY]).err).toContain('invalid environment name "<an age private key (AGE-SECRET-KEY-…), not shown>"');
  });

  it("an argument error: a token as a URL's user where a name or an option value goes, with and without --json", () => {
    const root = project({});
    for (const argv of [['config', TOKEN_URL], ['logs', 'demo', '--lines', TOKEN_URL], [TOKEN_URL], ['deploy', 'demo', '--ref', TOKEN_URL, '--json'], ['config', TOKEN_URL, '--json']]) {
      const r = ops(root, argv);
      expect(r.code, argv.join(' ')).not.toBe(0);
      expect(r.err, argv.join(' ')).toMatch(/error: /);
      expect(r.out + r.err, argv.join(' ')).not.toContain(TOKEN.slice(4));
    }
    expect(ops(root, ['config', TOKEN_URL]).err).toContain('invalid environment name "https://***@github.com/org/app.git"');
  });
});

describe('a private key pasted into .sops.yaml', () => {
  it('is refused by ops secrets recipients, never listed', async () => {
    const e = await newEnv('qa');
    const sops = join(e.root, '.sops.yaml');
    const before = readFileSync(sops, 'utf8');
    writeFileSync(sops, before.replace(/age: (\S+)/, `age: $1,${e.key}`));
    const r = ops(e.root, ['secrets', 'recipients', 'qa'], '', { SOPS_AGE_KEY_FILE: e.keyFile });
    expect(r.code).toBe(2);
    expect(r.err).toContain('.sops.yaml creation_rules[0].age[1]: that is a private key (AGE-SECRET-KEY-…), not a recipient; it was not shown');
    expect(r.out + r.err).not.toContain(e.key.slice(20));
  });
});

describe('settings that are URLs or git addresses but must never hold credentials', () => {
  it('repository, url and tls.acme_server are refused with one, the password masked', () => {
    const root = project({ repository: `https://bob:${PASSWORD}@git.example.org/shop.git`, url: `https://u:${PASSWORD}@shop.example.org`, domain: 'shop.example.org', tls: { mode: 'letsencrypt', email: 'ops@example.org', acme_server: `https://u:${PASSWORD}@acme.example.org/dir` } });
    const r = ops(root, ['config', 'demo']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('has 3 problems');
    for (const [k, v] of <[string, string][]>[['repository', 'https://bob:***@git.example.org/shop.git'], ['url', 'https://u:***@shop.example.org'], ['tls.acme_server', 'https://u:***@acme.example.org/dir']])
      expect(r.err).toMatch(new RegExp(`  - ${k.replace('.', '\\.')}: expected .*, got "${v.replace(/[.*?]/g, '\\$&')}" \\(credentials in it \\(a password, or a token as the user of a URL or of a git address user@host:path\\): .*put credentials elsewhere: `));
    expect(r.err).not.toContain(PASSWORD);
    // without a password, they are read
    const fine = project({ repository: '../shop', url: 'https://bob@shop.example.org' });
    expect(ops(fine, ['config', 'demo']).code).toBe(0);
  });

  it("repository, url and tls.acme_server are refused with a token as the URL's user, saying where credentials go; a user name is read", () => {
    const root = project({ repository: TOKEN_URL, url: `https://${TOKENS[8]}@shop.example.org`, domain: 'shop.example.org', tls: { mode: 'letsencrypt', email: 'ops@example.org', acme_server: `https://${TOKENS[4]}@acme.example.org/dir` } });
    const r = ops(root, ['config', 'demo']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('has 3 problems');
    expect(r.err).toContain('  - repository: expected a path to a git clone (relative to the project root, or absolute; not a URL: ops deploys from a clone on this machine), got "https://***@github.com/org/app.git" (credentials in it (a password, or a token as the user of a URL or of a git address user@host:path): this setting is printed and committed; put credentials elsewhere: ops reads a local clone and needs none; clone with an SSH deploy key, or over HTTPS with a git credential helper');
    expect(r.err).toContain('  - url: expected an http(s) URL, got "https://***@shop.example.org" (credentials in it');
    expect(r.err).toContain('  - tls.acme_server: expected an https URL, got "https://***@acme.example.org/dir" (credentials in it');
    for (const t of [TOKEN, TOKENS[8]!, TOKENS[4]!]) expect(r.out + r.err).not.toContain(t.slice(6));
    expect(ops(project({ repository: '../shop', url: 'https://deploy@shop.example.org' }), ['config', 'demo']).code).toBe(0);
  });

  it("repository is refused with a token in git's scp-like address, the token masked, as in a URL", () => {
    for (const [repository, shown] of [[SCP_TOKEN, '***@github.com:org/app.git'], [SCP_OAUTH, 'oauth2:***@gitlab.com:g/app.git']]) {
      const r = ops(project({ repository }), ['config', 'demo']);
      expect(r.code, repository).toBe(2);
      expect(r.err).toContain(`  - repository: expected a path to a git clone (relative to the project root, or absolute; not a URL: ops deploys from a clone on this machine), got "${shown}" (credentials in it (a password, or a token as the user of a URL or of a git address user@host:path): this setting is printed and committed;`);
      expect(r.out + r.err).not.toContain(TOKEN.slice(6));
      expect(r.out + r.err).not.toContain(TOKENS[4]!.slice(6));
    }
  });

  it("repository given as a remote's address (https, ssh, user@host:path) is refused when the config is read, the user shown", () => {
    for (const repository of ['https://github.com/org/app.git', 'ssh://git@github.com/org/app.git', 'git@github.com:org/app.git', 'https://alice@gitlab.example.org/group/app.git', CODECOMMIT]) {
      const r = ops(project({ repository }), ['config', 'demo']);
      expect(r.code, repository).toBe(2);
      expect(r.err).toContain(`  - repository: expected a path to a git clone (relative to the project root, or absolute; not a URL: ops deploys from a clone on this machine), got "${repository.slice(0, 50)}`); // long values are cut
      expect(r.err).toContain(`" (a remote's address, not a clone on this machine: clone it (git clone <address> <dir>) and name that directory, or leave repository unset to deploy from the repository ops runs in`);
      expect(r.err).not.toContain('credentials');
      expect(r.err).not.toMatch(/\n\s+at /);
    }
    for (const repository of ['../shop', '/srv/clones/shop', './odd:name', 'clones/a:b']) expect(ops(project({ repository }), ['config', 'demo']).code, repository).toBe(0);
  });
});

describe('ops secrets set with the value pasted as the key', () => {
  it('a URL with a password or a token as its user, a git address with a token, or a private key, as the key: refused, masked, nothing written', async () => {
    const e = await newEnv('qa');
    const before = readFileSync(e.secrets, 'utf8');
    const said: Record<string, string> = {
      [DB_URL]: 'the key given is a URL with credentials (postgres://app:***@db.internal/shop), not a key name',
      [PRIVATE_KEY]: 'the key given is an age private key, not a key name',
      [TOKEN_URL]: 'the key given is a URL with credentials (https://***@github.com/org/app.git), not a key name',
      [SCP_TOKEN]: 'the key given is a git address with credentials (***@github.com:org/app.git), not a key name',
    };
    for (const key of [DB_URL, PRIVATE_KEY, TOKEN_URL, SCP_TOKEN]) {
      const r = ops(e.root, ['secrets', 'set', 'qa', key], 'a-value\n', { SOPS_AGE_KEY_FILE: e.keyFile });
      expect(r.code, key).toBe(2);
      expect(r.err).toContain(said[key]);
      expect(r.out + r.err).not.toMatch(/Zq9|QXRVEJ|0123456789abcdefABCDEF/);
    }
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    expect(existsSync(e.secrets)).toBe(true);
  });

  it('KEY=URL (a value typed after the key name, as README\'s KEY=VALUE): the key name alone is shown, nothing after it, not even the URL\'s user, host or database', async () => {
    const e = await newEnv('qa');
    for (const [key, name] of [[`database_url=${DB_URL}`, 'database_url='], [`database_url: ${TOKEN_URL}`, 'database_url: ']] as const) {
      const r = ops(e.root, ['secrets', 'set', 'qa', key], 'a-value\n', { SOPS_AGE_KEY_FILE: e.keyFile });
      expect(r.code, key).toBe(2);
      expect(r.err).toContain(`the key given is a URL with credentials (${name}…), not a key name`);
      expect(r.err).not.toMatch(/db\.internal|github\.com|app:/);
    }
  });
});
