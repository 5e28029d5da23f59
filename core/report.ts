// One reporter for every operation: a terminal (aligned, optionally coloured lines) or GitHub Actions (groups,
// masks, job summary, outputs: ActionsReporter in core/action.ts, so the CLI never loads @actions/core).
// Everything printed goes through `redact`, so a secret registered with `mask` never reaches a log, even where
// the runner's own masking does not apply (local runs), then through showControls (core/errors.ts), so an escape
// sequence in text from outside (an app's log line, a commit subject) is shown, never acted on by the terminal.
import { AsyncLocalStorage } from 'node:async_hooks';
import { fstatSync, readFileSync, statSync, writeSync } from 'node:fs';
import { DUMP_RUN, dumpLine, MAX_ENCODED_PART, MIN_MASKED_LENGTH, SHORT_SECRET_LENGTH, byteDumps, isWeakPart, percentEscapedChar, secretParts } from './secrets/parts.ts';
import { describeLowLevel, markOwnOutput, printableLine, showControls } from './errors.ts';
import { inBackgroundOf, runHandlesSignals, signalExit, terminalHasTostop } from './signals.ts';

export type Stream = 'stdout' | 'stderr';

export interface Reporter {
  /**
   * Register a secret value: every later print replaces it with ***, and each of its lines, and its parts that
   * may be printed alone: a URL's password (as written and percent-decoded), the strings of a JSON document,
   * and those as programs print them quoted (JSON, repr, quoted for a shell: core/secrets/parts.ts printedForms);
   * each of them also in any URL-encoding (Masker).
   */
  mask(value: string): void;
  /**
   * Say that `text` is no secret though a secret value may occur in it: a key name or key path of a secrets file
   * (sops keeps them in clear text), which ops's messages name. A secret's occurrence lying wholly inside one of
   * its occurrences is left as it is (`passwords.admin@example.org` stays whole when a value is `admin`); anywhere
   * else it is masked as ever.
   */
  allow?(text: string): void;
  redact(text: string): string;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Run `fn` inside a titled, timed group (an Actions log group, or a heading on a terminal). */
  group<T>(title: string, fn: () => Promise<T>): Promise<T>;
  /** One line of output from a remote command, prefixed with the host it came from. */
  line(host: string, text: string, stream: Stream): void;
  /**
   * Markdown for the job summary (Actions) or the end of the run (terminal), its values from outside written with
   * `values` (the text is built once, for this sink).
   */
  summary(markdown: string): Promise<void>;
  /** How `summary`'s text writes values from outside: maskedMarkdown (a job summary) or plainValues (a terminal). */
  readonly values: ValueFormat;
  /** A named result: a step output in Actions, ignored on a terminal. */
  output(name: string, value: string): void;
}

const MIN_SECRET_LENGTH = MIN_MASKED_LENGTH; // masking "a" or "1" would shred every log line

/**
 * Ops's own text in its messages, told apart from what they quote. A value is masked wherever it occurs, so a weak
 * one (core/secrets/weak.ts: "sops", "deploy", "admin") also occurs in ops's fixed words ("secrets.sops.yaml", "every
 * deploy refuses") and in key names ("admin_client_id", a key `admin` holding "admin"), where it is not the value:
 * masking it there only garbles the message. The rule: an occurrence of a secret is left as it is only where it lies
 * wholly inside text ops marked as its own when it composed the message (own: a template's fixed chunks; keyName: a
 * key name or path), or inside a longer key name or path it was told of (Reporter.allow: `passwords.admin@example.org`
 * stays whole). Everywhere else (what a message quotes: a value, a command's output, a host's lines, a config value)
 * it is masked as ever. A mark counts only around text registered as such: a fixed chunk of an `own` template (program
 * text, registered as it is used) or a key name or path given to Reporter.allow; anything else marked is masked as
 * if unmarked, so text from elsewhere holding the mark characters unmasks nothing. In ops's fixed words only weak
 * values are kept so (parts.ts isWeakPart: short, or a common word, the ones that collide with them); a message whose
 * fixed words hold a real secret, or one a secret straddles a mark's edge of, is masked as if there were no marks.
 * Marks are dropped from every printed text (Masker.redact).
 */
const MARK_OPEN = '\uE000';
const MARK_CLOSE = '\uE001';
const MARKED = /\uE000([^\uE000\uE001]*)\uE001/g;
/** The fixed chunks of own templates used so far: program text, never a secret. */
const OWN_TEXT = new Set<string>();

/**
 * A message from a template whose fixed chunks are ops's own text (see MARK_OPEN): `own\`every deploy refuses ${x}\``.
 * The values put in are not marked (a key name is, with keyName). The result holds marks: print it through a
 * reporter (redact drops them), or take `unmarked` of it.
 */
export function own(strings: TemplateStringsArray, ...values: unknown[]): string {
  let out = '';
  strings.forEach((chunk, i) => {
    if (i > 0) out += String(values[i - 1]);
    if (chunk.length < MIN_SECRET_LENGTH) out += chunk; // nothing a masked value fits in
    else {
      OWN_TEXT.add(chunk);
      out += `${MARK_OPEN}${chunk}${MARK_CLOSE}`;
    }
  });
  return out;
}

/** A key name or key path in a message, marked as such (see MARK_OPEN): left whole when it is one Reporter.allow was told of. */
export function keyName(name: string): string {
  return `${MARK_OPEN}${name}${MARK_CLOSE}`;
}

/** `text` without the marks of own and keyName (what a reporter prints, before masking). */
export function unmarked(text: string): string {
  return text.includes(MARK_OPEN) ? text.replace(/[\uE000\uE001]/g, '') : text;
}

/**
 * FNV-1a over UTF-16 code units, one unit at a time (the hashes of a string's prefixes come in passing), kept to
 * 30 bits so that V8 holds every hash as a small integer, never a boxed number.
 */
const FNV_OFFSET = 0x811c9dc5 & 0x3fffffff;
const fnvStep = (hash: number, code: number): number => Math.imul(hash ^ code, 0x01000193) & 0x3fffffff;
/** Filter bits per secret prefix held: with two bits each, about 1.4% of strings that start no secret pass. */
const FILTER_BITS_PER_PREFIX = 16;
const FILTER_MAX_LOG2 = 27; // 16 MiB at most

/**
 * Holds the registered secrets and redacts them; shared by both reporters. Redacting a line costs about its
 * length times the number of distinct secret lengths, not the number of secrets: a large encrypted file
 * (initdata: thousands of users, each value masked) must not make every log line of the run slow.
 *
 * Every secret is also masked in any of its URL-encodings: each of its characters either as itself or as the
 * %XX escapes of its UTF-8 bytes (hex digits in either case), a space also as "+". That covers, whatever mix of
 * characters they leave alone, RFC 3986 percent-encoding as Python's urllib.parse.quote (any `safe`) and
 * quote_plus write it, SQLAlchemy's URL.render_as_string (which leaves a space as it is), JavaScript's
 * encodeURIComponent, and lowercase-hex encoders. Only a line holding a "%" or a "+" is read for them (urlForms),
 * at a cost of the same order as the exact lookup. The minimum length applies to the secret, not to its forms.
 */
/**
 * The URL-encoded forms of a secret most encoders write (each at most once, never the secret itself): RFC 3986
 * unreserved characters kept (Python's urllib.parse.quote with safe=''), "/" kept too (quote's default), and
 * JavaScript's encodeURIComponent (which also keeps !'()*); each also with a space as "+" (quote_plus,
 * URLSearchParams). Uppercase hex, as all of them write it, and lowercase (hand-rolled encoders, some loggers). For
 * masks that see only exact strings (GitHub's add-mask, the hosts' mask_text); Masker.redact reads every form itself.
 */
export function urlEncodedForms(secret: string): string[] {
  const encode = (keep: RegExp) =>
    [...secret].map((c) => (keep.test(c) ? c : [...Buffer.from(c)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''))).join('');
  const forms = [/^[A-Za-z0-9._~-]$/, /^[A-Za-z0-9._~/-]$/, /^[A-Za-z0-9._~!'()*-]$/].map(encode);
  const spaced = forms.flatMap((f) => [f, f.replace(/%20/g, '+')]);
  return [...new Set([...spaced, ...spaced.map((f) => f.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()))])].filter((f) => f !== secret);
}

/**
 * Every exact string masking one secret value means, for a mask that sees exact strings only (GitHub's add-mask,
 * the hosts' mask_text: core/steps/masks.ts): each part Masker.add keeps (the value, each of its lines, a URL's
 * password, the strings of a JSON document, as programs print them quoted, quoted for a shell, HTML-escaped, cut by
 * pydantic or on one line: core/secrets/parts.ts printedForms; trimmed, MIN_MASKED_LENGTH characters at least) and the URL-encodings
 * of each most encoders write (urlEncodedForms), for parts of at most MAX_ENCODED_PART characters.
 */
export function exactForms(parts: string[]): string[] {
  return [...new Set(parts.flatMap((v) => [v, ...(v.length <= MAX_ENCODED_PART ? urlEncodedForms(v) : [])]))];
}


/**
 * Every exact string masking `value` means (exactForms of its maskedParts) and its byte dumps (parts.ts byteDumps:
 * `<Buffer 5a 71 …>`, `5a:71:…`, `[90, 113, …]`, which the Masker reads back to hex instead; both for parts of at most
 * MAX_ENCODED_PART): what the hosts mask
 * (core/steps/masks.ts releaseMasks) and GitHub's add-mask is given.
 */
export function exactFormsOf(value: string): string[] {
  return [...new Set([...exactForms(maskedParts(value)), ...byteDumps(value)])];
}

/** The parts of `value` Masker.add registers (each trimmed, MIN_MASKED_LENGTH characters at least): see there. */
export function maskedParts(value: string): string[] {
  const out = new Set<string>();
  for (const v of secretParts(value).flatMap((p) => [p, ...p.split(/\r?\n/)])) {
    const t = v.trim();
    if (t.length >= MIN_SECRET_LENGTH) out.add(t);
  }
  return [...out];
}

/** The shortest fold form (Masker.hideFolds): a weak value's length (parts.ts SHORT_SECRET_LENGTH). */
const FOLD_MIN = SHORT_SECRET_LENGTH;
/** What a fold puts around a piece of a line (Masker.hideFolds): white space, quotes, brackets, "|", ",", "\\". */
const FOLD_FRAME = /[\s'"`()[\]{}<>|,\\]/;
/** A line of `od -c` (its offset, octal, decimal or hex, then a byte in each 4 columns): its offset is frame too (hideFolds). */
const OD_CHARS = /^([0-9a-f]{6,7})(?: {3}[^ ]| {2}\\[0-9a-z]| [0-7]{3}| {4})+$/;


/** Add `t` to the set of strings of its length in `map`; true when that length was not there yet. */
function addByLength(map: Map<number, Set<string>>, t: string): boolean {
  const same = map.get(t.length);
  if (same) {
    same.add(t);
    return false;
  }
  map.set(t.length, new Set([t]));
  return true;
}

/** The keys of `map`, ascending. */
function sortedKeys(map: Map<number, unknown>): number[] {
  return [...map.keys()].sort((a, b) => a - b);
}

export class Masker {
  /** Every secret, with the order it was registered in (ties between equal lengths go by it). */
  private readonly secrets = new Map<string, number>();
  /** Secrets by length, and the lengths in ascending order. */
  private readonly byLength = new Map<number, Set<string>>();
  private lengths: number[] = [];
  /** The first MIN_SECRET_LENGTH characters of every secret: where none starts, nothing is looked up. */
  private readonly starts = new Set<string>();
  /** Secrets holding "*": the "***" a replacement puts in can complete one. */
  private readonly starred: string[] = [];
  /** The secrets a printer's cut may show the start or end of (not weak: see hideCut), by their first and last MIN_SECRET_LENGTH characters. */
  private readonly cutByStart = new Map<string, string[]>();
  private readonly cutByEnd = new Map<string, string[]>();
  /** The length of the longest secret. */
  private longest = 0;
  /**
   * A Bloom filter of the hashes of every prefix of every secret (two bits each; it grows with them): reading
   * a URL-encoded form, a reading stops as soon as what it decoded starts no secret.
   */
  private filter = new Int32Array(1 << 11);
  private filterLog2 = 16;
  private prefixes = 0;
  /** The hashes of the secrets themselves: a decoded reading is looked up only when its hash is one of them. */
  private readonly wholes = new Set<number>();
  /** The fold forms (hideFolds): each secret that is not weak with its white space taken out, FOLD_MIN long at least, by length; their first FOLD_MIN characters. */
  private readonly folds = new Map<number, Set<string>>();
  private foldLengths: number[] = [];
  private readonly foldStarts = new Set<string>();
  /** Register a value and its parts; returns what was new (each part and each of its lines, trimmed). */
  add(value: string): string[] {
    const added: string[] = [];
    for (const t of maskedParts(value).flatMap((p) => [p, ...markdownForms(p)])) {
      if (!this.secrets.has(t)) {
        this.secrets.set(t, this.secrets.size);
        if (addByLength(this.byLength, t)) this.lengths = sortedKeys(this.byLength);
        this.starts.add(t.slice(0, MIN_SECRET_LENGTH));
        if (t.includes('*')) this.starred.push(t);
        const fold = t.replace(/\s+/g, '');
        if (!isWeakPart(t) && fold.length >= FOLD_MIN) {
          if (addByLength(this.folds, fold)) this.foldLengths = sortedKeys(this.folds);
          this.foldStarts.add(fold.slice(0, FOLD_MIN));
        }
        if (!isWeakPart(t)) {
          for (const [map, key] of [[this.cutByStart, t.slice(0, MIN_SECRET_LENGTH)], [this.cutByEnd, t.slice(-MIN_SECRET_LENGTH)]] as const) {
            const list = map.get(key);
            if (list) list.push(t);
            else map.set(key, [t]);
          }
        }
        this.longest = Math.max(this.longest, t.length);
        this.prefixes += t.length;
        if (this.prefixes * FILTER_BITS_PER_PREFIX > 2 ** this.filterLog2 && this.filterLog2 < FILTER_MAX_LOG2) {
          while (this.prefixes * FILTER_BITS_PER_PREFIX > 2 ** this.filterLog2 && this.filterLog2 < FILTER_MAX_LOG2) this.filterLog2++;
          this.filter = new Int32Array(2 ** (this.filterLog2 - 5));
          for (const s of this.secrets.keys()) this.remember(s);
        } else this.remember(t);
        added.push(t);
      }
    }
    return added;
  }
  /** Record a secret's prefixes in the filter, and its hash. */
  private remember(secret: string): void {
    let hash = FNV_OFFSET;
    for (let k = 0; k < secret.length; k++) {
      hash = fnvStep(hash, secret.charCodeAt(k));
      const shift = 32 - this.filterLog2;
      const a = Math.imul(hash, 0x9e3779b1) >>> shift;
      const b = Math.imul(hash, 0x2c1b3c6d) >>> shift;
      this.filter[a >>> 5]! |= 1 << (a & 31);
      this.filter[b >>> 5]! |= 1 << (b & 31);
    }
    this.wholes.add(hash);
  }
  /** Whether `hash` may be the hash of a secret's prefix (false: surely not). */
  private mayStart(hash: number): boolean {
    const shift = 32 - this.filterLog2;
    const a = Math.imul(hash, 0x9e3779b1) >>> shift;
    if ((this.filter[a >>> 5]! & (1 << (a & 31))) === 0) return false;
    const b = Math.imul(hash, 0x2c1b3c6d) >>> shift;
    return (this.filter[b >>> 5]! & (1 << (b & 31))) !== 0;
  }

  /**
   * Replace with *** every stretch of `text` that is a secret, as itself or URL-encoded. From each position the
   * text is read every way it can be: a character as itself, a "+" as a space, a %XX run as the one character it
   * encodes (percentEscapedChar); a reading ends as soon as what it decoded starts no secret (the prefix filter)
   * or is as long as the longest. No regular expression: the work is the text's length times the readings that
   * stay secret prefixes (about one, up to the longest secret's length, on real text), whatever the number of
   * secrets. Readings are kept as a tree (position, hash, parent, character read) and a secret's text is rebuilt
   * only when a reading's hash is a secret's.
   */
  private urlForms(text: string): string {
    const spans: [number, number][] = [];
    const at: number[] = [];
    const hash: number[] = [];
    const length: number[] = [];
    const parent: number[] = [];
    const read: string[] = [];
    const pending: number[] = [];
    const decoded = (r: number): string => {
      let s = '';
      for (; r > 0; r = parent[r]!) s = read[r]! + s;
      return s;
    };
    for (let start = 0; start < text.length; start++) {
      let end = -1;
      let count = 1;
      at[0] = start;
      hash[0] = FNV_OFFSET;
      length[0] = 0;
      parent[0] = -1;
      pending.push(0);
      while (pending.length > 0) {
        const r = pending.pop()!;
        const p = at[r]!;
        if (p >= text.length || length[r]! >= this.longest) continue;
        const code = text.charCodeAt(p);
        for (let way = 0; way < 3; way++) {
          let char: string;
          let width = 1;
          if (way === 0) char = text[p]!;
          else if (way === 1) {
            if (code !== 43) continue; // "+", a space
            char = ' ';
          } else {
            if (code !== 37) continue; // "%"
            const e = percentEscapedChar(text, p);
            if (!e) continue;
            [char, width] = e;
          }
          let h = hash[r]!;
          let k = 0;
          for (; k < char.length; k++) if (!this.mayStart((h = fnvStep(h, char.charCodeAt(k))))) break;
          if (k < char.length) continue;
          const n = count++;
          at[n] = p + width;
          hash[n] = h;
          length[n] = length[r]! + char.length;
          parent[n] = r;
          read[n] = char;
          if (p + width > end && this.wholes.has(h)) {
            const s = decoded(n);
            if (this.byLength.get(s.length)?.has(s)) end = p + width;
          }
          pending.push(n);
        }
      }
      if (end > start) spans.push([start, end]);
    }
    if (!spans.length) return text;
    // a form lying wholly inside a longer key name or path it was told of is left there, as the exact form is (redact)
    const kept = this.allowed.size ? this.allowedSpans(text, spans.map(([a, b]) => text.slice(a, b))) : [];
    return starred(
      text,
      spans.filter(([a, b]) => !kept.some(([x, y]) => x <= a && b <= y && y - x > b - a)),
    );
  }

  /** Text that is no secret though secrets occur in it (Reporter.allow): the key names and paths ops prints. */
  private readonly allowed = new Set<string>();
  /** Every text allow was told of, whatever its length: a keyName mark around one of them counts. */
  private readonly names = new Set<string>();
  allow(text: string): void {
    this.names.add(text);
    if (text.length > MIN_SECRET_LENGTH) this.allowed.add(text); // shorter, it holds no secret shorter than itself
  }

  /** Where the allowed strings holding one of `found` stand in `text`: [start, end) spans, unsorted. */
  private allowedSpans(text: string, found: string[]): [number, number][] {
    const spans: [number, number][] = [];
    for (const a of this.allowed) {
      // a key holding a secret whole, nothing more, or one that is itself a value, is no cover: such a value stays masked
      if (this.secrets.has(a) || !found.some((s) => s.length < a.length && a.includes(s))) continue;
      for (let i = text.indexOf(a); i !== -1; i = text.indexOf(a, i + 1)) spans.push([i, i + a.length]);
    }
    return spans;
  }

  /**
   * `text` with every secret masked (***), its marks (own, keyName) dropped: an occurrence wholly inside a mark that
   * counts is left as it is (see MARK_OPEN for the rule).
   */
  redact(text: string): string {
    if (!text.includes(MARK_OPEN)) return this.redactPlain(text);
    const clean = unmarked(text);
    if (this.secrets.size === 0) return clean;
    // the marks that count, as [start, end) spans of the clean text
    const spans: [number, number, 'own' | 'key'][] = [];
    let removed = 0;
    for (const m of text.matchAll(MARKED)) {
      const start = m.index - removed;
      removed += 2;
      const kind = this.names.has(m[1]!) ? 'key' : OWN_TEXT.has(m[1]!) ? 'own' : undefined;
      if (m[1]!.length && kind) spans.push([start, start + m[1]!.length, kind]);
    }
    // (a text already holding the characters spans are held by is masked as if unmarked)
    if (!spans.length || /[\ue100-\ueeff]/.test(clean) || this.unkeepable(clean, spans)) return this.redactPlain(clean);
    // each span held aside (a private-use character in its place, which no secret holds), the rest masked as ever
    let held = '';
    let from = 0;
    spans.forEach(([a, b], k) => {
      held += `${clean.slice(from, a)}${String.fromCharCode(0xe100 + (k % 0xe00))}`;
      from = b;
    });
    held += clean.slice(from);
    let k = 0;
    return this.redactPlain(held).replace(/[\ue100-\ueeff]/g, () => {
      const [a, b] = spans[k++]!;
      return clean.slice(a, b);
    });
  }

  /**
   * Whether the marks (`spans` of `text`) cannot be kept as they are: an occurrence of a secret overlaps one without
   * lying wholly inside it, or one inside ops's own words is no weak value (parts.ts isWeakPart: a real secret is
   * masked even there; a key name, which sops keeps in clear text, is shown whole as Reporter.allow's are).
   */
  private unkeepable(text: string, spans: [number, number, 'own' | 'key'][]): boolean {
    for (let i = 0; i + MIN_SECRET_LENGTH <= text.length; i++) {
      if (!this.starts.has(text.slice(i, i + MIN_SECRET_LENGTH))) continue;
      for (const n of this.lengths) {
        if (i + n > text.length) break;
        const piece = text.slice(i, i + n);
        if (!this.byLength.get(n)!.has(piece)) continue;
        if (spans.some(([a, b, kind]) => i < b && i + n > a && !(a <= i && i + n <= b && (kind === 'key' || isWeakPart(piece))))) return true;
      }
    }
    return false;
  }

  private redactPlain(text: string): string {
    return this.hideCut(this.redactWhole(this.hideFolds(text)));
  }

  /**
   * `text` with each secret a printer folded over lines written *** piece by piece: PyYAML's yaml.dump at 80 columns,
   * Python's pprint splitting a string into adjacent pieces, a wrapping base64 of a text holding the secret (any
   * width), a hex dump (parts.ts dumpLine: any number of bytes a line) show it in pieces, none the secret whole. The
   * lines are read as one text (a channel): each line's body (its ends' white space, quotes, brackets, "|", "," and
   * "\\" left out: FOLD_FRAME) with its white space taken out, one after another (a line without a body ends the
   * channel; `od -c`'s offset is frame too: OD_CHARS); and a second channel of the bytes of consecutive hex dump lines, as lower-case hex. A secret (a form
   * parts.ts secretParts lists: its base64 at each alignment, its hex; not weak, its white space out, FOLD_MIN
   * characters at least) found whole in a channel AND running over a line's end is a fold: what it covers on each
   * line is hidden (in a dump: the bytes' pairs and their column). A piece alone (a line ending with a secret's start,
   * a URL's scheme and host, the next line not going on with it) is ordinary text and stays. The hosts' mask_text
   * applies the same rule (core/steps/sh/mask.sh, hold), holding a line while the next may go on with its end. A
   * fold cut by the text's start or end shows its pieces. The work: the text's length times the lengths secrets have
   * where one may start (FOLD_MIN characters looked up), as redactWhole.
   */
  private hideFolds(text: string): string {
    if (!this.folds.size || !text.includes('\n')) return text;
    const lines: { at: number; line: string }[] = [];
    for (let at = 0; at <= text.length; ) {
      const nl = text.indexOf('\n', at);
      const end = nl === -1 ? text.length : nl;
      lines.push({ at, line: text.slice(at, end) });
      at = end + 1;
    }
    const spans: [number, number][] = [];
    // the two channels, as pieces (one a line) and where each line's piece starts; "\n" (two in hex: whole bytes) where one ends
    const body: string[] = [];
    const hex: string[] = [];
    const bodyAt: number[] = [];
    const hexAt: number[] = [];
    const frames: [number, number][] = [];
    const dumps: ReturnType<typeof dumpLine>[] = [];
    let bodyLength = 0;
    let hexLength = 0;
    for (const { line } of lines) {
      let a = /^[\s'"`()[\]{}<>|,\\]*/.exec(line)![0].length;
      let b = line.length;
      while (b > a && FOLD_FRAME.test(line[b - 1]!)) b--;
      if (a < b && OD_CHARS.test(line)) a = OD_CHARS.exec(line)![1]!.length;
      frames.push([a, b]);
      const t = a === b ? '\n' : line.slice(a, b).replace(/\s+/g, '');
      bodyAt.push(bodyLength);
      body.push(t);
      bodyLength += t.length;
      const dump = /^ *[0-9A-Fa-f]{2}/.test(line) ? dumpLine(line) : undefined;
      dumps.push(dump);
      const h = dump ? dump.hex.toLowerCase() : '\n\n';
      hexAt.push(hexLength);
      hex.push(h);
      hexLength += h.length;
    }
    /** The line a channel offset lies in (starts: where each line's piece starts). */
    const lineOf = (starts: number[], o: number) => {
      let lo = 0;
      let hi = starts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (starts[mid]! <= o) lo = mid;
        else hi = mid - 1;
      }
      return lo;
    };
    for (const [chars, starts, step] of [[body.join(''), bodyAt, 1], [hex.join(''), hexAt, 2]] as const) {
      for (let i = 0; i + FOLD_MIN <= chars.length; i += 1) {
        if ((step === 2 && i % 2) || !this.foldStarts.has(chars.slice(i, i + FOLD_MIN))) continue;
        for (const n of this.foldLengths) {
          const e = i + n;
          if (e > chars.length) break;
          const first = lineOf(starts, i);
          const last = lineOf(starts, e - 1);
          // a fold runs over a line's end; on one line it is the secret as it is (redactWhole)
          if (first === last || !this.folds.get(n)!.has(chars.slice(i, e))) continue;
          for (let k = first; k <= last; k++) {
            const from = Math.max(i, starts[k]!) - starts[k]!;
            const to = Math.min(e, k + 1 < starts.length ? starts[k + 1]! : chars.length) - starts[k]!;
            const at = lines[k]!.at;
            if (step === 1) {
              // the characters of the line's body that are not white space: the from-th to the (to-1)-th
              const [a, b] = frames[k]!;
              const kept: number[] = [];
              for (let c = a; c < b && kept.length < to; c++) if (!/\s/.test(lines[k]!.line[c]!)) kept.push(c);
              spans.push([at + kept[from]!, at + kept[to - 1]! + 1]);
            } else {
              const dump = dumps[k]!;
              const [fb, tb] = [from >> 1, (to - 1) >> 1];
              spans.push([at + dump.at[fb]!, at + dump.at[tb]! + 2]);
              if (dump.column !== undefined) spans.push([at + dump.column + fb, at + dump.column + tb + 1]);
            }
          }
        }
      }
    }
    if (!spans.length) return text;
    // the pieces a line shows, as one span each (what lies between two characters of a piece on a line is its white space)
    spans.sort((x, y) => x[0] - y[0]);
    const merged: [number, number][] = [];
    for (const [f, t] of spans) {
      const last = merged[merged.length - 1];
      if (last && /^[^\S\n]*$/.test(text.slice(last[1], f))) last[1] = Math.max(last[1], t);
      else merged.push([f, t]);
    }
    return starred(text, merged);
  }

  /**
   * `text` with what a printer shows of a secret it cut short hidden: the text just before an ellipsis ("..." or "…",
   * a closing quote between them skipped) that is the start of a secret, and the text just after one (an opening quote
   * skipped) that is the end of a secret, the longest such piece not starting (ending) inside a word, written ***; a
 * piece that is weak itself (parts.ts isWeakPart: shorter than SHORT_SECRET_LENGTH, or a common word: `"postgresql"...`
 * of a database URL, `age1…` of a public key in ops's own words) shows too little to hide.
   * Printers cut a long value so: Node's JSON.parse error (`Unexpected token 'Z', "Zq7Wx9vLm3"... is not valid JSON`,
   * `..."[1, Zq7Wx9vLm3"...`), Python's reprlib (`'Zq7Wx9vLm3pR...uV4Zq7Wx9vLm3'`: asyncio, pdb, pytest), pydantic's
   * `input_value='Zq7Wx9vLm3...pR8sT2uV4'` (its own form for the shapes it cuts so, parts.ts pydanticInputValue). Only
   * secrets that are not weak (parts.ts isWeakPart): the start of a short or common one is a word ("Install..." of
   * `install`).
   */
  private hideCut(text: string): string {
    if (this.cutByStart.size === 0 || (!text.includes('...') && !text.includes('…'))) return text;
    const spans: [number, number][] = [];
    const quote = (c: string | undefined) => c === '"' || c === "'" || c === '`';
    // a printer cuts a value, which starts and ends where a word does: a piece is never taken from inside a word
    const word = (c: string | undefined) => c !== undefined && /[\p{L}\p{N}]/u.test(c);
    for (const m of text.matchAll(/\.{3,}|…/g)) {
      let end = m.index;
      if (quote(text[end - 1])) end--;
      for (let j = Math.max(0, end - this.longest); j + MIN_SECRET_LENGTH <= end; j++) {
        const list = this.cutByStart.get(text.slice(j, j + MIN_SECRET_LENGTH));
        if (!list || word(text[j - 1])) continue;
        const piece = text.slice(j, end);
        if (isWeakPart(piece)) {
          if (piece.length < SHORT_SECRET_LENGTH) break; // shorter ones only from here
          continue;
        }
        if (list.some((secret) => secret.startsWith(piece))) {
          spans.push([j, end]);
          break;
        }
      }
      let start = m.index + m[0].length;
      if (quote(text[start])) start++;
      for (let f = Math.min(text.length, start + this.longest); f - MIN_SECRET_LENGTH >= start; f--) {
        const list = this.cutByEnd.get(text.slice(f - MIN_SECRET_LENGTH, f));
        if (!list || word(text[f])) continue;
        const piece = text.slice(start, f);
        if (isWeakPart(piece)) {
          if (piece.length < SHORT_SECRET_LENGTH) break; // shorter ones only from here
          continue;
        }
        if (list.some((secret) => secret.endsWith(piece))) {
          spans.push([start, f]);
          break;
        }
      }
    }
    return spans.length ? starred(text, spans.sort((x, y) => x[0] - y[0])) : text;
  }

  /**
   * `text` with each secret that a run of bytes printed a byte at a time holds (parts.ts DUMP_RUN: Node's
   * `<Buffer 5a 71 …>`, `5a:71:…`, `[90, 113, …]`) written ***: each run read back to continuous hex (the numbers'
   * too), where the secrets' hex forms are looked up as in any text (parts.ts hexForms; a hex key is its own hex),
   * and what they cover hidden in the run. One pass over the text; nothing registered per secret.
   */
  private dumpsRead(text: string): string {
    const spans: [number, number][] = [];
    for (const m of text.matchAll(DUMP_RUN)) {
      // where each byte of the run stands in the text, and the run as hex
      const at: [number, number][] = [];
      let hexed = '';
      const bytes = [...m[0].matchAll(m[1] !== undefined ? /[0-9A-Fa-f]{2}/g : /[0-9]+/g)];
      if (m[1] === undefined && bytes.some((b) => Number(b[0]) > 255)) continue;
      for (const b of bytes) {
        at.push([m.index + b.index, m.index + b.index + b[0].length]);
        hexed += m[1] !== undefined ? b[0] : Number(b[0]).toString(16).padStart(2, '0');
      }
      // the hex of a part that is not weak (8 characters at least): a weak value ("2024") is no byte dump of itself
      for (const [a, b] of this.spansIn(hexed)) if (b - a >= 2 * SHORT_SECRET_LENGTH) spans.push([at[a >> 1]![0], at[(b - 1) >> 1]![1]]);
    }
    return spans.length ? starred(text, spans.sort((x, y) => x[0] - y[0])) : text;
  }

  /** Where the secrets `text` holds as it is stand in it: [start, end) spans, by start. */
  private spansIn(text: string): [number, number][] {
    const spans: [number, number][] = [];
    for (let i = 0; i + MIN_SECRET_LENGTH <= text.length; i++) {
      if (!this.starts.has(text.slice(i, i + MIN_SECRET_LENGTH))) continue;
      for (const n of this.lengths) {
        if (i + n > text.length) break;
        if (this.byLength.get(n)!.has(text.slice(i, i + n))) spans.push([i, i + n]);
      }
    }
    return spans;
  }

  /** `text` with every secret it holds whole, as itself or URL-encoded, written *** (but inside a key name or path told of). */
  private redactWhole(text: string): string {
    if (this.secrets.size === 0) return text;
    text = this.dumpsRead(text);
    // Only a "%" or a "+" can make a URL-encoded form differ from the secret as itself.
    if (text.includes('%') || text.includes('+')) text = this.urlForms(text);
    // The secrets the text holds (and those a replacement could complete).
    const found = new Set<string>(this.starred);
    for (let i = 0; i + MIN_SECRET_LENGTH <= text.length; i++) {
      if (!this.starts.has(text.slice(i, i + MIN_SECRET_LENGTH))) continue;
      for (const n of this.lengths) {
        if (i + n > text.length) break;
        const piece = text.slice(i, i + n);
        if (this.byLength.get(n)!.has(piece)) found.add(piece);
      }
    }
    if (found.size === 0) return text;
    // Longest first, so a secret that contains another is replaced whole.
    const order = [...found].sort((a, b) => b.length - a.length || this.secrets.get(a)! - this.secrets.get(b)!);
    const kept = this.allowed.size ? this.allowedSpans(text, order) : [];
    if (kept.length) return this.hideOutside(text, order, kept);
    // every occurrence found in the text as it is, overlapping ones as one: replaced one secret after another, a
    // secret whose start is another's end (two values printed together) would lose its overlap and show the rest
    let out = this.hideOutside(text, order, []);
    // the "***" put in can complete a secret holding "*": replaced after, longest first
    for (const s of order) if (s.includes('*') && out.includes(s)) out = out.split(s).join('***');
    return out;
  }

  /** `text` with every occurrence of `found` replaced by *** (overlapping ones as one), but those wholly inside a `kept` span. */
  private hideOutside(text: string, found: string[], kept: [number, number][]): string {
    const hide: [number, number][] = [];
    for (const s of found) {
      for (let i = text.indexOf(s); i !== -1; i = text.indexOf(s, i + 1)) {
        if (!kept.some(([a, b]) => a <= i && i + s.length <= b && b - a > s.length)) hide.push([i, i + s.length]);
      }
    }
    return starred(text, hide.sort((x, y) => x[0] - y[0]));
  }
}

/** `text` with each of `spans` ([start, end) indexes, sorted by start) replaced by ***, overlapping ones by one ***. */
function starred(text: string, spans: [number, number][]): string {
  let out = '';
  let copied = 0;
  for (let k = 0; k < spans.length; ) {
    const from = spans[k]![0];
    let to = spans[k]![1];
    for (k++; k < spans.length && spans[k]![0] < to; k++) to = Math.max(to, spans[k]![1]);
    out += `${text.slice(copied, from)}***`;
    copied = to;
  }
  return out + text.slice(copied);
}

/**
 * `text` as a markdown code block (job summary, pull-request comment): fenced with more backticks than any run of
 * them in it, since a block ends at the first line of as many backticks as its fence (CommonMark): a host's output
 * or a git message holding "```" then stays text, ending nothing (no markdown, links or @mentions from it).
 */
export function codeBlock(text: string): string[] {
  const fence = '`'.repeat(Math.max(3, ...[...text.matchAll(/`+/g)].map((m) => m[0].length + 1)));
  return [fence, text, fence];
}

// Text from outside in Markdown (job summaries, pull-request comments): GitHub renders the Markdown, HTML in it
// (`<img>`, `<details>`), math (`$…$`), and links `@name` (a notification to that person or team) and `#123`, `GH-123`
// (a link, and a back-reference on that issue). mdText, mdCode and mdLink are the one way any value from outside (a
// program's state, a lock holder, a host's error text, a ref, a pull request's title, a commit subject) goes into
// Markdown, so it is shown as it is and can neither break a table nor add markup; codeBlock for a multi-line one.

/** Characters with a meaning in Markdown inline text (CommonMark, GFM tables, strikethrough, GitHub's math). */
const MD_INLINE = /[\\`*_[\]<>|~&$]/g;
/** U+2060 WORD JOINER: invisible, and no name or number may start after it, so no mention nor issue link forms. */
const WORD_JOINER = '\u2060';

/**
 * `text` from outside as Markdown inline text that shows exactly it, on one line (printableLine), in a paragraph, a
 * list item, a heading or a table cell: every character with a meaning backslash-escaped (`|` too: a table's cells
 * stay as they are), a line-start marker (`#`, `>`, `-`, `+`, `1.`) escaped, and a word joiner after each `@` or `#`
 * that starts a name or number and inside `GH-<number>` (no mention, no issue link).
 */
export function mdText(text: string): string {
  // The marks of own and keyName (dropped when printed) may stand anywhere: they are looked through ([\uE000\uE001]*).
  return escapeInline(printableLine(text))
    .replace(/^([\uE000\uE001]*)([#>+=-])/, '$1\\$2')
    .replace(/^([\uE000\uE001]*\d+)([.)])/, '$1\\$2');
}

/** mdText's escapes that do not depend on where the text stands: each character's own, mentions and issue links. */
function escapeInline(text: string): string {
  return text
    .replace(MD_INLINE, '\\$&')
    .replace(/([@#])(?=[\uE000\uE001]*[\p{L}\p{N}_])/gu, `$1${WORD_JOINER}`)
    .replace(/\b(GH)(?=[\uE000\uE001]*-[\uE000\uE001]*\d)/gi, `$1${WORD_JOINER}`);
}

/**
 * A secret as mdText and mdCode (in a cell) write it into Markdown, when that differs: a summary is masked after it
 * is written (the reporters' summary), where `pa$$|word` stands as `pa\$\$\|word` (Masker.add masks these too).
 */
function markdownForms(secret: string): string[] {
  if (!/[\\`*_[\]<>|~&$@#]|gh/i.test(secret)) return []; // nothing escapeInline changes (most forms: a cheap test first)
  return [...new Set([escapeInline(secret), secret.replace(/\|/g, '\\|')])].filter((f) => f !== secret);
}

/**
 * `text` from outside as inline code (a ref, a release, a file name), on one line (printableLine): fenced with more
 * backticks than any run of them in it (CommonMark), so nothing in it acts (no markup, HTML, mention or link is read
 * inside code). `where` is 'cell' in a table cell: there `|` is escaped (GFM splits a row into cells before it reads
 * code spans); elsewhere an escape would show.
 */
export function mdCode(text: string, where: 'cell' | 'text' = 'text'): string {
  const line = printableLine(text);
  if (!line) return '';
  const fence = '`'.repeat(Math.max(0, ...[...line.matchAll(/`+/g)].map((m) => m[0].length)) + 1);
  const pad = line.startsWith('`') || line.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${where === 'cell' ? line.replace(/\|/g, '\\|') : line}${pad}${fence}`;
}

/**
 * A link: `label` (Markdown of ops's own) to `url` (from outside: an API's html_url); only an http(s) URL, its
 * characters that would end the link or a table cell percent-encoded. Anything else: the label alone.
 */
export function mdLink(label: string, url: string): string {
  if (!/^https?:\/\/[^\s]+$/i.test(url)) return label;
  return `[${label}](${url.replace(/[()<>|\\"'`]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)})`;
}

/**
 * `markdown` (masked) with each `***` outside code written `\*\*\*`, so it shows as itself: the masks of secrets in
 * text not written with maskedMarkdown (ops's own words in a summary or a comment holding a value), which Markdown
 * would read as a rule or emphasis (see maskedMarkdown). Inside code (a fenced block of ``` or more; a code span, a
 * run of backticks up to the next run as long, on its line: CommonMark) nothing is read as markup, and an escape
 * would show: left as it is. Ops's own Markdown writes no `***` (bold is `**`, a value's `*` is escaped); in a longer
 * run of stars, the mask is taken for the middle three (`**${secret}**`: bold around it).
 */
export function markdownMasks(markdown: string): string {
  if (!markdown.includes('***')) return markdown;
  let fence = 0; // the length of the open code block's fence, 0 outside one
  return markdown
    .split('\n')
    .map((line) => {
      const run = /^ {0,3}(`{3,})(.*)$/.exec(line);
      if (fence) {
        if (run && run[1]!.length >= fence && !run[2]!.trim()) fence = 0;
        return line;
      }
      if (run && !run[2]!.includes('`')) {
        fence = run[1]!.length;
        return line;
      }
      let out = '';
      for (let i = 0; i < line.length; ) {
        if (line[i] === '\\') {
          out += line.slice(i, i + 2); // an escaped character stays escaped, a "\`" starts no code span
          i += 2;
        } else if (line[i] === '`') {
          const ticks = /^`+/.exec(line.slice(i))![0];
          const close = new RegExp(`(?<!\`)${ticks}(?!\`)`, 'g');
          close.lastIndex = i + ticks.length;
          const end = close.exec(line);
          const to = end ? end.index + ticks.length : i + ticks.length; // no closing run: the backticks are text
          out += line.slice(i, to);
          i = to;
        } else if (line.startsWith('***', i)) {
          // a run longer than a mask holds ops's own markup too (`**${secret}**`): the middle three escaped
          const stars = /^\*+/.exec(line.slice(i))![0].length;
          const own = Math.floor((stars - 3) / 2);
          out += `${'*'.repeat(own)}\\*\\*\\*${'*'.repeat(stars - 3 - own)}`;
          i += stars;
        } else out += line[i++];
      }
      return out;
    })
    .join('\n');
}

/**
 * How a summary writes a value from outside, for the sink it goes to: one builder (a summary's text is composed once),
 * rendered as Markdown for a job summary (markdownValues: escaped, so nothing in it acts) or as plain text for a
 * terminal (plainValues: as it is, so what a user reads and copies is the value, not its escapes). Either way on one
 * line; the reporter masks it and shows its control characters as text when it prints (ConsoleReporter.shown).
 */
export interface ValueFormat {
  /** A value in running text or a table cell. */
  text(text: string): string;
  /** A name to copy: a ref, a release, a file name (`where`: 'cell' in a Markdown table). */
  code(text: string, where?: 'cell' | 'text'): string;
  /** `label` (ops's own text) linking to `url` (from outside). */
  link(label: string, url: string): string;
}

/** Values as Markdown: mdText, mdCode, mdLink (job summary, pull-request comment). */
export const markdownValues: ValueFormat = { text: mdText, code: mdCode, link: mdLink };

/**
 * Values as Markdown with every secret masked (`redact`) before it is written, the one way a Markdown sink (a job
 * summary, a pull-request comment) writes them. Why first: masked after it is written, a secret leaves a bare `***`,
 * which Markdown reads as markup (CommonMark: `***` alone on a line is a thematic break, <hr>; a delimiter run of `*`
 * next to a word opens or closes emphasis, so `a***b***c` shows as a bold-italic "b"). Masked first, its `***` is
 * escaped as any `*` of the value (`\*\*\*`: a backslash-escaped punctuation character is shown as itself) and,
 * in code (mdCode, codeBlock: no markup is read inside a code span or block), shown as written.
 */
export function maskedMarkdown(redact: (text: string) => string): ValueFormat {
  return { text: (t) => mdText(redact(t)), code: (t, where) => mdCode(redact(t), where), link: (label, url) => mdLink(label, redact(url)) };
}

/** Values as plain text (a terminal): as they are, on one line; a link as its label and, when http(s), the address. */
export const plainValues: ValueFormat = {
  text: printableLine,
  code: printableLine,
  link: (label, url) => (/^https?:\/\/[^\s]+$/i.test(url) ? `${label} (${url})` : label),
};

/** A duration for a log line: "1.2s". */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/**
 * A terminal: groups as headings, their output indented. Steps run at once (hosts of a rollout, a deploy's Python
 * set beside its node set and build) are siblings: a group is nested only in the group whose work started it (its
 * async context), never in one that merely runs at the same time, and it ends at the depth it began. A remote
 * command's lines (from the connection, outside any group's context) are indented once while a group is open.
 */
/** Output streams that failed (guardOutput): written to no more. */
const brokenOutputs = new WeakSet<object>();
/** Output streams guardOutput listens to already: one listener each, however often it is called. */
const guardedOutputs = new WeakSet<object>();

/**
 * Keeps a command going when its own output fails: the reader of stdout or stderr gone (`ops deploy e | head -2`:
 * EPIPE), or where it goes full (`> /dev/full`: ENOSPC). Without a listener, Node raises the stream's error as an
 * uncaught exception, which ended a run half-way (its lock left stale, its release unfinished) blaming the host ("the
 * connection was closed by the other end"). From the first error that stream is written to no more (ConsoleReporter),
 * and its errors are marked as ops's own (markOwnOutput: never a host's). Within a run (from its lock on:
 * runHandlesSignals), the run goes on to its end, its lock released and its audit lines written, and ends with its own
 * exit code; outside one, a reader gone ends the command quietly, as SIGPIPE ends other tools (exit 141), and a full
 * disk says so on stderr and exits 1; a terminal hung up (EIO) is left to the SIGHUP that comes with it. Once per
 * process: the entry points (scripts/ops.ts, core/action.ts runAction); a stream already guarded is left as it is.
 */
export function guardOutput(streams: Record<string, NodeJS.WritableStream> = { stdout: process.stdout, stderr: process.stderr }, exit: (code: number) => void = (code) => process.exit(code)): void {
  const entries = Object.entries(streams);
  for (const [name, stream] of entries) {
    if (guardedOutputs.has(stream)) continue;
    guardedOutputs.add(stream);
    stream.on('error', (err: NodeJS.ErrnoException) => {
      markOwnOutput(err, name);
      if (brokenOutputs.has(stream)) return;
      brokenOutputs.add(stream);
      if (err.code === 'EPIPE') {
        if (!runHandlesSignals()) exit(signalExit('SIGPIPE'));
        return;
      }
      // The terminal hung up (EIO): its SIGHUP is the command's to handle (a run's, or the secrets commands' own: exit
      // 129, nothing written), not ended here with another code.
      if (err.code === 'EIO') return;
      const said = describeLowLevel(err)?.what ?? err.message;
      const other = entries.find(([, s]) => s !== stream && !brokenOutputs.has(s))?.[1];
      if (runHandlesSignals()) other?.write(`warning: ${said}: dropped from here on; the run goes on to its end\n`);
      else {
        other?.write(`error: ${said}\n`);
        exit(1);
      }
    });
  }
}

/** A terminal stream's libuv handle, which Node makes block on Linux (tty.WriteStream); undefined for another stream. */
function blockingHandle(stream: NodeJS.WritableStream): { setBlocking(blocking: boolean): number } | undefined {
  if (!(stream as { isTTY?: boolean }).isTTY) return undefined;
  const handle = (stream as { _handle?: { setBlocking?: unknown } })._handle;
  return typeof handle?.setBlocking === 'function' ? (handle as { setBlocking(blocking: boolean): number }) : undefined;
}

/** How many callers of outputNeverBlocks have not called its undo yet. */
let neverBlocking = 0;

/**
 * From now until the returned function is called, ops's own writes to `streams` (stdout, stderr) never stop the process:
 * what the terminal does not take yet waits in memory (the stream's queue) and is written as it takes it. Node writes to
 * a terminal synchronously on Linux, so a terminal paused with Ctrl-S (or one at the end of an SSH session to a jump box
 * whose network stalls) stopped the whole process at its next write, its SSH keepalives with it: after
 * HOLDER_SILENT_SECONDS (core/steps/lock.ts) the lock of a live run read stale to every other run, which `ops lock
 * release` then broke without --force. Counted (runs at once each call it): the terminal blocks again, as Node made it,
 * once every caller has undone it. Other streams are left as they are (a pipe, a socket: Node writes to them
 * asynchronously already; a file: never full for long; a test's). Wait for flushOutput before process.exit: what is
 * still queued is lost at exit.
 */
export function outputNeverBlocks(streams: NodeJS.WritableStream[] = [process.stdout, process.stderr]): () => void {
  if (neverBlocking++ === 0) for (const s of streams) blockingHandle(s)?.setBlocking(false);
  let undone = false;
  return () => {
    if (undone) return;
    undone = true;
    if (--neverBlocking === 0) for (const s of streams) blockingHandle(s)?.setBlocking(true);
  };
}

/**
 * What ops writes to `streams` on a terminal that stops background jobs when they write (`stty tostop`, read now) is
 * held (the stream corked) from now until the process is in that terminal's foreground again (inBackgroundOf, looked
 * at every 200 ms), then written. For a run that holds locks when its shell may be about to take the terminal
 * back (Ctrl-Z under npx or npm, which stop where ops does not: refuseSuspend): its next line would stop it there
 * (SIGTTOU, which Node can neither ignore nor block), its keepalives with it. A run that ends meanwhile exits once its
 * output is written (flushOutput), after `fg`. Nothing when no stream is such a terminal.
 */
export function holdOutputWhileInBackground(streams: NodeJS.WritableStream[] = [process.stdout, process.stderr]): void {
  const held = streams.flatMap((s) => {
    const fd = fdOf(s);
    return fd !== undefined && terminalHasTostop(fd) ? [{ s: s as NodeJS.WritableStream & { cork(): void; uncork(): void }, fd }] : [];
  });
  if (!held.length) return;
  for (const h of held) h.s.cork();
  const poll = setInterval(() => {
    if (held.some((h) => inBackgroundOf(h.fd))) return;
    clearInterval(poll);
    for (const h of held) h.s.uncork();
  }, 200);
}

/**
 * Resolves once `streams` have written what was queued on them (outputNeverBlocks: the reader may take it long after
 * ops wrote it), or failed (guardOutput: written to no more). Never rejects; waits as long as the reader does.
 */
export async function flushOutput(streams: NodeJS.WritableStream[] = [process.stdout, process.stderr]): Promise<void> {
  const queued = (s: NodeJS.WritableStream) => ((s as { writableLength?: number }).writableLength ?? 0) > 0 && !brokenOutputs.has(s);
  // An empty write's callback runs once the writes before it are done (or the stream failed): 'drain' alone would not
  // come for a queue under the stream's highWaterMark.
  await Promise.all(streams.filter(queued).map((s) => new Promise<void>((resolve) => s.write('', () => resolve()))));
}

/** The file descriptor behind `out` (process.stdout: 1), or undefined for a stream of another kind (a test's). */
function fdOf(out: NodeJS.WritableStream): number | undefined {
  const fd = (out as { fd?: unknown }).fd;
  return typeof fd === 'number' ? fd : undefined;
}

/**
 * Write `text` that must reach a person or it is lost (a new private key, shown once) to `out` (default stdout),
 * synchronously, past the stream (whose errors guardOutput turns into an exit after the fact): when it goes to a
 * file descriptor, written there whole before this returns. `out` without one (a test's stream) is written to as ever.
 * @returns undefined once written; else what failed, in words (a reader gone: EPIPE; a full disk: ENOSPC; a terminal
 * gone: EIO), for the caller to undo what the text was needed for. Part of the text may have been written then.
 */
export function writeToKeep(text: string, out: NodeJS.WritableStream = process.stdout): string | undefined {
  const fd = fdOf(out);
  if (fd === undefined) {
    if (brokenOutputs.has(out)) return 'it failed before';
    out.write(text);
    return undefined;
  }
  const bytes = Buffer.from(text);
  let done = 0;
  let waited = 0;
  while (done < bytes.length) {
    try {
      done += writeSync(fd, bytes, done);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // a non-blocking pipe that is full: its reader is slow, not gone (up to a minute)
      if (code === 'EAGAIN' && waited < 60_000) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        waited += 10;
        continue;
      }
      const said: Record<string, string> = { EPIPE: 'the program reading it stopped reading (EPIPE)', ENOSPC: 'no space left where it goes (ENOSPC)', EIO: 'the terminal is gone (EIO)' };
      return said[code ?? ''] ?? (e as Error).message;
    }
  }
  return undefined;
}

/**
 * Whether `out` (default stdout) is /dev/null, where text shown once (a new private key) is lost unseen. A stream
 * without a file descriptor (a test's) is not.
 */
export function discardsOutput(out: NodeJS.WritableStream = process.stdout): boolean {
  const fd = fdOf(out);
  if (fd === undefined) return false;
  try {
    const st = fstatSync(fd);
    return st.isCharacterDevice() && st.rdev === statSync('/dev/null').rdev;
  } catch {
    return false;
  }
}

/**
 * Whether the process was started with `out` (default stdout) closed (`ops status qa >&-`): Node opens /dev/null
 * read-write in place of a closed standard descriptor (node.cc PlatformInit), where a shell's `> /dev/null` opens it
 * write-only (told apart by the access mode in Linux's /proc/self/fdinfo). A daemon that points all three at /dev/null
 * read-write (daemon(3)) discards on purpose: so `err` must not be so too (with both closed, nobody would read the error). Where /proc cannot be
 * read, or for a stream without a file descriptor (a test's), false.
 */
export function outputClosed(out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): boolean {
  return nodeOpenedNull(out) && !nodeOpenedNull(err);
}

/** Whether `out` is /dev/null opened read-write, as Node opens it for a standard descriptor it found closed (outputClosed). */
function nodeOpenedNull(out: NodeJS.WritableStream): boolean {
  const fd = fdOf(out);
  if (fd === undefined || !discardsOutput(out)) return false;
  try {
    const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
    return flags !== undefined && (parseInt(flags, 8) & 0o3) === 0o2; // O_ACCMODE is O_RDWR
  } catch {
    return false;
  }
}

export class ConsoleReporter implements Reporter {
  private readonly masker = new Masker();
  /** A terminal shows values as they are: Markdown's escapes would show (backslashes, invisible word joiners). */
  readonly values = plainValues;
  /** The depth of the groups enclosing the caller's work. */
  private readonly nesting = new AsyncLocalStorage<number>();
  /** Groups open now, on any flow. */
  private open = 0;
  private readonly color: boolean | undefined;
  constructor(
    private readonly out: NodeJS.WritableStream = process.stdout,
    private readonly err: NodeJS.WritableStream = process.stderr,
    /** `color`: always or never; by default, on each stream that is a terminal, unless $NO_COLOR is set or TERM=dumb. */
    options: { color?: boolean } = {},
  ) {
    this.color = options.color;
  }
  /**
   * `text` in the colour `code` when `stream` shows colours: decided per stream, as stdout and stderr go to different
   * places (`ops deploy qa 2> errors.log` on a terminal: no escape codes in the file).
   */
  private paint(stream: NodeJS.WritableStream, code: string, text: string): string {
    const color = this.color ?? (Boolean((stream as NodeJS.WriteStream).isTTY) && !process.env.NO_COLOR && process.env.TERM !== 'dumb');
    return color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }
  /** `text` as printed: masked (redact), its control characters shown as text (showControls: none acts on the terminal). */
  private shown(text: string): string {
    return showControls(this.redact(text));
  }
  /**
   * Print `text` on `stream` (shown), each line indented to `depth`, painted with the colour `code` if any: ops's own
   * escapes go on after the text is made safe, so only they reach the terminal. `host`: a remote line's prefix (cyan).
   */
  private write(stream: NodeJS.WritableStream, text: string, options: { code?: string; depth?: number; host?: string } = {}): void {
    // A stream that failed (guardOutput) takes nothing more: the run goes on without its output.
    if (brokenOutputs.has(stream)) return;
    const depth = options.depth ?? this.nesting.getStore() ?? (this.open ? 1 : 0);
    const pad = '  '.repeat(depth);
    const body = options.code ? this.paint(stream, options.code, this.shown(text)) : this.shown(text);
    stream.write(
      (options.host === undefined ? body : `${this.paint(stream, '36', this.shown(options.host))} ${body}`)
        .split('\n')
        .map((l) => pad + l)
        .join('\n') + '\n',
    );
  }
  mask(value: string): void {
    this.masker.add(value);
  }
  allow(text: string): void {
    this.masker.allow(text);
  }
  redact(text: string): string {
    return this.masker.redact(text);
  }
  info(message: string): void {
    this.write(this.out, message);
  }
  warn(message: string): void {
    this.write(this.err, `warning: ${message}`, { code: '33' });
  }
  error(message: string): void {
    this.write(this.err, `error: ${message}`, { code: '31' });
  }
  async group<T>(title: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    const depth = this.nesting.getStore() ?? 0;
    this.write(this.out, `▸ ${title}`, { code: '1', depth });
    this.open++;
    try {
      const result = await this.nesting.run(depth + 1, fn);
      this.write(this.out, `✓ ${title} (${seconds(performance.now() - start)})`, { code: '2', depth });
      return result;
    } catch (e) {
      this.write(this.err, `✗ ${title} (${seconds(performance.now() - start)})`, { code: '31', depth });
      throw e;
    } finally {
      this.open--;
    }
  }
  line(host: string, text: string, stream: Stream): void {
    this.write(stream === 'stderr' ? this.err : this.out, text, { host });
  }
  async summary(markdown: string): Promise<void> {
    this.write(this.out, markdown);
  }
  output(): void {}
}

/** A reporter that keeps everything in memory: for tests and for commands that print JSON. */
export class MemoryReporter implements Reporter {
  private readonly masker = new Masker();
  /** Summaries kept as a job summary would hold them. */
  readonly values = maskedMarkdown((text) => this.redact(text));
  readonly lines: string[] = [];
  readonly outputs: Record<string, string> = {};
  readonly summaries: string[] = [];
  mask(value: string): void {
    this.masker.add(value);
  }
  allow(text: string): void {
    this.masker.allow(text);
  }
  redact(text: string): string {
    return this.masker.redact(text);
  }
  info(message: string): void {
    this.lines.push(this.redact(message));
  }
  warn(message: string): void {
    this.lines.push(this.redact(`warning: ${message}`));
  }
  error(message: string): void {
    this.lines.push(this.redact(`error: ${message}`));
  }
  async group<T>(title: string, fn: () => Promise<T>): Promise<T> {
    this.lines.push(this.redact(`▸ ${title}`));
    return fn();
  }
  line(host: string, text: string): void {
    this.lines.push(this.redact(`${host} ${text}`));
  }
  async summary(markdown: string): Promise<void> {
    this.summaries.push(markdownMasks(this.redact(markdown)));
  }
  output(name: string, value: string): void {
    this.outputs[name] = this.redact(value);
  }
  text(): string {
    return this.lines.join('\n');
  }
}
