// Commands that change or show what runs: deploy, rollback, releases, lock, audit.
import { openEnvironment } from '../../core/ops/secrets.ts';
import { JSON_OPTION, command, printResult, reportExitCode, type Command } from '../cli.ts';

const json = JSON_OPTION;

export const commands: Command[] = [
  command({
    name: 'deploy',
    hosts: true,
    extraArg: 'ref',
    summary: 'put a git ref live on every host: new release, health-gated gapless switch, old one kept for rollback',
    args: ['<env>'],
    options: {
      ref: { type: 'string', value: 'REF', what: 'a branch, tag or sha', dashes: false, description: "branch, tag or sha (default: the environment's ref)" },
      force: { type: 'boolean', description: 'deploy even when that sha is already live' },
      'dry-run': { type: 'boolean', description: 'print the plan (hosts, sha, steps, and what changes: commits, migrations, dependency sets) and change nothing' },
      'forward-only': { type: 'boolean', description: 'skip (a no-op with a warning, exit 0) when the ref is behind the live commit on any host, fail when its history diverged from it: never go back by accident' },
      json,
    },
    async run(ctx) {
      const { args, ops, values } = ctx;
      const { deploy, deploySummary, refuseUnreadPlan } = await import('../../core/ops/deploy.ts');
      const env = openEnvironment(ops, args[0]!);
      const r = await deploy(ops, env, { ref: values.ref, force: Boolean(values.force), dryRun: Boolean(values['dry-run']), forwardOnly: Boolean(values['forward-only']) });
      await printResult(ctx, r, deploySummary, 'summary');
      if (!values.json) refuseUnreadPlan(r);
      return r.dryRun ? reportExitCode(r.changes.map((g) => g.live), r.changes.some((g) => g.live.error !== undefined)) : 0;
    },
  }),
  command({
    name: 'diff',
    hosts: true,
    extraArg: 'ref',
    summary: 'what deploying a ref would change on each host: commits (or a rollback in disguise), new migrations, dependency sets; changes nothing',
    args: ['<env>'],
    options: { ref: { type: 'string', value: 'REF', what: 'a branch, tag or sha', dashes: false, description: "branch, tag or sha (default: the environment's ref)" }, json },
    async run(ctx) {
      const { args, ops, values } = ctx;
      const [{ diff, formatDiff }, { someUnread }] = await Promise.all([import('../../core/ops/diff.ts'), import('../../core/ops/records.ts')]);
      const r = await diff(ops, openEnvironment(ops, args[0]!), values.ref);
      await printResult(ctx, r, formatDiff);
      return reportExitCode(r.changes.map((g) => g.live), someUnread(r.changes.map((g) => g.live)));
    },
  }),
  command({
    name: 'rollback',
    hosts: true,
    extraArg: 'to',
    summary: 'switch back to a kept release in seconds (default: the one before the live one)',
    args: ['<env>'],
    // An empty --to (a variable that was not set: --to "$RELEASE") is a mistake, not "the release before" (scripts/cli.ts refuses it).
    options: { to: { type: 'string', value: 'RELEASE', what: 'a release id', dashes: false, emptyHint: 'see ops releases {env}; without --to: the release before the live one', description: 'release id to go back to (see ops releases)' }, json },
    async run(ctx) {
      const { args, ops, values } = ctx;
      const { rollback, rollbackSummary } = await import('../../core/ops/rollback.ts');
      const env = openEnvironment(ops, args[0]!);
      const r = await rollback(ops, env, values.to);
      await printResult(ctx, r, rollbackSummary, 'summary');
      return 0;
    },
  }),
  command({
    name: 'initdata',
    hosts: true,
    extraArg: 'file',
    summary: "load the environment's initial data (its initdata.file, default assets/initdata.yml; may be sops-encrypted) with the app's loader",
    args: ['<env>'],
    options: {
      file: { type: 'string', value: 'FILE', what: 'a file', path: true, description: 'another data file (YAML, JSON or another format the loader reads, as written; sops-encrypted or not)' },
      'live-settings': { type: 'boolean', description: "load even when the live release runs with other env values or secrets than the environment now has (the loader gets the live release's)" },
      json,
    },
    async run(ctx) {
      const { args, ops, values } = ctx;
      const { initdata, initdataSummary } = await import('../../core/ops/initdata.ts');
      const env = openEnvironment(ops, args[0]!);
      const r = await initdata(ops, env, { file: values.file, liveSettings: Boolean(values['live-settings']) });
      await printResult(ctx, r, initdataSummary, 'summary');
      return 0;
    },
  }),
  command({
    name: 'releases',
    hosts: true,
    summary: 'list the releases kept on each host (id, sha, ref, when, who; * = live)',
    args: ['<env>'],
    options: { json },
    async run(ctx) {
      const { args, ops } = ctx;
      const { formatReleases, listReleases, someUnread } = await import('../../core/ops/records.ts');
      const list = await listReleases(ops, openEnvironment(ops, args[0]!));
      await printResult(ctx, list, formatReleases);
      return reportExitCode(list, someUnread(list));
    },
  }),
  command({
    name: 'lock status',
    hosts: true,
    summary: "show who holds the environment's lock on each host (stale = its run died)",
    args: ['<env>'],
    options: { json },
    async run(ctx) {
      const { args, ops } = ctx;
      const { formatLock, getLockStatus } = await import('../../core/ops/records.ts');
      const list = await getLockStatus(ops, openEnvironment(ops, args[0]!));
      await printResult(ctx, list, formatLock);
      return reportExitCode(list, list.some((l) => l.lock.state !== 'free'));
    },
  }),
  command({
    name: 'lock release',
    hosts: true,
    summary: 'break the lock on purpose: stops what its run left running on each host first; recorded in the audit log',
    args: ['<env>'],
    options: { force: { type: 'boolean', description: 'also a lock whose run is still connected (a stuck run): its processes there are stopped' } },
    async run(ctx) {
      const { args, ops, values } = ctx;
      const { breakLock, formatLockRelease } = await import('../../core/ops/records.ts');
      const list = await breakLock(ops, openEnvironment(ops, args[0]!), Boolean(values.force));
      // the holder's name and message come from whoever took the lock: printed as any result (masked, controls shown)
      await printResult(ctx, list, (l) => formatLockRelease(l, args[0]!));
      return reportExitCode(list, list.some((r) => r.refused));
    },
  }),
  command({
    name: 'audit',
    hosts: true,
    summary: 'the append-only log of runs on each host (who, what, sha, result)',
    args: ['<env>'],
    options: { lines: { type: 'number', value: 'N', min: 1, description: 'entries per host (default 20)' }, json },
    async run(ctx) {
      const { args, ops, values } = ctx;
      const { auditLog, formatAudit, someUnread } = await import('../../core/ops/records.ts');
      const list = await auditLog(ops, openEnvironment(ops, args[0]!), values.lines ?? 20);
      await printResult(ctx, list, formatAudit);
      return reportExitCode(list, someUnread(list));
    },
  }),
];
