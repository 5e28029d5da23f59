// Regular expressions written for sops are Go regexps (RE2 syntax: `(?i)`, `\A`, `\z`, `[[:alpha:]]`, `\pL`...),
// matched with Go's regexp.Match (anywhere in the text). JavaScript's RegExp reads some of them differently or
// not at all, so they are compiled with re2js, a port of RE2: the same syntax and meaning as in sops.
import { RE2JS } from 're2js';

export interface GoRegexp {
  /** regexp.Match: does the pattern match anywhere in `text`? */
  test(text: string): boolean;
}

/** Compile a Go regexp; throws a plain Error with RE2's own message when it is not one. */
export function goRegexp(source: string): GoRegexp {
  const re = RE2JS.compile(source);
  return { test: (text) => re.matcher(text).find() };
}
