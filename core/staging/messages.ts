// How staging's results are told: one log line per add, the job summary (a table), the comment on a pull
// request that no longer applies, and the refusal that leaves staging untouched. Pure.
import { OpsError } from '../errors.ts';
import { codeBlock, markdownValues, type ValueFormat } from '../report.ts';
import type { Source } from './refs.ts';

/** Marks the pull-request comment this tool writes (so the next run updates it instead of adding one). */
export const COMMENT_MARKER = '<!-- ops-pipeline:staging-sync -->';

export type AddOutcome = 'fast-forward' | 'merge' | 'already-contained';

/**
 * A ref that moved on past the commit staging takes of it (the approved one): its head now, and what staging did
 * not take ("<short sha> <subject>", at most 20; rewritten: the approved commit is no longer in the ref at all).
 */
export interface Moved {
  head: string;
  newer: string[];
  rewritten: boolean;
}

export interface Applied {
  source: Source;
  outcome: AddOutcome;
  /** Staging after this source. */
  sha: string;
  /**
   * Set when `source.sha` is an approved commit (the head a label approved, or the one a rebuild found recorded
   * in staging) and the ref has moved on since.
   */
  moved?: Moved;
}

export type SkipReason = 'conflict' | 'rewritten' | 'missing';

export interface Skipped {
  source: Source;
  reason: SkipReason;
  message: string;
  files?: string[];
  /** As in Applied: the ref moved on past the approved commit that was tried (source.sha). */
  moved?: Moved;
}

export interface AddResult extends Applied {
  before?: string;
  changed: boolean;
  /** Staging did not exist and was created from the main branch. */
  created: boolean;
  attempts: number;
  dryRun: boolean;
  /** Open labelled pull requests staging lacked, brought in by the same run (a cancelled run's work). */
  alsoAdded: Applied[];
  /** Labelled pull requests that do not apply (left for the rebuild, which comments on them). */
  skipped: Skipped[];
  /** Why the labelled pull requests were not checked (no token, API down); undefined when they were. */
  pullsUnavailable?: string;
  /**
   * Commits staging held that no add of a branch, tag or pull request brought ("<short sha> <subject>", at most 20:
   * pushed to it by hand, or the main branch's before it was rewritten), kept by the add and
   * deployed with staging until a rebuild drops them.
   */
  unadded?: string[];
}

export interface RebuildResult {
  before?: string;
  after: string;
  main: string;
  changed: boolean;
  added: Applied[];
  skipped: Skipped[];
  /** Refs that were in staging before the rebuild and are not in it now (not re-applied, and their head not in main). */
  dropped: string[];
  /**
   * Commits only staging had ("<short sha> <subject>", at most 20), which the rebuild drops: none came from
   * a staging add (pushed to staging by hand, or from the main branch before it was rewritten).
   */
  lost: string[];
  /** Why labelled pull requests were not re-applied (no token, API unreachable...); undefined when they were. */
  pullsUnavailable?: string;
  /** What moved staging while the rebuild ran, and was carried into the result. */
  carried: string[];
  attempts: number;
  dryRun: boolean;
  comments: { number: number; result: string }[];
}

/** "1 commit", "3 commits", "20 or more commits" (lost lists at most 20). */
export const lostCount = (lost: string[]): string => (lost.length === 1 ? '1 commit' : `${lost.length}${lost.length >= 20 ? ' or more' : ''} commits`);

/** A sha in messages (7 characters), or "(none)". */
export const short = (sha: string | undefined): string => (sha ? sha.slice(0, 7) : '(none)');

const OUTCOME: Record<AddOutcome, string> = {
  'fast-forward': 'fast-forward',
  merge: 'merge commit',
  'already-contained': 'already contained',
};

/** One log line for an add: what happened to staging (fast-forward, merge, already in). */
export function describeAdd(r: AddResult, staging: string): string {
  const would = r.dryRun ? 'would be ' : '';
  if (r.outcome === 'already-contained') return `${r.source.display} (${short(r.source.sha)}) is already contained in ${staging} (${short(r.sha)}): nothing to do`;
  const created = r.created ? ` (${staging} did not exist: ${would || ''}created from the main branch)` : '';
  return `${r.source.display} (${short(r.source.sha)}) ${would}added to ${staging} by ${OUTCOME[r.outcome]}: ${short(r.before)} → ${short(r.sha)}${created}`;
}

/** How a rebuild names the commit it re-applies of a ref staging held: the one recorded by its add. */
export const APPROVED = 'the commit staging took (its approved head)';

/**
 * What an add or a rebuild of one approved commit did not take, when the ref moved on since; undefined when it
 * did not move. `approved` names that commit: "the labelled commit" (an add: the head its label was put on), or
 * for a rebuild the commit staging recorded when it was added.
 */
export function describeMoved(r: { source: Source; moved?: Moved }, staging: string, approved = 'the labelled commit'): string | undefined {
  if (!r.moved) return undefined;
  const { head, newer, rewritten } = r.moved;
  const what = `${r.source.display} is at ${short(head)} now, not at ${approved} ${short(r.source.sha)}, which is what ${staging} takes`;
  if (rewritten) return `${what}; the branch was rewritten since (${approved} is no longer in it): its new commits wait for a new label.`;
  const count = newer.length === 1 ? '1 newer commit' : `${newer.length}${newer.length >= 20 ? ' or more' : ''} newer commits`;
  return `${what}; ${count} not added, waiting for a new label: ${newer.join('; ')}`;
}

/**
 * The job summary of an add, with the pull requests also added or skipped: Markdown, its values written with `f`
 * (the reporter's: markdownValues for a job summary, plainValues for a terminal).
 */
export function addSummary(r: AddResult, names: { staging: string; label: string }, f: ValueFormat = markdownValues): string {
  const lines = [`### ${r.dryRun ? 'Dry run: ' : ''}staging sync: add ${f.text(r.source.display)}`, '', f.text(describeAdd(r, names.staging)).replace(/\b([0-9a-f]{7})\b/g, '`$1`'), ''];
  const moved = describeMoved(r, names.staging);
  if (moved) lines.push(`> **Note**: ${f.text(moved)}`, '');
  if (r.alsoAdded.length || r.skipped.length) {
    lines.push(`Open pull requests labelled ${f.code(names.label)} that ${f.text(names.staging)} lacked (a cancelled run's work):`, '', '| Source | Head | Result |', '| --- | --- | --- |');
    for (const a of r.alsoAdded) lines.push(`| ${sourceCell(a.source, f)} | \`${short(a.source.sha)}\` | ${OUTCOME[a.outcome]} |`);
    for (const s of r.skipped) lines.push(`| ${sourceCell(s.source, f)} | \`${short(s.source.sha)}\` | **skipped** (${s.reason}) |`);
    lines.push('');
  }
  if (r.pullsUnavailable) lines.push(`> **Warning**: other pull requests labelled ${f.code(names.label)} were **not checked**: ${f.text(r.pullsUnavailable)}.`, '');
  if (r.unadded?.length) {
    lines.push(
      `> **Warning**: ${f.text(names.staging)} holds ${lostCount(r.unadded)} that no add of a branch, tag or pull request brought (pushed to it by hand, or from the main branch before it was rewritten); they stay in it and are deployed with it until a rebuild drops them (\`ops staging rebuild\`):`,
      '',
      ...r.unadded.map((l) => `- ${f.code(l.slice(0, l.indexOf(' ')))} ${f.text(l.slice(l.indexOf(' ') + 1))}`),
      '',
    );
  }
  return lines.join('\n');
}

function sourceCell(s: Source, f: ValueFormat): string {
  return s.pull ? `${f.link(`#${s.pull.number}`, s.pull.url)} ${f.text(s.pull.title)}` : f.code(s.display, 'cell');
}

/** The job summary of a rebuild: before and after, what was re-applied, what was skipped and why (`f`: as addSummary's). */
export function rebuildSummary(r: RebuildResult, names: { main: string; staging: string; label: string }, f: ValueFormat = markdownValues): string {
  const staging = f.text(names.staging);
  const main = f.text(names.main);
  const lines = [
    `### ${r.dryRun ? 'Dry run: ' : ''}staging sync: rebuild ${staging} from ${main}`,
    '',
    `${f.code(names.staging)}: \`${short(r.before)}\` → \`${short(r.after)}\` (${main} at \`${short(r.main)}\`)${r.changed ? '' : ' — unchanged'}`,
    '',
  ];
  if (r.pullsUnavailable) {
    lines.push(`> **Warning**: pull requests labelled ${f.code(names.label)} were **not re-applied**: ${f.text(r.pullsUnavailable)}.`, `> ${staging} ${r.dryRun ? 'would be' : 'is now'} ${main}${r.carried.length ? ' plus what was carried over (below)' : ''}; add them back with \`ops staging add pull/<number>\` or re-run with API access.`, '');
  }
  if (r.added.length || r.skipped.length) {
    lines.push('| Source | Head | Result |', '| --- | --- | --- |');
    for (const a of r.added) lines.push(`| ${sourceCell(a.source, f)} | \`${short(a.source.sha)}\` | ${OUTCOME[a.outcome]} |`);
    for (const s of r.skipped) {
      const files = s.files?.length ? `: ${s.files.slice(0, 10).map((file) => f.code(file, 'cell')).join(', ')}${s.files.length > 10 ? ', …' : ''}` : '';
      lines.push(`| ${sourceCell(s.source, f)} | \`${short(s.source.sha)}\` | **skipped** (${s.reason}${files}) |`);
    }
    lines.push('');
    for (const a of [...r.added, ...r.skipped]) {
      const moved = describeMoved(a, names.staging, APPROVED);
      if (moved) lines.push(`> **Note**: ${f.text(moved)}`, '');
    }
  } else if (!r.pullsUnavailable) {
    lines.push(`No open pull request carries the label ${f.code(names.label)}.`, '');
  }
  if (r.carried.length) lines.push(`Pushed to ${staging} while the rebuild ran, and carried over: ${r.carried.map((c) => f.code(c)).join(', ')}.`, '');
  if (r.dropped.length) {
    lines.push(
      `No longer in ${staging}: ${r.dropped.map((d) => f.code(d)).join(', ')}. A rebuild re-applies only the open pull requests labelled ${f.code(names.label)} ` +
        `(these were added by hand, or their pull request was closed or unlabelled since): to have one back, label its pull request or add it again (\`ops staging add <ref>\`).`,
      '',
    );
  }
  if (r.lost.length) {
    lines.push(
      `> **Warning**: ${lostCount(r.lost)} only ${staging} had ${r.dryRun ? 'would be' : r.lost.length === 1 ? 'is' : 'are'} dropped (pushed to ${staging} by hand, or from ${main} before it was rewritten); no branch this run knows holds them:`,
      '',
      ...r.lost.map((l) => `- ${f.code(l.slice(0, l.indexOf(' ')))} ${f.text(l.slice(l.indexOf(' ') + 1))}`),
      '',
      `To keep one, put it on a branch and add it (\`ops staging add <branch>\`).`,
      '',
    );
  }
  if (r.comments.length) lines.push(`Comments: ${r.comments.map((c) => `#${c.number} ${c.result}`).join(', ')}.`, '');
  return lines.join('\n');
}

/**
 * The comment on a pull request a rebuild could not re-apply (why, how to fix it), marked so the next run
 * updates it. Markdown whatever the reporter's sink: its values written with `f` (the caller's: maskedMarkdown).
 */
export function skippedComment(s: Skipped, names: { main: string; staging: string; label: string }, runUrl?: string, f: ValueFormat = markdownValues): string {
  const [staging, main, label] = [f.code(names.staging), f.code(names.main), f.code(names.label)];
  const when = runUrl ? f.link(`the rebuild of ${staging}`, runUrl) : `the rebuild of ${staging}`;
  const lines = [
    COMMENT_MARKER,
    `**Not in ${staging}**: ${when} (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC) could not re-apply this pull request at \`${short(s.source.sha)}\`.`,
    '',
    ...codeBlock(s.message),
    '',
  ];
  if (s.reason === 'conflict') {
    lines.push(`It conflicts with ${main} or with another pull request labelled ${label} that was applied before it (oldest first). Resolve the conflict on this branch (merge or rebase ${main}), or coordinate with the other pull request; the next rebuild tries again.`);
  } else if (s.reason === 'missing') {
    lines.push('Its head could not be fetched. Check that the branch still exists.');
  } else {
    lines.push('Push new commits instead of rewriting the branch, or wait for the next rebuild.');
  }
  lines.push('', `<sub>Written by ops-pipeline staging-sync; remove the ${label} label to stop re-applying this pull request.</sub>`);
  return lines.join('\n');
}

/**
 * A refusal of the ref itself: conflicts, rewritten history, a missing ref. Rebuild skips these. It leaves staging
 * untouched, except an add's whose other labelled pull requests still went in (`pushed`: that add's result, staging
 * moved), which the action reports as outputs so that the workflow deploys what it pushed.
 */
export class StagingRefusal extends OpsError {
  override name = 'StagingRefusal';
  /** Set by an add that pushed the other labelled pull requests before refusing its own ref (addToStaging). */
  pushed?: AddResult;
  constructor(
    readonly reason: SkipReason,
    message: string,
    hint: string,
    readonly files: string[] = [],
  ) {
    super(message, hint);
  }
}
