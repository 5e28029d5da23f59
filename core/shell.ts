// Every external value that reaches a remote shell goes through here: validated against a strict
// pattern first (so a hostile value is refused before any connection), then single-quoted.
import { existsSync, readdirSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { didYouMean } from './config/schema.ts';
import { InputError } from './errors.ts';

/** POSIX single-quoting: the result is one shell word whatever the input holds. */
export function quote(value: string | number): string {
  const s = String(value);
  if (s !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * A value known only on the host when a script runs (e.g. the release a rollback chooses there): the shell
 * variable `variable`, which the script sets, and checks, before the step that reads it.
 */
export interface HostVariable {
  readonly variable: string;
}

/** The host's shell variable `variable` as a value (`word` expands it). @throws Error for a name that is not a shell variable's. */
export function onHost(variable: string): HostVariable {
  if (!/^[a-z_][a-z0-9_]*$/.test(variable)) throw new Error(`not a shell variable name: ${variable}`);
  return { variable };
}

/**
 * One shell word made of `parts`, in order: the runner's values quoted (`quote`), the host's variables
 * expanded in double quotes (never split or globbed): `word('rolled back to ', onHost('release_id'))`.
 */
export function word(...parts: (string | HostVariable)[]): string {
  return parts.map((p) => (typeof p === 'string' ? quote(p) : `"\${${p.variable}}"`)).join('') || "''";
}

/** Build a command line from words, quoting each. */
export function cmd(...words: (string | number)[]): string {
  return words.map(quote).join(' ');
}

/**
 * The environment name a refused one was most likely meant as, when it spells a valid one otherwise: a path to its
 * folder or a file in it (the shell completes `environments/demo/`), upper case (`QA`), or "." "_" or spaces where
 * names have "-" (`qa.eu`, `qa_eu`). Undefined when nothing valid comes of it.
 */
function environmentMeant(typed: string, where?: TypedAt): string | undefined {
  if (where?.root !== undefined && where.cwd !== undefined) {
    // a path into environments/ from the directory the command ran in (`.` inside environments/qa, `../qa`, a full path)
    const inside = relative(join(where.root, 'environments'), resolve(where.cwd, typed)).split(sep);
    if (inside[0] && inside[0] !== '..' && inside[0] !== typed && /^[a-z][a-z0-9-]{0,39}$/.test(inside[0]) && !inside[0].endsWith('-status')) return inside[0];
  }
  const path = typed.trim().replace(/^(\.\/)+/, '');
  const folder = /^environments\/([^/]+)/.exec(path)?.[1] ?? path.replace(/\/.*$/, '');
  const name = folder.toLowerCase().replace(/[._\s]+/g, '-');
  // among the project's environments when it is known: `qa_` is qa, not a "qa-" that does not exist
  const known = where?.root !== undefined ? environmentFolders(where.root) : [];
  const near = known.includes(name) ? name : (didYouMean(name, known) ?? didYouMean(folder.toLowerCase().replace(/[._\s]+$/, ''), known));
  if (near !== undefined && near !== typed) return near;
  return name !== typed && /^[a-z][a-z0-9-]{0,39}$/.test(name) && !name.endsWith('-status') ? name : undefined;
}

/** The folders under <root>/environments that could be environments (a valid name), for a hint; [] when unreadable. */
export function environmentFolders(root: string): string[] {
  try {
    return readdirSync(join(root, 'environments')).filter((d) => /^[a-z][a-z0-9-]{0,39}$/.test(d) && existsSync(join(root, 'environments', d, 'environment.yml')));
  } catch {
    return [];
  }
}

/**
 * Where a value was typed: the directory the command ran in and the project root (a path typed for a name is read from
 * there); `env`: the environment the command is for, named in a hint's command (`ops releases qa`).
 */
export interface TypedAt {
  cwd?: string;
  root?: string;
  env?: string;
}

/** A kind of value: its pattern, the form said when it fails, an extra rule, and the hint of a refusal (what to give instead). */
type Check = { what: string; pattern: RegExp; form: string; extra?: (v: string) => string | undefined; hint?: (v: string, where?: TypedAt) => string };

/**
 * Whether git allows `v` as a ref name (git-check-ref-format(1): no control characters, space, ~ ^ : ? * [ \\; no
 * "..", "@{" or "//"; no part starting with "."; not starting with "/", not ending with "/", "." or ".lock"), as a branch's or tag's name after refs/heads/ or refs/tags/.
 * The gitRef check is stricter: a name git allows may still be refused by it (é, #, a leading "-", over 200 characters).
 */
export function gitAllowsRef(v: string): boolean {
  return v !== '' && !/[\s\\:?*[~^\u0000-\u001f\u007f]|\.\.|@\{|\/\/|(^|\/)\.|^\/|\/$|\.$|\.lock$/.test(v);
}

const CHECKS = {
  // git check-ref-format rules, tightened: no leading '-', no '..', no spaces or shell metacharacters.
  gitRef: {
    what: 'git ref',
    pattern: /^(?!-)(?!.*\.\.)(?!.*\/\/)(?!.*@\{)(?!.*\.lock$)(?!.*\/$)(?!.*\.$)[A-Za-z0-9._\/+-]{1,200}$/,
    form: 'a branch, tag or commit sha made of letters, digits and . _ / + - (no leading "-"; no "..", "//" or "@{"; not ending in "/", "." or ".lock"), at most 200 characters',
    // What people type where a ref goes: a pasted name with a space, git's revision syntax (HEAD~1, v2^{}, main@{1},
    // :/message: the newest commit whose message matches, gitrevisions(7)).
    hint: (v) =>
      /^\s|\s$/.test(v)
        ? 'remove the white space around the name (copied with it?)'
        : /[~^]|@\{|^:\//.test(v)
          ? `a revision expression is not deployed as such: give the commit it names (its sha: git rev-parse ${quote(v)})`
          : // A name git allows (feat/été, fix#12, a,b) but not made of the characters ops passes on: its sha is.
            /[^A-Za-z0-9._/+-]/.test(v) && gitAllowsRef(v)
            ? `git allows this name, ops takes refs of ASCII letters, digits and . _ / + - only: give its commit instead (its sha: git rev-parse ${quote(v)})`
            : 'give a branch, tag or sha as git lists them (git branch -a, git tag, git log --oneline)',
  },
  environment: {
    what: 'environment name',
    pattern: /^[a-z][a-z0-9-]{0,39}$/,
    form: 'lower-case letters, digits and "-", starting with a letter, at most 40 characters (e.g. prod, staging, demo-2)',
    // status.yml runs each environment's checks in the GitHub environment `<env>-status` (its SSH key, no
    // reviewers): an environment named x-status would be, or take, that GitHub environment of environment x.
    extra: (v) =>
      v.endsWith('-status')
        ? `a name ending in "-status" is refused: ${v} is the GitHub environment status.yml uses for environment ${v.slice(0, -'-status'.length)} (its deploy key without reviewers); pick another name`
        : undefined,
    hint: (v, where) => {
      const meant = environmentMeant(v, where);
      return `${meant ? `did you mean ${meant}? ` : ''}the name of its folder under environments/ (\`ops env new <name>\` makes one)`;
    },
  },
  release: {
    what: 'release id',
    pattern: /^\d{8}T\d{6}Z-[0-9a-f]{7,40}$/,
    form: 'YYYYMMDDTHHMMSSZ-<sha>, as `ops releases` lists them',
    hint: (_v, where) => `copy the id from \`ops releases ${where?.env ?? '<env>'}\``,
  },
  name: {
    what: 'name',
    pattern: /^[a-z][a-z0-9_-]{0,39}$/,
    form: 'lower-case letters, digits, "_" and "-", starting with a letter, at most 40 characters',
  },
} satisfies Record<string, Check>;

export type ValueKind = keyof typeof CHECKS;

/**
 * Return `value` if it matches the kind's pattern; otherwise throw a clear error naming the value and the expected form.
 * `where`: typed on the command line there, so the hint can read a path typed for a name (`ops config .` in its folder).
 */
export function validate(kind: ValueKind, value: string, label?: string, where?: TypedAt): string {
  const check: Check = CHECKS[kind];
  if (typeof value !== 'string' || !check.pattern.test(value)) {
    const shown = JSON.stringify(value);
    // white space at its ends around a valid value (pasted from a listing, a chat, a form field): said as that, whatever the kind
    const padded = typeof value === 'string' && value.trim() !== value && check.pattern.test(value.trim()) && !check.extra?.(value.trim());
    // U+FFFD: what bytes of the command line that are not UTF-8 became (a latin1 terminal, a script in another encoding)
    const notUtf8 = typeof value === 'string' && value.includes('\uFFFD');
    const hint = padded
      ? `remove the white space around ${JSON.stringify(value.trim())} (copied with it?)`
      : notUtf8
        ? `it holds U+FFFD (\uFFFD), what bytes that are not UTF-8 become (a terminal or a script in another encoding, such as latin1): give it in UTF-8`
        : typeof value === 'string'
          ? check.hint?.(value, where)
          : undefined;
    throw new InputError(`invalid ${label ?? check.what} ${shown}: expected ${check.form}`, hint);
  }
  const why = check.extra?.(value);
  if (why) throw new InputError(`invalid ${label ?? check.what} ${JSON.stringify(value)}: ${why}`, check.hint?.(value, where));
  return value;
}

/** The pattern a kind of value must match (for schemas that check the same rule). */
export function patternOf(kind: ValueKind): RegExp {
  return CHECKS[kind].pattern;
}

/** Whether `value` matches the pattern for `kind` (no throw; `validate` throws with the form expected). */
export function isValid(kind: ValueKind, value: string): boolean {
  const check: Check = CHECKS[kind];
  return check.pattern.test(value) && !check.extra?.(value);
}

/** The range wholeNumber takes: `range`'s bounds, 0 and 2^31-1 where it gives none. */
export function wholeNumberRange(range: { min?: number; max?: number }): { min: number; max: number } {
  return { min: range.min ?? 0, max: range.max ?? 2 ** 31 - 1 };
}

/**
 * A whole number from text given by a person or a workflow (an option, an action input): decimal digits only
 * (no sign, no exponent, no spaces inside), within [min, max] (default 0 to 2^31-1).
 * @returns the number. @throws InputError naming `what`, what was given, and the range.
 */
export function wholeNumber(text: string, what: string, range: { min?: number; max?: number } = {}): number {
  const { min, max } = wholeNumberRange(range);
  const t = text.trim();
  const n = /^\d{1,10}$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new InputError(`${what} needs a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return n;
}
