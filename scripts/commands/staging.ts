// `ops staging add <ref>` and `ops staging rebuild`: the staging-sync action, from a laptop. Acts on the git
// repository of the current directory (or --repo) and its remote, with the user's own git credentials.
import { auditReason, withResult } from '../../core/errors.ts';
import { ConsoleReporter } from '../../core/report.ts';
import { DEFAULT_IDENTITY } from '../../core/git.ts';
import type { StagingRun } from '../../core/staging/run.ts';
import { STAGING_DEFAULTS, stagingSettings } from '../../core/staging/settings.ts';
import { command, type Command, type CommandContext, type Options } from '../cli.ts';

const common = {
  repo: { type: 'string', value: 'PATH', path: true, description: 'the clone to act on (default: the git repository of the current directory)' },
  remote: { type: 'string', value: 'NAME', what: 'a remote name', dashes: false, description: `the remote to fetch from and push to (default: ${STAGING_DEFAULTS.remote})` },
  main: { type: 'string', value: 'BRANCH', what: 'a branch name', dashes: false, description: `the main branch (default: ${STAGING_DEFAULTS.main})` },
  staging: { type: 'string', value: 'BRANCH', what: 'a branch name', dashes: false, description: `the staging branch (default: ${STAGING_DEFAULTS.staging})` },
  retries: { type: 'number', value: 'N', max: 99, description: `retries when staging moves on the remote meanwhile (default: ${STAGING_DEFAULTS.retries})` },
  'committer-name': { type: 'string', value: 'NAME', description: `author/committer of merge commits (default: ${DEFAULT_IDENTITY.name})` },
  'committer-email': { type: 'string', value: 'EMAIL', description: `its email (default: ${DEFAULT_IDENTITY.email})` },
  'dry-run': { type: 'boolean', description: 'say what would happen; push nothing, comment nothing' },
  json: { type: 'boolean', description: 'print the result as JSON' },
  label: { type: 'string', value: 'LABEL', description: `the label of the pull requests staging carries (default: ${STAGING_DEFAULTS.label})` },
} as const satisfies Options;

function request(ctx: CommandContext<typeof common>, mode: StagingRun['mode']): StagingRun {
  const v = ctx.values;
  return {
    mode,
    repo: v.repo ?? ctx.cwd,
    settings: stagingSettings({ remote: v.remote, main: v.main, staging: v.staging, retries: v.retries, dryRun: v['dry-run'] === true }),
    label: v.label,
    token: ctx.processEnv.GITHUB_TOKEN || ctx.processEnv.GH_TOKEN || undefined,
    identity: { name: v['committer-name'] ?? DEFAULT_IDENTITY.name, email: v['committer-email'] ?? DEFAULT_IDENTITY.email },
    processEnv: ctx.processEnv,
    // With --json, stdout carries the JSON alone: progress and summary go to stderr.
    reporter: v.json ? new ConsoleReporter(ctx.stderr, ctx.stderr) : ctx.reporter,
    interactive: Boolean((ctx.stdin as NodeJS.ReadStream).isTTY),
  };
}

async function run(ctx: CommandContext, req: StagingRun): Promise<number> {
  const { runStaging } = await import('../../core/staging/run.ts');
  const { StagingRefusal } = await import('../../core/staging/messages.ts');
  const result = await runStaging(req).catch((e: unknown) => {
    // A failure's --json (scripts/cli.ts), as a deploy's: what was attempted (the mode, the branch, the ref), and why
    // (the reason; a refusal's kind and files: staging untouched). No release fields: staging makes no release.
    const refused = e instanceof StagingRefusal ? { refused: e.reason, ...(e.files.length && { files: e.files }) } : {};
    throw withResult(e, { mode: req.mode, staging: req.settings.staging, ...(req.ref && { ref: req.ref }), dryRun: req.settings.dryRun, ...refused, reason: auditReason(e, (t) => req.reporter.redact(t)) });
  });
  if (ctx.values.json) ctx.stdout.write(JSON.stringify(result, null, 2) + '\n');
  return 0;
}

export const commands: Command[] = [
  command({
    name: 'staging add',
    summary: 'bring a branch, pull request (pull/12) or sha into staging: fast-forward, else a merge commit; never forced',
    args: ['<ref>'],
    options: {
      ...common,
      label: { type: 'string', value: 'LABEL', description: `also bring in the open pull requests with this label that staging lacks (default: ${STAGING_DEFAULTS.label})` },
    },
    help: `
Refuses, leaving staging untouched: a merge with conflicts (the files are listed), and a branch rewritten
since it was added (its earlier head is no longer part of it; the rewritten commits are listed).
If staging moves on the remote meanwhile, fetches again and retries.
With GitHub API access ($GITHUB_TOKEN or $GH_TOKEN), the open pull requests carrying the label that staging
lacks come in too, in the same push (so staging converges even when a workflow run was cancelled).`,
    run: (ctx) => run(ctx, { ...request(ctx, 'add'), ref: ctx.args[0] }),
  }),
  command({
    name: 'staging rebuild',
    summary: 'reset staging to the main branch and re-apply the open pull requests labelled "staging", oldest first',
    options: {
      ...common,
      label: { type: 'string', value: 'LABEL', description: `re-apply open pull requests with this label (default: ${STAGING_DEFAULTS.label})` },
      'no-comment': { type: 'boolean', description: 'do not comment on pull requests that could not be re-applied' },
    },
    help: `
Pushes once, with a lease on the staging sha read at the start: a push that races in is carried over when it
came from \`ops staging add\` (or the action), and otherwise stops the rebuild with staging untouched.
A pull request staging holds is re-applied at the commit staging took for it (its approved head), not at a
head pushed since: the output says what was left out (it waits for a new label).
The pull-request API needs $GITHUB_TOKEN (or $GH_TOKEN) and a GitHub remote URL (or $GITHUB_REPOSITORY);
without it staging is still reset, and the output says the labelled pull requests were not re-applied.
With a token, a listing that fails (or a $GITHUB_REPOSITORY that is not owner/name) leaves staging untouched.`,
    run: (ctx) =>
      run(ctx, {
        ...request(ctx, 'rebuild'),
        comment: ctx.values['no-comment'] !== true,
      }),
  }),
];
