// How deep a YAML or JSON file nests, read before any parser: the yaml library recurses once per level and a file
// nested about a thousand levels deep exhausts it (a crash, not an error). Every YAML file ops reads from a user goes
// through refuseDeepNesting first: secrets files, .sops.yaml, environment.yml, initdata. And how many aliases one
// may expand (an alias bomb), for the readers that expand them: environment.yml (the yaml library's maxAliasCount)
// and the sops files' tree (tree-parse.ts); the others read the document without expanding (initdata, .sops.yaml).
import { OpsError } from './errors.ts';

/**
 * How deep a YAML or JSON text may nest maps and lists. The YAML parser recurses once per level: near 1,000 levels it
 * runs out of stack, which it reported as "too many aliases" or, called deeper, ended the process (V8 out of memory
 * compiling a regular expression). go-yaml (so sops) stops at 10,000 levels ("exceeded max depth"); no secrets or
 * config file needs more than a handful, so ops states a lower limit and refuses past it before parsing.
 */
export const MAX_NESTING = 100;

/**
 * An upper bound on how deep `text` (YAML or JSON) nests maps and lists, without parsing it: the indentation levels
 * open on a line, each compact `- `/`? ` starting it, and the flow collections ([ and { opening where a value or
 * key starts) open there; quoted strings, block scalars' text (| and >) and comments skipped. Never below the depth a parser finds, so a text it
 * passes cannot exhaust the parser; it may count a level more than YAML would (a `[` in a plain value after ": ").
 * Linear in the text's length. Pure.
 */
export function nestingDepth(text: string): number {
  const indents: number[] = [];
  let flow = 0;
  let max = 0;
  let quote: '"' | "'" | undefined;
  let scalarAt: number | undefined; // the indentation of the line starting a block scalar (| or >): its text follows
  for (const line of text.split('\n')) {
    let i = 0;
    if (!quote) {
      while (line[i] === ' ') i++;
      if (i === line.length || line[i] === '#' || line[i] === '\r') continue;
      if (scalarAt !== undefined && i > scalarAt) continue; // a line of the block scalar's text
      scalarAt = undefined;
      if (flow === 0) {
        while (indents.length && indents.at(-1)! >= i) indents.pop();
        indents.push(i);
      }
    }
    let block = indents.length;
    let prev = ''; // the last character before this one, spaces aside ('' at the start of the line)
    for (; i < line.length; i++) {
      const c = line[i]!;
      if (quote) {
        if (c === '\\' && quote === '"') i++;
        else if (c === quote) quote = undefined;
        prev = c;
        continue;
      }
      if (c === ' ' || c === '\t') continue;
      if (c === '#' && (i === 0 || line[i - 1] === ' ' || line[i - 1] === '\t')) break;
      const starts = prev === '' || prev === ':' || prev === ',' || prev === '[' || prev === '{' || prev === '-' || prev === '?';
      if ((c === '"' || c === "'") && starts) quote = c;
      else if ((c === '-' || c === '?') && flow === 0 && (prev === '' || prev === '-' || prev === '?') && (line[i + 1] === ' ' || i + 1 === line.length)) block++;
      else if ((c === '[' || c === '{') && starts) max = Math.max(max, block + ++flow);
      else if ((c === ']' || c === '}') && flow > 0) flow--;
      else if (c === '[' || c === '{') {
        prev = 'x'; // inside a plain value: no collection, nor what follows it
        continue;
      }
      else if ((c === '|' || c === '>') && flow === 0 && starts && /^[|>][0-9+-]*\s*(#.*)?\r?$/.test(line.slice(i))) {
        scalarAt = indents.at(-1);
        break;
      }
      prev = c;
    }
    max = Math.max(max, block);
  }
  return max;
}

/**
 * Refuse `text` (from `file`) nested deeper than MAX_NESTING (nestingDepth), before any parser reads it.
 * @throws OpsError naming the file and the limit.
 */
export function refuseDeepNesting(text: string, file: string): void {
  if (nestingDepth(text) > MAX_NESTING) {
    throw new OpsError(`${file} nests maps or lists more than ${MAX_NESTING} levels deep: ops reads no file nested so deep (a secrets or config file needs a few levels); nothing was changed`, `check that it is the file meant (a damaged or generated file?), and flatten it`);
  }
}

/**
 * How many alias expansions a YAML file ops reads may make (the yaml library's `maxAliasCount`: each use of an
 * alias, times the aliases inside what it repeats); the same limit for every reader that expands aliases. The
 * library's default, 100, refuses a legitimate file (120 hosts each `host_key: *key`); this still stops an alias
 * bomb ("billion laughs": nested aliases that expand into a huge value, which ran out of memory) long before it
 * costs memory.
 */
export const MAX_ALIASES = 10_000;

/** The refusal of `file` for expanding more than MAX_ALIASES aliases, one line and a hint; nothing of its text quoted. */
export function tooManyAliases(file: string): OpsError {
  return new OpsError(
    `${file} expands YAML aliases (*name) more than ${MAX_ALIASES} times, counting those inside what an alias repeats (an alias bomb?): ops reads no such file; nothing was changed`,
    'write some values out instead of aliasing them',
  );
}
