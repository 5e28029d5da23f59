// Mappings of the schema language (schema.ts): known keys (an unknown one is refused with the closest known
// name), defaults, rules across keys (exactly one of, requires), and the renderings of a whole schema: the
// reference table and the JSON Schema.
import { type DocRow, type Field, type JsonSchema, type Presence, type Problem, type Schema, closest, fail, isMapping } from './schema.ts';

// where they were first defined, and imported from by the CLI and the secrets commands
export { closest, didYouMean, distance } from './schema.ts';

type Fields = Record<string, Field<any, Presence>>;

type Value<F> = F extends Field<infer T, Presence> ? T : never;

type ObjectOf<F extends Fields> = {
  [K in keyof F as F[K]['presence'] extends 'optional' ? never : K]: Value<F[K]>;
} & {
  [K in keyof F as F[K]['presence'] extends 'optional' ? K : never]?: Value<F[K]>;
};

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
 * What to say of a plain value given where a mapping is expected, when it is the value of the mapping's one required
 * key (`tls: letsencrypt` for `tls: { mode: letsencrypt }`, `bastion: jump.example.org` for its address): the mapping to
 * write; '' otherwise.
 */
function scalarForMapping(fields: Fields, path: string, value: unknown): string {
  if (!['string', 'number', 'boolean'].includes(typeof value)) return '';
  const required = Object.entries(fields).filter(([, f]) => f.presence === 'required');
  if (required.length !== 1) return '';
  const [key, field] = required[0]!;
  if (field.schema.check(value, key, []) === undefined) return '';
  const own = path.replace(/^.*\./, '') || path;
  return ` (its ${key}? write ${own}: { ${key}: ${typeof value === 'string' ? JSON.stringify(value) : String(value)} })`;
}

/**
 * A mapping with known keys: unknown keys, missing required keys and wrong types are all reported.
 * `rules` are checked on the mapping as written (their problems are reported; the value is still
 * returned, so that checks across the whole document still run).
 */
export function object<F extends Fields>(fields: F, options: string | { form?: string; rules?: Rule[]; extensions?: RegExp } = {}): Schema<ObjectOf<F>> {
  const { form = 'a mapping', rules = [], extensions } = typeof options === 'string' ? { form: options } : options;
  const known = Object.keys(fields);
  return {
    form,
    check(value, path, problems) {
      if (!isMapping(value)) return fail(problems, path, form, value, scalarForMapping(fields, path, value));
      const out: Record<string, unknown> = {};
      let ok = true;
      for (const k of Object.keys(value)) {
        // Extension keys (`extensions`) are the user's own: read by nobody, kept out of the result.
        if (!known.includes(k) && !extensions?.test(k)) {
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
        ...(extensions ? { patternProperties: { [extensions.source]: {} } } : {}),
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
