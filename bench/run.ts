// npm run bench [-- --runs N --rate R --tail S --out DIR]
// ops-pipeline against the seed's Ansible deploy, side by side, on local Debian test hosts (test/hosts): every
// figure is a median over N runs, timed from the tool's start to its exit as a user runs it (the `ops` CLI;
// ansible-playbook with the seed's ansible.cfg, and with pipelining). See bench/README.md.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatError, OpsError } from '../core/errors.ts';
import { deploy } from '../core/ops/deploy.ts';
import { profiled } from './profile.ts';
import { findProgram, requireRoot } from '../test/hosts/lab.ts';
import { sshArgs, type Host } from '../test/hosts/index.ts';
import { Cleanup, setUpLab, type AnsibleGroup, type Lab, type OursEnv } from './lab.ts';
import { analyse, type StreamStats } from './load.ts';
import { startStream } from '../test/support/load.ts';
import { benchRepo, type BenchRepo } from './repo.ts';
import { buildRows, checks, readmeWithFigures, SIDE_NAMES, textTable, writeResults, type Meta, type RunRecord, type Scenario } from './report.ts';
import { ansible, children, ops, ROOT, setLogFile, sshLogins, timed, warmCli, type Side, type Timed } from './tools.ts';

/** Ansible's scenarios, in the order they run. */
const ANSIBLE_SCENARIOS: Scenario[] = ['first', 'provision', 'noop', 'code', 'full', 'rollback', 'code3'];
/**
 * ops-pipeline's groups of scenarios (--ours-scenarios), in the order they run; each group leaves its hosts as it found
 * them: full (then rollback and full_pip, which start from it), code3 (then code3rolling, back), code10 (then
 * code10rolling). The first deploy always runs (it is the setup of the others).
 */
const OURS_SCENARIOS = ['provision', 'noop', 'code', 'full', 'code3', 'code10'] as const;
type OursGroup = (typeof OURS_SCENARIOS)[number];

const HELP = `usage: npm run bench [-- options]

Runs ops-pipeline and the seed's Ansible playbook (bench/ansible/) against local test hosts and prints the medians
side by side; writes bench/results/latest.{md,json} and chart.svg, and README.md's Performance table. Needs root and the Debian packages of
test/hosts/debian-packages.txt (sudo scripts/setup-machine.sh). Ansible's playbook runs dominate its time:
the first run takes 15-35 minutes on 2 cores (idle to busy), each further run about a third of that.

options:
  --runs N          runs per scenario (default 3); Ansible: of its no-op, code-only and full deploys
  --ansible-runs N  runs of Ansible's other scenarios: provision, rollback, 3 hosts (default 1;
                    the playbook does the same work in all of them, at about a minute per run)
  --rate R          requests per second during deploys, shared by the deploy's hosts (default 10)
  --tail S          seconds the request stream goes on after a deploy ends (default 3)
  --out DIR         where the results go (default bench/results)
  --only SIDE       ours | ansible: measure one side only (a partial table; quicker when working on one side)
  --ansible-scenarios LIST
                    comma-separated: which of Ansible's scenarios to run (${ANSIBLE_SCENARIOS.join(', ')};
                    default all); the others are left out of the table (a busy machine: e.g. full, for issue
                    19's check against Ansible with pipelining, in a quarter of Ansible's time)
  --ours-scenarios LIST
                    comma-separated: which of ops-pipeline's scenarios to run (${OURS_SCENARIOS.join(', ')}; default
                    all; full brings rollback and full_pip, code3 and code10 their one-at-a-time runs): quicker
                    when working on some figures (e.g. code,code10 for the 10-host ratio)
  -h, --help        this text`;

interface Options {
  runs: number;
  ansibleRuns: number;
  rate: number;
  tailMs: number;
  out: string;
  ours: boolean;
  ansible: boolean;
  /** Ansible's scenarios to run (all unless --ansible-scenarios). */
  ansibleScenarios: Set<Scenario>;
  /** ops-pipeline's groups of scenarios to run (all unless --ours-scenarios). */
  oursScenarios: Set<OursGroup>;
}


/** Full-deploy commits of the pipelining runs are numbered from here (the seed's runs use 1..runs). */
const PIPELINING_FULL = 100;
/** ... and those of ops-pipeline's full deploy with pip. */
const PIP_FULL = 200;
const DEFAULT_OUT = join(ROOT, 'bench', 'results');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => console.error(`[bench] ${line}`);
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

interface Measure {
  scenario: Scenario;
  side: Side;
  round: number;
  hosts: Host[];
  from?: string;
  to?: string;
  /** Client version the page footer must show once the change is served (then the stream measures it). */
  target?: string;
  run: (label: string, onStart: (t0: number) => void) => Promise<Timed>;
  /** Check that the run did what the scenario claims to measure (ops-pipeline's --json result). */
  expect?: (out: Timed) => RunRecord['steps'];
  /** Time one bare OpenSSH session to this host (`ssh host true`) just before the run, to compare with. */
  bareSsh?: Host;
}

class Bench {
  readonly records: RunRecord[] = [];
  constructor(
    private readonly o: Options,
    private readonly repo: BenchRepo,
  ) {}

  async measure(m: Measure): Promise<RunRecord> {
    if (m.side === 'ours') this.records.push({ scenario: 'startup', side: 'ours', round: m.round, ms: await warmCli() });
    const stream = m.target !== undefined ? startStream(m.hosts.map((h) => `http://${h.address}/`), this.o.rate) : undefined;
    if (stream) await sleep(500);
    const label = `r${m.round} ${SIDE_NAMES[m.side]} ${m.scenario}${m.to ? ` ${m.from ?? '?'}→${m.to}` : ''}`;
    let t0 = 0;
    const bareSsh = m.bareSsh ? (await timed('ssh', [...sshArgs(m.bareSsh), 'true'], { label: `bare ssh ${m.bareSsh.name}` })).ms : undefined;
    const before = await Promise.all(m.hosts.map(sshLogins));
    let out: Timed;
    try {
      out = await m.run(label, (t) => (t0 = t));
    } catch (e) {
      await stream?.stop();
      throw e;
    }
    const done = t0 + out.ms;
    await sleep(300); // journald hands sshd's last line to readers
    const after = await Promise.all(m.hosts.map(sshLogins));
    let stats: StreamStats | undefined;
    if (stream) {
      // The stream goes on for the tail, and until every host serves the new version (at most 60 s more).
      const tailEnd = done + this.o.tailMs;
      const limit = done + 60_000;
      while (performance.now() < tailEnd || (analyse(stream.peek(), t0, done, m.target).servedMs === undefined && performance.now() < limit)) await sleep(100);
      stats = analyse(await stream.stop(), t0, done, m.target);
    }
    const rec: RunRecord = { scenario: m.scenario, side: m.side, round: m.round, ms: out.ms, logins: after.map((n, i) => n - before[i]! - 1), from: m.from, to: m.to, stream: stats, ...(bareSsh !== undefined && { bareSsh }) };
    rec.steps = m.expect?.(out);
    this.records.push(rec);
    const load = stats
      ? `, ${stats.failed}/${stats.sent} failed${stats.failedAfterDone ? ` (${stats.failedAfterDone} after it reported success)` : ''}${stats.failed ? ` ${JSON.stringify(stats.failures)}` : ''}, worst ${stats.worstMs} ms, served after ${stats.servedMs === undefined ? 'never' : secs(stats.servedMs)}`
      : '';
    log(`${label}: ${secs(out.ms)}${bareSsh !== undefined ? ` (one bare ssh session: ${secs(bareSsh)})` : ''}, SSH logins per host ${rec.logins!.join('/')}${load}`);
    return rec;
  }

  version(ref: string): string {
    const v = this.repo.clientVersion[ref];
    if (!v) throw new OpsError(`no client version known for ${ref}`);
    return v;
  }

  // ---- ops-pipeline -----------------------------------------------------------------------------

  deployOurs(scenario: Scenario, round: number, env: OursEnv, from: string, to: string, expectDeps?: 'reused' | 'installed', load = true): Promise<RunRecord> {
    return this.measure({
      scenario,
      side: 'ours',
      round,
      hosts: env.hosts,
      bareSsh: scenario === 'noop' ? env.hosts[0] : undefined,
      from,
      to,
      target: load ? this.version(to) : undefined,
      run: (label, onStart) => ops(env, ['deploy', env.name, '--ref', to, '--json'], label, onStart),
      expect: (out) => {
        const r = parseJson(out) as { noop: boolean; hosts: { host: string; noop: boolean; notes: string[]; steps: { name: string; ms: number }[] }[] };
        if (scenario === 'noop' && !r.noop) throw new OpsError(`the no-op scenario deployed something: ${JSON.stringify(r.hosts)}`);
        if (scenario !== 'noop' && r.hosts.some((h) => h.noop)) throw new OpsError(`${scenario}: a host was already at ${to}: ${JSON.stringify(r.hosts)}`);
        if (expectDeps) {
          for (const h of r.hosts) {
            // A host that received the build from another says so ("received from <host>") when the set was new.
            const want = ['python', 'node'].map((k) => `dependencies: ${k} ${expectDeps === 'installed' && h !== r.hosts[0] ? 'received' : expectDeps}`);
            if (!want.every((w) => h.notes.some((n) => n.startsWith(w)))) throw new OpsError(`${scenario} on ${h.host} is not what it measures: expected ${want.join(' and ')}, the deploy reported: ${h.notes.join('; ')}`);
          }
        }
        return r.hosts.map((h) => ({ host: h.host, steps: h.steps }));
      },
    });
  }

  /** The no-op again, called in this process: the operation without the CLI's start-up. */
  async noopInProcess(round: number, env: OursEnv, ref: string): Promise<void> {
    const p = profiled(env.project.ctx());
    p.start();
    const t0 = performance.now();
    const r = await deploy(p.ctx, env.project.env(), { ref });
    const ms = performance.now() - t0;
    if (!r.noop) throw new OpsError(`the in-process no-op deployed something: ${JSON.stringify(r.hosts)}`);
    this.records.push({ scenario: 'noop_inproc', side: 'ours', round, ms, phases: [...p.phases].sort((a, b) => a.at - b.at) });
    log(`r${round} ${SIDE_NAMES.ours} noop in-process: ${secs(ms)}`);
  }

  provisionOurs(round: number, env: OursEnv): Promise<RunRecord> {
    return this.measure({ scenario: 'provision', side: 'ours', round, hosts: env.hosts, run: (label, s) => ops(env, ['provision', env.name], label, s) });
  }

  rollbackOurs(round: number, env: OursEnv, from: string, to: string): Promise<RunRecord> {
    return this.measure({
      scenario: 'rollback',
      side: 'ours',
      round,
      hosts: env.hosts,
      from,
      to,
      target: this.version(to),
      bareSsh: env.hosts[0],
      run: (label, s) => ops(env, ['rollback', env.name, '--json'], label, s),
      expect: (out) => (parseJson(out) as { hosts: { host: string; steps: { name: string; ms: number }[] }[] }).hosts.map((h) => ({ host: h.host, steps: h.steps })),
    });
  }

  // ---- Ansible ----------------------------------------------------------------------------------

  deployAnsible(scenario: Scenario, side: Exclude<Side, 'ours'>, round: number, group: AnsibleGroup, vars: string, from: string, to: string, load = true): Promise<RunRecord> {
    return this.measure({ scenario, side, round, hosts: group.hosts, from, to, target: load ? this.version(to) : undefined, run: (label, s) => ansible(side, group.inventory, vars, 'deploy', to, label, s) });
  }

  provisionAnsible(round: number, side: Exclude<Side, 'ours'>, group: AnsibleGroup, vars: string): Promise<RunRecord> {
    return this.measure({ scenario: 'provision', side, round, hosts: group.hosts, run: (label, s) => ansible(side, group.inventory, vars, 'provision', undefined, label, s) });
  }
}

function parseJson(out: Timed): unknown {
  try {
    return JSON.parse(out.stdout);
  } catch {
    throw new OpsError(`ops --json printed no JSON:\n${out.stdout.slice(0, 500)}`);
  }
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: { runs: { type: 'string' }, 'ansible-runs': { type: 'string' }, rate: { type: 'string' }, tail: { type: 'string' }, out: { type: 'string' }, only: { type: 'string' }, 'ansible-scenarios': { type: 'string' }, 'ours-scenarios': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) return undefined;
  const int = (v: string | undefined, name: string, def: number, min: number, max: number) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new OpsError(`--${name} must be a whole number from ${min} to ${max}, got "${v}"`);
    return n;
  };
  const runs = int(values.runs, 'runs', 3, 1, 50);
  if (values.only !== undefined && values.only !== 'ours' && values.only !== 'ansible') throw new OpsError(`--only takes "ours" or "ansible", got "${values.only}"`);
  const ansibleScenarios = new Set((values['ansible-scenarios'] ?? ANSIBLE_SCENARIOS.join(',')).split(',').map((x) => x.trim()) as Scenario[]);
  const unknown = [...ansibleScenarios].filter((x) => !ANSIBLE_SCENARIOS.includes(x));
  if (unknown.length || !ansibleScenarios.size) throw new OpsError(`--ansible-scenarios takes a comma-separated list of ${ANSIBLE_SCENARIOS.join(', ')}, got "${values['ansible-scenarios']}"`);
  const oursScenarios = new Set((values['ours-scenarios'] ?? OURS_SCENARIOS.join(',')).split(',').map((x) => x.trim()) as OursGroup[]);
  if (!oursScenarios.size || [...oursScenarios].some((x) => !OURS_SCENARIOS.includes(x))) throw new OpsError(`--ours-scenarios takes a comma-separated list of ${OURS_SCENARIOS.join(', ')}, got "${values['ours-scenarios']}"`);
  return {
    ansibleScenarios,
    oursScenarios,
    ours: values.only !== 'ansible',
    ansible: values.only !== 'ours',
    runs,
    ansibleRuns: Math.min(runs, int(values['ansible-runs'], 'ansible-runs', 1, 1, 50)),
    rate: int(values.rate, 'rate', 10, 1, 500),
    tailMs: int(values.tail, 'tail', 3, 0, 120) * 1000,
    out: values.out ?? DEFAULT_OUT,
  };
}

async function main(): Promise<number> {
  let o: Options | undefined;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (e) {
    console.error(`error: ${e instanceof OpsError ? e.message : (e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (!o) {
    console.log(HELP);
    return 0;
  }
  requireRoot();
  const missing = ['ansible-playbook', 'git', 'npm', 'ssh'].filter((p) => !findProgram(p));
  if (missing.length) throw new OpsError(`missing programs: ${missing.join(', ')}`, 'prepare the machine: sudo scripts/setup-machine.sh (installs test/hosts/debian-packages.txt, which lists ansible)');

  const started = Date.now();
  const loadBefore = loadavg();
  const work = join(ROOT, 'bench', 'results', 'tmp', `run-${process.pid}`);
  mkdirSync(work, { recursive: true });
  setLogFile(join(work, 'tools.log'));
  const cleanup = new Cleanup();
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping, taking the benchmark's hosts down`);
    for (const c of children) if (c.pid) process.kill(c.pid, 'SIGTERM');
    void cleanup.run(log).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let bench: Bench | undefined;
  try {
    log(`${o.runs} run(s) per scenario (Ansible's provision, rollback, 3 hosts: ${o.ansibleRuns}), ${o.rate} requests/s under load; details in ${work}/tools.log`);
    const repo = await benchRepo(join(work, 'app'));
    // Every run's full-deploy commits exist before the hosts do: they reach the seed hosts' remote in one push.
    for (let r = 1; r <= o.runs; r++) {
      for (const base of ['v1', 'v2']) await repo.full(base, r);
      await repo.full('v1', PIPELINING_FULL + r);
      for (const base of ['v1', 'v2']) await repo.full(base, PIP_FULL + r);
    }
    /** Whether Ansible runs this scenario (--only, --ansible-scenarios). */
    const an = (s: Scenario) => o.ansible && o.ansibleScenarios.has(s);
    /** Whether ops-pipeline runs this group of scenarios (--only, --ours-scenarios). */
    const our = (s: OursGroup) => o.ours && o.oursScenarios.has(s);
    const lab: Lab = await setUpLab({ work, repo: repo.dir, cleanup, log, ours: o.ours, ansible: o.ansible, ansibleThree: an('code3') });
    const b = new Bench(o, repo);
    bench = b;
    const ours = lab.ours!;
    const ans = lab.ansible!;
    const seedVars = ans?.vars;

    log('initial state: v1 everywhere (first deploys)');
    if (o.ours) await b.deployOurs('first', 0, ours.one, '', 'v1', undefined, false);
    if (o.ours) await ops(ours.ten, ['deploy', ours.ten.name, '--ref', 'v1'], 'setup: ops deploy bench10 v1 (built on one host, received by nine)');
    // The seed hosts get the seed's provision once (what a re-run then finds in place), then their first deploy.
    if (o.ansible) await ansible('pipelining', ans.all.inventory, seedVars, 'provision', undefined, `setup: ansible provision (${ans.all.hosts.length} hosts)`);
    if (an('first')) await b.deployAnsible('first', 'seed', 0, ans.one, seedVars, '', 'v1', false);
    else if (o.ansible) await ansible('pipelining', ans.one.inventory, seedVars, 'deploy', 'v1', 'setup: ansible deploy v1 (1 host)');
    if (an('code3')) await ansible('pipelining', ans.three!.inventory, seedVars, 'deploy', 'v1', 'setup: ansible deploy v1 (3 hosts)');

    // Each scenario runs for the three sides back to back, so a change in the machine's load hits them alike.
    // ops-pipeline's host alternates v1 → v2 / v2 → v1 between runs; Ansible's host goes from v1 and back to v1
    // within a run (seed settings forward, pipelining back), which suits a playbook that does the same either way.
    // The results so far are written after every run, so a benchmark stopped early (time, Ctrl-C) leaves its runs.
    const finish = (runs: number) => {
      const meta: Meta = {
        date: new Date().toISOString(),
        runs,
        ansibleRuns: Math.min(runs, o.ansibleRuns),
        rate: o.rate,
        machine: {
          cpus: cpus().length,
          loadBefore,
          loadAfter: loadavg(),
          kernel: release(),
          node: process.version,
          ansible: execFileSync('ansible-playbook', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim(),
        },
        benchSeconds: Math.round((Date.now() - started) / 1000),
      };
      const rows = buildRows(b.records);
      const list = checks(rows, b.records);
      const files = writeResults(o.out, rows, list, b.records, meta, NOTES({ ...o, runs, ansibleRuns: meta.ansibleRuns }));
      return { rows, list, meta, files };
    };
    let oursLive = 'v1';
    const a1 = ans?.one;
    for (let round = 1; round <= o.runs; round++) {
      const roundStart = Date.now();
      const extra = round <= o.ansibleRuns;
      const L = oursLive;
      const M = L === 'v1' ? 'v2' : 'v1';
      const oursFull = await repo.full(M, round);
      const seedFull = await repo.full('v1', round);
      const pipeFull = await repo.full('v1', PIPELINING_FULL + round);

      if (our('provision')) await b.provisionOurs(round, ours.one);
      if (an('provision') && extra) await b.provisionAnsible(round, 'seed', a1, seedVars);
      if (an('provision') && extra) await b.provisionAnsible(round, 'pipelining', a1, seedVars);

      if (our('noop')) await b.deployOurs('noop', round, ours.one, L, L, undefined, false);
      if (our('noop')) await b.noopInProcess(round, ours.one, L);
      if (an('noop')) await b.deployAnsible('noop', 'seed', round, a1, seedVars, 'v1', 'v1', false);
      if (an('noop')) await b.deployAnsible('noop', 'pipelining', round, a1, seedVars, 'v1', 'v1', false);

      if (our('code')) await b.deployOurs('code', round, ours.one, L, M, 'reused');
      // Without the code-only deploy, the full deploy goes from the live release (L).
      else if (our('full')) await ops(ours.one, ['deploy', ours.one.name, '--ref', M], `r${round} setup: ops deploy ${M}`);
      if (an('code')) await b.deployAnsible('code', 'seed', round, a1, seedVars, 'v1', 'v2');
      if (an('code')) await b.deployAnsible('code', 'pipelining', round, a1, seedVars, 'v2', 'v1');

      if (our('full')) await b.deployOurs('full', round, ours.one, M, oursFull, 'installed');
      // Every round, as ours: issue 19's check is the ratio of the two full-deploy medians (one playbook run
      // varied 25.6-43.7 s between runs on this machine).
      if (an('full')) await b.deployAnsible('full', 'seed', round, a1, seedVars, 'v1', seedFull);
      if (an('full')) await b.deployAnsible('full', 'pipelining', round, a1, seedVars, seedFull, pipeFull);

      // Ansible's rollback is the playbook run with an earlier ref (the seed has nothing else).
      if (our('full')) await b.rollbackOurs(round, ours.one, oursFull, M);
      // The same full deploy with pip making the Python set (a set of its own, never installed), then back.
      if (our('full')) {
        await b.deployOurs('full_pip', round, ours.onePip, M, await repo.full(M, PIP_FULL + round), 'installed');
        await ops(ours.one, ['rollback', ours.one.name], `r${round} setup: back to ${M}`);
      }
      if (an('rollback') && extra) await b.deployAnsible('rollback', 'seed', round, a1, seedVars, pipeFull, seedFull);
      if (an('rollback') && extra) await b.deployAnsible('rollback', 'pipelining', round, a1, seedVars, seedFull, 'v1');
      // Without its rollback, the seed host goes back to v1 for the next run's no-op, code-only and full deploys.
      else if (an('full') && round < o.runs) await ansible('pipelining', a1.inventory, seedVars, 'deploy', 'v1', `r${round} setup: ansible back to v1`);
      if (our('code') || our('full')) oursLive = M;

      if (our('code3')) await b.deployOurs('code3', round, ours.three, 'v1', 'v2', 'reused');
      if (an('code3') && extra) await b.deployAnsible('code3', 'seed', round, ans.three!, seedVars, 'v1', 'v2');
      if (our('code3')) await b.deployOurs('code3rolling', round, ours.threeRolling, 'v2', 'v1', 'reused');
      if (an('code3') && extra) await b.deployAnsible('code3', 'pipelining', round, ans.three!, seedVars, 'v2', 'v1');
      // Ten hosts (the three among them): built once, received by nine.
      if (our('code10')) await b.deployOurs('code10', round, ours.ten, 'v1', 'v2', 'reused');
      if (our('code10')) await b.deployOurs('code10rolling', round, ours.tenRolling, 'v2', 'v1', 'reused');
      for (const side of o.ansible ? (['seed', 'pipelining'] as const) : []) {
        b.records.push({ scenario: 'startup', side, round, ms: (await timed('ansible-playbook', ['--version'], { label: 'ansible-playbook --version' })).ms });
      }
      log(`run ${round}/${o.runs} done in ${((Date.now() - roundStart) / 60_000).toFixed(1)} min`);
      if (round < o.runs) log(`results of runs 1-${round} written: ${finish(round).files.map((f) => f.replace(`${ROOT}/`, '')).join(', ')}`);
    }

    const { rows, list, meta, files } = finish(o.runs);
    if (o.ours && o.ansible && o.oursScenarios.size === OURS_SCENARIOS.length && o.out === DEFAULT_OUT) {
      // A complete run to the committed results: the README's Performance table follows it.
      const readme = join(ROOT, 'README.md');
      writeFileSync(readme, readmeWithFigures(readFileSync(readme, 'utf8'), JSON.parse(readFileSync(files[1]!, 'utf8'))));
      files.push(readme);
    }
    console.log(`\n${textTable(rows)}\n`);
    for (const c of list) console.log(`${c.ok === undefined ? 'n/a ' : c.ok ? 'ok  ' : 'FAIL'}  ${c.what}: ${c.detail}`);
    console.log(`\nmedians of ${o.runs} run(s); ${meta.machine.cpus} CPUs, load average ${loadBefore[0]!.toFixed(1)} → ${meta.machine.loadAfter[0]!.toFixed(1)} (a shared machine makes timings noisy)`);
    console.log(`written: ${files.map((f) => f.replace(`${ROOT}/`, '')).join(', ')}; took ${(meta.benchSeconds / 60).toFixed(1)} min`);
    rmSync(work, { recursive: true, force: true });
    return 0;
  } catch (e) {
    if (bench?.records.length) {
      writeFileSync(join(work, 'partial.json'), JSON.stringify(bench.records, null, 2) + '\n');
      log(`the runs done so far: ${join(work, 'partial.json')}`);
    }
    throw e;
  } finally {
    log('taking the benchmark hosts down');
    await cleanup.run(log);
  }
}

const NOTES = (o: Options) => [
  'Each figure is timed from the start of the command a user types to its exit: `node scripts/ops-bin.js <cmd>` (CLI start-up included; its cached bundle is made fresh before each run) and `ansible-playbook -t deploy|provision` of bench/ansible/playbook.yml.',
  "Ansible (seed cfg) uses the seed's ansible.cfg: host_key_checking = False, ssh_args = -o ForwardAgent=yes (which turns multiplexing off), no pipelining; Ansible + pipelining adds `pipelining = True`. Both log in as root, as the seed's inventory does; forks = 5 (default), so 3 hosts run in parallel.",
  'The playbook does what the seed\'s deploy does, in its order: nginx and supervisor running, nginx.conf and the site (templates), forced in-place git checkout in ~/catalogage, .env (template), pip install -r into venv, npm ci, make build, make migrate, supervisor config, handlers reload supervisor (restarts both programs) and nginx. The code comes from a bare repository on the host (test hosts reach no GitHub); the runtimes are Debian\'s (pyenv/nvm need the internet), with the seed\'s tasks around them.',
  'All hosts start from the same provisioned Debian 12 snapshot (systemd-nspawn, own network namespace); one database server for all (lab PostgreSQL).',
  'Scenarios: provision re-run with nothing to change; deploy of the live sha; code-only deploy v1 ↔ v2 (the client lockfile differs only in the app\'s own version); full deploy = a commit changing requirements.txt and the client lockfile (a vendored dependency of a new version: a set never installed on the host), made by uv, and again by pip (release.python_installer: pip) on a set of its own; rollback = `ops rollback` (previous release kept warm) vs the playbook with the previous ref; 3 and 10 hosts = the same code-only deploy (ops-pipeline all at once, batch_size 3 or 10, and with its default of one host at a time; one host builds, the others receive its build; Ansible on 3 hosts only).',
  'The no-op deploy and the rollback are each preceded by one bare OpenSSH session to the same host (`ssh host true`, the test hosts\' options), timed: their ratio to it, per run, is reported beside the seconds.',
  `Under load: ${o.rate} GET / per second through nginx (3 hosts take turns, as behind a load balancer), a new connection each, during every deploy that changes something, from 0.5 s before the command until ${o.tailMs / 1000} s after it exits (longer if the new version is not served yet). "Served" = the first 200 answer whose page footer shows the new client version. Any non-200 answer or network error is a failed request.`,
  'SSH connections are counted on each host: "Accepted publickey" lines of sshd in the host\'s journal before and after the run (the counting logins are taken off).',
  ...(o.ours && o.oursScenarios.size < OURS_SCENARIOS.length ? [`ops-pipeline ran only these scenarios (--ours-scenarios): ${[...o.oursScenarios].join(', ')}; its other figures are not measured in this run.`] : []),
  ...(o.ansible && o.ansibleScenarios.size < ANSIBLE_SCENARIOS.length ? [`Ansible ran only these scenarios (--ansible-scenarios): ${[...o.ansibleScenarios].join(', ')}; its other figures are not measured in this run.`] : []),
  `Medians over ${o.runs} run(s) (ranges in brackets), Ansible's full deploy included (the ratio issue 19 checks); Ansible's provision, rollback and 3-host figures come from ${o.ansibleRuns} run(s) (--ansible-runs: at about a minute per playbook run with the seed's settings, they would triple the benchmark's time, and the playbook does the same work in all of them). Failed requests are totals over all runs; worst latency and longest outage are maxima.`,
];

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`error: ${formatError(e)}`);
    process.exit(1);
  },
);
