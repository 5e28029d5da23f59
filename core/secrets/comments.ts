// Where the comments of a YAML text belong, so that they survive a decrypt/encrypt round trip the way sops
// keeps them (stores/yaml/store.go: go-yaml's head and foot comments become comment items before, between
// and after the items of a map or list; a comment after a value on its line is an "inline" one, before that
// item). Placement is by position and indentation: a comment belongs before the next item when it is not
// indented deeper than that item, else at the end of the deepest map or list it is indented into.
import { Parser } from 'yaml';
import type { CommentNode, ListNode, MapNode } from './tree.ts';

export interface CommentToken {
  offset: number;
  line: number;
  col: number;
  /** The text after "#". */
  text: string;
  /** Nothing but blanks before it on its line. */
  fullLine: boolean;
}

/** A map or list of the tree, with the column of its items and the item holding it. */
export interface Branch {
  node: MapNode | ListNode;
  col: number;
  parent?: Anchor;
}

/** Where an item (a map key, or a list item's "-") stands. */
export interface Anchor {
  offset: number;
  line: number;
  col: number;
  branch: Branch;
  index: number;
  /** Its value is on the same line (a scalar): a comment after it on that line is an inline one. */
  scalarOnLine: boolean;
}

/** Line and column (0-based) of offsets in `text`. */
export function positions(text: string): (offset: number) => { line: number; col: number } {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') starts.push(i + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, col: offset - starts[lo]! };
  };
}

/** Every comment of a YAML text, in order (the parser's tokens: a "#" inside a string or block scalar is text). */
export function commentTokens(text: string): CommentToken[] {
  const at = positions(text);
  const found: { offset: number; source: string }[] = [];
  const scan = (x: unknown): void => {
    if (!x || typeof x !== 'object') return;
    if (Array.isArray(x)) {
      for (const y of x) scan(y);
      return;
    }
    const t = x as { type?: unknown; offset?: unknown; source?: unknown };
    if (t.type === 'comment' && typeof t.offset === 'number' && typeof t.source === 'string') found.push({ offset: t.offset, source: t.source });
    for (const v of Object.values(x)) if (typeof v === 'object') scan(v);
  };
  for (const doc of new Parser().parse(text)) scan(doc);
  const seen = new Set<number>();
  return found
    .filter((c) => !seen.has(c.offset) && seen.add(c.offset))
    .sort((a, b) => a.offset - b.offset)
    .map((c) => {
      const { line, col } = at(c.offset);
      const lineStart = c.offset - col;
      return { offset: c.offset, line, col, text: c.source.replace(/^#/, '').replace(/\r$/, ''), fullLine: text.slice(lineStart, c.offset).trim() === '' };
    });
}

function attach(branch: Branch, before: number, token: CommentToken, inline = false): void {
  const c: CommentNode = { before, text: token.text, ...(inline ? { inline: true } : {}) };
  (branch.node.comments ??= []).push(c);
}

const size = (b: Branch) => (b.node.kind === 'map' ? b.node.entries.length : b.node.items.length);

/** Attach each comment to the map or list it belongs to (anchors in document order). */
export function placeComments(tokens: CommentToken[], anchors: Anchor[], root: Branch): void {
  for (const t of tokens) {
    if (!t.fullLine) {
      const onLine = anchors.filter((a) => a.line === t.line && a.offset < t.offset).at(-1);
      if (onLine) {
        attach(onLine.branch, onLine.index, t, onLine.scalarOnLine);
        continue;
      }
    }
    const next = anchors.find((a) => a.offset > t.offset);
    const prev = anchors.filter((a) => a.offset < t.offset).at(-1);
    if (next && (t.col <= next.col || !prev)) {
      attach(next.branch, next.index, t);
      continue;
    }
    if (!prev) {
      attach(root, size(root), t);
      continue;
    }
    let b = prev.branch;
    while (b.col > t.col && b.parent) b = b.parent.branch;
    attach(b, size(b), t);
  }
}
