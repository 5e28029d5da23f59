// How deep a YAML or JSON file nests, read before any parser: the yaml library recurses once per level and a file
// nested about a thousand levels deep exhausts it (a crash, not an error). Every YAML file ops reads from a user goes
// through refuseDeepNesting first: secrets files, .sops.yaml, environment.yml, initdata. And how many values its
// aliases may make once copied (an alias bomb ran out of memory): every read that builds a file's values, or hands it
// to a loader that does, goes through refuseAliasBomb (sops files' tree, .sops.yaml, environment.yml, initdata).
import { type Alias, type Document, isAlias, isMap, isSeq, visit } from 'yaml';
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
 * How many values a YAML file ops reads may make by copying aliases: each use of an alias makes a copy of what it
 * names, those inside it copied too. Thousands of entries sharing one anchor (`<<: *user`, 120 hosts' `*key`) make
 * tens of thousands; an alias bomb ("billion laughs": nested aliases, 10 uses of 10 uses of ...) makes hundreds of
 * millions, which ran the process out of memory. One limit for every reader (refuseAliasBomb).
 */
export const MAX_ALIAS_COPIES = 1_000_000;

/**
 * What each alias of a parsed YAML document names: the last node before it holding that anchor (YAML 1.2,
 * 7.1 "Alias Nodes"), undefined when none does; found in one pass in document order. Alias.resolve searches the
 * whole document on each call, so a file sharing one anchor among thousands of entries took minutes to read.
 */
export function aliasTargets(doc: Document.Parsed | Document): Map<Alias, unknown> {
  const named = new Map<string, unknown>();
  const targets = new Map<Alias, unknown>();
  visit(doc, (_, node) => {
    if (isAlias(node)) targets.set(node, named.get(node.source));
    else if ((node as { anchor?: string } | null)?.anchor) named.set((node as { anchor: string }).anchor, node);
  });
  return targets;
}

/**
 * Refuse parsed document `doc` of `file` when its aliases would make more than MAX_ALIAS_COPIES values once built,
 * counted without building them (linear in the document): every YAML read of a user file calls it before its values
 * are built (or before the text goes to a loader that builds them: initdata's PyYAML). An alias inside what it names
 * (recursion) counts as nothing more. Recursion follows the document's nesting (refuseDeepNesting bounds it).
 * @throws OpsError naming the file and the aliases, one line; nothing of its text quoted.
 */
export function refuseAliasBomb(doc: Document.Parsed | Document, file: string): void {
  const targets = aliasTargets(doc);
  const size = new Map<unknown, number>(); // values a node makes when built, its aliases' copies included
  let copies = 0;
  // post-order in document order: what an alias names (before it) is counted before the alias (unless it holds it)
  const count = (node: unknown): number => {
    let n = 1;
    if (isAlias(node)) {
      n = size.get(targets.get(node)) ?? 0;
      copies += n;
      if (copies > MAX_ALIAS_COPIES)
        throw new OpsError(
          `${file} makes more than ${MAX_ALIAS_COPIES} values by copying YAML aliases (*name), counting those inside what an alias repeats (an alias bomb?): ops reads no such file; nothing was changed`,
          'write some values out instead of aliasing them',
        );
    } else if (isMap(node)) for (const pair of node.items) n += count(pair.key) + count(pair.value);
    else if (isSeq(node)) for (const item of node.items) n += count(item);
    else if (node === null || node === undefined) return 0;
    size.set(node, n);
    return n;
  };
  count(doc.contents);
}
