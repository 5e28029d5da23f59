// `ops secrets edit`: the plaintext goes to a private temporary file (0600 in a 0700 directory) for the
// user's editor, and comes back encrypted. An unchanged file is not rewritten; text that does not parse
// is offered back to the editor or dropped, never half-written; the temporary directory is removed
// whatever happens (a signal aborts the edit and still cleans up).
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OpsError, formatError } from '../errors.ts';
import { ChangedOnDiskError } from './atomic.ts';
import type { SecretsFile } from './sops.ts';
import { type Retyped, parseTree } from './tree-parse.ts';
import { maskedText, scalarText } from './tree-scalars.ts';
import { type Format, type MapNode, type TreeChanges, type TreeNode, diffTrees, forEachLeaf, getEntry, showPath } from './tree.ts';
import { decodeUtf8 } from './utf8.ts';
import { weakSecretWarnings } from './weak.ts';

export interface EditorExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface EditIo {
  /** Run the user's editor on `file` and resolve when it exits. */
  edit(file: string): Promise<EditorExit>;
  /** Ask a yes/no question (default yes); resolves false on end of input or abort. */
  confirm(question: string): Promise<boolean>;
  warn(message: string): void;
  /** Aborts the edit (a signal): the editor is stopped, nothing is written. */
  signal?: AbortSignal;
  /**
   * Refuses (throws OpsError) a change of the decrypted data (`before` → `after`) that the environment could not
   * use, before anything is written: the .env's readers (core/ops/secrets.ts, secretsChangeCheck). Offered back
   * to the editor like invalid text.
   */
  check?(before: unknown, after: unknown): void;
  /** Called with the temporary file's path once it exists (tests check it is gone afterwards). */
  onTempFile?: (path: string) => void;
}

export type EditResult =
  | { status: 'unchanged' }
  | { status: 'saved'; changes: TreeChanges }
  | { status: 'aborted'; reason: string };

/** What happens to a value typed plain that sops reads as another type (never the value itself). */
function retypedLine(r: Retyped, format: Format): string {
  const key = showPath(r.path);
  // sops's JSON store: an integer within int64 is an int, any other number a float64 (tree-parse.ts)
  if (format === 'json' && r.type === 'float' && r.typed === 'digits') return `${key}: typed as an integer beyond the 64-bit range, which sops stores as a floating-point number: digits past the 17th are rounded`;
  if (format === 'json' && r.type === 'float') return `${key}: typed as a number with a fraction or an exponent, which sops stores as a floating-point number, written back in its shortest form (trailing zeros and the exponent dropped, digits past the 17th rounded): the app would get another text`;
  if (r.type === 'int' && r.typed === 'leading-zero') return `${key}: typed as digits with a leading 0, which sops reads as an octal number: another number would be stored, without the leading 0`;
  if (r.type === 'float' && r.typed !== 'other') return `${key}: typed as digits${r.typed === 'leading-zero' ? ' with a leading 0' : ''}, which sops reads as a floating-point number: leading zeros are dropped and digits past the 17th rounded`;
  const what = { int: 'an integer', float: 'a floating-point number', bool: 'a boolean', time: 'a timestamp', str: 'a string' }[r.type];
  return `${key}: sops reads what was typed as ${what}, stored in another form than typed`;
}

/**
 * The warning for values typed without quotes that sops stores in another form than typed (tree-parse.ts,
 * ParseOptions.retyped): each named by key and kind, never by value, and how to keep them as typed (quoted).
 * `would` is "would not be" (an edit, asked before saving) or "are not" (a file encrypted as it is).
 */
export function retypedWarning(retyped: Retyped[], format: Format, would: 'would not be' | 'are not'): string {
  const one = retyped.length === 1;
  const verb = one ? would.replace(/^are/, 'is') : would;
  return (
    `${one ? 'a value' : `${retyped.length} values`} typed without quotes ${verb} stored as typed:\n` +
    retyped.map((r) => `  ${retypedLine(r, format)}`).join('\n') +
    `\nto keep ${one ? 'it' : 'them'} as typed (text), put ${one ? 'it' : 'each'} in double quotes: ${format === 'json' ? '"key": "..."' : 'key: "..."'}`
  );
}

/** The type and text of the scalar at `path` (keys and list indexes), as diffTrees compares them; undefined where there is none. */
function leafText(tree: MapNode, path: (string | number)[]): string | undefined {
  let node: TreeNode | undefined = tree;
  for (const p of path) node = node?.kind === 'map' && typeof p === 'string' ? getEntry(node, p) : node?.kind === 'list' && typeof p === 'number' ? node.items[p] : undefined;
  return node?.kind === 'scalar' ? `${node.type}:${scalarText(node)}` : undefined;
}

/** Text with no content: only whitespace and # comments (YAML's; JSON has none). */
function isBlank(text: string): boolean {
  return text.split('\n').every((l) => /^\s*(#.*)?$/.test(l));
}

/**
 * `ops secrets edit`: the plaintext to a private temporary file (0600), the editor (`io.edit`), then the values
 * re-encrypted (unchanged ones keep their ciphertext); an emptied text (blank or comments only) aborts with
 * nothing changed; invalid YAML, or bytes that are not UTF-8 (decoded
 * strictly, utf8.ts), are offered back (`io.confirm`), and so is a value a deploy would refuse (`io.check`); the
 * file is not written until the text is valid.
 * A new or changed value that is weak (weak.ts) is saved with a warning (`io.warn`) naming its key.
 * @returns saved, unchanged, or aborted with the reason. The temporary file is removed whatever happens.
 */
export async function editSecrets(secrets: SecretsFile, io: EditIo): Promise<EditResult> {
  const dir = await mkdtemp(join(tmpdir(), 'ops-secrets-'));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.on('exit', cleanup); // last resort if the process dies in between
  try {
    const tmp = join(dir, `secrets.${secrets.format}`);
    const before = secrets.tree;
    const beforeData = secrets.data;
    const original = before.entries.length === 0 ? '' : secrets.plaintext();
    await writeFile(tmp, original, { mode: 0o600, flag: 'wx' });
    io.onTempFile?.(tmp);
    const aborted = (): EditResult | undefined =>
      io.signal?.aborted ? { status: 'aborted', reason: `interrupted (${String(io.signal.reason ?? 'signal')}); nothing was changed` } : undefined;
    /** Text refused for `warning`: undefined to reopen the editor on it (the user's answer), else the abort, for `reason`. */
    const offerBack = async (warning: string, reason: string): Promise<EditResult | undefined> => {
      io.warn(warning);
      if (await io.confirm('Reopen the editor to fix it? [Y/n] ')) return aborted();
      return aborted() ?? { status: 'aborted', reason };
    };
    for (;;) {
      const exit = await io.edit(tmp);
      const stop = aborted();
      if (stop) return stop;
      if (exit.signal || exit.code !== 0) {
        const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
        return { status: 'aborted', reason: `the editor ${how}; nothing was changed` };
      }
      const bytes = await readFile(tmp);
      if (bytes.equals(Buffer.from(original, 'utf8'))) return { status: 'unchanged' };
      try {
        // strictly: bytes that are not UTF-8 are offered back like invalid YAML, never stored as U+FFFD
        const text = decodeUtf8(bytes, 'the edited text');
        // An emptied buffer is how editors abort (vim's :cq aside, git's "empty commit message"), or a slip:
        // never read as "delete every secret".
        if (isBlank(text)) {
          if (original === '') return { status: 'unchanged' };
          return {
            status: 'aborted',
            reason: `the edited text is empty (nothing but blank lines or comments): taken as an abort, nothing was changed (to delete secrets, remove their lines and keep the others; to delete them all, delete the file ${secrets.file})`,
          };
        }
        const typed: Retyped[] = [];
        const tree = parseTree(text, secrets.format, { file: 'the edited text', keys: 'lenient', retyped: typed });
        // a value that would not be stored as typed (01234 is 668 to sops): asked, as invalid YAML is; not a value
        // left as it was shown (a stored 2.0 is shown as 2.0, and still reaches the .env as 2: nothing new)
        const retyped = typed.filter((r) => leafText(before, r.path) !== leafText(tree, r.path));
        if (retyped.length) {
          const stop = await offerBack(
            retypedWarning(retyped, secrets.format, 'would not be'),
            `${retyped.map((r) => showPath(r.path)).join(', ')} would not be stored as typed (quote ${retyped.length === 1 ? 'it' : 'them'}); nothing was changed`,
          );
          if (stop) return stop;
          continue;
        }
        secrets.setTree(tree);
      } catch (e) {
        if (!(e instanceof OpsError)) throw e;
        const stop = await offerBack(e.message, 'the edited text was not valid; nothing was changed');
        if (stop) return stop;
        continue;
      }
      // a value every deploy or provision would refuse (a placeholder, a .env value its readers would not read back, a
      // packages secret provision would not write): offered back as invalid text is
      try {
        io.check?.(beforeData, secrets.data);
      } catch (e) {
        if (!(e instanceof OpsError)) throw e;
        const stop = await offerBack(formatError(e), 'a changed value would be refused by every deploy or provision (see above); nothing was changed');
        if (stop) return stop;
        continue;
      }
      const changes = diffTrees(before, secrets.tree);
      // a new or changed value that is weak is saved (a third party may dictate it), with a warning naming its key
      const old = new Map<string, string | undefined>();
      forEachLeaf(before, (leaf, _keys, path) => old.set(showPath(path), maskedText(leaf)));
      for (const w of weakSecretWarnings(secrets.tree, (text, path) => old.get(showPath(path)) !== text)) io.warn(w);
      const stop3 = aborted();
      if (stop3) return stop3;
      try {
        return (await secrets.save()) ? { status: 'saved', changes } : { status: 'unchanged' };
      } catch (e) {
        // Another command wrote the file while the editor was open: its change stays, this edit is not written.
        if (e instanceof ChangedOnDiskError)
          throw new ChangedOnDiskError(`${e.message.replace(/ since this command read it/, ' while it was open in the editor')}; this edit was not saved`, 'run ops secrets edit again (it opens the file as it is now) and redo the change');
        throw e;
      }
    }
  } finally {
    cleanup();
    process.off('exit', cleanup);
  }
}
