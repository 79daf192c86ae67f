/**
 * The AEAD the channels use, as an interface: the pure cores (handshake, frame and datagram sealers) are
 * given one, so they never import node:crypto themselves. The one implementation is AES-256-GCM from
 * Bun's native crypto (src/crypto/aes-gcm.ts); Bun 1.4.5 has no ChaCha20-Poly1305.
 */
export const AEAD_KEY_BYTES = 32;
export const AEAD_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;

export interface Aead {
  /** The cipher's name as `--verbose` shows it. */
  readonly name: string;
  /** ciphertext ‖ tag (plaintext.length + AEAD_TAG_BYTES bytes). */
  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** As `seal`, writing ciphertext ‖ tag into `out` at `at` (saves an allocation and a copy per datagram). */
  sealInto(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, at: number): void;
  /** The plaintext, or undefined when the tag does not verify (tampered, wrong key, wrong nonce or aad). */
  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined;
}

/** Makes an Aead for a 32-byte key. */
export type AeadFactory = (key: Uint8Array) => Aead;

/**
 * The nonce for message number `seq` (< 2^48, so exact in a double): the 12-byte IV from the key
 * schedule XOR the big-endian counter in its last 8 bytes, as TLS 1.3 (RFC 8446 §5.3). A counter never
 * repeats under one key, so neither does a nonce.
 */
export function counterNonce(iv: Uint8Array, seq: number, out: Uint8Array = new Uint8Array(AEAD_NONCE_BYTES)): Uint8Array {
  out.set(iv);
  let v = seq;
  for (let i = AEAD_NONCE_BYTES - 1; i >= AEAD_NONCE_BYTES - 6; i--) {
    out[i]! ^= v & 0xff;
    v = Math.floor(v / 256);
  }
  return out;
}

/** 2^48 messages under one key: far beyond any connection, and within GCM's limits for 1.4 KB messages. */
export const MAX_SEQ = 2 ** 48 - 1;
