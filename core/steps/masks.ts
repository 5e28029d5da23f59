// Secret values masked on the host: what a step quotes of the app's output (a health answer's body, the programs'
// logs, a failed start's log lines) passes through mask_text (sh/mask.sh) with the forms of every secret the kept
// releases were given, so that it is masked even where the runner knows no value (ops status and ops logs run
// without the age key: README "Status environments"). The runner masks what reaches it again when it has the key.
import { exactFormsOf } from '../report.ts';
import { quote } from '../shell.ts';
import type { Target } from '../target.ts';

/** The variables of the environment's .env that come from secrets (names only: a status step may carry them). */
export function secretEnvNames(env: Target): string[] {
  return Object.entries(env.config.env)
    .filter(([, spec]) => typeof spec !== 'string')
    .map(([name]) => name)
    .sort();
}

/**
 * The masks file of a release (layout.masks, in its record): every exact form the runner masks (core/report.ts
 * exactFormsOf: the value, each line, a URL's password, the strings of a JSON value, each as programs print it
 * quoted, quoted for a shell and URL-encoded, in base64 and hex, and its bytes a byte at a time (these two for parts up to MAX_ENCODED_PART)) for the value of each variable of `environ` (the release's NUL-separated NAME=VALUE
 * records, as the deploy renders them) that comes from a secret; booleans (rendered "true", "false") are not
 * masked, as the runner masks none. One a line (a form holding a line break is left out: the host masks line by
 * line), longest first; empty when the .env takes nothing from secrets.
 */
export function releaseMasks(env: Target, environ: string): string {
  const names = new Set(secretEnvNames(env));
  const forms = new Set<string>();
  for (const record of environ.split('\0')) {
    const at = record.indexOf('=');
    if (at < 0 || !names.has(record.slice(0, at))) continue;
    const value = record.slice(at + 1);
    if (value === 'true' || value === 'false') continue;
    for (const form of exactFormsOf(value)) if (!/[\r\n]/.test(form)) forms.add(form);
  }
  const sorted = [...forms].sort((a, b) => b.length - a.length);
  return sorted.length ? `${sorted.join('\n')}\n` : '';
}

/**
 * mask_forms's arguments for `env` (sh/mask.sh): the releases directory, the record directories (layout.records:
 * where each release's masks file is, mask_record), the names of a release's masks file (in its record) and environ
 * file (in its directory), the kept masks file (layout.keptMasks: the releases pruned) and the variables that come
 * from secrets.
 */
export function maskArgs(env: Target): string[] {
  const L = env.layout;
  const name = (path: string) => path.slice(path.lastIndexOf('/') + 1);
  return [L.releases, L.records, name(L.masks('x')), name(L.environ('x')), L.keptMasks, ...secretEnvNames(env)];
}

/**
 * The shell command that copies its input to its output with every secret of the releases kept on the host masked
 * (mask_text: each kept release's masks file, and the values its environ holds for the variables that come from
 * secrets; and the kept masks file, for the logs of those pruned), line by line as lines come. Needs
 * MASK_FUNCTIONS; runs as root.
 */
export function maskText(env: Target): string {
  return ['mask_text', ...maskArgs(env)].map(quote).join(' ');
}

/**
 * Shell that adds the texts to mask of the release whose id is in shell variable `idVar` to the kept masks file
 * (keep_masks): for the prune, before the release and its record are removed (its programs' lines stay in the log
 * files). Needs MASK_FUNCTIONS; runs as root.
 */
export function keepMasks(env: Target, idVar: string): string {
  return `keep_masks "$${idVar}" ${maskArgs(env).map(quote).join(' ')}`;
}
