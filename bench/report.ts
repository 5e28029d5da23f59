// Figures from the recorded runs: medians per scenario and side, ratios, the target checks; printed as a table,
// written as Markdown, JSON and an SVG chart (drawn here, no library).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StreamStats } from './load.ts';
import type { Phase } from './profile.ts';
import type { Side } from './tools.ts';

export type Scenario = 'startup' | 'first' | 'provision' | 'noop' | 'noop_inproc' | 'code' | 'full' | 'full_pip' | 'rollback' | 'code3' | 'code3rolling' | 'code10' | 'code10rolling';

export interface RunRecord {
  scenario: Scenario;
  side: Side;
  round: number;
  /** From spawn to exit of the tool. */
  ms: number;
  /** SSH logins per host during the run, counted on the hosts. */
  logins?: number[];
  from?: string;
  to?: string;
  stream?: StreamStats;
  /** ops-pipeline only: per-host step durations reported by the CLI (--json). */
  steps?: { host: string; steps: { name: string; ms: number }[] }[];
  /** ops-pipeline in-process no-op: connection and remote calls (bench/profile.ts). */
  phases?: Phase[];
  /** ms of one bare OpenSSH session (`ssh host true`) to the same host, timed just before this run. */
  bareSsh?: number;
}

export interface Meta {
  date: string;
  runs: number;
  ansibleRuns: number;
  rate: number;
  machine: { cpus: number; loadBefore: number[]; loadAfter: number[]; kernel: string; node: string; ansible: string };
  benchSeconds: number;
}

export const SIDES: Side[] = ['ours', 'seed', 'pipelining'];
export const SIDE_NAMES: Record<Side, string> = { ours: 'ops-pipeline', seed: 'Ansible (seed cfg)', pipelining: 'Ansible + pipelining' };

export function median(values: number[]): number | undefined {
  if (!values.length) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

type Kind = 'seconds' | 'ms' | 'count' | 'times';

interface Row {
  key: string;
  label: string;
  kind: Kind;
  /** The figure per side (undefined = not measured for that side). */
  values: Partial<Record<Side, number>>;
  /** [min, max] per side, for Markdown. */
  ranges: Partial<Record<Side, [number, number]>>;
  /** Bigger is worse for every figure here; ratios are Ansible / ours for times. */
  ratio: boolean;
  note?: string;
}

const LOADED: Scenario[] = ['code', 'full', 'full_pip', 'rollback', 'code3', 'code3rolling', 'code10', 'code10rolling'];

export function buildRows(records: RunRecord[]): Row[] {
  const of = (scenario: Scenario, side: Side) => records.filter((r) => r.scenario === scenario && r.side === side);
  const rows: Row[] = [];
  const timeRow = (key: string, label: string, scenario: Scenario, pick: (r: RunRecord) => number | undefined = (r) => r.ms, note?: string) => {
    const values: Row['values'] = {};
    const ranges: Row['ranges'] = {};
    for (const side of SIDES) {
      const xs = of(scenario, side).map(pick).filter((x): x is number => x !== undefined);
      const m = median(xs);
      if (m !== undefined) {
        values[side] = m / 1000;
        ranges[side] = [Math.min(...xs) / 1000, Math.max(...xs) / 1000];
      }
    }
    rows.push({ key, label, kind: 'seconds', values, ranges, ratio: true, note });
  };
  // The median over runs of (run ÷ the bare ssh session timed just before it): ours only.
  const ratioRow = (key: string, label: string, scenario: Scenario) => {
    const xs = of(scenario, 'ours').filter((r) => r.bareSsh).map((r) => r.ms / r.bareSsh!);
    const m = median(xs);
    rows.push({ key, label, kind: 'times', values: m === undefined ? {} : { ours: m }, ranges: m === undefined ? {} : { ours: [Math.min(...xs), Math.max(...xs)] }, ratio: false });
  };
  timeRow('provision', 'provision re-run (nothing to change)', 'provision');
  timeRow('noop', 'deploy of the live sha (no-op)', 'noop');
  timeRow('noop_ssh', '  … one bare OpenSSH session to the same host, timed just before (`ssh host true`)', 'noop', (r) => r.bareSsh);
  ratioRow('noop_vs_ssh', '  … no-op ÷ that bare session, per run', 'noop');
  timeRow('noop_inproc', '  … the same operation called in-process (no CLI start-up)', 'noop_inproc');
  timeRow('code', 'code-only deploy (no lockfile change)', 'code');
  timeRow('code_served', '  … until the new version is served', 'code', (r) => r.stream?.servedMs);
  timeRow('full', 'full deploy (lockfiles changed)', 'full');
  timeRow('full_pip', '  … the same with release.python_installer: pip (ops-pipeline)', 'full_pip');
  timeRow('rollback', 'rollback (Ansible: redeploy the previous ref)', 'rollback');
  timeRow('rollback_ssh', '  … one bare OpenSSH session to the same host, timed just before', 'rollback', (r) => r.bareSsh);
  ratioRow('rollback_vs_ssh', '  … rollback ÷ that bare session, per run', 'rollback');
  timeRow('rollback_served', '  … until the previous version is served', 'rollback', (r) => r.stream?.servedMs);
  timeRow('code3', 'code-only deploy to 3 hosts (all at once)', 'code3');
  timeRow('code3rolling', 'code-only deploy to 3 hosts, one at a time', 'code3rolling');
  timeRow('code10', 'code-only deploy to 10 hosts (all at once)', 'code10');
  timeRow('code10rolling', 'code-only deploy to 10 hosts, one at a time', 'code10rolling');
  timeRow('first', 'first deploy to a provisioned host (1 run)', 'first');

  const loaded = (side: Side) => records.filter((r) => r.side === side && LOADED.includes(r.scenario) && r.stream);
  const countRow = (key: string, label: string, kind: Kind, f: (rs: RunRecord[]) => number | undefined, note?: string) => {
    const values: Row['values'] = {};
    for (const side of SIDES) {
      const rs = loaded(side);
      if (rs.length) {
        const v = f(rs);
        if (v !== undefined) values[side] = v;
      }
    }
    rows.push({ key, label, kind, values, ranges: {}, ratio: false, note });
  };
  countRow('sent', 'requests sent during deploys under load (all runs)', 'count', (rs) => rs.reduce((n, r) => n + r.stream!.sent, 0));
  countRow('failed', 'failed requests during those deploys (all runs)', 'count', (rs) => rs.reduce((n, r) => n + r.stream!.failed, 0));
  countRow('failed_after', '  … of which after the tool reported success', 'count', (rs) => rs.reduce((n, r) => n + r.stream!.failedAfterDone, 0));
  countRow('failed_code', 'failed requests per code-only deploy (median)', 'count', (rs) => median(rs.filter((r) => r.scenario === 'code').map((r) => r.stream!.failed)));
  countRow('error_window', 'longest outage: consecutive failed requests (ms)', 'ms', (rs) => Math.max(...rs.map((r) => r.stream!.errorWindowMs)));
  countRow('worst', 'worst request latency during deploys (ms)', 'ms', (rs) => Math.max(...rs.map((r) => r.stream!.worstMs)));

  const sshRow = (key: string, label: string, scenarios: Scenario[], f: (xs: number[]) => number | undefined) => {
    const values: Row['values'] = {};
    for (const side of SIDES) {
      const xs = records.filter((r) => r.side === side && scenarios.includes(r.scenario) && r.logins).flatMap((r) => r.logins!);
      const v = f(xs);
      if (v !== undefined) values[side] = v;
    }
    rows.push({ key, label, kind: 'count', values, ranges: {}, ratio: true });
  };
  sshRow('ssh_noop', 'SSH connections per host: no-op deploy (median)', ['noop'], median);
  sshRow('ssh_code', 'SSH connections per host: code-only deploy (median)', ['code'], median);
  sshRow('ssh_provision', 'SSH connections per host: provision re-run (median)', ['provision'], median);
  sshRow('ssh_max', 'SSH connections per host per run (max over all runs)', ['provision', 'noop', 'code', 'full', 'full_pip', 'rollback', 'code3', 'code3rolling', 'code10', 'code10rolling', 'first'], (xs) => (xs.length ? Math.max(...xs) : undefined));
  timeRow('startup', 'tool start-up (ops --help / ansible-playbook --version)', 'startup');
  return rows;
}

function fmt(v: number | undefined, kind: Kind): string {
  if (v === undefined) return '—';
  if (kind === 'seconds') return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  if (kind === 'times') return `${v.toFixed(2)}×`;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function ratio(row: Row, side: Side): string {
  const ours = row.values.ours;
  const theirs = row.values[side];
  if (!row.ratio || ours === undefined || theirs === undefined) return '';
  if (ours === 0) return theirs === 0 ? '1×' : '';
  const r = theirs / ours;
  return `${r >= 10 ? r.toFixed(0) : r.toFixed(1)}×`;
}

export interface Check {
  what: string;
  /** undefined: a figure the check needs was not measured in this run (e.g. --only, --ansible-scenarios). */
  ok: boolean | undefined;
  detail: string;
}

/** Issue 19's goals: each with the measured figure, met or not. */
function goals(row: (k: string) => Row): Check[] {
  const v = (k: string, side: Side = 'ours') => row(k)?.values[side];
  const s = (x: number | undefined) => (x === undefined ? '?' : `${x.toFixed(2)} s`);
  const t = (x: number | undefined) => (x === undefined ? '?' : `${x.toFixed(2)}×`);
  const le = (x: number | undefined, max: number) => (x === undefined ? undefined : x <= max);
  const full = v('full');
  const pipe = v('full', 'pipelining');
  const one = v('code');
  const ten = v('code10');
  return [
    { what: 'no-op deploy (the `ops` binary) ≤ 0.8 s', ok: le(v('noop'), 0.8), detail: s(v('noop')) },
    { what: 'no-op deploy ≤ 2.5× one bare OpenSSH session to the same host (same run)', ok: le(v('noop_vs_ssh'), 2.5), detail: `${t(v('noop_vs_ssh'))} (bare session ${s(v('noop_ssh'))})` },
    { what: 'rollback ≤ 1.2 s', ok: le(v('rollback'), 1.2), detail: s(v('rollback')) },
    { what: 'rollback ≤ 3.5× one bare OpenSSH session to the same host (same run)', ok: le(v('rollback_vs_ssh'), 3.5), detail: `${t(v('rollback_vs_ssh'))} (bare session ${s(v('rollback_ssh'))})` },
    { what: 'code-only deploy, one host ≤ 5 s', ok: le(one, 5), detail: s(one) },
    { what: 'full deploy ≤ 1/3 of Ansible + pipelining on the same change', ok: full !== undefined && pipe !== undefined ? full * 3 <= pipe : undefined, detail: full !== undefined && pipe !== undefined ? `${s(full)} vs ${s(pipe)}: ${(full / pipe).toFixed(2)} of it` : 'not measured in this run' },
    { what: 'code-only deploy to 10 hosts (all at once) ≤ 1.5× one host', ok: ten !== undefined && one !== undefined ? ten <= 1.5 * one : undefined, detail: ten !== undefined && one !== undefined ? `${s(ten)} = ${(ten / one).toFixed(2)}× ${s(one)}` : 'not measured in this run' },
  ];
}

const atLeast = (x: number | undefined, min: number) => (x === undefined ? undefined : x >= min);
const times = (x: number | undefined) => (x === undefined ? 'not measured in this run' : `${x.toFixed(1)}×`);

export function checks(rows: Row[], records: RunRecord[]): Check[] {
  const row = (k: string) => rows.find((r) => r.key === k)!;
  const noop = row('noop');
  const r = (side: Side) => (noop.values.ours && noop.values[side] ? noop.values[side]! / noop.values.ours : undefined);
  const ourLogins = records.filter((x) => x.side === 'ours' && x.logins).flatMap((x) => x.logins!);
  const failed = row('failed').values.ours;
  return [
    { what: '0 failed requests for ops-pipeline deploys under load', ok: failed === 0, detail: `${failed ?? '?'} failed of ${row('sent').values.ours ?? '?'} sent` },
    { what: 'no-op redeploy ≥ 20× faster than Ansible with the seed settings', ok: atLeast(r('seed'), 20), detail: times(r('seed')) },
    { what: 'no-op redeploy ≥ 10× faster than Ansible with pipelining', ok: atLeast(r('pipelining'), 10), detail: times(r('pipelining')) },
    { what: 'one SSH connection per host per run (ops-pipeline)', ok: ourLogins.length > 0 && ourLogins.every((n) => n === 1), detail: `per-host counts seen: ${[...new Set(ourLogins)].sort((a, b) => a - b).join(', ') || 'none'}` },
    ...goals(row),
  ];
}

export function textTable(rows: Row[]): string {
  const header = ['', SIDE_NAMES.ours, SIDE_NAMES.seed, 'ratio', SIDE_NAMES.pipelining, 'ratio'];
  const unit = (r: Row) => (r.kind === 'seconds' ? ' (s)' : '');
  const body = rows.map((r) => [`${r.label}${unit(r)}`, fmt(r.values.ours, r.kind), fmt(r.values.seed, r.kind), ratio(r, 'seed'), fmt(r.values.pipelining, r.kind), ratio(r, 'pipelining')]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** Where ops-pipeline's time goes: medians per step (first host) from the CLI's --json, and the no-op's phases. */
export function breakdown(records: RunRecord[]): string[] {
  const out: string[] = [];
  const startup = median(records.filter((r) => r.side === 'ours' && r.scenario === 'startup').map((r) => r.ms));
  const noops = records.filter((r) => r.scenario === 'noop_inproc' && r.phases);
  if (noops.length) {
    const names = [...new Set(noops.flatMap((r) => r.phases!.map((p) => p.what)))];
    const total = median(noops.map((r) => r.ms))!;
    const remote = names.map((n) => [n, median(noops.map((r) => r.phases!.filter((p) => p.what === n).reduce((a, p) => a + p.ms, 0)))!] as const);
    // The rest of each run (its total less its remote phases, which follow one another), then their median: medians
    // of the parts need not add up to the median of the whole (one run's figures could show a negative rest).
    const rest = median(noops.map((r) => r.ms - r.phases!.reduce((a, p) => a + p.ms, 0)))!;
    out.push('**No-op deploy, called in-process** (median of the runs, ms):', '', '| phase | ms |', '|---|--:|');
    if (startup !== undefined) out.push(`| CLI start-up (\`ops --help\`, not part of the in-process figure) | ${Math.round(startup)} |`);
    out.push(`| on the runner, not beside the connection: resolve the ref, plan (dependency hashes, secrets, .env), results | ${Math.round(rest)} |`);
    for (const [n, ms] of remote) out.push(`| ${n} | ${Math.round(ms)} |`);
    out.push(`| total in-process | ${Math.round(total)} |`, '');
  }
  for (const scenario of ['code', 'full', 'full_pip', 'rollback', 'code3', 'code10'] as Scenario[]) {
    const rs = records.filter((r) => r.side === 'ours' && r.scenario === scenario && r.steps?.length);
    if (!rs.length) continue;
    const names = [...new Set(rs.flatMap((r) => r.steps![0]!.steps.map((s) => s.name)))];
    const cells = names.map((n) => `${n} ${((median(rs.map((r) => r.steps![0]!.steps.find((s) => s.name === n)?.ms ?? 0)) ?? 0) / 1000).toFixed(2)}`);
    const stepSum = median(rs.map((r) => r.steps![0]!.steps.reduce((a, s) => a + s.ms, 0)))! / 1000;
    const total = median(rs.map((r) => r.ms))! / 1000;
    const [top, topMs] = names.map((n) => [n, median(rs.map((r) => r.steps![0]!.steps.find((s) => s.name === n)?.ms ?? 0)) ?? 0] as const).reduce((a, b) => (b[1] > a[1] ? b : a));
    out.push(
      `- **${scenario}** (s, first host): ${cells.join(' · ')} — steps ${stepSum.toFixed(2)} of ${total.toFixed(2)} in all (the rest: CLI start-up, plan, connection, lock and state, unlock)` +
        ` — limited by ${top}: ${(topMs / 1000).toFixed(2)} s, ${Math.round(topMs / 10 / total)}% of the run; ${stepLimit(top)}`,
    );
  }
  return out;
}

/**
 * What a step's time is made of, for the "limited by" of each scenario in latest.md (issue 19 asks what limits each
 * figure: CPU, network, remote work). Keyed by the step names the CLI's --json gives (core/ops/deploy-host.ts).
 */
export function stepLimit(step: string): string {
  if (/^build$/.test(step)) return "the app's own build (vite build of the client): CPU on the host";
  // A rollback's one step: the previous release is kept warm, so its time is the switch's.
  if (/ \+ switch$/.test(step)) return 'the switch: nginx -t, a graceful reload and waiting until nginx answers from the other slot: CPU on the host';
  if (/^start /.test(step)) return "the app's start-up and its health checks (uvicorn, Node): CPU on the host; with several hosts, all of them on the same two cores";
  if (/^migrate$/.test(step)) return "the app's migrations (alembic): CPU on the host and the database";
  if (/dependencies$/.test(step)) return 'installing a dependency set from the package cache: CPU on the host (unpacking, bytecode), the lab network';
  if (/^(receive code|pack build|read release)$/.test(step)) return 'moving code or a built release over the one SSH connection: network and compression';
  return "ops's own work on the host (files, nginx reload, supervisor)";
}

export function markdown(rows: Row[], checkList: Check[], meta: Meta, notes: string[], records: RunRecord[] = []): string {
  const cell = (r: Row, side: Side) => {
    const v = fmt(r.values[side], r.kind);
    const range = r.ranges[side];
    return range && range[0] !== range[1] ? `${v} <sub>(${fmt(range[0], r.kind)}–${fmt(range[1], r.kind)})</sub>` : v;
  };
  return [
    `# Benchmark: ops-pipeline vs the seed's Ansible`,
    '',
    `${meta.date} · medians of ${meta.runs} run(s) (ranges in brackets; Ansible's provision, rollback and 3-host figures: ${meta.ansibleRuns} run(s)) · load: ${meta.rate} requests/s through nginx during every deploy that changes something · ` +
      `${meta.machine.cpus} CPUs, load average ${meta.machine.loadBefore.map((l) => l.toFixed(1)).join('/')} before, ${meta.machine.loadAfter.map((l) => l.toFixed(1)).join('/')} after (shared machine: timings are noisy) · ` +
      `Node ${meta.machine.node}, ${meta.machine.ansible} · benchmark took ${(meta.benchSeconds / 60).toFixed(1)} min`,
    '',
    `| | ${SIDE_NAMES.ours} | ${SIDE_NAMES.seed} | ratio | ${SIDE_NAMES.pipelining} | ratio |`,
    '|---|--:|--:|--:|--:|--:|',
    ...rows.map((r) => `| ${r.label.replace(/^ +/, '&nbsp;&nbsp;')}${r.kind === 'seconds' ? ' (s)' : ''} | ${cell(r, 'ours')} | ${cell(r, 'seed')} | ${ratio(r, 'seed')} | ${cell(r, 'pipelining')} | ${ratio(r, 'pipelining')} |`),
    '',
    '## Targets',
    '',
    ...checkList.map((c) => `- ${c.ok === undefined ? '➖' : c.ok ? '✅' : '❌'} ${c.what}: ${c.detail}`),
    '',
    ...(records.length ? ["## Where ops-pipeline's time goes", '', ...breakdown(records), ''] : []),
    '## How it was measured',
    '',
    ...notes.map((n) => `- ${n}`),
    '',
    '![chart](chart.svg)',
    '',
  ].join('\n');
}

/** Grouped horizontal bars, log scale (the figures span two orders of magnitude). */
export function svgChart(rows: Row[], meta: Meta): string {
  const keys = ['provision', 'noop', 'code', 'code_served', 'full', 'full_pip', 'rollback', 'rollback_served', 'code3', 'code10'];
  const data = rows.filter((r) => keys.includes(r.key));
  const colors: Record<Side, string> = { ours: '#2e7d32', seed: '#c62828', pipelining: '#ef6c00' };
  const left = 330;
  const width = 960;
  const plot = width - left - 90;
  const bar = 14;
  const group = SIDES.length * bar + 16;
  const top = 60;
  const height = top + data.length * group + 50;
  const all = data.flatMap((r) => SIDES.map((s) => r.values[s]).filter((v): v is number => v !== undefined && v > 0));
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...all, 1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all, 1))));
  const x = (v: number) => left + (plot * (Math.log10(Math.max(v, lo)) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/…/g, '...');
  const out: string[] = [];
  const panel = hostsPanel(rows, height, width, esc);
  const full = height + panel.height;
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${full}" viewBox="0 0 ${width} ${full}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${full}" fill="#fff"/>`);
  out.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">Seconds, median of ${meta.runs} run(s), log scale (shorter is better)</text>`);
  SIDES.forEach((s, i) => {
    out.push(`<rect x="${left + i * 190}" y="34" width="12" height="12" fill="${colors[s]}"/><text x="${left + i * 190 + 17}" y="44">${esc(SIDE_NAMES[s])}</text>`);
  });
  for (let d = lo; d <= hi; d *= 10) {
    out.push(`<line x1="${x(d)}" y1="${top - 4}" x2="${x(d)}" y2="${height - 40}" stroke="#ddd"/><text x="${x(d)}" y="${height - 24}" text-anchor="middle" fill="#555">${d >= 1 ? d : d.toFixed(-Math.log10(d))} s</text>`);
  }
  data.forEach((r, gi) => {
    const gy = top + gi * group;
    out.push(`<text x="${left - 8}" y="${gy + (SIDES.length * bar) / 2 + 4}" text-anchor="end">${esc(r.label.trim())}</text>`);
    SIDES.forEach((s, i) => {
      const v = r.values[s];
      if (v === undefined) return;
      const y = gy + i * bar;
      out.push(`<rect x="${left}" y="${y}" width="${Math.max(1, x(v) - left).toFixed(1)}" height="${bar - 2}" fill="${colors[s]}"/>`);
      out.push(`<text x="${(x(v) + 4).toFixed(1)}" y="${y + bar - 4}" font-size="11">${fmt(v, 'seconds')}</text>`);
    });
  });
  out.push(...panel.elements, '</svg>');
  return out.join('\n') + '\n';
}

/**
 * The rollout curve: seconds of a code-only deploy against the number of hosts (1, 3, 10), all at once and
 * one at a time, and the seconds per host of the all-at-once rollout (dashed); Ansible's 1 and 3 hosts.
 */
function hostsPanel(rows: Row[], top: number, width: number, esc: (s: string) => string): { height: number; elements: string[] } {
  const v = (k: string, side: Side = 'ours') => rows.find((r) => r.key === k)?.values[side];
  const series: { name: string; color: string; dash?: string; points: [number, number | undefined][] }[] = [
    { name: 'ops-pipeline, all hosts at once', color: '#2e7d32', points: [[1, v('code')], [3, v('code3')], [10, v('code10')]] },
    { name: 'ops-pipeline, one host at a time', color: '#66bb6a', points: [[1, v('code')], [3, v('code3rolling')], [10, v('code10rolling')]] },
    { name: 'ops-pipeline, all at once: seconds per host', color: '#2e7d32', dash: '5,4', points: [[1, v('code')], [3, v('code3') && v('code3')! / 3], [10, v('code10') && v('code10')! / 10]] },
    { name: 'Ansible (seed cfg), forks 5', color: '#c62828', points: [[1, v('code', 'seed')], [3, v('code3', 'seed')]] },
    { name: 'Ansible + pipelining', color: '#ef6c00', points: [[1, v('code', 'pipelining')], [3, v('code3', 'pipelining')]] },
  ].map((x) => ({ ...x, points: x.points.filter((p): p is [number, number] => p[1] !== undefined) }));
  const all = series.flatMap((x) => x.points.map((p) => p[1]!));
  if (!all.length) return { height: 0, elements: [] };
  const height = 330;
  const left = 90;
  const plotW = width - left - 300;
  const plotTop = top + 40;
  const plotH = height - 90;
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all))));
  const lo = Math.pow(10, Math.floor(Math.log10(Math.max(0.1, Math.min(...all)))));
  const x = (n: number) => left + (plotW * Math.log10(n)) / Math.log10(10);
  const y = (sec: number) => plotTop + plotH - (plotH * (Math.log10(Math.max(sec, lo)) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
  const el: string[] = [`<text x="${left}" y="${top + 22}" font-size="15" font-weight="bold">Code-only deploy against the number of hosts (seconds, log scales)</text>`];
  for (let d = lo; d <= hi; d *= 10) el.push(`<line x1="${left}" y1="${y(d).toFixed(1)}" x2="${left + plotW}" y2="${y(d).toFixed(1)}" stroke="#ddd"/><text x="${left - 6}" y="${(y(d) + 4).toFixed(1)}" text-anchor="end" fill="#555">${d >= 1 ? d : d.toFixed(-Math.log10(d))} s</text>`);
  for (const n of [1, 3, 10]) el.push(`<line x1="${x(n).toFixed(1)}" y1="${plotTop}" x2="${x(n).toFixed(1)}" y2="${plotTop + plotH}" stroke="#eee"/><text x="${x(n).toFixed(1)}" y="${plotTop + plotH + 18}" text-anchor="middle" fill="#555">${n} host${n > 1 ? 's' : ''}</text>`);
  series.forEach((sr, i) => {
    if (!sr.points.length) return;
    el.push(`<polyline fill="none" stroke="${sr.color}" stroke-width="2"${sr.dash ? ` stroke-dasharray="${sr.dash}"` : ''} points="${sr.points.map(([n, sec]) => `${x(n).toFixed(1)},${y(sec!).toFixed(1)}`).join(' ')}"/>`);
    for (const [n, sec] of sr.points) el.push(`<circle cx="${x(n).toFixed(1)}" cy="${y(sec!).toFixed(1)}" r="3" fill="${sr.color}"/><text x="${(x(n) + 5).toFixed(1)}" y="${(y(sec!) - 5).toFixed(1)}" font-size="10">${fmt(sec, 'seconds')}</text>`);
    const ly = plotTop + 10 + i * 20;
    el.push(`<line x1="${left + plotW + 30}" y1="${ly}" x2="${left + plotW + 55}" y2="${ly}" stroke="${sr.color}" stroke-width="2"${sr.dash ? ` stroke-dasharray="${sr.dash}"` : ''}/><text x="${left + plotW + 60}" y="${ly + 4}">${esc(sr.name)}</text>`);
  });
  return { height, elements: el };
}

export function writeResults(dir: string, rows: Row[], checkList: Check[], records: RunRecord[], meta: Meta, notes: string[]): string[] {
  mkdirSync(dir, { recursive: true });
  const files = [join(dir, 'latest.md'), join(dir, 'latest.json'), join(dir, 'chart.svg')];
  writeFileSync(files[0]!, markdown(rows, checkList, meta, notes, records));
  const figures = Object.fromEntries(rows.map((r) => [r.key, { label: r.label.trim(), unit: r.kind === 'seconds' ? 's' : r.kind, ...r.values, ranges: r.ranges }]));
  writeFileSync(files[1]!, JSON.stringify({ meta, figures, checks: checkList, notes, runs: records }, null, 2) + '\n');
  writeFileSync(files[2]!, svgChart(rows, meta));
  return files;
}

/** The README's short table: the headline figures of a results file (latest.json), between the bench markers. */
export function readmeTable(figures: Record<string, { label: string; unit: string } & Partial<Record<Side, number>>>, meta: Meta): string {
  const keys = ['provision', 'noop', 'noop_vs_ssh', 'code', 'full', 'full_pip', 'rollback', 'rollback_vs_ssh', 'rollback_served', 'code3', 'code10', 'code10rolling', 'first', 'failed', 'failed_after', 'ssh_max'];
  const rows = keys.filter((k) => figures[k]).map((k) => {
    const f = figures[k]!;
    const kind: Kind = f.unit === 's' ? 'seconds' : f.unit === 'ms' ? 'ms' : f.unit === 'times' ? 'times' : 'count';
    const row: Row = { key: k, label: f.label, kind, values: { ours: f.ours, seed: f.seed, pipelining: f.pipelining }, ranges: {}, ratio: kind === 'seconds' || k.startsWith('ssh') };
    const label = `${k === 'failed' ? 'failed requests during deploys under load (all runs)' : f.label}${kind === 'seconds' ? ' (s)' : ''}`;
    return `| ${label} | ${fmt(row.values.ours, kind)} | ${fmt(row.values.seed, kind)} | ${ratio(row, 'seed')} | ${fmt(row.values.pipelining, kind)} | ${ratio(row, 'pipelining')} |`;
  });
  return [
    `| ${meta.date.slice(0, 10)}, medians of ${meta.runs} run(s) | ${SIDE_NAMES.ours} | ${SIDE_NAMES.seed} | ratio | ${SIDE_NAMES.pipelining} | ratio |`,
    '|---|--:|--:|--:|--:|--:|',
    ...rows,
  ].join('\n');
}

export const README_MARKERS = ['<!-- bench:begin -->', '<!-- bench:end -->'] as const;

/** The README with its benchmark block replaced by the table of `results` (the parsed latest.json). */
export function readmeWithFigures(readme: string, results: { meta: Meta; figures: Parameters<typeof readmeTable>[0] }): string {
  const [begin, end] = README_MARKERS;
  const a = readme.indexOf(begin);
  const b = readme.indexOf(end);
  if (a < 0 || b < a) throw new Error(`README.md has no ${begin} … ${end} block for the benchmark figures`);
  return `${readme.slice(0, a + begin.length)}\n${readmeTable(results.figures, results.meta)}\n${readme.slice(b)}`;
}
