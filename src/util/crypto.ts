/**
 * The few primitives ftx needs, from Bun's native hasher and Web Crypto: importing node:crypto cost
 * 6–7 ms of every process's start here, a fifth of `ftx ls`.
 */

/** The length of a SHA-256 digest, and so of an HMAC-SHA256: every hash and MAC on our wires. */
export const SHA256_BYTES = 32;

/** An HMAC-SHA256 in progress, keyed with `key`. */
export function hmacSha256(key: string): Bun.CryptoHasher {
  return new Bun.CryptoHasher("sha256", key);
}

/** Equal bytes, in a time that depends only on the length (a MAC check must not leak how much of it matched). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
