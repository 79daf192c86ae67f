/**
 * Arithmetic in GF(2^8), the field every repair symbol of the block code lives in (RFC 6865 §8.1 uses
 * the same field and polynomial). Addition is XOR; multiplication goes through log/exp tables, and the
 * hot path (`mulAddRow`, "dst ^= coef · src" over a whole segment) through a 256 × 256 product table,
 * one lookup per byte. Pure: tables are built once when the module loads (64 KiB + 768 bytes).
 */

/** x^8 + x^4 + x^3 + x^2 + 1: primitive, so 2 generates the multiplicative group (RFC 6865 §8.1). */
export const GF_POLYNOMIAL = 0x11d;

/** EXP[i] = 2^i for i in [0, 510): doubled so EXP[LOG[a] + LOG[b]] needs no reduction mod 255. */
export const GF_EXP = new Uint8Array(510);
/** LOG[a] = i with 2^i = a, for a ≠ 0 (LOG[0] is unused and left 0). */
export const GF_LOG = new Uint8Array(256);
/** MUL[(a << 8) | b] = a · b: the row of `a` starts at a << 8. */
export const GF_MUL_TABLE = new Uint8Array(65536);

{
  let x = 1;
  for (let i = 0; i < 255; i++) {
    GF_EXP[i] = x;
    GF_LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= GF_POLYNOMIAL;
  }
  for (let i = 255; i < 510; i++) GF_EXP[i] = GF_EXP[i - 255]!;
  for (let a = 1; a < 256; a++) {
    const la = GF_LOG[a]!;
    const row = a << 8;
    for (let b = 1; b < 256; b++) GF_MUL_TABLE[row | b] = GF_EXP[la + GF_LOG[b]!]!;
  }
}

/** One 256-byte view per coefficient into GF_MUL_TABLE (measured faster than indexing `base | x`). */
const GF_MUL_ROWS: Uint8Array[] = Array.from({ length: 256 }, (_, a) => GF_MUL_TABLE.subarray(a << 8, (a << 8) + 256));

/** The 32-bit paths pack four product bytes into one word in memory order: little-endian hosts only. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export function gfMul(a: number, b: number): number {
  return GF_MUL_TABLE[((a & 0xff) << 8) | (b & 0xff)]!;
}

/** 1 / a; throws RangeError for 0 (a bug in the caller, never the peer's doing). */
export function gfInv(a: number): number {
  if (a === 0 || a > 255) throw new RangeError(`no inverse of ${a} in GF(256)`);
  return GF_EXP[255 - GF_LOG[a]!]!;
}

export function gfDiv(a: number, b: number): number {
  if (b === 0 || b > 255) throw new RangeError(`division by ${b} in GF(256)`);
  if (a === 0) return 0;
  return GF_EXP[GF_LOG[a]! + 255 - GF_LOG[b]!]!;
}

/**
 * dst[0, length) ^= coef · src[0, length), one table lookup per byte; allocates nothing. coef 0 leaves
 * dst as it is, coef 1 is a plain XOR. Works for any alignment; `mulAddWords` is the faster form for a
 * word-aligned destination.
 */
export function mulAddRow(dst: Uint8Array, src: Uint8Array, coef: number, length: number): void {
  if (coef === 0) return;
  if (coef === 1) {
    for (let i = 0; i < length; i++) dst[i]! ^= src[i]!;
    return;
  }
  const base = coef << 8;
  const table = GF_MUL_TABLE;
  for (let i = 0; i < length; i++) dst[i]! ^= table[base | src[i]!]!;
}

/** dst[0, length) = coef · src[0, length) (assignment, not accumulation). */
export function mulRow(dst: Uint8Array, src: Uint8Array, coef: number, length: number): void {
  if (coef === 1) {
    dst.set(src.subarray(0, length));
    return;
  }
  if (coef === 0) {
    dst.fill(0, 0, length);
    return;
  }
  const base = coef << 8;
  const table = GF_MUL_TABLE;
  for (let i = 0; i < length; i++) dst[i] = table[base | src[i]!]!;
}

/**
 * The hot path: the same as `mulAddRow(bytes, src, coef, length)` where `words` is a Uint32Array over
 * the same memory as `bytes` (so `bytes` starts on a 4-byte boundary). Four products are packed into
 * one 32-bit XOR, which halves the memory traffic on dst; `src` may have any alignment (a payload
 * after a 26-byte header has none). Measured by bench/fec-speed.ts.
 */
export function mulAddWords(bytes: Uint8Array, words: Uint32Array, src: Uint8Array, coef: number, length: number): void {
  if (coef === 0) return;
  if (!LITTLE_ENDIAN) return mulAddRow(bytes, src, coef, length);
  const wordCount = length >>> 2;
  let j = 0;
  if (coef === 1) {
    for (let i = 0; i < wordCount; i++, j += 4) {
      words[i]! ^= src[j]! | (src[j + 1]! << 8) | (src[j + 2]! << 16) | (src[j + 3]! << 24);
    }
    for (; j < length; j++) bytes[j]! ^= src[j]!;
    return;
  }
  const row = GF_MUL_ROWS[coef]!;
  for (let i = 0; i < wordCount; i++, j += 4) {
    words[i]! ^= row[src[j]!]! | (row[src[j + 1]!]! << 8) | (row[src[j + 2]!]! << 16) | (row[src[j + 3]!]! << 24);
  }
  for (; j < length; j++) bytes[j]! ^= row[src[j]!]!;
}
