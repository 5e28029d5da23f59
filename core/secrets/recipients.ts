// Who can decrypt an environment's secrets, and changing it: the age recipients of every sops file of the
// environment (secrets.sops.yaml and encrypted assets) and its creation rule in .sops.yaml. Every file is
// decrypted (MAC verified) before anything is written, so a key that cannot open one of them changes nothing;
// each file is then rewritten whole (temporary file + rename), one after the other: a signal (OpenWith.signal) stops
// the run before the next one, said with the files written and those not (stoppedWriting). A removed recipient gets a new data key (it may
// have kept the old one), like `sops updatekeys` and `sops rotate`.
import { readFileSync } from 'node:fs';
import { OpsError } from '../errors.ts';
import { ChangedOnDiskError, InterruptedError, interruption, shownPath } from './atomic.ts';
import { envSopsFiles, secretsPath } from './env.ts';
import { SSH_RECIPIENT_RE, checkRecipient, type Identities, recipientKey } from './keys.ts';
import { SOPS_CONFIG_FILE, recipientsFor, ruleFor, setEnvRule } from './sops-config.ts';
import { parseSops } from './sops-metadata.ts';
import { SecretsFile } from './sops.ts';

/** How to open the files: the identities that decrypt them, and where each decrypted value is masked. */
export interface OpenWith {
  identities: Identities;
  mask: (value: string) => void;
  /** Told every key name and path, no secrets (DecryptOptions.allow): a value inside one does not mask it in messages. */
  allow?: (text: string) => void;
  /** Told what a save waits for (a lock held by another command); default: stderr. */
  warn?: (message: string) => void;
  /** Ends a save's wait for a file's lock (the command's Ctrl-C): nothing written, InterruptedError. */
  signal?: AbortSignal;
}

/** What a change did to one file (absolute path). `written`: false when it already was as asked. */
export interface FileChange {
  file: string;
  written: boolean;
  added: string[];
  removed: string[];
  /** The file's recipients afterwards. */
  recipients: string[];
}

export interface RecipientsView {
  /** The .sops.yaml rule that matches the environment's secrets file (its index and age keys), if any. */
  rule?: { index: number; age: string[] };
  /** Each sops file of the environment and the recipients its metadata lists (read without decrypting). */
  files: { file: string; recipients: string[] }[];
  /** False when a file's recipients differ from the rule's (`sync` would change them). */
  inSync: boolean;
}

/** The recipients of environment `env` under project `root`, read only. @throws OpsError for a file that is not sops. */
export function listRecipients(root: string, env: string): RecipientsView {
  const rule = ruleFor(root, secretsPath(root, env));
  const files = envSopsFiles(root, env).map((file) => ({ file, recipients: parseSops(readFileSync(file, 'utf8'), file).meta.age.map((s) => s.recipient) }));
  const wanted = rule?.age ?? [];
  const inSync = !rule || files.every((f) => f.recipients.length === wanted.length && f.recipients.every((r) => wanted.includes(r)));
  return { ...(rule && { rule: { index: rule.index, age: rule.age } }), files, inSync };
}

/**
 * How the environment's files' recipients differ from its .sops.yaml rule, in words for a warning, or undefined when
 * they agree (or no rule matches): the recipients the files are still encrypted to that the rule no longer lists (they
 * can decrypt them, a new data key included: a rotate keeps each file's recipients, as `sops rotate` does), and those
 * it lists that the files lack; with the command that applies the rule (sync, which also rotates the data key when it
 * removes one). Public keys only. @throws OpsError as listRecipients.
 */
export function recipientsDrift(root: string, env: string): string | undefined {
  const view = listRecipients(root, env);
  if (view.inSync || !view.rule) return undefined;
  const wanted = view.rule.age;
  const extra = [...new Set(view.files.flatMap((f) => f.recipients.filter((r) => !wanted.includes(r))))];
  const missing = wanted.filter((r) => view.files.some((f) => !f.recipients.includes(r)));
  const parts = [
    extra.length && `still encrypted to ${extra.join(', ')}, which .sops.yaml no longer lists (${extra.length === 1 ? 'that key' : 'those keys'} can still decrypt them)`,
    missing.length && `not yet encrypted to ${missing.join(', ')}, which .sops.yaml lists`,
  ].filter(Boolean);
  return `environment ${env}'s secrets are ${parts.join(', and ')}: run \`ops secrets recipients ${env} sync\`${extra.length ? ' (it also gives the files a new data key)' : ''}`;
}

/** Every sops file of the environment, opened (all decrypted before the caller changes any). */
async function openAll(root: string, env: string, open: OpenWith): Promise<SecretsFile[]> {
  const opened: SecretsFile[] = [];
  for (const f of envSopsFiles(root, env)) opened.push(await SecretsFile.open(f, open));
  return opened;
}

/**
 * Save each file in turn (SecretsFile.save: only over the version read), returning whether each was written. One found
 * changed by something else stops the run there: the error names the files already written before it, so that the
 * user knows the command got half-way (run again, it finishes from what the files are now). So does a signal
 * (`open.signal`: Ctrl-C, SIGTERM, SIGHUP), heeded before each file (each is written whole or not at all): the files
 * already written and those not, `then` too (what the caller writes afterwards: .sops.yaml).
 * @throws ChangedOnDiskError naming what was written, InterruptedError (stoppedWriting), or save's error.
 */
async function saveEach(files: SecretsFile[], open: OpenWith, then: string[] = []): Promise<boolean[]> {
  const written: boolean[] = [];
  for (const s of files) {
    try {
      if (open.signal?.aborted) throw interruption(open.signal.reason);
      written.push(await s.save());
    } catch (e) {
      const done = files.filter((_, i) => written[i]).map((f) => shownPath(f.file));
      if (e instanceof InterruptedError && done.length) throw stoppedWriting(e.signal, done, [...files.slice(written.length).map((f) => shownPath(f.file)), ...then]);
      if (e instanceof ChangedOnDiskError && done.length) throw new ChangedOnDiskError(`${e.message}; already written by this command: ${done.join(', ')}`, 'run the command again: it finishes the rest from the files as they are now');
      throw e;
    }
  }
  return written;
}

/**
 * The InterruptedError of a command writing several files in turn, stopped by `signal` (its name) between two of
 * them: the files already `written` (shown paths, one at least) and those `left`. Stopped before the first, the
 * interruption's own error says "nothing was changed".
 */
export function stoppedWriting(signal: string, written: string[], left: string[]): InterruptedError {
  const by = signal === 'SIGINT' ? '' : ` by ${signal}`;
  return new InterruptedError(
    `interrupted${by} half-way: already written (each whole): ${written.join(', ')}; not written: ${left.join(', ') || 'none'}; run the command again to finish: it goes on from the files as they are now`,
    signal,
  );
}

/**
 * Write .sops.yaml's rule (`write`, given `open.signal`) once the files are (`written`): a signal before it, or while
 * it waits for the file's lock, stops it there, said with the files written (stoppedWriting).
 */
async function writeRule(open: OpenWith, written: FileChange[], write: (signal?: AbortSignal) => Promise<void>): Promise<void> {
  try {
    if (open.signal?.aborted) throw interruption(open.signal.reason);
    await write(open.signal);
  } catch (e) {
    const done = written.filter((c) => c.written).map((c) => shownPath(c.file));
    if (e instanceof InterruptedError && done.length) throw stoppedWriting(e.signal, done, [SOPS_CONFIG_FILE]);
    throw e;
  }
}

/**
 * Refuse, unless `force`, a change of recipients after which the user could no longer decrypt: a file (`after`: each
 * file's recipients once changed), or the rule new files are encrypted to (`ruleAfter`, when the change touches it),
 * left without any key the user holds (`ids`: age keys from $SOPS_AGE_KEY, $SOPS_AGE_KEY_FILE..., SSH keys where sops looks), where
 * it had one before (`before`). `head` starts the message with the keys going, `redo` is the command to give --force.
 * Nothing is written by the caller before. @throws OpsError (lockedOut) saying which key of theirs goes and how to keep access.
 */
function refuseLockout(env: string, ids: Identities, before: string[][], after: string[][], head: (named: string) => string, redo: string, force: boolean): void {
  if (force) return;
  const mine = new Set(ids.identities.map((i) => i.recipient));
  // an SSH recipient is compared without its comment (the identity's has none)
  const own = (r: string) => mine.has(recipientKey(r));
  const lost = after.some((list, i) => before[i]!.some(own) && !list.some(own));
  if (!lost) return;
  const going = [...new Set(before.flat())].filter((r) => own(r) && !after.flat().includes(r)).map(recipientKey);
  throw lockedOut(`${head(yourKeys(ids, going))}, the only ${keyKind(going)} of yours that ${env}'s secrets are encrypted to`, 'them (ops secrets show, edit, set; deploys run from here)', `add another key of yours first (\`ops keygen\`, then \`ops secrets recipients ${env} add <age1...>\`)`, redo);
}

/**
 * Refuse, unless `force`, to encrypt `shown` (a plain file, which the user reads) to `recipients` none of which is an
 * age key the user holds (`ids`): the file would be locked to them (refuseLockout's rule for a file about to be
 * encrypted). `env`: the environment whose .sops.yaml rule gives the recipients, if the file is one's.
 * @throws OpsError (lockedOut) naming the user's keys and where each was read (or where none was found).
 */
export function refuseEncryptingAway(shown: string, recipients: string[], ids: Identities, env: string | undefined, redo: string, force: boolean): void {
  if (force || recipients.some((r) => ids.identities.some((i) => i.recipient === recipientKey(r)))) return;
  const add = env ? `\`ops secrets recipients ${env} add <age1...>\`` : `add its recipient to the .sops.yaml rule for ${shown}`;
  const yours = ids.identities.length ? `none of them a key of yours (${yourKeys(ids)})` : `and you hold no age or SSH key (looked at: ${ids.tried.join('; ') || 'nothing'})`;
  throw lockedOut(`${shown} would be encrypted to ${recipients.join(', ')} (the .sops.yaml rule for it), ${yours}`, 'it (ops secrets decrypt, edit; deploys run from here)', `add a key of yours to the rule first (\`ops keygen\` if you have none, then ${add})`, redo);
}

/** What `recipients` are, said as "age key", "SSH key", "keys (age and SSH)"... for a message about the user's keys. */
function keyKind(recipients: string[]): string {
  const kinds = [...new Set(recipients.map((r) => (SSH_RECIPIENT_RE.test(r) ? 'SSH' : 'age')))];
  return recipients.length === 1 ? `${kinds[0]} key` : `keys (${kinds.join(' and ')})`;
}

/** The user's age keys (`ids`; only those in `among` when given), each named with where it was read. */
function yourKeys(ids: Identities, among?: string[]): string {
  const listed = ids.identities.filter((i, k) => (!among || among.includes(i.recipient)) && ids.identities.findIndex((j) => j.recipient === i.recipient) === k);
  return listed.map((i) => `${i.recipient} (your key from ${i.source})`).join(', ') || 'your key';
}

/**
 * The refusal of a change after which the user could no longer decrypt `what` (`problem` says why); `keep` says how to
 * keep access, `redo` is the command to give --force to. "nothing was changed": callers write nothing before.
 */
function lockedOut(problem: string, what: string, keep: string, redo: string): OpsError {
  return new OpsError(
    `${problem}: you could no longer decrypt ${what}; nothing was changed`,
    `to keep access, ${keep}; if someone else keeps access and you mean to lose yours, run it again with --force: ${redo} --force`,
  );
}

/**
 * Give every sops file of the environment the recipients .sops.yaml lists for it (like `sops updatekeys`):
 * a removed one rotates the file's data key. @returns one change per file ([] when there is none yet).
 * @throws OpsError when a file cannot be opened, or, unless `force`, when a file would lose the last key of the
 * user's it has (refuseLockout); nothing written then.
 */
export async function syncRecipients(root: string, env: string, open: OpenWith, force = false): Promise<FileChange[]> {
  const wanted = recipientsFor(root, secretsPath(root, env));
  const out: FileChange[] = [];
  const opened = await openAll(root, env, open);
  const before = opened.map((s) => [...s.recipients]);
  refuseLockout(env, open.identities, before, opened.map(() => wanted), (named) => `.sops.yaml does not list ${named}: a sync would remove it`, `ops secrets recipients ${env} sync`, force);
  const changes = opened.map((s) => s.setRecipients(wanted));
  const written = await saveEach(opened, open);
  opened.forEach((s, i) => out.push({ file: s.file, written: written[i]!, ...changes[i]!, recipients: s.recipients }));
  return out;
}

/**
 * Add an age recipient to every sops file of the environment and to its rule in .sops.yaml (created if
 * missing). @returns one change per file. @throws OpsError for an invalid recipient or a file that cannot be
 * opened (nothing written then).
 */
export async function addRecipient(root: string, env: string, recipient: string, open: OpenWith): Promise<FileChange[]> {
  const r = checkRecipient(recipient, 'recipient', { env, command: 'add' });
  const opened = await openAll(root, env, open);
  const rule = ruleFor(root, secretsPath(root, env));
  const base = rule?.pathRegex !== undefined && rule.age.length ? rule.age : (opened[0]?.recipients ?? []);
  const out: FileChange[] = [];
  for (const s of opened) s.addRecipient(r);
  const written = await saveEach(opened, open, [SOPS_CONFIG_FILE]);
  opened.forEach((s, i) => out.push({ file: s.file, written: written[i]!, added: written[i] ? [r] : [], removed: [], recipients: s.recipients }));
  await writeRule(open, out, (signal) => setEnvRule(root, env, [...base, r], signal));
  return out;
}

/**
 * Remove an age recipient from every sops file of the environment that has it (each gets a new data key) and
 * from its rule in .sops.yaml. @returns the changed files and whether the rule listed it. @throws OpsError
 * when it is no recipient at all, the only one of the rule (add the new one first), or, unless `force`, the last key
 * of the user's that a file or the rule has (refuseLockout); nothing written then.
 */
export async function removeRecipient(root: string, env: string, recipient: string, open: OpenWith, force = false): Promise<{ files: FileChange[]; fromRule: boolean }> {
  // an SSH recipient sops wrote (age-ssh) can be removed (the files' new data key goes to their age keys), matched
  // by its type and key, whatever comment follows
  const r = checkRecipient(recipient, 'recipient', { env, command: 'remove' });
  const ssh = SSH_RECIPIENT_RE.test(r);
  const same = (x: string) => (ssh ? SSH_RECIPIENT_RE.test(x) && x.split(' ').slice(0, 2).join(' ') === r.split(' ').slice(0, 2).join(' ') : x === r);
  const opened = await openAll(root, env, open);
  const rule = ruleFor(root, secretsPath(root, env));
  const base = rule?.pathRegex !== undefined && rule.age.length ? rule.age : (opened[0]?.recipients ?? []);
  const inRule = base.some(same);
  const inFiles = opened.filter((s) => s.recipients.some(same));
  if (!inRule && !inFiles.length) throw new OpsError(`${r} is not a recipient of ${env}'s secrets`, `\`ops secrets recipients ${env}\` lists them`);
  const remaining = base.filter((x) => !same(x));
  if (inRule && remaining.length === 0) throw new OpsError(`${r} is the only recipient of ${env}`, 'add the new recipient first, then remove this one');
  const before = [...inFiles.map((s) => [...s.recipients]), ...(inRule ? [base] : [])];
  const after = [...inFiles.map((s) => s.recipients.filter((x) => !same(x))), ...(inRule ? [remaining] : [])];
  refuseLockout(env, open.identities, before, after, (named) => `this would remove ${named}`, `ops secrets recipients ${env} remove ${r}`, force);
  for (const s of inFiles) s.removeRecipient(s.recipients.find(same)!);
  const files: FileChange[] = [];
  const written = await saveEach(inFiles, open, inRule ? [SOPS_CONFIG_FILE] : []);
  inFiles.forEach((s, i) => files.push({ file: s.file, written: written[i]!, added: [], removed: [r], recipients: s.recipients }));
  if (inRule) await writeRule(open, files, (signal) => setEnvRule(root, env, remaining, signal));
  return { files, fromRule: inRule };
}

/**
 * A new data key for every sops file of the environment (values and recipients kept, all re-encrypted).
 * @returns each file with its recipients. @throws OpsError when there is no sops file, or one cannot be opened
 * (nothing written then).
 */
export async function rotateDataKeys(root: string, env: string, open: OpenWith): Promise<{ file: string; recipients: string[] }[]> {
  const opened = await openAll(root, env, open);
  if (!opened.length) throw new OpsError(`environments/${env} has no sops-encrypted files`);
  for (const s of opened) s.rotate();
  await saveEach(opened, open);
  return opened.map((s) => ({ file: s.file, recipients: s.recipients }));
}
