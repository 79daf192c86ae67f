/**
 * The AEAD the channels use, as an interface: the pure cores (handshake, frame and datagram sealers) are
 * given one, so they never import node:crypto themselves. The implementations are AES-256-GCM from
 * Bun's native crypto (src/crypto/aes-gcm.ts; Bun 1.4.5 has no ChaCha20-Poly1305) and, for the
 * datagrams' in-place sealing, from OpenSSL's libcrypto through bun:ffi (src/crypto/aes-gcm-native.ts).
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
 * AES-256-GCM over a datagram in place: what the transfer's per-datagram sealing needs (no allocation,
 * no copy). The regions never overlap each other, except that ciphertext replaces plaintext in place;
 * any length may be 0 (an empty body: only the tag over the AAD). A region outside `buf`, overlapping
 * regions or a nonce of another length than AEAD_NONCE_BYTES are the caller's bug: RangeError.
 */
export interface InPlaceAead {
  /** e.g. "AES-256-GCM (OpenSSL libcrypto 3.0.19)" or "AES-256-GCM (node:crypto)": `--verbose` prints it. */
  readonly name: string;
  /** Encrypts buf[at, at+length) in place with aad = buf[aadAt, aadAt+aadLength) and writes the 16-byte tag at buf[tagAt]. */
  sealInPlace(nonce: Uint8Array, buf: Uint8Array, aadAt: number, aadLength: number, at: number, length: number, tagAt: number): void;
  /**
   * Checks the tag at buf[tagAt] and decrypts buf[at, at+length) in place. False: it did not verify
   * (the bytes in [at, at+length) are then garbage; the caller drops the datagram). Never throws for
   * bad input bytes.
   */
  openInPlace(nonce: Uint8Array, buf: Uint8Array, aadAt: number, aadLength: number, at: number, length: number, tagAt: number): boolean;
  /** Frees what it holds now (native memory) rather than when it is collected; any call after it throws. */
  dispose?(): void;
}

/** Makes an InPlaceAead for a 32-byte key. */
export type InPlaceAeadFactory = (key: Uint8Array) => InPlaceAead;

/**
 * The nonce for message number `seq` (< 2^48, so exact in a double): the 12-byte IV from the key
 * schedule XOR the big-endian counter in its last 8 bytes, as TLS 1.3 (RFC 8446 §5.3). A counter never
 * repeats under one key, so neither does a nonce.
 */
export function counterNonce(iv: Uint8Array, seq: number, out: Uint8Array = new Uint8Array(AEAD_NONCE_BYTES)): Uint8Array {
  // Unrolled, in two 24-bit halves (exact for seq < 2^48): it runs once per datagram, and the loop
  // with a division per byte cost ~0.2 µs of it.
  const hi = (seq / 0x1000000) | 0;
  const lo = seq & 0xffffff;
  out[0] = iv[0]!;
  out[1] = iv[1]!;
  out[2] = iv[2]!;
  out[3] = iv[3]!;
  out[4] = iv[4]!;
  out[5] = iv[5]!;
  out[6] = iv[6]! ^ (hi >>> 16);
  out[7] = iv[7]! ^ ((hi >>> 8) & 0xff);
  out[8] = iv[8]! ^ (hi & 0xff);
  out[9] = iv[9]! ^ (lo >>> 16);
  out[10] = iv[10]! ^ ((lo >>> 8) & 0xff);
  out[11] = iv[11]! ^ (lo & 0xff);
  return out;
}

/** 2^48 messages under one key: far beyond any connection, and within GCM's limits for 1.4 KB messages. */
export const MAX_SEQ = 2 ** 48 - 1;
