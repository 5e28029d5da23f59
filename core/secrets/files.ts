// An environment's sops files opened for a change: its secrets file (created for .sops.yaml's recipients when
// it does not exist yet), and a plain YAML/JSON file encrypted in place to its .sops.yaml recipients.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import { noEnvironment } from '../config/environment.ts';
import { InputError, OpsError, fileError, userFileExists } from '../errors.ts';
import { quote, validate } from '../shell.ts';
import { otherSopsFilesRefusal, secretsPath } from './env.ts';
import type { Identities } from './keys.ts';
import { type OpenWith, refuseEncryptingAway } from './recipients.ts';
import { recipientsFor } from './sops-config.ts';
import { isSopsText } from './sops-metadata.ts';
import { SecretsFile } from './sops.ts';
import { retypedWarning } from './edit.ts';
import { type Retyped, parseTree } from './tree-parse.ts';
import { formatOf, showPath } from './tree.ts';
import { decodeUtf8 } from './utf8.ts';

/**
 * Refuse environment name `env` unless environments/<env>/ exists under project `root`: names the environments
 * there and how a new one is made (`ops env new`), never a command that would quietly create the name as typed.
 * @throws OpsError for an invalid name or an environment that does not exist.
 */
export function requireEnvironment(root: string, env: string): void {
  validate('environment', env);
  if (existsSync(join(root, 'environments', env))) return;
  throw noEnvironment(root, env, `environments/${env}/ does not exist`);
}

/** How openEnvSecrets creates a file that does not exist yet. */
export interface CreateOptions {
  /** The command to run again with --force, named in the refusal (e.g. `ops secrets set qa key`). */
  redo: string;
  /** Create it even when none of its recipients is a key of the user's (refuseEncryptingAway). */
  force?: boolean;
}

/**
 * The secrets file of environment `env` under project `root`, opened (MAC verified, values masked); or, when
 * there is none yet, a new empty one for .sops.yaml's recipients (written by its first `save`), as `secrets encrypt`
 * would encrypt a file: refused when none of them is an age key of the user's (`open.identities`), unless `create.force`.
 * @throws OpsError for an invalid name, an environment folder that does not exist, a file that cannot be opened, or
 * a new one that would be encrypted away from the user (nothing written).
 */
export async function openEnvSecrets(root: string, env: string, open: OpenWith, create: CreateOptions): Promise<{ secrets: SecretsFile; created: boolean }> {
  requireEnvironment(root, env);
  const file = secretsPath(root, env);
  if (userFileExists(file, `environments/${env}/${basename(file)}`)) return { secrets: await SecretsFile.open(file, open), created: false };
  // another sops file in the folder (secrets.sops.json, secrets.enc.yaml...) holds the secrets: a new one would be a second
  const other = otherSopsFilesRefusal(root, env, 'nothing was written');
  if (other) throw other;
  const recipients = recipientsFor(root, file);
  // a new file encrypted to none of the user's keys is lost to them, as one `secrets encrypt` makes (encryptInPlace)
  refuseEncryptingAway(`environments/${env}/secrets.sops.yaml`, recipients, open.identities, env, create.redo, create.force === true);
  return { secrets: SecretsFile.create(file, { kind: 'map', entries: [] }, { recipients, openWith: open }), created: true };
}

/**
 * How to change sops file `file` (shown as `shown`), said when it is given to encrypt again: an environment's
 * secrets file is edited by `ops secrets edit <env>`, which takes an environment, not a file; any other file
 * (an asset) has no ops command that edits it, so sops's own (never a plaintext copy in the working tree).
 */
function changeEncryptedHint(root: string, file: string, typed: string): string {
  const env = /^environments\/([^/]+)\/secrets\.sops\.yaml$/.exec(relative(root, file).split(sep).join('/'))?.[1];
  if (env) return `change it with \`ops secrets edit ${env}\` (or one value: ops secrets set ${env} <key>)`;
  const p = quote(typed); // commands to copy: the path from where they are run, one shell word
  return `see it with \`ops secrets decrypt ${p}\`; to change it, \`sops edit ${p}\` (its plaintext only in a temporary file sops removes; a plaintext copy in the working tree, to edit and encrypt again, could be committed by mistake)`;
}

/** How encryptInPlace is run. */
export interface EncryptOptions {
  /** Names the file in messages (default: its path). */
  shown?: string;
  /** The file as the commands a hint gives name it, from the directory the command was run from (default: `shown`). */
  typed?: string;
  /** Told of values encrypted in another form than typed. */
  warn?: (message: string) => void;
  /** Once aborted (Ctrl-C), nothing is written: InterruptedError. */
  signal?: AbortSignal;
  /** The user's keys: encrypting to none of them is refused unless `force` (refuseEncryptingAway); `env`, the file's environment. */
  lockout?: { identities: Identities; env?: string; force: boolean };
}

/**
 * The warning for values (`what`: or map keys, ParseOptions.yaml11Keys) typed plain that a YAML 1.1 reader types otherwise than sops (ParseOptions.yaml11), each
 * named by key, never by value, with what to write instead.
 */
function yaml11Warning(paths: (string | number)[][], what: 'value' | 'key' = 'value'): string {
  const one = paths.length === 1;
  return (
    `${one ? `a ${what}` : `${paths.length} ${what}s`} typed without quotes ${one ? 'is' : 'are'} read by sops as text, but by a YAML 1.1 reader as a boolean, a number or a date (yes, no, on, off; 1:20, a number in base 60; 2001-12-14 21:59:43.10 -5), and PyYAML, which an initdata loader reads the decrypted file with, is one: it got ${one ? 'that type' : 'those types'} from the plain file, and gets the text once encrypted ("off" or "no" is true to Python):\n` +
    paths.map((p) => `  ${showPath(p)}`).join('\n') +
    (what === 'key'
      ? `\nto keep the text (what every other reader, and sops, takes), put the key in double quotes: "on": ...`
      : `\nfor a boolean write true or false, for a number its digits (every reader reads them so); to keep the text, put it in double quotes: key: "..."`)
  );
}

/**
 * Encrypt a plain YAML or JSON file in place (e.g. environments/<env>/assets/initdata.yml) to the recipients
 * .sops.yaml gives its path; `shown` names it in messages, `typed` in the commands a hint gives. @returns the file, saved (written whole, temporary
 * file + rename). @throws OpsError when it does not exist, is not UTF-8 text (as sops, which refuses it too), is already a
 * sops file, does not parse, or would be encrypted to none of the user's keys (`lockout`, unless its `force`),
 * InterruptedError when `signal` aborts before it is written; the file is then left as it was. Values typed without quotes that sops stores
 * in another form (a YAML 01234, a JSON 1.0 or 12345678901234567890: tree-parse.ts) are encrypted as sops would,
 * and named to `warn` (edit.ts, retypedWarning).
 */
export async function encryptInPlace(root: string, file: string, opts: EncryptOptions = {}): Promise<SecretsFile> {
  const { shown = file, typed = shown, warn, signal } = opts;
  if (!userFileExists(file, shown, 'a plain YAML or JSON file', true)) throw new InputError(`${file} does not exist`, 'check the path (a relative one starts from the directory the command was run from)');
  // strictly: encrypting works in place, so text decoded with U+FFFD for bad bytes would lose them for good
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw fileError(e, shown, 'read', 'a plain YAML or JSON file');
  }
  const text = decodeUtf8(bytes, shown, 'convert it to UTF-8 first (e.g. `iconv -f latin1 -t utf-8`), or keep binary data as base64 text; the file was left as it was');
  if (isSopsText(text, formatOf(file))) throw new OpsError(`${shown} is already a sops file; it was left as it was`, changeEncryptedHint(root, file, typed));
  const retyped: Retyped[] = [];
  const format = formatOf(file);
  const recipients = recipientsFor(root, file);
  const yaml11: (string | number)[][] = [];
  const yaml11Keys: (string | number)[][] = [];
  const tree = parseTree(text, format, { file: shown, retyped, yaml11, yaml11Keys });
  // a file encrypted to none of the user's keys is lost to them (refused before anything is written, as a recipients
  // remove taking their last key is)
  if (opts.lockout) refuseEncryptingAway(shown, recipients, opts.lockout.identities, opts.lockout.env, `ops secrets encrypt ${shown}`, opts.lockout.force);
  const secrets = SecretsFile.create(file, tree, { recipients, ...(signal && { openWith: { signal } }) });
  await secrets.save({}, text); // over the plain file as it was read: not once `signal` has aborted (InterruptedError)
  // stored as sops stores them (sops encrypts them so too), but said: the plain text is gone once encrypted
  if (retyped.length && warn) warn(`${shown}: ${retypedWarning(retyped, format, 'are not')}`);
  if (yaml11.length && warn) warn(`${shown}: ${yaml11Warning(yaml11)}`);
  if (yaml11Keys.length && warn) warn(`${shown}: ${yaml11Warning(yaml11Keys, 'key')}`);
  return secrets;
}
