// The placeholders of a program's command and env ({release} {python} {node} {npm} {port} {port:<program>}): their
// grammar, shared by the loader (which refuses an unknown one when the file is read) and the switch (which expands them).
import { closest } from './schema-object.ts';

/**
 * A placeholder, or a literal one: `{{name}}` (group 1) is the text `{name}`, as in Python's str.format; `{name}` or
 * `{name:arg}` (groups 2, 3) is expanded. Other braces (`{}`, `${HOME}`, JSON) are no placeholder. Global: use with
 * replace or matchAll.
 */
export const PLACEHOLDER = /\{\{([A-Za-z_]+(?::[A-Za-z0-9_-]*)?)\}\}|\{([a-z_]+)(?::([a-z][a-z0-9_-]*))?\}/g;

/**
 * A placeholder's name in another case or with spaces (`{PORT}`, `{ port }`, `{Python}`, `{port:Web}`), which the
 * switch does not expand: the program would get that text and fail at its start, after the build. Not one preceded
 * by `$` (a shell's `${PORT}`) or inside `{{...}}` (a literal). Global.
 */
const MISSPELT = /(?<![{$])\{\s*(release|python|node|npm|port)\s*(?::\s*([^{}]*?)\s*)?\}(?!\})/gi;
/** A placeholder exactly as PLACEHOLDER expands it. */
const EXACT = /^\{[a-z_]+(?::[a-z][a-z0-9_-]*)?\}$/;

/** The placeholders a program's command and env may hold, as the hint lists them. */
export const PLACEHOLDERS = '{release} {python} {node} {npm} {port} {port:<program>}';

/**
 * Why `text` (a program's command or env value) holds a placeholder that cannot be expanded, or undefined: an unknown
 * name (a misspelt one said with the name meant), one written in another case or with spaces ({PORT}, { port }), a
 * name given an argument only {port} takes, or a {port:<program>}
 * of no program in `programs`. The switch expands them (core/steps/switch.ts expand), and would refuse the same ones.
 */
export function placeholderProblem(text: string, programs: string[]): string | undefined {
  for (const m of text.matchAll(MISSPELT)) {
    if (EXACT.test(m[0])) continue;
    const arg = m[2]?.toLowerCase();
    const meant = `{${m[1]!.toLowerCase()}${arg === undefined ? '' : `:${arg}`}}`;
    return `${m[0]} is not a placeholder (they are written in lower case, without spaces), so the program would get that text as it is: write ${meant}${arg !== undefined && !programs.includes(arg) ? ` with a program's name (programs: ${programs.join(', ')})` : ''}${/\s/.test(m[0]) ? '' : `; for the text ${m[0]} itself, write {${m[0]}}`}`;
  }
  for (const m of text.matchAll(PLACEHOLDER)) {
    const [whole, literal, name, arg] = m;
    if (literal !== undefined) continue;
    if (name === 'port') {
      if (arg !== undefined && !programs.includes(arg)) {
        const near = closest(arg, programs);
        return `${whole} names no program${near ? ` (did you mean {port:${near}}?)` : ''}; programs: ${programs.join(', ')}`;
      }
      continue;
    }
    if (['release', 'python', 'node', 'npm'].includes(name!) && arg === undefined) continue;
    const near = arg === undefined ? closest(name!, ['release', 'python', 'node', 'npm', 'port']) : undefined;
    return `unknown placeholder ${whole}${near ? ` (did you mean {${near}}?)` : ''} (placeholders: ${PLACEHOLDERS}; for a literal ${whole} (a log format's fields) write {${whole}})`;
  }
  return undefined;
}
