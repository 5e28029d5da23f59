// Text a user hands to ops (stdin of `secrets set`, the edited file, a file to encrypt) decoded strictly: bytes
// that are not UTF-8 are refused, never turned into U+FFFD (which would store something else than was given,
// and, for `secrets encrypt`, which works in place, lose the original bytes). The real sops refuses such a file
// too (go-yaml: "invalid trailing UTF-8 octet").
import { InputError } from '../errors.ts';

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenient = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/**
 * The byte offset of the first byte that is not part of valid UTF-8 in `bytes`, or -1 when all of it is UTF-8.
 * Found by decoding leniently and looking for the first U+FFFD the bytes do not spell (EF BF BD).
 */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  let offset = 0;
  for (const ch of lenient.decode(bytes)) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0xfffd && !(bytes[offset] === 0xef && bytes[offset + 1] === 0xbf && bytes[offset + 2] === 0xbd)) return offset;
    offset += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return -1;
}

/**
 * `bytes` as text, decoded strictly (TextDecoder with `fatal`). `where` names the source for the message
 * ("stdin", "the edited text", a file); `hint` replaces the default advice.
 * @throws InputError (exit 2: the text given is wrong) naming the byte offset (and line) of the first invalid byte, with how to fix it: convert the
 * text with iconv, or store binary data as base64 text. The message never shows the bytes themselves.
 */
export function decodeUtf8(bytes: Uint8Array, where: string, hint?: string): string {
  try {
    return strict.decode(bytes);
  } catch {
    // UTF-16 with its byte order mark: what Windows PowerShell 5's `>` and Out-File write (`echo pw > pw.txt`).
    // Text, not binary data: stored as base64 (the advice for binary data) the app would get other bytes.
    const bom = bytes[0] === 0xff && bytes[1] === 0xfe ? 'FF FE' : bytes[0] === 0xfe && bytes[1] === 0xff ? 'FE FF' : undefined;
    if (bom)
      throw new InputError(
        `${where} is UTF-16 text (it starts with ${bom}, the byte order mark Windows PowerShell 5's \`>\` and Out-File write), not UTF-8; nothing was changed`,
        'convert it to UTF-8 first (`iconv -f utf-16 -t utf-8 FILE`, or in PowerShell: Set-Content -Encoding utf8)',
      );
    const offset = invalidUtf8Offset(bytes);
    const line = bytes.subarray(0, Math.max(offset, 0)).filter((b) => b === 0x0a).length + 1;
    throw new InputError(
      `${where} is not UTF-8 text: invalid byte at offset ${offset} (line ${line}); nothing was changed`,
      hint ?? 'convert it to UTF-8 first (e.g. `iconv -f latin1 -t utf-8`), or store binary data as base64 text (`base64 -w0`)',
    );
  }
}

// a high surrogate with no low one after it, or a low one with no high one before it
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Refuse text holding a lone surrogate (a JSON or YAML escape `\ud800` with no pair): UTF-8 cannot hold one, so it
 * would be stored as U+FFFD, something else than was typed (the real sops refuses one in YAML; its JSON store
 * stores U+FFFD without a word). `where` names the
 * place (file, key path, line); the text itself is never shown.
 * @throws InputError (exit 2: the text given is wrong) naming `where`.
 */
export function refuseLoneSurrogate(text: string, where: () => string): void {
  if (!LONE_SURROGATE.test(text)) return;
  throw new InputError(
    `${where()}: holds a \\uD800-\\uDFFF escape that is half of a surrogate pair (no character on its own: UTF-8 cannot store it, and it would be stored as U+FFFD)`,
    'write the character itself, or both halves of its pair (\\ud83d\\ude00); for binary data use base64 text',
  );
}
