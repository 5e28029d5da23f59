// A negative zero stored in plain text: the one value sops cannot read back as it sealed it. sops (3.8.1 to 3.13.3,
// YAML and JSON stores alike) writes the float -0.0 of a value its rules leave unencrypted as `-0`, which its own
// parsers then read as the integer 0: the MAC it sealed over "-0" no longer matches (`sops decrypt`: "MAC
// mismatch"), and with mac_only_encrypted the value silently becomes 0. Every other plain number, timestamp or
// boolean round-trips (checked against the real sops: 1e400, .inf, .nan, 1.0e+3, 0x1F, 0o17, 1_000, dates...).
// An encrypted -0.0 is fine: its type is stored beside its ciphertext.
import type { ScalarNode } from './tree.ts';

/** Whether a scalar is the float -0.0 (any spelling: `-0.0`, `-.0`, `-0e5`, `-1e-400`). Pure. */
export function isNegativeZero(leaf: ScalarNode): boolean {
  return leaf.type === 'float' && Object.is(leaf.value, -0);
}

/** Whether a scalar is a zero a plain `-0` is read as (the int 0, in YAML and JSON). Pure. */
export function isPlainZero(leaf: ScalarNode): boolean {
  return (leaf.type === 'int' && (leaf.value === 0n || leaf.value === 0)) || (leaf.type === 'float' && leaf.value === 0);
}

/** What is wrong with a plain negative zero, in words, for messages (no value: -0.0 is no secret, it is the kind). */
export const NEGATIVE_ZERO_WHY =
  'sops writes a negative zero (-0.0) left unencrypted as `-0`, which it then reads back as the integer 0, so its MAC no longer matches (`sops decrypt` fails "MAC mismatch" on its own file)';

/** How to keep such a value: as text, or as 0. */
export const NEGATIVE_ZERO_FIX = 'store it as text, in double quotes ("-0.0"), or as 0 if a zero is meant';
