// The user's home directory, where ops looks for the keys a person keeps there (~/.config/sops/age/keys.txt,
// ~/.ssh/id_*) and what a `~` typed in a path names.
import { userInfo } from 'node:os';
import { isAbsolute } from 'node:path';

/**
 * $HOME when it is an absolute path, else the account's home directory in the password database, else undefined
 * (HOME unset, empty or relative, under a uid the database does not list: `docker run --user 1234`, `env -i`). Never
 * a relative path, which would read keys from whatever directory ops runs in (node's os.homedir() gives "" for
 * HOME="", and throws when the account is unknown). Never throws.
 */
export function homeDir(processEnv: NodeJS.ProcessEnv = process.env): string | undefined {
  const home = processEnv.HOME;
  if (home && isAbsolute(home)) return home;
  try {
    const own = userInfo().homedir;
    return own && isAbsolute(own) ? own : undefined;
  } catch {
    return undefined;
  }
}

/** Why there is no home directory (homeDir gave none), for a message naming what needs one. */
export function noHomeReason(processEnv: NodeJS.ProcessEnv = process.env): string {
  const home = processEnv.HOME;
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const env = home === undefined ? 'HOME is not set' : home === '' ? 'HOME is empty' : `HOME is a relative path (${home})`;
  return `no home directory: ${env}, and ${uid === undefined ? 'this account has' : `uid ${uid} has`} none in the password database`;
}
