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
import { MIN_MASKED_LENGTH, secretParts, urlPassword } from './parts.ts';
import { maskedText } from './tree-scalars.ts';
import { type MapNode, forEachLeaf, showPath } from './tree.ts';

/** Parts of at least MIN_MASKED_LENGTH characters and fewer than this are masked, and garble the logs: warned about. */
export const SHORT_SECRET_LENGTH = 8;

/**
 * Words and numbers of SHORT_SECRET_LENGTH characters or more that logs and messages are full of, or that are
 * the first guesses for a password: masking them garbles the logs as a short value does (compared lowercase).
 */
const COMMON = new Set([
  // first guesses for a password
  'password', 'password1', 'password123', 'passw0rd', 'p@ssw0rd', 'changeme', 'changeit', 'letmein1', 'iloveyou',
  'sunshine', 'football', 'baseball', 'welcome1', 'trustno1', 'superuser', 'supersecret', 'secret123', 'admin123',
  'qwertyui', 'qwertyuiop', 'qwerty123', 'abcdefgh', 'abcd1234', 'testtest', 'test1234', 'root1234',
  // words deploy logs and app output are full of
  'postgres', 'postgresql', 'username', 'database', 'localhost', '127.0.0.1', 'production', 'development',
  'administrator', 'application', 'deployment', 'undefined', 'disabled', 'password_hash',
  // numbers
  '12345678', '123456789', '1234567890', '87654321', '11111111', '00000000', '99999999',
]);

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
 * Empty values are not weak (nothing is masked). Never returns the text of a part. Pure.
 */
export function weakParts(value: string): WeakPart[] {
  const whole = value.trim();
  if (whole === '') return [];
  const lines = new Set(value.split(/\r?\n/).map((l) => l.trim()));
  const passwords = new Set(urlPassword(value).map((p) => p.trim()));
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

const SUBJECT: Record<WeakPart['part'], string> = {
  value: 'its value',
  line: 'one of its lines (masked on its own)',
  'URL password': "its URL's password (masked on its own)",
  part: 'a part of it masked on its own (a string inside its JSON, or a URL password in one)',
};

/**
 * The warning for a weak secret, naming `what` (a key: `secret "database_url"`) and never the value: how long
 * each weak part is, that it is masked wherever it appears in the logs (or too short to be masked at all), and
 * the way out (a longer value; a value dictated by a third party is kept: only a warning).
 */
export function weakSecretWarning(what: string, parts: WeakPart[]): string {
  const said = parts.map((p) => {
    const n = `${SUBJECT[p.part]} is ${p.length} character${p.length === 1 ? '' : 's'} long${p.why === 'common' ? ', a common word or number' : ''}`;
    if (p.why === 'unmasked') return `${n}: too short to be masked, so the logs show it as it is`;
    return `${n}: it will be masked (***) wherever it appears in the logs, ops's messages and the app's output alike, even inside other words, making them hard to read`;
  });
  // two lines of one length are one reason, said once (it was repeated whole)
  return `${what} is weak: ${[...new Set(said)].join('; ')}; it is also easy to guess. Fix: a longer value (16 or more random characters, e.g. from \`ops secretkey\`); kept as it is if a third party dictates it`;
}

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
    const named = keys.map((k) => `"${k}"`);
    const what = named.length === 1 ? `secret ${named[0]}` : `secrets ${named.slice(0, -1).join(', ')} and ${named.at(-1)} (the same value)`;
    out.push(weakSecretWarning(what, parts));
  }
  return out;
}
