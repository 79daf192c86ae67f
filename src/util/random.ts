/**
 * Randomness from Web Crypto, for the shells: session ids, cookies, nonces, a master's id. The pure
 * cores never draw it themselves; they are given it (a function, or the values).
 */
export function randomBytes(count: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(count));
}

export function randomU32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]!;
}
