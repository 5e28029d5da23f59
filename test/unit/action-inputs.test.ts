// Every action checks its inputs before any work, in one place (core/action.ts checkInputs): a bad flag never
// lets the operation run and write outputs first; an empty or bad key input is named as the input (and the
// GitHub secret that fills it), not as the variable the CLI reads.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { runAction } from '../../core/action.ts';
import { NoAgeIdentity, OpsError } from '../../core/errors.ts';

const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const FAKE_KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n';

let dir: string;
let writes: string[];
const saved = { ...process.env };

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ops-action-inputs-'));
  writes = [];
  for (const k of Object.keys(process.env)) if (k.startsWith('INPUT_')) delete process.env[k];
  process.env.GITHUB_OUTPUT = join(dir, 'output');
  process.env.GITHUB_STEP_SUMMARY = join(dir, 'summary');
  writeFileSync(process.env.GITHUB_OUTPUT, '');
  writeFileSync(process.env.GITHUB_STEP_SUMMARY, '');
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    writes.push(String(chunk));
    return true;
  });
});

afterEach(() => {
  vi.restoreAllMocks();
  process.env = { ...saved };
  process.exitCode = 0;
});

const inputs = (values: Record<string, string>) => {
  for (const [k, v] of Object.entries(values)) process.env[`INPUT_${k.toUpperCase()}`] = v;
};
/** The ::error:: line the action wrote, decoded. */
const failure = () => decodeURIComponent(writes.find((w) => w.startsWith('::error::'))?.replace(/^::error::/, '').trim() ?? '');

describe('checked before any work', () => {
  it('a flag that is neither true nor false: refused, the body never runs', async () => {
    inputs({ environment: 'x', 'ssh-key': FAKE_KEY, 'fail-on-unhealthy': 'maybe' });
    let ran = false;
    await runAction({ required: ['environment', 'ssh-key'], flags: { 'fail-on-unhealthy': true } }, async () => void (ran = true));
    expect(ran).toBe(false);
    expect(failure()).toBe('invalid input fail-on-unhealthy: "maybe"\n  hint: fail-on-unhealthy is true or false');
  });

  it('a working-directory that is not a project: named as that input, before any work (not "no environment prod", pointing at ops env new)', async () => {
    mkdirSync(join(dir, 'ops', 'environments', 'prod'), { recursive: true });
    for (const [wd, problem] of [[join(dir, 'ops', 'environments'), 'has no environments/ folder'], [join(dir, 'opps'), 'does not exist'], [process.env.GITHUB_OUTPUT!, 'is not a folder']] as const) {
      writes.length = 0;
      inputs({ environment: 'prod', 'ssh-key': FAKE_KEY, 'working-directory': wd });
      let ran = false;
      await runAction({ required: ['environment', 'ssh-key'] }, async () => void (ran = true));
      expect(ran, wd).toBe(false);
      expect(failure(), wd).toMatch(new RegExp(`^invalid input working-directory: ${wd.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} ${problem}\n  hint: give the checkout that holds environments/`));
    }
    // The project itself, and any folder for an action without an environment (staging-sync: a clone).
    let root = '';
    inputs({ environment: 'prod', 'ssh-key': FAKE_KEY, 'working-directory': join(dir, 'ops') });
    await runAction({ required: ['environment', 'ssh-key'] }, async ({ ops }) => void (root = ops.root));
    expect(root).toBe(join(dir, 'ops'));
    inputs({ mode: 'add', 'working-directory': join(dir, 'ops', 'environments') });
    await runAction({ required: ['mode'] }, async ({ ops }) => void (root = ops.root));
    expect(root).toBe(join(dir, 'ops', 'environments'));
  });

  it('a choice outside its values, a required input missing', async () => {
    inputs({ mode: 'sync' });
    await runAction({ required: ['mode'], choices: { mode: ['add', 'rebuild'] } }, async () => undefined);
    expect(failure()).toBe('invalid input mode: "sync"\n  hint: mode is "add" or "rebuild"');
    writes.length = 0;
    inputs({ mode: '' });
    await runAction({ required: ['mode'], choices: { mode: ['add', 'rebuild'] } }, async () => undefined);
    expect(failure()).toMatch(/^input mode is required/);
  });
});

describe('key inputs', () => {
  it('an empty ssh-key (the GitHub environment lacks the secret): names the input and the secret, not laptop ways', async () => {
    inputs({ environment: 'prod', 'ssh-key': '' });
    let ran = false;
    await runAction({ required: ['environment', 'ssh-key'] }, async () => void (ran = true));
    expect(ran).toBe(false);
    const text = failure();
    expect(text).toMatch(/^input `ssh-key` is empty: is the secret SSH_PRIVATE_KEY set for the GitHub environment `prod`/);
    expect(text).not.toMatch(/--identity|OPS_SSH_KEY|~\/\.ssh|keygen/);
    // The status check takes its key from <env>-status (status.yml).
    writes.length = 0;
    await runAction({ required: ['environment', 'ssh-key'], secretsFrom: (e) => `${e}-status` }, async () => undefined);
    expect(failure()).toMatch(/^input `ssh-key` is empty: is the secret SSH_PRIVATE_KEY set for the GitHub environment `prod-status`\?/);
  });

  it('an empty ssh-key in a run for a pull request from a fork, or one Dependabot started: says GitHub gives such runs no secrets', async () => {
    inputs({ environment: 'prod', 'ssh-key': '' });
    const event = join(dir, 'event.json');
    Object.assign(process.env, { GITHUB_EVENT_NAME: 'pull_request', GITHUB_EVENT_PATH: event, GITHUB_REPOSITORY: 'acme/app', GITHUB_ACTOR: 'someone' });
    writeFileSync(event, JSON.stringify({ pull_request: { number: 7, head: { repo: { full_name: 'someone/app' } } } }));
    await runAction({ required: ['environment', 'ssh-key'] }, async () => undefined);
    expect(failure()).toBe('input `ssh-key` is empty: this run is for a pull request from a fork (someone/app), and GitHub gives such runs no secrets\n  hint: deploy from a run a person starts (Actions tab, Run workflow), or once the change is merged');
    writes.length = 0;
    writeFileSync(event, JSON.stringify({ pull_request: { number: 7, head: { repo: null } } }));
    await runAction({ required: ['environment', 'ssh-key'] }, async () => undefined);
    expect(failure()).toMatch(/^input `ssh-key` is empty: this run is for a pull request from a fork \(deleted since\)/);
    writes.length = 0;
    process.env.GITHUB_ACTOR = 'dependabot[bot]';
    await runAction({ required: ['environment', 'ssh-key'] }, async () => undefined);
    expect(failure()).toMatch(/^input `ssh-key` is empty: this run was started by Dependabot, and GitHub gives it only the Dependabot secrets/);
    // This repository's own pull request: the environment lacks the secret, as before.
    writes.length = 0;
    process.env.GITHUB_ACTOR = 'someone';
    writeFileSync(event, JSON.stringify({ pull_request: { number: 7, head: { repo: { full_name: 'Acme/App' } } } }));
    await runAction({ required: ['environment', 'ssh-key'] }, async () => undefined);
    expect(failure()).toMatch(/^input `ssh-key` is empty: is the secret SSH_PRIVATE_KEY set for the GitHub environment `prod`/);
  });

  it('an ssh-key that is no private key: the input is named, not $OPS_SSH_KEY', async () => {
    inputs({ environment: 'prod', 'ssh-key': 'ssh-ed25519 AAAA... a public key' });
    await runAction({ required: ['environment', 'ssh-key'] }, async () => undefined);
    expect(failure()).toMatch(/^input `ssh-key` holds a public key, not the private key/);
    expect(failure()).not.toContain('OPS_SSH_KEY');
    // the secrets' age key there (the two secrets swapped): said as one, the input it goes in named
    writes.length = 0;
    inputs({ environment: 'prod', 'ssh-key': 'AGE-SECRET-KEY-1N6YDDKPQUDM2QCPC3AAR8KAH8C0AS26WQ9Z2Z9F30CZE0DAW0RQQ2K4RLG' });
    await runAction({ required: ['environment', 'ssh-key'] }, async () => undefined);
    expect(failure()).toMatch(/^input `ssh-key` holds an age key \(not shown: the key that decrypts the secrets\), not an SSH private key/);
    expect(failure()).toContain('the age key goes in input `age-key` (the SOPS_AGE_KEY secret)');
    expect(failure()).not.toMatch(/OPS_SSH_KEY|AGE-SECRET-KEY-1N6/);
    // its line breaks dropped (pasted through a one-line field): said before any work, with how to set the secret
    writes.length = 0;
    inputs({ environment: 'prod', 'ssh-key': FAKE_KEY.replace(/\n/g, '') });
    let ran = false;
    await runAction({ required: ['environment', 'ssh-key'] }, async () => void (ran = true));
    expect(ran).toBe(false);
    expect(failure()).toBe(
      "input `ssh-key` holds a private key on one line: its line breaks were lost (removed)\n  hint: set the secret to the key file's content as it is, line by line (gh secret set SSH_PRIVATE_KEY --env <environment> < id_ed25519, or paste the whole file into the secret's field)",
    );
  });

  it('an age-key that is no age identity: the input is named, not SOPS_AGE_KEY', async () => {
    inputs({ environment: 'prod', 'ssh-key': FAKE_KEY, 'age-key': 'age1notaprivatekey' });
    let ran = false;
    await runAction({ required: ['environment', 'ssh-key'] }, async () => void (ran = true));
    expect(ran).toBe(false);
    expect(failure()).toMatch(/^line 1 of input `age-key` is a public key \(age1…, a recipient\), not an age identity/);
  });

  it('an empty age-key where the secrets need one: the input and the secret SOPS_AGE_KEY are named, not ops keygen', async () => {
    inputs({ environment: 'staging', 'ssh-key': FAKE_KEY, 'age-key': '' });
    await runAction({ required: ['environment', 'ssh-key'] }, async () => {
      throw new NoAgeIdentity('no age identity to decrypt environments/staging/secrets.sops.yaml: looked in SOPS_AGE_KEY (not set)', '`ops keygen` makes a new one');
    });
    const text = failure();
    expect(text).toMatch(/^input `age-key` is empty: is the secret SOPS_AGE_KEY set for the GitHub environment `staging`/);
    expect(text).not.toContain('keygen');
  });
});

/** The ::warning:: lines the action wrote, decoded. */
const warnings = () => writes.filter((w) => w.startsWith('::warning::')).map((w) => decodeURIComponent(w.replace(/^::warning::/, '').trim()));

describe("the runner's files (job summary, outputs) failing", () => {
  /** A body whose work succeeds: two outputs, then its summary, as every action ends. */
  const work = async ({ reporter }: Parameters<Parameters<typeof runAction>[1]>[0]) => {
    reporter.output('sha', 'a'.repeat(40));
    reporter.output('changed', 'true');
    await reporter.summary('### done');
  };

  it('no job summary ($GITHUB_STEP_SUMMARY unset: a runner without summaries): a warning, the step succeeds with its outputs', async () => {
    delete process.env.GITHUB_STEP_SUMMARY;
    await runAction({}, work);
    expect(failure()).toBe('');
    expect(process.exitCode ?? 0).toBe(0);
    expect(warnings()).toEqual([
      "the job summary could not be written ($GITHUB_STEP_SUMMARY: Unable to find environment variable for $GITHUB_STEP_SUMMARY. Check if your runtime environment supports job summaries.): this step's report is its log; what the step did stands",
    ]);
    expect(readFileSync(process.env.GITHUB_OUTPUT!, 'utf8')).toMatch(/^changed<<ghadelimiter_[^\n]+\ntrue\n/m);
  });

  it('outputs the runner refuses (its output file gone): the step fails naming them, not as a bug of ops; its summary still written', async () => {
    process.env.GITHUB_OUTPUT = join(dir, 'gone', 'output');
    await runAction({}, work);
    expect(failure()).toBe(
      `the step's outputs sha, changed could not be written ($GITHUB_OUTPUT: Missing file at path: ${process.env.GITHUB_OUTPUT}): the steps after it would read them empty\n  hint: the step's work ran to its end, as its log says (nothing of it was undone); the runner could not take its outputs: check the runner's disk (df -h) and $GITHUB_OUTPUT`,
    );
    expect(readFileSync(process.env.GITHUB_STEP_SUMMARY!, 'utf8')).toBe('### done\n');
    // The work's own failure stays the step's error; the lost output is said beside it.
    writes.length = 0;
    await runAction({}, async ({ reporter }) => {
      reporter.output('sha', 'b'.repeat(40));
      throw new OpsError('the build failed', 'see its log');
    });
    expect(failure()).toBe('the build failed\n  hint: see its log');
    expect(warnings()).toEqual([expect.stringMatching(/^the step's output sha could not be written \(\$GITHUB_OUTPUT: Missing file at path: /)]);
  });
});

// Last: it loads the action's modules afresh (vi.resetModules), which other tests' error classes would not match.
describe('an action entry point', () => {
  /** A project in `dir` with environment x, whose one host (127.0.0.1:1) refuses at once: an action reaching it fails fast. */
  const writeUnreachableEnvironment = () => {
    mkdirSync(join(dir, 'environments', 'x'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{}');
    writeFileSync(
      join(dir, 'environments', 'x', 'environment.yml'),
      stringify({ app: 'sample', hosts: [{ name: 'web1', address: '127.0.0.1', port: 1, host_key: HOST_KEY }], ssh: { connect_timeout: 1, connect_retries: 0 }, programs: { server: { command: 'run', port: 3579 } }, routes: { '/': 'server' } }),
    );
  };

  it('the status action with fail-on-unhealthy=maybe: refused before any host is reached or any output written', async () => {
    writeUnreachableEnvironment();
    inputs({ environment: 'x', 'ssh-key': FAKE_KEY, 'working-directory': dir, 'fail-on-unhealthy': 'maybe' });
    vi.resetModules();
    await import('../../actions/status/main.ts');
    expect(failure()).toMatch(/^invalid input fail-on-unhealthy: "maybe"/);
    expect(readFileSync(process.env.GITHUB_OUTPUT!, 'utf8')).toBe('');
    expect(readFileSync(process.env.GITHUB_STEP_SUMMARY!, 'utf8')).toBe('');
  }, 30_000);

  it('the initdata action with an absolute file (one an earlier step wrote under $RUNNER_TEMP): that file, not the workspace + its path', async () => {
    writeUnreachableEnvironment();
    const file = join(dir, 'temp', 'data.yml'); // absolute, outside the project: never written
    inputs({ environment: 'x', 'ssh-key': FAKE_KEY, 'working-directory': dir, file });
    vi.resetModules();
    await import('../../actions/initdata/main.ts');
    expect(failure()).toMatch(new RegExp(`^initdata file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} does not exist \\(the file input is relative to the repository root, `));
  }, 30_000);

  it('the deployment-superseded action: a sha in capitals is the same commit (taken, lower-cased); an abbreviated one is refused saying what it needs', async () => {
    writeUnreachableEnvironment();
    const run = async (sha: string) => {
      writes.length = 0;
      inputs({ environment: 'prod', sha, 'github-token': 'ghs_x', 'working-directory': dir });
      vi.resetModules();
      await import('../../actions/deployment-superseded/main.ts');
      return failure();
    };
    expect(await run('ABC1234')).toBe('invalid input sha: "ABC1234": not a full commit sha (40 hexadecimal digits)\n  hint: give the full commit sha the deploy job was asked for (github.sha)');
    // past the input check: what fails next is the job's missing repository, not the sha
    expect(await run('ABCDEF0123456789ABCDEF0123456789ABCDEF01')).not.toContain('invalid input sha');
  }, 30_000);

  it('the initdata action with a file written from the environment\'s folder: said in the words of its input (the repository root, the file input), never the CLI\'s --file', async () => {
    writeUnreachableEnvironment();
    mkdirSync(join(dir, 'environments', 'x', 'assets'), { recursive: true });
    writeFileSync(join(dir, 'environments', 'x', 'assets', 'initdata.yml'), 'users: []\n');
    inputs({ environment: 'x', 'ssh-key': FAKE_KEY, 'working-directory': dir, file: 'assets/initdata.yml' });
    vi.resetModules();
    await import('../../actions/initdata/main.ts');
    expect(failure()).toBe(
      `initdata file ${join(dir, 'assets', 'initdata.yml')} does not exist (the file input is relative to the repository root, ${dir}, not to environments/x/)\n` +
        `  hint: did you mean ${join(dir, 'environments', 'x', 'assets', 'initdata.yml')}? set the file input to environments/x/assets/initdata.yml, or leave the file input empty (it is initdata.file)`,
    );
  }, 30_000);
});
