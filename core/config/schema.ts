// A small schema language for YAML configuration. One definition does three jobs: it validates a parsed
// document (collecting every problem, each with its key path and the expected form), it renders the
// reference documentation, and it renders a JSON Schema (draft-07, what YAML language servers read) for
// editors, so neither the README nor the editor can drift from what the loader accepts.

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

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return `${typeof value} ${JSON.stringify(value)}`;
}

function fail<T>(problems: Problem[], path: string, form: string, value: unknown, extra = ''): T | undefined {
  problems.push({ path, message: `expected ${form}, got ${describe(value)}${extra}` });
  return undefined;
}

/**
 * A string matching `pattern` (JavaScript syntax without flags, which is also what JSON Schema's `pattern`
 * means). `check` is a further refinement the JSON Schema cannot carry (e.g. decoding a host key's
 * base64): the editor accepts what the pattern accepts, the loader also runs `check`.
 */
export function string(opts: { pattern?: RegExp; form?: string; check?: (v: string) => string | undefined } = {}): Schema<string> {
  const form = opts.form ?? 'a string';
  if (opts.pattern?.flags) throw new Error(`schema pattern /${opts.pattern.source}/${opts.pattern.flags}: flags have no JSON Schema equivalent`);
  return {
    form,
    json: () => (opts.pattern ? { type: 'string', pattern: opts.pattern.source } : { type: 'string' }),
    check(value, path, problems) {
      if (typeof value !== 'string') return fail(problems, path, form, value);
      // the refinement's reason is the most precise one, even when the pattern also fails
      const why = opts.check?.(value);
      if (why || (opts.pattern && !opts.pattern.test(value))) return fail(problems, path, form, value, why ? ` (${why})` : '');
      return value;
    },
  };
}

/** An integer from `min` to `max` (inclusive); `form` says it in messages and docs. */
export function integer(min: number, max: number, form?: string): Schema<number> {
  const f = form ?? `an integer ${min}-${max}`;
  return {
    form: f,
    json: () => ({ type: 'integer', minimum: min, maximum: max }),
    check(value, path, problems) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) return fail(problems, path, f, value);
      return value;
    },
  };
}

/** A number from `min` to `max` (inclusive); `form` says it in messages and docs. */
export function number(min: number, max: number, form?: string): Schema<number> {
  const f = form ?? `a number ${min}-${max}`;
  return {
    form: f,
    json: () => ({ type: 'number', minimum: min, maximum: max }),
    check(value, path, problems) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) return fail(problems, path, f, value);
      return value;
    },
  };
}

/** true or false (YAML booleans only). */
export function boolean(): Schema<boolean> {
  return {
    form: 'true or false',
    json: () => ({ type: 'boolean' }),
    check(value, path, problems) {
      if (typeof value !== 'boolean') return fail(problems, path, 'true or false', value);
      return value;
    },
  };
}

/** One of the given strings. */
export function oneOf<const V extends string>(values: readonly V[]): Schema<V> {
  const form = `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
  return {
    form,
    json: () => ({ type: 'string', enum: [...values] }),
    check(value, path, problems) {
      if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) return fail(problems, path, form, value);
      return value as V;
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

/** A mapping with free keys (matching `key`) and values of one schema. */
export function record<T>(key: Schema<string>, item: Schema<T>, form?: string): Schema<Record<string, T>> {
  const f = form ?? `a mapping of ${key.form} to ${item.form}`;
  return {
    form: f,
    json: () => ({ type: 'object', propertyNames: key.json(), additionalProperties: item.json() }),
    check(value, path, problems) {
      if (!isMapping(value)) return fail(problems, path, f, value);
      const out: Record<string, T> = {};
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

type Presence = 'required' | 'defaulted' | 'optional';

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

type Fields = Record<string, Field<any, Presence>>;
type Value<F> = F extends Field<infer T, Presence> ? T : never;
type ObjectOf<F extends Fields> = {
  [K in keyof F as F[K]['presence'] extends 'optional' ? never : K]: Value<F[K]>;
} & {
  [K in keyof F as F[K]['presence'] extends 'optional' ? K : never]?: Value<F[K]>;
};

/** Edit distance, for "did you mean" on a misspelt key. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function closest(key: string, known: string[]): string | undefined {
  const norm = key.toLowerCase().replace(/-/g, '_');
  const best = known.map((k) => [k, distance(norm, k)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= Math.max(1, Math.floor(key.length / 4)) ? best[0] : undefined;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Defaults worth a docs cell: scalars, lists and flat mappings; nested objects document their own keys. */
function showDefault(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value === '' ? '""' : value;
  if (isMapping(value) && (Object.keys(value).length === 0 || Object.values(value).some((v) => isMapping(v)))) return undefined;
  return JSON.stringify(value);
}

/**
 * A rule across the keys of one mapping, which the loader checks and the JSON Schema expresses
 * (`oneOf`, `if`/`then`). Key paths are relative to the mapping; rules look at the document as written
 * (before defaults are filled in), as JSON Schema does, so a condition must not name a key's default value.
 */
export type Rule =
  /** Exactly one of these keys is given (and not null). Reported at the mapping's own path. */
  | { exactlyOne: string[]; message: string }
  /** When the value at `path` equals `equals`, every requirement holds. */
  | { when: { path: string[]; equals: string }; then: Requirement[] };

export type Requirement =
  /** The key at `path` is given (and not null). */
  | { require: string[]; message: string }
  /** The string at `path` also matches `pattern`. */
  | { path: string[]; pattern: RegExp; message: (value: string) => string };

function at(value: unknown, path: string[]): unknown {
  let v = value;
  for (const k of path) v = isMapping(v) ? v[k] : undefined;
  return v;
}

/** JSON Schema: `leaf` applies to the value at `path` inside a mapping (which must hold the keys when `required`). */
function nested(path: string[], leaf: JsonSchema, required: boolean): JsonSchema {
  const [k, ...rest] = path;
  if (k === undefined) return leaf;
  return { type: 'object', ...(required ? { required: [k] } : {}), properties: { [k]: nested(rest, leaf, required) } };
}

const NOT_NULL: JsonSchema = { not: { type: 'null' } };

function ruleJson(rule: Rule): JsonSchema {
  if ('exactlyOne' in rule) return { oneOf: rule.exactlyOne.map((k) => nested([k], NOT_NULL, true)) };
  const then = rule.then.map((r) => ('require' in r ? nested(r.require, NOT_NULL, true) : nested(r.path, { type: ['string', 'null', 'number', 'boolean', 'array', 'object'], pattern: r.pattern.source }, false)));
  return { if: nested(rule.when.path, { const: rule.when.equals }, true), then: then.length === 1 ? then[0]! : { allOf: then } };
}

function checkRule(rule: Rule, value: Record<string, unknown>, path: string, problems: Problem[]): void {
  const join = (keys: string[]) => [path, ...keys].filter(Boolean).join('.');
  if ('exactlyOne' in rule) {
    const given = rule.exactlyOne.filter((k) => value[k] !== undefined && value[k] !== null);
    if (given.length !== 1) problems.push({ path, message: rule.message });
    return;
  }
  if (at(value, rule.when.path) !== rule.when.equals) return;
  for (const r of rule.then) {
    if ('require' in r) {
      const v = at(value, r.require);
      if (v === undefined || v === null) problems.push({ path: join(r.require), message: r.message });
    } else {
      const v = at(value, r.path);
      if (typeof v === 'string' && !r.pattern.test(v)) problems.push({ path: join(r.path), message: r.message(v) });
    }
  }
}

/** `schema`'s JSON Schema, also accepting null (an optional key left empty, `key:`, means "not given"). */
function nullable(schema: JsonSchema): JsonSchema {
  const out = { ...schema };
  if (Array.isArray(out.enum)) out.enum = [...out.enum, null];
  if (typeof out.type === 'string') out.type = [out.type, 'null'];
  else if (Array.isArray(out.anyOf)) out.anyOf = [...out.anyOf, { type: 'null' }];
  else if (out.type === undefined) return { anyOf: [schema, { type: 'null' }] };
  return out;
}

/**
 * A mapping with known keys: unknown keys, missing required keys and wrong types are all reported.
 * `rules` are checked on the mapping as written (their problems are reported; the value is still
 * returned, so that checks across the whole document still run).
 */
export function object<F extends Fields>(fields: F, options: string | { form?: string; rules?: Rule[] } = {}): Schema<ObjectOf<F>> {
  const { form = 'a mapping', rules = [] } = typeof options === 'string' ? { form: options } : options;
  const known = Object.keys(fields);
  return {
    form,
    check(value, path, problems) {
      if (!isMapping(value)) return fail(problems, path, form, value);
      const out: Record<string, unknown> = {};
      let ok = true;
      for (const k of Object.keys(value)) {
        if (!known.includes(k)) {
          const near = closest(k, known);
          problems.push({
            path: path ? `${path}.${k}` : k,
            message: `unknown key${near ? ` (did you mean "${near}"?)` : `; known keys here: ${known.join(', ')}`}`,
          });
          ok = false;
        }
      }
      for (const [k, field] of Object.entries(fields)) {
        const p = path ? `${path}.${k}` : k;
        const v = value[k];
        if (v === undefined || v === null) {
          if (field.presence === 'required') {
            problems.push({ path: p, message: `missing; expected ${field.schema.form} (${field.doc})` });
            ok = false;
          } else if (field.presence === 'defaulted') {
            const d = field.schema.check(structuredClone(field.default), p, problems);
            if (d === undefined) ok = false;
            else out[k] = d;
          }
          continue;
        }
        const r = field.schema.check(v, p, problems);
        if (r === undefined) ok = false;
        else out[k] = r;
      }
      for (const rule of rules) checkRule(rule, value, path, problems);
      return ok ? (out as ObjectOf<F>) : undefined;
    },
    rows(path) {
      const rows: DocRow[] = [];
      for (const [k, field] of Object.entries(fields)) {
        const p = path ? `${path}.${k}` : k;
        rows.push({
          path: p,
          form: field.schema.form,
          required: field.presence === 'required',
          default: showDefault(field.default),
          doc: field.doc,
        });
        if (field.schema.rows) rows.push(...field.schema.rows(p));
      }
      return rows;
    },
    json() {
      const properties: Record<string, JsonSchema> = {};
      for (const [k, field] of Object.entries(fields)) {
        const own = field.schema.json();
        properties[k] = {
          ...(field.presence === 'required' ? own : nullable(own)),
          description: `${field.doc}. Expected: ${field.schema.form}.`,
          ...(field.default !== undefined ? { default: field.default } : {}),
        };
      }
      const required = Object.entries(fields).filter(([, f]) => f.presence === 'required').map(([k]) => k);
      return {
        type: 'object',
        properties,
        ...(required.length ? { required } : {}),
        additionalProperties: false,
        ...(rules.length === 1 ? ruleJson(rules[0]!) : rules.length ? { allOf: rules.map(ruleJson) } : {}),
      };
    },
  };
}

/** Markdown table documenting a schema: one row per key path. */
export function renderDocs(schema: Schema<unknown>): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const lines = ['| key | form | default | meaning |', '|---|---|---|---|'];
  for (const r of schema.rows?.('') ?? []) {
    const def = r.required ? '**required**' : r.default !== undefined ? `\`${esc(r.default)}\`` : '';
    lines.push(`| \`${r.path}\` | ${esc(r.form)} | ${def} | ${esc(r.doc)} |`);
  }
  return lines.join('\n');
}

/**
 * The JSON Schema (draft-07) of a whole document, for YAML language servers (`# yaml-language-server:
 * $schema=...`) and JSON Schema validators. Same keys, forms, defaults and cross-key rules as the loader;
 * what it cannot say (a `string({ check })` refinement, checks done in code after the schema) the loader
 * still refuses when a command runs.
 */
export function renderJsonSchema(schema: Schema<unknown>, meta: { title: string; description: string }): JsonSchema {
  return { $schema: 'http://json-schema.org/draft-07/schema#', title: meta.title, description: meta.description, ...schema.json() };
}
