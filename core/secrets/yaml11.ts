// What a plain YAML scalar means to a YAML 1.1 reader (PyYAML's yaml.safe_load, what the sample app's initdata
// loader uses; Ruby's Psych; SnakeYAML), so that a string is never written bare where such a reader would take it
// for a number, a date, a boolean, null, a merge key or the value tag. The types and their regular expressions
// are those of the YAML 1.1 type repository (https://yaml.org/type/: bool, int, float, null, timestamp, merge,
// value). Most come from the yaml library's own yaml-1.1 schema (the tests its stringifier uses to quote a string
// when it writes YAML 1.1); the repository's types it lacks or reads narrower are added below.
import { Schema } from 'yaml';

const YAML11 = new Schema({ schema: 'yaml-1.1', merge: true });
const STR_TAG = 'tag:yaml.org,2002:str';

// The implicit (default) scalar types of the yaml library's yaml-1.1 schema, as its stringifier tests a string
// before writing it plain: null, bool (y/n, yes/no, on/off, true/false), int (binary, octal, decimal and base 60,
// with underscores), float (.inf, .nan, exponent, base 60), timestamp and merge (`<<`).
const LIBRARY_TESTS: RegExp[] = YAML11.tags.flatMap((t) => (t.default && t.tag !== STR_TAG && 'test' in t && t.test instanceof RegExp ? [t.test] : []));

// https://yaml.org/type/timestamp.html, as PyYAML's resolver reads it: the fraction may have no digits
// ("10:00:00.") and the zone's hour is any one or two digits ("+35"; PyYAML then fails to load), both of which
// the library's test leaves out; a space or tab may stand before any zone, as the repository's own example has it.
const TIMESTAMP = /^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$/;

// https://yaml.org/type/value.html: a lone "=" is the value key; PyYAML's safe_load refuses it as a value
// ("could not determine a constructor for the tag 'tag:yaml.org,2002:value'").
const VALUE = /^=$/;

// https://yaml.org/type/merge.html: "<<" is the merge key (also in the library's schema; kept here so that
// losing the library's merge option cannot drop it).
const MERGE = /^<<$/;

/**
 * Whether a YAML 1.1 reader takes `s`, written as a plain (unquoted) scalar, for anything but this very string
 * (a number, a date, a boolean, null, a merge key or the value tag). Such a string must be quoted. Over-quoting
 * is harmless: a quoted scalar is a string to every reader. Pure.
 */
export function yaml11Retypes(s: string): boolean {
  return s === '' || TIMESTAMP.test(s) || VALUE.test(s) || MERGE.test(s) || LIBRARY_TESTS.some((re) => re.test(s));
}
