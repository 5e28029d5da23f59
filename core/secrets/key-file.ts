// Where sops looks for age identities by default: a module of its own, without the age library, so the CLI's
// help texts can name the file without loading it.
import { statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { homeDir } from '../home.ts';

/** Public key of environments/example-age-key.txt, committed so the shipped examples can be read. */
export const EXAMPLE_RECIPIENT = 'age1f9x385mzgqsghjdrlet2vxtx88vnhpxareft4gqkddfsw5fp4gmscx330v';

/**
 * `$XDG_CONFIG_HOME/sops/age/keys.txt`, else `~/.config/sops/age/keys.txt` (sops's default on Linux), absolute; a
 * relative XDG_CONFIG_HOME is ignored, as the XDG Base Directory specification says (and Go's os.UserConfigDir, so
 * sops). With no home directory known (core/home.ts homeDir), the path as written, `~/.config/sops/age/keys.txt`:
 * named in messages, never read (it would be relative to the directory ops runs in).
 */
export function defaultKeyFile(processEnv: NodeJS.ProcessEnv = process.env): string {
  const xdg = processEnv.XDG_CONFIG_HOME;
  const home = homeDir(processEnv);
  const base = xdg && isAbsolute(xdg) ? xdg : home ? join(home, '.config') : '~/.config';
  return join(base, 'sops', 'age', 'keys.txt');
}

/**
 * The warning for a private key file (an age identity, an SSH key) that other users of this machine can read or
 * change (group or other permission bits: ssh refuses such a key, sops and age take it), or undefined. A warning,
 * not a refusal: the key works, and the fix is one chmod.
 */
export function exposedKeyWarning(file: string, what: string): string | undefined {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    return undefined; // not there: its reader says so
  }
  if (process.platform === 'win32' || (mode & 0o077) === 0) return undefined;
  return `${file} (${what}) can be read or changed by other users of this machine (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): chmod 600 ${file}`;
}
