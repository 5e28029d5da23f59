// Weak secrets: values so short, or so common, that masking them garbles the logs. Every decrypted value is
// masked wherever it appears (core/report.ts: ops's own messages, the app's output, GitHub's log through
// add-mask), so a secret "app" or "5432" turns "application" into "***lication" and every port number into ***,
// and such a value is easy to guess too. They are not refused (a value may be dictated by a third party): `ops
// secrets set`/`edit` and a deploy's secret loading warn, naming the key, never the value.
//
// Thresholds. Parts shorter than MIN_MASKED_LENGTH (3) are masked nowhere (parts.ts): GitHub's runner itself
// masks any non-empty value (actions/runner, src/Sdk/DTLogging/Logging/SecretMasker.cs: AddValue skips only
// empty ones), but ops hands add-mask only what its own Masker keeps, so both logs agree. Below
// SHORT_SECRET_LENGTH (8: GitLab's minimum for a masked CI variable) a value is masked but garbles the logs.
import { keyName, own } from '../report.ts';
import { PLACEHOLDER } from './env.ts';
import { COMMON, MIN_MASKED_LENGTH, SHORT_SECRET_LENGTH, secretParts, urlCredentials } from './parts.ts';
import { maskedText } from './tree-scalars.ts';
import { type MapNode, forEachLeaf, showPath } from './tree.ts';

export { SHORT_SECRET_LENGTH } from './parts.ts';

/** How a masked part of a secret is weak. */
export interface WeakPart {
  /** Which part: the value itself, one of its lines, its URL's password, or another part masked on its own. */
  part: 'value' | 'line' | 'URL password' | 'part';
  /** Its length in characters (UTF-16 code units, as the Masker counts). */
  length: number;
  /** unmasked: too short to be masked (shows in the logs as it is); short: masked, garbling the logs; common: a common word or number, masked. */
  why: 'unmasked' | 'short' | 'common';
}

/**
 * The parts of a secret value that masking handles badly: each part the Masker registers (the value, each of its
 * lines, a URL's password, the strings of a JSON document; not their escaped forms) that is shorter than
 * SHORT_SECRET_LENGTH or a common word or number. Parts too short to be masked are named when they are the value,
 * its URL's password or a JSON string (a line such as "}" of a multi-line value is not a secret on its own).
 * Empty values are not weak (nothing is masked), nor placeholders (refused anyway). Never returns the text of a part. Pure.
 */
export function weakParts(value: string): WeakPart[] {
  const whole = value.trim();
  // a placeholder is refused by name wherever it would be used (env.ts placeholderError): "weak" would only be noise
  if (whole === '' || whole.startsWith(PLACEHOLDER)) return [];
  const lines = new Set(value.split(/\r?\n/).map((l) => l.trim()));
  const passwords = new Set(urlCredentials(value).map((p) => p.trim()));
  const seen = new Set<string>();
  const out: WeakPart[] = [];
  for (const raw of [whole, ...secretParts(value, { escapes: false }), ...lines]) {
    const t = raw.trim();
    if (t === '' || seen.has(t)) continue;
    seen.add(t);
    const part: WeakPart['part'] = t === whole ? 'value' : passwords.has(t) ? 'URL password' : lines.has(t) ? 'line' : 'part';
    if (t.length < MIN_MASKED_LENGTH) {
      if (part !== 'line') out.push({ part, length: t.length, why: 'unmasked' });
    } else if (t.length < SHORT_SECRET_LENGTH) out.push({ part, length: t.length, why: 'short' });
    else if (COMMON.has(t.toLowerCase())) out.push({ part, length: t.length, why: 'common' });
  }
  return out;
}


/**
 * The warning for a weak secret, naming `what` (a key: `secret "database_url"`) and never the value: how long
 * each weak part is, that it is masked wherever it appears in the logs (or too short to be masked at all), and
 * the way out (a longer value; a value dictated by a third party is kept: only a warning).
 */
export function weakSecretWarning(what: string, parts: WeakPart[]): string {
  // ops's own words (own): a weak value masks what quotes it, never them ("wherever it ***ears")
  const said = parts.map((p) => {
    const n = own`${SUBJECT[p.part]} is ${p.length} character${p.length === 1 ? '' : 's'} long${p.why === 'common' ? own`, a common word or number` : ''}`;
    if (p.why === 'unmasked') return own`${n}: too short to be masked, so the logs show it as it is`;
    return own`${n}: it will be masked (***) wherever it appears in the logs, ops's messages and the app's output alike, even inside other words, making them hard to read`;
  });
  // two lines of one length are one reason, said once (it was repeated whole)
  return own`${what} is weak: ${[...new Set(said)].join('; ')}; it is also easy to guess. Fix: a longer value (16 or more random characters, e.g. from \`ops secretkey\`); kept as it is if a third party dictates it`;
}

/** What each weak part is called, in ops's own words (own). */
const SUBJECT: Record<WeakPart['part'], string> = {
  value: own`its value`,
  line: own`one of its lines (masked on its own)`,
  'URL password': own`its URL's password (masked on its own)`,
  part: own`a part of it masked on its own (a string inside its JSON, or a URL password in one)`,
};

/**
 * One warning per weak value of a secrets tree (weakParts), naming every key that holds it (`secret "a.b"`,
 * `secrets "a" and "b"`), never the value. Only the values masking registers (maskedText: not booleans), and of
 * those only where `include(text, path)` says so (the values a deploy masked, the values an edit changed). `shown`
 * names a key path (an edit names a value typed in {...} by the key holding it: edit.ts, typedOnOneLine).
 */
export function weakSecretWarnings(tree: MapNode, include: (text: string, path: (string | number)[]) => boolean = () => true, shown: (path: (string | number)[]) => string = showPath): string[] {
  const byValue = new Map<string, string[]>();
  forEachLeaf(tree, (leaf, _keys, path) => {
    const text = maskedText(leaf);
    if (text === undefined || !include(text, path)) return;
    const keys = byValue.get(text);
    const name = shown(path);
    if (keys) {
      if (!keys.includes(name)) keys.push(name);
    } else byValue.set(text, [name]);
  });
  const out: string[] = [];
  for (const [text, keys] of byValue) {
    const parts = weakParts(text);
    if (!parts.length) continue;
    const named = keys.map((k) => `"${keyName(k)}"`); // key names, left whole in messages (report.ts keyName)
    const what = named.length === 1 ? own`secret ${named[0]}` : own`secrets ${named.slice(0, -1).join(', ')} and ${named.at(-1)} (the same value)`;
    out.push(weakSecretWarning(what, parts));
  }
  return out;
}
