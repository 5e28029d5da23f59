// What every action entry point shares: inputs → OpsContext → operation → outputs, summary and failure.
// Keeps actions/<name>/main.ts to a few lines: read inputs, call one core operation, write outputs.
import * as core from '@actions/core';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { projectDirProblem } from './config/project-dir.ts';
import { NoAgeIdentity, OpsError, formatError, onUncaught, printableLine, showControls } from './errors.ts';
import { byteDumps, hideSecrets } from './secrets/parts.ts';
import { checkKeyText } from './remote/identity.ts';
import { exactForms, guardOutput, Masker, markdownMasks, maskedMarkdown, seconds, type Reporter } from './report.ts';
import type { OpsContext } from './context.ts';

export interface ActionContext {
  ops: OpsContext;
  reporter: ActionsReporter;
  /** A string input ('' when not given). */
  input(name: string, options?: { required?: boolean }): string;
  /** A boolean input, checked before the body ran (ActionInputs.flags: its value when empty, as local harnesses fill no defaults). */
  flag(name: string): boolean;
}

/** The most a step's job summary may hold: GitHub shows none of a longer one (docs.github.com, "Adding a job summary"). */
export const SUMMARY_MAX_BYTES = 1024 * 1024;
/** Where a summary too long for GitHub is cut (ActionsReporter.summary). */
const SUMMARY_CUT = "\n**The job summary is cut here**: a step's summary holds 1 MiB at most (GitHub shows none of a longer one).\n";

/** The reporter of the actions: log groups, masks (setSecret), job summary, outputs, through @actions/core. */
export class ActionsReporter implements Reporter {
  private readonly masker = new Masker();
  /** The job summary is Markdown: values from outside masked, then escaped. */
  readonly values = maskedMarkdown((text) => this.redact(text));
  /** Whether an Actions log group is open now (they cannot nest). */
  private groupOpen = false;
  mask(value: string): void {
    // GitHub masks exact strings only: the encoded forms of each part too (a password in a database URL).
    const added = this.masker.add(value);
    for (const form of exactForms(added)) core.setSecret(form);
    if (added.length) for (const dump of byteDumps(value)) core.setSecret(dump); // the Masker reads dumps back to hex; GitHub cannot
  }
  allow(text: string): void {
    this.masker.allow(text); // in ops's own redaction only: the runner masks every registered value wherever it stands
  }
  redact(text: string): string {
    return this.masker.redact(text);
  }
  /** `text` as printed: masked (redact), its control characters shown as text (showControls). */
  private shown(text: string): string {
    return showControls(this.redact(text));
  }
  /**
   * Print `text` (shown) to the job log. The runner reads a line starting with "::" (spaces before it too) as a
   * workflow command (`::add-mask::`, `::set-output`, `::stop-commands::`), and "##[" anywhere in one as its older
   * form: text that may hold either (an app's log line, a commit subject, a host's output) is printed between
   * `::stop-commands::<token>` and `::<token>::`, the runner's own way to print text it must not act on; the token is
   * random, so no text can end the pause. Text without them is printed as it is (nothing in between in the log).
   */
  private log(text: string): void {
    const shown = this.shown(text);
    if (!/^\s*::|##\[/m.test(shown)) return core.info(shown);
    const token = randomUUID();
    core.info(`::stop-commands::${token}`);
    core.info(shown);
    core.info(`::${token}::`);
  }
  info(message: string): void {
    this.log(message);
  }
  warn(message: string): void {
    // an annotation's text is escaped by @actions/core (% \r \n): no command can start in it
    core.warning(this.shown(message));
  }
  error(message: string): void {
    core.error(this.shown(message));
  }
  async group<T>(title: string, fn: () => Promise<T>): Promise<T> {
    // Actions log groups cannot nest: an inner (or concurrent) group becomes a plain heading. Whether a group is
    // open is what counts, not how many run: steps run at once (a deploy's Python set beside its node set and
    // build) end in any order, and a step starting after the grouped one ended gets a group of its own.
    const own = !this.groupOpen;
    const start = performance.now();
    if (own) {
      core.startGroup(this.shown(title));
      this.groupOpen = true;
    } else this.log(`▸ ${title}`);
    try {
      const result = await fn();
      this.log(`✓ ${title} (${seconds(performance.now() - start)})`);
      return result;
    } catch (e) {
      this.log(`✗ ${title} (${seconds(performance.now() - start)})`);
      throw e;
    } finally {
      if (own) {
        core.endGroup();
        this.groupOpen = false;
      }
    }
  }
  line(host: string, text: string): void {
    this.log(`${host} ${text}`);
  }
  /** Bytes this step's job summary holds so far (summary). */
  private summaryBytes = 0;
  /**
   * Append `markdown` (shown) to the step's job summary, cut at a line with a note when the summary would pass
   * SUMMARY_MAX_BYTES: GitHub shows none of a longer one (a loader's or a host's long output), and later calls
   * add nothing once it is cut.
   */
  async summary(markdown: string): Promise<void> {
    const text = Buffer.from(`${markdownMasks(this.shown(markdown))}\n`);
    const room = SUMMARY_MAX_BYTES - this.summaryBytes;
    if (room <= 0) return;
    let out = text;
    if (text.length > room) {
      const note = Buffer.from(SUMMARY_CUT);
      const cut = text.lastIndexOf(0x0a, Math.max(0, room - note.length - 1)); // at a line: never inside a character
      out = Buffer.concat([text.subarray(0, cut + 1), note]);
      this.summaryBytes = SUMMARY_MAX_BYTES; // cut: nothing more after the note
    } else this.summaryBytes += text.length;
    if (this.summaryLost !== undefined) return;
    try {
      await core.summary.addRaw(out.toString('utf8')).write();
    } catch (e) {
      // The summary is a copy of the log's report: the step's result stands, said once in the log.
      core.summary.emptyBuffer();
      this.summaryLost = reasonOf(e);
      this.warn(`the job summary could not be written ($GITHUB_STEP_SUMMARY: ${this.summaryLost}): this step's report is its log; what the step did stands`);
    }
  }
  /** Why the job summary could not be written, once it could not (summary): later calls add nothing. */
  private summaryLost?: string;
  /** Outputs the runner's file refused (output), and why the first was. */
  private readonly outputsLost: { names: string[]; reason?: string } = { names: [] };
  /**
   * Set step output `name` (redacted) in $GITHUB_OUTPUT. One the runner's file refuses (a full disk, the file gone)
   * is kept for lostOutputs, the other outputs still written: the step's work is not cut short by it.
   */
  output(name: string, value: string): void {
    try {
      core.setOutput(name, this.redact(value));
    } catch (e) {
      this.outputsLost.names.push(name);
      this.outputsLost.reason ??= reasonOf(e);
    }
  }
  /**
   * The error of the outputs $GITHUB_OUTPUT refused (output), undefined when none was: the steps after this one would
   * read them empty (staging's deploy its `ref`), so the step fails with it once its work is over (runAction).
   */
  lostOutputs(): OpsError | undefined {
    const { names, reason } = this.outputsLost;
    if (!names.length) return undefined;
    return new OpsError(
      `the step's output${names.length > 1 ? 's' : ''} ${names.join(', ')} could not be written ($GITHUB_OUTPUT: ${reason}): the steps after it would read ${names.length > 1 ? 'them' : 'it'} empty`,
      "the step's work ran to its end, as its log says (nothing of it was undone); the runner could not take its outputs: check the runner's disk (df -h) and $GITHUB_OUTPUT",
    );
  }
}

/** What a write to one of the runner's files (summary, outputs) failed on, on one line. */
function reasonOf(e: unknown): string {
  return printableLine(e instanceof Error ? e.message : String(e));
}


/** A boolean input: true/yes/1 or false/no/0; empty means `fallback` (local harnesses fill no defaults). */
export function booleanInput(name: string, value: string, fallback: boolean): boolean {
  const v = value.trim().toLowerCase();
  if (v === '') return fallback;
  if (['true', 'yes', '1'].includes(v)) return true;
  if (['false', 'no', '0'].includes(v)) return false;
  throw new OpsError(`invalid input ${name}: ${JSON.stringify(value)}`, `${name} is true or false`);
}

/**
 * The inputs an action checks before it does any work (one way for every action): an input refused after the
 * operation ran (a typo in a flag) would have run it and written its outputs first.
 */
export interface ActionInputs {
  /** Inputs that must not be empty (`ssh-key` among them: the action logs in to hosts). */
  required?: readonly string[];
  /** Boolean inputs (true/yes/1, false/no/0) and their value when empty. */
  flags?: Readonly<Record<string, boolean>>;
  /** Inputs taking one of a few values. */
  choices?: Readonly<Record<string, readonly string[]>>;
  /** The GitHub environment whose secrets fill the key inputs, from the `environment` input (default: the same name). */
  secretsFrom?: (environment: string) => string;
}

/** The GitHub secret each key input is given from in this repository's workflows (README: "Repository checklist"). */
const KEY_SECRETS: Record<string, string> = { 'ssh-key': 'SSH_PRIVATE_KEY', 'age-key': 'SOPS_AGE_KEY' };

/**
 * The payload of the event that started this run: the JSON file the runner names in $GITHUB_EVENT_PATH (docs.github.com,
 * "Webhook events and payloads"); undefined when there is none or it cannot be read. Read here rather than through
 * @actions/github's `context`, which loading would read $GITHUB_API_URL too (core/github.ts octokitFor).
 */
export function eventPayload(env: NodeJS.ProcessEnv = process.env): unknown {
  if (!env.GITHUB_EVENT_PATH) return undefined;
  try {
    return JSON.parse(readFileSync(env.GITHUB_EVENT_PATH, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Why GitHub gave this run no secrets at all, if it is such a run: one for a pull request from a fork (its event's
 * head repository is not this one, or is gone), or one Dependabot started (it gets Dependabot's secrets only). Read
 * from the runner's variables and event file; undefined when neither (or unreadable).
 */
export function secretlessRun(env: NodeJS.ProcessEnv = process.env): { why: string; hint: string } | undefined {
  const hint = 'deploy from a run a person starts (Actions tab, Run workflow), or once the change is merged';
  if (env.GITHUB_ACTOR === 'dependabot[bot]') return { why: 'this run was started by Dependabot, and GitHub gives it only the Dependabot secrets', hint };
  if (!/^pull_request(_review(_comment)?)?$/.test(env.GITHUB_EVENT_NAME ?? '') || !env.GITHUB_EVENT_PATH) return undefined;
  const pull = (eventPayload(env) as { pull_request?: { head?: { repo?: { full_name?: string } | null } } } | undefined)?.pull_request;
  const repo = pull?.head?.repo;
  if (!pull || (repo && repo.full_name?.toLowerCase() === (env.GITHUB_REPOSITORY ?? '').toLowerCase())) return undefined;
  return { why: `this run is for a pull request from a fork (${repo?.full_name ?? 'deleted since'}), and GitHub gives such runs no secrets`, hint };
}

/** The error of a key input left empty: most likely the job's GitHub environment lacks the secret (or the run gets none). */
function emptyKeyInput(name: string, githubEnvironment: string): OpsError {
  const secretless = secretlessRun();
  if (secretless) return new OpsError(`input \`${name}\` is empty: ${secretless.why}`, secretless.hint);
  const secret = KEY_SECRETS[name]!;
  const env = githubEnvironment ? `\`${githubEnvironment}\`` : "of this job (its environment: key)";
  return new OpsError(
    `input \`${name}\` is empty: is the secret ${secret} set for the GitHub environment ${env}?`,
    `add it under Settings → Environments → ${githubEnvironment || '<environment>'} → Environment secrets; the workflow passes it as ${name}: \${{ secrets.${secret} }} (README: "Repository checklist")`,
  );
}

/**
 * The folder an action works in: `working-directory` (relative to the workspace, where the runner starts the action),
 * checked as $OPS_ROOT is for an action that reads an environment (a mistyped one would otherwise read as "no
 * environment <env>", pointing at `ops env new`), else only that it is a folder (staging-sync: any clone).
 * @throws OpsError naming the input and what is wrong with the folder.
 */
function actionRoot(workingDirectory: string, spec: ActionInputs): string {
  const dir = resolve(workingDirectory);
  const problem = (spec.required ?? []).includes('environment') ? projectDirProblem(dir) : !existsSync(dir) ? 'does not exist' : !statSync(dir).isDirectory() ? 'is not a folder' : undefined;
  if (!problem) return dir;
  throw new OpsError(
    `invalid input working-directory: ${dir} ${problem}`,
    'give the checkout that holds environments/ (actions/checkout\'s `path:`, relative to the workspace), or leave working-directory out for the workspace',
  );
}

/**
 * Every input of `spec` checked before any work, in one place: required ones present (an empty `ssh-key` or
 * `age-key` named with the secret that should fill it), flags true or false, choices among theirs, key inputs
 * holding keys (errors name the input, not the variable the core reads). @returns the flags' values.
 */
export async function checkInputs(spec: ActionInputs, get: (name: string) => string = (n) => core.getInput(n)): Promise<Record<string, boolean>> {
  const environment = get('environment').trim();
  for (const name of spec.required ?? []) {
    if (get(name).trim()) continue;
    if (name in KEY_SECRETS) throw emptyKeyInput(name, environment && (spec.secretsFrom ?? ((e) => e))(environment));
    throw new OpsError(`input ${name} is required`, `give it in the step's with: block`);
  }
  const flags = Object.fromEntries(Object.entries(spec.flags ?? {}).map(([name, fallback]) => [name, booleanInput(name, get(name), fallback)]));
  for (const [name, values] of Object.entries(spec.choices ?? {})) {
    const v = get(name).trim();
    if (v && !values.includes(v)) throw new OpsError(`invalid input ${name}: ${JSON.stringify(v)}`, `${name} is ${values.map((x) => `"${x}"`).join(' or ')}`);
  }
  const workingDirectory = get('working-directory').trim();
  if (workingDirectory) actionRoot(workingDirectory, spec);
  const sshKey = get('ssh-key');
  if (sshKey) checkKeyText(sshKey, 'input `ssh-key`');
  const ageKey = get('age-key');
  if (ageKey.trim()) {
    // Loaded only when a key is given: the age code stays out of what an action without one runs.
    const { parseIdentities } = await import('./secrets/keys.ts');
    const found = await parseIdentities(ageKey, 'input `age-key`');
    if (!found.length) throw new OpsError('input `age-key` holds no age identity (only comments or blank lines)', 'pass the whole key file: AGE-SECRET-KEY-1…');
  }
  return flags;
}

/**
 * Run an action body with the shared inputs handled once, before any work: `spec`'s inputs checked
 * (checkInputs); `ssh-key` and `age-key` masked (every line) and handed to the core through the same
 * variables the CLI reads (OPS_SSH_KEY, SOPS_AGE_KEY); its own output guarded as the CLI's (guardOutput). A secrets file the core cannot open for want of a key,
 * with `age-key` empty, is said as that input being empty. The runner's files failing (a full disk, a runner without
 * $GITHUB_STEP_SUMMARY) neither cut the work short nor read as a bug: a job summary not written is a warning (the
 * log holds the report), outputs not written fail the step once its work is over (ActionsReporter.lostOutputs).
 */
export async function runAction(spec: ActionInputs, body: (ctx: ActionContext) => Promise<void>): Promise<void> {
  const reporter = new ActionsReporter();
  const processEnv: NodeJS.ProcessEnv = { ...process.env };
  onUncaught((message) => core.setFailed(reporter.redact(message)));
  // The job log failing (the runner's pipe gone, a full disk) never ends a run half-way, as in the CLI.
  guardOutput();
  let ageKey = '';
  let failure: { error: unknown } | undefined;
  try {
    const sshKey = core.getInput('ssh-key');
    if (sshKey) {
      reporter.mask(sshKey);
      processEnv.OPS_SSH_KEY = sshKey;
    }
    ageKey = core.getInput('age-key');
    if (ageKey) {
      reporter.mask(ageKey);
      processEnv.SOPS_AGE_KEY = ageKey;
    }
    const flags = await checkInputs(spec);
    const workingDirectory = core.getInput('working-directory').trim();
    const root = workingDirectory ? actionRoot(workingDirectory, spec) : process.env.GITHUB_WORKSPACE || process.cwd();
    await body({
      ops: { root, reporter, processEnv },
      reporter,
      input: (name, options) => {
        const value = core.getInput(name).trim();
        if (options?.required && !value) throw new OpsError(`input ${name} is required`, `give it in the step's with: block`);
        return value;
      },
      flag: (name) => {
        if (!(name in flags)) throw new Error(`flag ${name} is not among the flags runAction checks first (its spec.flags)`);
        return flags[name]!;
      },
    });
  } catch (e) {
    failure = { error: e };
  }
  // Outputs the runner refused fail a step whose work succeeded; beside the work's own error they are said too.
  const lost = reporter.lostOutputs();
  if (lost && !failure) failure = { error: lost };
  else if (lost) reporter.warn(lost.message);
  if (!failure) return;
  const environment = core.getInput('environment').trim();
  const e = failure.error;
  const error = e instanceof NoAgeIdentity && !ageKey.trim() ? emptyKeyInput('age-key', environment && (spec.secretsFrom ?? ((x) => x))(environment)) : e;
  // What it quotes of an input or a file with a URL's password and a private key hidden (hideSecrets), as the CLI does.
  core.setFailed(showControls(hideSecrets(reporter.redact(formatError(error)))));
}
