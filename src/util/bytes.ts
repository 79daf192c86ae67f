import { ProtocolError } from "../errors.ts";

const utf8Encoder = new TextEncoder();

const TWO_TO_32 = 4294967296;
/** The high word of 2^53 − 1: a u64 whose high word is above this does not fit a JS number exactly. */
const MAX_SAFE_HIGH_WORD = 0x1fffff;

/**
 * A u64 (big-endian) as two u32 words: cheaper than BigInt on the per-datagram path. Every u64 on our
 * wires is a size, offset or segment number, so it is a non-negative integer below 2^53.
 */
export function writeU64(view: DataView, at: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${v} is not a u64 below 2^53`);
  view.setUint32(at, Math.floor(v / TWO_TO_32));
  view.setUint32(at + 4, v >>> 0);
}

/**
 * Copy `source[start, end)` to `target` at `at` (as much as fits); returns the bytes copied. Through
 * Buffer.prototype.copy, which takes a source range: a subarray of a received datagram would give it
 * an ArrayBuffer object first (~0.4 µs, wire.ts's datagramCrc says more).
 */
export function copyRange(source: Uint8Array, start: number, end: number, target: Uint8Array, at: number): number {
  return Buffer.prototype.copy.call(source, target, at, start, end);
}

/** `readU64` straight from the bytes, for a received array that has no DataView (wire.ts's datagramCrc says why). */
export function readU64Bytes(b: Uint8Array, at: number, what: string): number {
  const hi = ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
  if (hi > MAX_SAFE_HIGH_WORD) throw new ProtocolError(`${what} out of range`);
  return hi * TWO_TO_32 + (((b[at + 4]! << 24) | (b[at + 5]! << 16) | (b[at + 6]! << 8) | b[at + 7]!) >>> 0);
}

/** The u64 at `at`; a value of 2^53 or more is a ProtocolError naming `what` (the caller checked the bounds). */
export function readU64(view: DataView, at: number, what: string): number {
  const hi = view.getUint32(at);
  if (hi > MAX_SAFE_HIGH_WORD) throw new ProtocolError(`${what} out of range`);
  return hi * TWO_TO_32 + view.getUint32(at + 4);
}
// fatal: a name that is not valid UTF-8 is a protocol error, never a silently mangled name.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * A bounds-checked cursor over received bytes. Every read checks the length first and throws
 * ProtocolError on a short or malformed buffer, so decoders cannot read past what arrived.
 */
export class ByteReader {
  private offset = 0;
  private readonly view: DataView;
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get remaining(): number {
    return this.bytes.byteLength - this.offset;
  }
  private need(n: number, what: string): void {
    if (this.remaining < n) throw new ProtocolError(`truncated ${what}: need ${n} bytes, have ${this.remaining}`);
  }
  u8(what = "u8"): number {
    this.need(1, what);
    return this.view.getUint8(this.offset++);
  }
  u16(what = "u16"): number {
    this.need(2, what);
    const v = this.view.getUint16(this.offset);
    this.offset += 2;
    return v;
  }
  u32(what = "u32"): number {
    this.need(4, what);
    const v = this.view.getUint32(this.offset);
    this.offset += 4;
    return v;
  }
  /** A u64 that must fit in a JS number exactly (2^53): file sizes and offsets. */
  u64(what = "u64"): number {
    this.need(8, what);
    const v = readU64(this.view, this.offset, what);
    this.offset += 8;
    return v;
  }
  bytesCopy(n: number, what = "bytes"): Uint8Array {
    this.need(n, what);
    const out = this.bytes.slice(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
  /** A view (no copy) valid only as long as the underlying buffer is. */
  bytesView(n: number, what = "bytes"): Uint8Array {
    this.need(n, what);
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
  /** A UTF-8 string prefixed by its byte length as u8 or u16, with an upper bound. */
  string(lengthBytes: 1 | 2, maxBytes: number, what = "string"): string {
    const n = lengthBytes === 1 ? this.u8(what) : this.u16(what);
    if (n > maxBytes) throw new ProtocolError(`${what} too long: ${n} > ${maxBytes} bytes`);
    const raw = this.bytesView(n, what);
    try {
      return utf8Decoder.decode(raw);
    } catch {
      throw new ProtocolError(`${what} is not valid UTF-8`);
    }
  }
  hex(n: number, what = "hash"): string {
    return Buffer.from(this.bytesView(n, what)).toString("hex");
  }
  end(what: string): void {
    if (this.remaining !== 0) throw new ProtocolError(`${this.remaining} trailing bytes after ${what}`);
  }
}

/** A growable writer for building frames; sized once per frame, not per field. */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private offset = 0;
  constructor(initialBytes = 256) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }
  get length(): number {
    return this.offset;
  }
  private ensure(n: number): void {
    if (this.offset + n <= this.buf.byteLength) return;
    let size = this.buf.byteLength * 2;
    while (size < this.offset + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.offset));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): this {
    this.ensure(1);
    this.view.setUint8(this.offset++, v);
    return this;
  }
  u16(v: number): this {
    this.ensure(2);
    this.view.setUint16(this.offset, v);
    this.offset += 2;
    return this;
  }
  u32(v: number): this {
    this.ensure(4);
    this.view.setUint32(this.offset, v);
    this.offset += 4;
    return this;
  }
  u64(v: number): this {
    this.ensure(8);
    writeU64(this.view, this.offset, v);
    this.offset += 8;
    return this;
  }
  /** Patch a u32 written earlier (frame lengths, counts known only at the end). */
  setU32At(at: number, v: number): void {
    this.view.setUint32(at, v);
  }
  bytes(b: Uint8Array): this {
    this.ensure(b.byteLength);
    this.buf.set(b, this.offset);
    this.offset += b.byteLength;
    return this;
  }
  string(lengthBytes: 1 | 2, s: string, maxBytes: number): this {
    const raw = utf8Encoder.encode(s);
    if (raw.byteLength > maxBytes) throw new RangeError(`string too long for the wire: ${raw.byteLength} > ${maxBytes}`);
    if (lengthBytes === 1) this.u8(raw.byteLength);
    else this.u16(raw.byteLength);
    return this.bytes(raw);
  }
  hex(h: string, n: number): this {
    const raw = Buffer.from(h, "hex");
    if (raw.byteLength !== n) throw new RangeError(`expected ${n} bytes of hex, got ${raw.byteLength}`);
    return this.bytes(raw);
  }
  /** The bytes written; a view, not a copy (the writer is not used afterwards). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.offset);
  }
}

export function utf8ByteLength(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** The longest prefix of `s` whose UTF-8 encoding fits in `maxBytes` (never a broken character). */
export function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let lo = 0;
  let hi = Math.min(s.length, maxBytes);
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (Buffer.byteLength(s.slice(0, mid)) <= maxBytes) lo = mid;
    else hi = mid - 1;
  }
  // Do not split a surrogate pair.
  const code = s.charCodeAt(lo - 1);
  return code >= 0xd800 && code <= 0xdbff ? s.slice(0, lo - 1) : s.slice(0, lo);
}

/** The parts one after another, in a new array. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
