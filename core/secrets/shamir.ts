// Shamir's secret sharing over GF(2^8), as sops uses it for key groups (sops/shamir, from HashiCorp Vault): the
// data key is split into one share per key group, each share encrypted to that group's keys; any `threshold`
// shares give the key back. Each share is the secret's length in bytes of y values, then its x coordinate.

/** Multiplication in GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1. */
function mult(a: number, b: number): number {
  let acc = 0;
  for (let i = 7; i >= 0; i--) {
    const bit = (b >> i) & 1;
    acc = ((acc << 1) ^ (acc & 0x80 ? 0x1b : 0)) & 0xff;
    if (bit) acc ^= a;
  }
  return acc;
}

/** a^254 = a^-1 in GF(2^8). */
function inverse(a: number): number {
  let r = 1;
  for (let i = 0; i < 254; i++) r = mult(r, a);
  return r;
}

/** The secret from at least `threshold` shares (Lagrange interpolation at x = 0). Throws a plain Error. */
export function combineShares(shares: Uint8Array[]): Buffer {
  if (shares.length < 2) throw new Error('less than two shares cannot give the secret back');
  const len = shares[0]!.length;
  if (len < 2 || shares.some((s) => s.length !== len)) throw new Error('the shares are not all of the same length');
  const xs = shares.map((s) => s[len - 1]!);
  if (new Set(xs).size !== xs.length) throw new Error('two shares are the same share');
  const secret = Buffer.alloc(len - 1);
  for (let idx = 0; idx < len - 1; idx++) {
    let result = 0;
    for (let i = 0; i < shares.length; i++) {
      let basis = 1;
      for (let j = 0; j < shares.length; j++) {
        if (i === j) continue;
        basis = mult(basis, mult(xs[j]!, inverse(xs[i]! ^ xs[j]!)));
      }
      result ^= mult(shares[i]![idx]!, basis);
    }
    secret[idx] = result;
  }
  return secret;
}

/** Split `secret` into `parts` shares, any `threshold` of which give it back (for tests and writing). */
export function splitSecret(secret: Uint8Array, parts: number, threshold: number, random: (n: number) => Uint8Array): Buffer[] {
  if (threshold < 2 || parts < threshold || parts > 255) throw new Error('need 2 <= threshold <= parts <= 255');
  const out = Array.from({ length: parts }, (_, i) => {
    const b = Buffer.alloc(secret.length + 1);
    b[secret.length] = i + 1;
    return b;
  });
  secret.forEach((value, idx) => {
    const coefficients = [value, ...random(threshold - 1)];
    for (let i = 0; i < parts; i++) {
      const x = i + 1;
      let y = coefficients[coefficients.length - 1]!;
      for (let c = coefficients.length - 2; c >= 0; c--) y = mult(y, x) ^ coefficients[c]!;
      out[i]![idx] = y;
    }
  });
  return out;
}
