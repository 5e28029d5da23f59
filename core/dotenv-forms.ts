// The ways the release's .env writes a value after `KEY=`: its quotings and escapes, in one place. The writer
// (core/dotenv.ts, encodeValue) chooses among them for the declared readers; masking (core/secrets/parts.ts,
// printedForms) registers the text each one makes of a secret, since a build or hook that prints the .env shows
// the value so written, and none of the other printers writes it that way (a tab or lone carriage return left raw
// beside a `\"` or `\\`; a backslash left single where JSON doubles it beside a `\r`).

/** One way of writing a value after `KEY=`. */
export interface Form {
  name: string;
  quote: '' | "'" | '"' | '`';
  /** `\` → `\\` and the quote → `\` + quote (python-dotenv's escapes). */
  backslashes?: boolean;
  /** `$` → `\$` (dotenv-expand's escape). */
  dollars?: boolean;
  /** line feed → `\n`, carriage return → `\r` (double quotes). */
  newlines?: boolean;
}

/** Tried in this order: the first that every declared reader reads back exactly is written. */
export const FORMS: readonly Form[] = [
  { name: 'single-quoted', quote: "'" },
  { name: 'double-quoted with \\n for line breaks', quote: '"', newlines: true },
  { name: 'double-quoted', quote: '"' },
  { name: 'double-quoted with backslash escapes', quote: '"', backslashes: true, newlines: true },
  { name: 'single-quoted with backslash escapes', quote: "'", backslashes: true },
  { name: 'backtick-quoted', quote: '`' },
  { name: 'unquoted', quote: '' },
  { name: 'single-quoted with \\$', quote: "'", dollars: true },
  { name: 'double-quoted with \\n and \\$', quote: '"', newlines: true, dollars: true },
  { name: 'double-quoted with \\$', quote: '"', dollars: true },
  { name: 'backtick-quoted with \\$', quote: '`', dollars: true },
  { name: 'unquoted with \\$', quote: '', dollars: true },
];

/** `value` with the escapes of `form`, without its quotes. Pure. */
function escaped(value: string, form: Form): string {
  let s = value;
  if (form.backslashes) {
    s = s.replace(/\\/g, '\\\\');
    if (form.quote) s = s.split(form.quote).join(`\\${form.quote}`);
  }
  if (form.dollars) s = s.replace(/\$/g, '\\$');
  if (form.newlines) s = s.replace(/\n/g, '\\n').replace(/\r/g, '\\r');
  return s;
}

/** The text after `KEY=` for `value` written in `form`, quotes included. Pure. */
export function writeForm(value: string, form: Form): string {
  return `${form.quote}${escaped(value, form)}${form.quote}`;
}

/**
 * Every text the .env may hold of `value` between its quotes, other than the value itself (each form's escapes,
 * FORMS): what masking registers beside the value. At most five, one for each set of escapes. Pure.
 */
export function dotenvWrittenForms(value: string): string[] {
  const out = new Set<string>();
  for (const form of FORMS) {
    const text = escaped(value, form);
    if (text !== value) out.add(text);
  }
  return [...out];
}
