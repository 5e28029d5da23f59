// Where sops looks for age identities by default: a module of its own, without the age library, so the CLI's
// help texts can name the file without loading it.
import { homedir } from 'node:os';
import { join } from 'node:path';

/** `$XDG_CONFIG_HOME/sops/age/keys.txt`, else `~/.config/sops/age/keys.txt` (sops's default on Linux). */
export function defaultKeyFile(processEnv: NodeJS.ProcessEnv = process.env): string {
  const base = processEnv.XDG_CONFIG_HOME || join(processEnv.HOME || homedir(), '.config');
  return join(base, 'sops', 'age', 'keys.txt');
}
