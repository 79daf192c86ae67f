/**
 * The record of which pieces of a part file are verified and on disk, kept in two fixed slots after
 * the data (so it travels with the part file and is never served: `*.ftx-part` is not). Slots are
 * written alternately with a rising generation and a CRC, after an fdatasync of the data they vouch
 * for: a torn or lost slot write leaves the other slot, which is older but true.
 */
export const SLOT_BYTES = 256;
export const TRAILER_BYTES = 2 * SLOT_BYTES;
const MAGIC = 0x46545850; // "FTXP"
const VERSION = 1;
const BITMAP_AT = 64;
const BITMAP_BYTES = 128; // MAX_PIECES bits
const CRC_AT = SLOT_BYTES - 4;

export interface TrailerState {
  generation: number;
  size: number;
  pieceBytes: number;
  sha256: Uint8Array;
  /** One bit per piece, piece 0 in the low bit of byte 0. */
  verified: Uint8Array;
}

export function encodeSlot(state: TrailerState): Uint8Array {
  const slot = new Uint8Array(SLOT_BYTES);
  const view = new DataView(slot.buffer);
  view.setUint32(0, MAGIC);
  slot[4] = VERSION;
  view.setUint32(8, state.generation);
  view.setUint32(12, Math.floor(state.size / 4294967296));
  view.setUint32(16, state.size >>> 0);
  view.setUint32(20, state.pieceBytes);
  slot.set(state.sha256.subarray(0, 32), 24);
  slot.set(state.verified.subarray(0, BITMAP_BYTES), BITMAP_AT);
  view.setUint32(CRC_AT, Bun.hash.crc32(slot.subarray(0, CRC_AT)) as number);
  return slot;
}

/** The slot's state if it is intact and describes this content, else undefined. */
export function decodeSlot(slot: Uint8Array, size: number, pieceBytes: number, sha256: Uint8Array): TrailerState | undefined {
  if (slot.byteLength !== SLOT_BYTES) return undefined;
  const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  if (view.getUint32(0) !== MAGIC || slot[4] !== VERSION) return undefined;
  if (view.getUint32(CRC_AT) !== (Bun.hash.crc32(slot.subarray(0, CRC_AT)) as number)) return undefined;
  const slotSize = view.getUint32(12) * 4294967296 + view.getUint32(16);
  if (slotSize !== size || view.getUint32(20) !== pieceBytes) return undefined;
  if (!Buffer.from(slot.subarray(24, 56)).equals(Buffer.from(sha256))) return undefined;
  return { generation: view.getUint32(8), size, pieceBytes, sha256, verified: slot.slice(BITMAP_AT, BITMAP_AT + BITMAP_BYTES) };
}

export function newBitmap(): Uint8Array {
  return new Uint8Array(BITMAP_BYTES);
}

export function hasBit(bitmap: Uint8Array, i: number): boolean {
  return (bitmap[i >> 3]! & (1 << (i & 7))) !== 0;
}

export function setBit(bitmap: Uint8Array, i: number, on: boolean): void {
  const byte = bitmap[i >> 3]!;
  bitmap[i >> 3] = on ? byte | (1 << (i & 7)) : byte & ~(1 << (i & 7));
}
