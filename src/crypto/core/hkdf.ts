/**
 * HKDF-SHA256 (RFC 5869) on Bun's native HMAC: pure computation, so the key schedule stays in a core.
 */
const HASH_BYTES = 32;

export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = new Bun.CryptoHasher("sha256", key);
  for (const p of parts) h.update(p);
  return Uint8Array.from(h.digest());
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = new Bun.CryptoHasher("sha256");
  for (const p of parts) h.update(p);
  return Uint8Array.from(h.digest());
}

export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmac(salt.byteLength === 0 ? new Uint8Array(HASH_BYTES) : salt, ikm);
}

export function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (length > 255 * HASH_BYTES) throw new RangeError("HKDF output too long");
  const out = new Uint8Array(length);
  let prev: Uint8Array = new Uint8Array(0);
  for (let i = 0, at = 0; at < length; i++) {
    prev = hmac(prk, prev, info, Uint8Array.of(i + 1));
    out.set(prev.subarray(0, Math.min(HASH_BYTES, length - at)), at);
    at += HASH_BYTES;
  }
  return out;
}

const utf8 = new TextEncoder();
export function label(s: string): Uint8Array {
  return utf8.encode(s);
}
