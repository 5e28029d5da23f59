// A small schema language for YAML configuration. One definition does three jobs: it validates a parsed
// document (collecting every problem, each with its key path and the expected form), it renders the
// reference documentation, and it renders a JSON Schema (draft-07, what YAML language servers read) for
// editors, so neither the README nor the editor can drift from what the loader accepts.
// Here: values (strings, numbers, lists, records, either) and fields; mappings and rules across keys: schema-object.ts.

import { hideSecrets } from '../secrets/parts.ts';

export interface Problem {
  path: string;
  message: string;
}

export interface DocRow {
  path: string;
  form: string;
  required: boolean;
  default?: string;
  doc: string;
}

/** A JSON Schema (draft-07) node, as plain JSON. */
export type JsonSchema = { [keyword: string]: unknown };

export interface Schema<T> {
  /** Short human description of the accepted form, used in errors and docs ("integer 1-65535"). */
  readonly form: string;
  check(value: unknown, path: string, problems: Problem[]): T | undefined;
  /** Documentation rows for this schema and its children, under `path`. */
  rows?(path: string): DocRow[];
  /** The same rules as JSON Schema (draft-07). Only `string({ check })` refinements have no equivalent (see there). */
  json(): JsonSchema;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

/**
 * What a parsed YAML value is, for "got ..." in messages: written as the file has it where JSON cannot say it
 * (YAML 1.2's `.inf`, `-.inf`, `.nan`), and by kind for the tagged values the yaml library turns into objects
 * (`!!binary`, `!!timestamp`, `!!set`, `!!omap`), which are neither strings nor mappings here.
 */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'number' && !Number.isFinite(value)) return `number ${Number.isNaN(value) ? '.nan' : value > 0 ? '.inf' : '-.inf'}`;
  if (value instanceof Date) return 'a date (a !!timestamp value; quote it to make it a string)';
  if (value instanceof Uint8Array) return 'a !!binary value';
  if (value instanceof Set) return 'a !!set value';
  if (value instanceof Map) return 'a !!omap or !!pairs value';
  if (isMapping(value)) return 'a mapping';
  if (typeof value === 'object') return 'a tagged YAML value';
  if (typeof value === 'string') {
    // hidden before the cut: a URL cut before its "@" no longer shows which part is the password
    const shown = hideSecrets(value);
    return JSON.stringify(shown.length > 60 ? `${shown.slice(0, 57)}...` : shown);
  }
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** Record that the value at `path` is not of `form` (with what was given); returns undefined. */
export function fail<T>(problems: Problem[], path: string, form: string, value: unknown, extra = ''): T | undefined {
  problems.push({ path, message: `expected ${form}, got ${describe(value)}${extra}` });
  return undefined;
}

/**
 * Whether a parsed YAML value is a mapping: a plain object (not null, not a list, nor the Date, Uint8Array, Set or
 * Map a `!!timestamp`, `!!binary`, `!!set` or `!!omap` tag makes).
 */
export function isMapping(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * A string matching `pattern` (JavaScript syntax without flags, which is also what JSON Schema's `pattern`
 * means). `check` is a further refinement the JSON Schema cannot carry (e.g. decoding a host key's
 * base64): the editor accepts what the pattern accepts, the loader also runs `check`. `normalize` gives the value
 * its one form for every reader (what the file may write in several equivalent ways).
 */
export function string(opts: { pattern?: RegExp; form?: string; check?: (v: string) => string | undefined; /** The one form every reader gets, once the value is accepted (a domain in lower case, without its final dot). */ normalize?: (v: string) => string } = {}): Schema<string> {
  const form = opts.form ?? 'a string';
  if (opts.pattern?.flags) throw new Error(`schema pattern /${opts.pattern.source}/${opts.pattern.flags}: flags have no JSON Schema equivalent`);
  return {
    form,
    json: () => (opts.pattern ? { type: 'string', pattern: opts.pattern.source } : { type: 'string' }),
    check(value, path, problems) {
      // A number or boolean where text goes is YAML reading an unquoted value (3.10 as 3.1, 18, 1e3, yes): say to quote it.
      if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
        return fail(problems, path, form, value, typeof value === 'boolean' ? ` (unquoted, so YAML read a boolean: write the value in quotes, "${value}")` : ' (unquoted, so YAML read a number: write the value in quotes as you mean it, e.g. "3.10", which unquoted is the number 3.1)');
      if (typeof value !== 'string') return fail(problems, path, form, value);
      // the refinement's reason is the most precise one, even when the pattern also fails
      const why = opts.check?.(value);
      if (why || (opts.pattern && !opts.pattern.test(value))) return fail(problems, path, form, value, why ? ` (${why})` : '');
      return opts.normalize ? opts.normalize(value) : value;
    },
  };
}

/** Seconds in each unit a duration is written with (Go's, systemd's and nginx's spellings: 500ms, 30s, 5min, 2h). */
const DURATION_UNITS: [RegExp, number][] = [
  [/^(ms|msec|milliseconds?)$/, 0.001],
  [/^(s|sec|secs|seconds?)$/, 1],
  [/^(m|min|mins|minutes?)$/, 60],
  [/^(h|hr|hours?)$/, 3600],
];

/** `text` as a number of seconds when it is a duration written with units (`30s`, `1m30s`, `1.5h`) or as mm:ss (`1:30`), else undefined. */
export function durationSeconds(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  const clock = /^(\d+):([0-5]\d)$/.exec(t);
  if (clock) return Number(clock[1]) * 60 + Number(clock[2]);
  const parts = [...t.matchAll(/(\d+(?:\.\d+)?)\s*([a-z]+)\s*/g)];
  if (!parts.length || parts.map((p) => p[0]).join('') !== t) return undefined;
  let total = 0;
  for (const [, n, unit] of parts) {
    const seconds = DURATION_UNITS.find(([re]) => re.test(unit!))?.[1];
    if (seconds === undefined) return undefined;
    total += Number(n) * seconds;
  }
  return Math.round(total * 1000) / 1000;
}

/** A number of `kind` from `min` to `max` (inclusive): what integer(), number() and seconds() share. */
function bounded(kind: 'integer' | 'number', min: number, max: number, form: string, unit?: 'seconds'): Schema<number> {
  const whole = kind === 'integer';
  return {
    form,
    json: () => ({ type: kind, minimum: min, maximum: max }),
    check(value, path, problems) {
      // a number written in quotes ("22") is text to YAML: said, as the quotes are easy to miss in `got "22"`
      let extra = typeof value === 'string' && /^\s*[-+]?\d+(\.\d+)?\s*$/.test(value) ? ' (a string, in quotes: write the number without them)' : '';
      // a duration written with its unit (30s, 5m, 1:30): the number of seconds said, as the key takes it
      const seconds = unit && typeof value === 'string' && !extra ? durationSeconds(value) : undefined;
      if (seconds !== undefined) extra = ` (a number of seconds, without a unit: ${seconds}${seconds < min || seconds > max || (whole && !Number.isInteger(seconds)) ? `, which is not ${form}` : ''})`;
      if (typeof value !== 'number' || !(whole ? Number.isInteger(value) : Number.isFinite(value)) || value < min || value > max) return fail(problems, path, form, value, extra);
      return value;
    },
  };
}

/** An integer from `min` to `max` (inclusive); `form` says it in messages and docs. */
export function integer(min: number, max: number, form?: string): Schema<number> {
  return bounded('integer', min, max, form ?? `an integer ${min}-${max}`);
}

/** A number from `min` to `max` (inclusive); `form` says it in messages and docs. */
export function number(min: number, max: number, form?: string): Schema<number> {
  return bounded('number', min, max, form ?? `a number ${min}-${max}`);
}

/**
 * A number of seconds from `min` to `max` (whole ones unless `whole` is false), formed as integer() or number() form
 * theirs; a duration written with a unit or as mm:ss (`30s`, `5min`, `1:30`) is refused saying the number to write.
 */
export function seconds(min: number, max: number, whole = true): Schema<number> {
  return bounded(whole ? 'integer' : 'number', min, max, `${whole ? 'an integer' : 'a number'} ${min}-${max}`, 'seconds');
}

/** YAML 1.1's words for a boolean (yaml.org/type/bool), which YAML 1.2, as ops reads it, takes as text. */
const YAML11_BOOLEANS: Record<string, boolean> = { y: true, yes: true, on: true, n: false, no: false, off: false };

/**
 * true or false (YAML booleans only). What a person means as one but YAML 1.2 reads as text is said with the value
 * to write: YAML 1.1's yes/no/on/off/y/n (Ansible's and PyYAML's booleans), "true" in quotes.
 */
export function boolean(): Schema<boolean> {
  return {
    form: 'true or false',
    json: () => ({ type: 'boolean' }),
    check(value, path, problems) {
      if (typeof value === 'boolean') return value;
      const word = typeof value === 'string' ? value.trim().toLowerCase() : '';
      const extra =
        word === 'true' || word === 'false'
          ? ` (a string, in quotes: write ${word} without them)`
          : Object.hasOwn(YAML11_BOOLEANS, word)
            ? ` (YAML 1.1's word for ${YAML11_BOOLEANS[word]}; ops reads YAML 1.2, where it is text: write ${YAML11_BOOLEANS[word]})`
            : '';
      return fail(problems, path, 'true or false', value, extra);
    },
  };
}

/** Edit distance, for "did you mean" on a misspelt key (or command). */
export function distance(a: string, b: string): number {
  // Optimal string alignment (Levenshtein plus a swap of two neighbours as one edit): "pnig" is one slip from "ping",
  // "verison" one from "version", as a person types them.
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The known word closest to a mistyped one (a slip or two, any case, or its start when one alone starts so), if any is
 * close enough: for "did you mean" on a command, an option, an environment's name or a git ref.
 */
export function didYouMean(word: string, known: string[]): string | undefined {
  const w = word.toLowerCase();
  const best = known.map((k) => [k, distance(w, k.toLowerCase())] as const).sort((x, y) => x[1] - y[1])[0];
  if (best && best[1] <= Math.max(1, Math.floor(w.length / 3))) return best[0];
  const starts = known.filter((k) => w.length >= 2 && k.toLowerCase().startsWith(w));
  return starts.length === 1 ? starts[0] : undefined;
}

/** The known key a misspelt one was meant as (a slip or two, any case, "-" for "_"), if one is that close. */
export function closest(key: string, known: string[]): string | undefined {
  const norm = key.toLowerCase().replace(/-/g, '_');
  const best = known.map((k) => [k, distance(norm, k)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= Math.max(1, Math.floor(key.length / 4)) ? best[0] : undefined;
}

/** One of the given strings. */
export function oneOf<const V extends string>(values: readonly V[]): Schema<V> {
  const form = `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
  return {
    form,
    json: () => ({ type: 'string', enum: [...values] }),
    check(value, path, problems) {
      if (typeof value === 'string' && (values as readonly string[]).includes(value)) return value as V;
      // a value in another case or spelling (LetsEncrypt, Debian, python_dotenv): the one meant
      const near = typeof value === 'string' ? closest(value, [...values]) : undefined;
      return fail(problems, path, form, value, near ? ` (did you mean "${near}"?)` : '');
    },
  };
}

/** A list of `item`, at least `opts.min` long. */
export function list<T>(item: Schema<T>, opts: { min?: number; form?: string } = {}): Schema<T[]> {
  const form = opts.form ?? `a list of ${item.form}`;
  return {
    form,
    json: () => ({ type: 'array', items: item.json(), ...(opts.min ? { minItems: opts.min } : {}) }),
    check(value, path, problems) {
      // A mapping of named entries where a list of them goes (an Ansible inventory's `hosts: {web1: {...}}`): the fix said.
      const named = () => (item.json() as { properties?: Record<string, unknown> }).properties?.name !== undefined;
      if (isMapping(value) && Object.values(value).every(isMapping) && named()) {
        const first = Object.keys(value)[0] ?? 'web1';
        return fail(problems, path, form, value, ` (each entry is a list item with its name inside: "- name: ${first}", then its keys indented under it, not "${first}:")`);
      }
      // One item written without its "- " (`hosts:` then `name: web1` indented): its own keys, where the list goes.
      const keys = (item.json() as { properties?: Record<string, unknown> }).properties;
      if (keys && isMapping(value) && Object.keys(value).length && Object.keys(value).every((k) => k in keys)) {
        const first = Object.keys(value)[0]!;
        return fail(problems, path, form, value, ` (one item without its "- ": write "- ${first}: ..." and indent its other keys under it)`);
      }
      // A bare value where a list of mappings goes (`hosts: 203.0.113.10`): each item is a mapping of keys.
      if (keys && (typeof value === 'string' || typeof value === 'number') && 'name' in keys)
        return fail(problems, path, form, value, ` (each item is a list item holding its keys: "- name: ...", then its other keys indented under it)`);
      if (!Array.isArray(value)) return fail(problems, path, form, value);
      if (opts.min && value.length < opts.min) {
        problems.push({ path, message: `expected at least ${opts.min} item${opts.min > 1 ? 's' : ''}, got ${value.length}` });
        return undefined;
      }
      const out: T[] = [];
      let ok = true;
      value.forEach((v, i) => {
        const r = item.check(v, `${path}[${i}]`, problems);
        if (r === undefined) ok = false;
        else out.push(r);
      });
      return ok ? out : undefined;
    },
    rows: item.rows ? (p) => item.rows!(`${p}[]`) : undefined,
  };
}

/**
 * A mapping with free keys (matching `key`) and values of one schema. The result has no prototype: every key
 * written is an own property (`__proto__` too, which plain assignment would turn into a prototype change, so
 * lose), and a key not written reads as undefined (`constructor` or `toString` too, which any object inherits).
 */
export function record<T>(key: Schema<string>, item: Schema<T>, form?: string): Schema<Record<string, T>> {
  const f = form ?? `a mapping of ${key.form} to ${item.form}`;
  return {
    form: f,
    json: () => ({ type: 'object', propertyNames: key.json(), additionalProperties: item.json() }),
    check(value, path, problems) {
      if (!isMapping(value)) return fail(problems, path, f, value);
      const out = Object.create(null) as Record<string, T>;
      let ok = true;
      for (const [k, v] of Object.entries(value)) {
        const p = path ? `${path}.${k}` : k;
        if (key.check(k, p, problems) === undefined) {
          ok = false;
          continue;
        }
        const r = item.check(v, p, problems);
        if (r === undefined) ok = false;
        else out[k] = r;
      }
      return ok ? out : undefined;
    },
    rows: item.rows ? (p) => item.rows!(`${p}.<name>`) : undefined,
  };
}

/** Either of two schemas; the first that accepts the value wins. */
export function either<A, B>(a: Schema<A>, b: Schema<B>, form?: string): Schema<A | B> {
  const f = form ?? `${a.form}, or ${b.form}`;
  return {
    form: f,
    json: () => ({ anyOf: [a.json(), b.json()] }),
    check(value, path, problems) {
      const pa: Problem[] = [];
      const ra = a.check(value, path, pa);
      if (ra !== undefined) return ra;
      const pb: Problem[] = [];
      const rb = b.check(value, path, pb);
      if (rb !== undefined) return rb;
      // Report the branch whose shape matches (mapping vs scalar) for a precise message.
      problems.push(...(isMapping(value) === Boolean(b.rows) ? pb : pa));
      return undefined;
    },
    rows: a.rows ?? b.rows,
  };
}

export type Presence = 'required' | 'defaulted' | 'optional';

export interface Field<T, P extends Presence = Presence> {
  schema: Schema<T>;
  doc: string;
  presence: P;
  /** Input form of the default: it goes through the schema, so nested defaults are filled in too. */
  default?: unknown;
}

/** A required key: absent is a problem. */
export function req<T>(schema: Schema<T>, doc: string): Field<T, 'required'> {
  return { schema, doc, presence: 'required' };
}

/** An optional key; with `defaultValue`, the value when absent (shown in the reference). */
export function opt<T>(schema: Schema<T>, doc: string): Field<T, 'optional'>;
export function opt<T>(schema: Schema<T>, doc: string, defaultValue: unknown): Field<T, 'defaulted'>;
export function opt<T>(schema: Schema<T>, doc: string, defaultValue?: unknown): Field<T> {
  return defaultValue === undefined ? { schema, doc, presence: 'optional' } : { schema, doc, presence: 'defaulted', default: defaultValue };
}
