import { ProtocolError } from "../errors.ts";
import { truncateUtf8 } from "../util/bytes.ts";
import { MAX_NAME_BYTES } from "../files/name-limits.ts";

/**
 * The transfer protocol's datagrams (docs/PROTOCOL.md has the byte layout). Every datagram starts
 * with the same 26-byte header; the checksum covers the whole datagram with its own field read as zero.
 * Decoders never allocate for DATA: the payload is a view into the received buffer.
 */
export const WIRE_MAGIC = 0x4658; // "FX"
/** 2: REPAIR datagrams (forward error correction), the ACCEPT's FEC block size, the ACK's received count. */
export const WIRE_VERSION = 2;
export const HEADER_BYTES = 26;
const CHECKSUM_AT = 22;
/** A REQUEST is padded to at least this, so the 3× anti-amplification budget covers the ACCEPT. */
export const MIN_REQUEST_BYTES = 1200;
/** The largest UDP payload over IPv4 (65535 − 20 − 8); minus our header, the largest segment. */
export const MAX_DATAGRAM_BYTES = 65507;
export const MAX_SEGMENT_BYTES = MAX_DATAGRAM_BYTES - HEADER_BYTES;
export const MIN_SEGMENT_BYTES = 512;

/** A segment size both sides can use: what a REQUEST asks for, a probe found, or a user pinned, within the bounds. */
export function clampSegmentBytes(bytes: number): number {
  return Math.max(MIN_SEGMENT_BYTES, Math.min(MAX_SEGMENT_BYTES, bytes));
}
export { MAX_NAME_BYTES };
export const MAX_ERROR_TEXT_BYTES = 512;
export const SHA256_BYTES = 32;
export const MAC_BYTES = 32;

export enum PacketType {
  Request = 1,
  Accept = 2,
  Error = 3,
  Data = 4,
  Ack = 5,
  Fin = 6,
  /** Client → server: a padded datagram of the size being tried (path MTU discovery, RFC 8899-style). */
  Probe = 7,
  /** Server → client: "a datagram of this many bytes arrived"; always far smaller than the probe. */
  ProbeAck = 8,
  /**
   * Server → client: repair segment `flags` (its index j) of the FEC block whose first segment is `seq`:
   * Σ c(j, i) · segment_i over GF(2^8) (src/transfer/fec/block-code.ts), as long as the block's longest segment.
   */
  Repair = 9,
}

export const FLAG_HAS_MAC = 0x01;
/** REQUEST: send the file's piece hashes (32 bytes per piece, src/files/pieces.ts) instead of its bytes. */
export const FLAG_PIECE_HASHES = 0x02;
/**
 * DATA: the sender can send nothing more until this segment is acknowledged (its window is full, or
 * the range is all sent): acknowledge it at once, not after `ackEvery` segments or the ACK delay. The
 * receiver sizes `ackEvery` from the window it offers, but the sender's congestion window can be far
 * smaller (after losses); without this flag every round trip would wait out the delayed-ACK timer.
 */
export const FLAG_ACK_NOW = 0x04;
/**
 * ACK: a segment beyond a gap arrived (the receiver is missing `seq`): only such ACKs count as
 * duplicates toward a go-back. An ACK that repeats the cumulative point for another reason (a resent
 * copy arrived, a timer, a window update) must not, or every go-back would draw the next one.
 */
export const FLAG_GAP = 0x08;

export enum TransferErrorCode {
  NotFound = 1,
  Forbidden = 2,
  Busy = 3,
  Changed = 4,
  BadRequest = 5,
  Internal = 6,
  Timeout = 7,
  Cancelled = 8,
}

export interface Header {
  type: PacketType;
  flags: number;
  sessionId: number;
  seq: number;
  timestampUs: number;
}

export interface RequestBody {
  offset: number;
  length: number; // 0: to the end of the file
  segmentBytes: number;
  windowSegments: number;
  sha256: Uint8Array;
  name: string;
  mac: Uint8Array | undefined;
  /** What the session carries: the file's bytes, or its list of piece hashes. */
  pieceHashes?: boolean;
}

export interface AcceptBody {
  fileSize: number;
  offset: number;
  length: number;
  segmentBytes: number;
  cookie: number;
  sha256: Uint8Array;
  /** Data segments per FEC block (repairs cover one block); 0: the server sends no repairs. */
  fecBlock: number;
}

export interface AckBody {
  windowSegments: number;
  echoTimestampUs: number;
  ackDelayUs: number;
  /** DATA and REPAIR datagrams received in this session so far (mod 2^32): the sender's loss and delivery-rate signal. */
  received: number;
  cookie: number;
  /** FLAG_GAP: sent because a segment beyond a gap arrived. */
  gap?: boolean;
}

export interface ErrorBody {
  code: TransferErrorCode;
  text: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** CRC-32 (IEEE 802.3 polynomial), computed natively by Bun: ~50× a JS CRC-32C, same 32-bit strength. */
function crc(bytes: Uint8Array): number {
  return Bun.hash.crc32(bytes) as number;
}

export function writeHeader(buf: Uint8Array, view: DataView, type: PacketType, flags: number, sessionId: number, seq: number, timestampUs: number): void {
  view.setUint16(0, WIRE_MAGIC);
  buf[2] = WIRE_VERSION;
  buf[3] = type;
  buf[4] = flags;
  buf[5] = 0;
  view.setUint32(6, sessionId);
  // u64 as two u32s: cheaper than BigInt on the per-datagram path. Values stay below 2^53.
  view.setUint32(10, Math.floor(seq / 4294967296));
  view.setUint32(14, seq >>> 0);
  view.setUint32(18, timestampUs >>> 0);
}

/** Fill in the checksum of a finished datagram `buf[0..length)`. */
export function seal(buf: Uint8Array, view: DataView, length: number): void {
  view.setUint32(CHECKSUM_AT, 0);
  view.setUint32(CHECKSUM_AT, crc(buf.subarray(0, length)));
}

/**
 * `seal` for a datagram that is all of `datagram` (`view` over the same bytes, from its first): no
 * subarray, so a hot path that keeps an exact-length view of its buffer allocates nothing per datagram.
 */
export function sealDatagram(datagram: Uint8Array, view: DataView): void {
  view.setUint32(CHECKSUM_AT, 0);
  view.setUint32(CHECKSUM_AT, crc(datagram));
}

/**
 * Validate magic, version and checksum and read the header. Throws ProtocolError for anything that is
 * not an intact ftx datagram; the shells count it and drop it.
 */
export function readHeader(buf: Uint8Array): Header {
  if (buf.byteLength < HEADER_BYTES) throw new ProtocolError(`datagram of ${buf.byteLength} bytes is shorter than the header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint16(0) !== WIRE_MAGIC) throw new ProtocolError("bad magic");
  if (buf[2] !== WIRE_VERSION) throw new ProtocolError(`unsupported version ${buf[2]}`);
  const claimed = view.getUint32(CHECKSUM_AT);
  view.setUint32(CHECKSUM_AT, 0);
  const actual = crc(buf);
  view.setUint32(CHECKSUM_AT, claimed);
  if (claimed !== actual) throw new ProtocolError("checksum mismatch");
  const type = buf[3]!;
  if (type < PacketType.Request || type > PacketType.Repair) throw new ProtocolError(`unknown packet type ${type}`);
  if (buf[5] !== 0) throw new ProtocolError("reserved byte is not zero");
  const hi = view.getUint32(10);
  if (hi > 0x1fffff) throw new ProtocolError("sequence number out of range");
  return {
    type,
    flags: buf[4]!,
    sessionId: view.getUint32(6),
    seq: hi * 4294967296 + view.getUint32(14),
    timestampUs: view.getUint32(18),
  };
}

/** A bounds-checked reader for bodies (after the header). */
class BodyReader {
  private at = HEADER_BYTES;
  private readonly view: DataView;
  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  need(n: number, what: string): void {
    if (this.buf.byteLength - this.at < n) throw new ProtocolError(`truncated ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.at++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.at);
    this.at += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.at);
    this.at += 4;
    return v;
  }
  u64(what: string): number {
    const hi = this.u32(what);
    const lo = this.u32(what);
    if (hi > 0x1fffff) throw new ProtocolError(`${what} out of range`);
    return hi * 4294967296 + lo;
  }
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.buf.slice(this.at, this.at + n);
    this.at += n;
    return out;
  }
  string(max: number, what: string): string {
    const n = this.u16(what);
    if (n > max) throw new ProtocolError(`${what} too long`);
    this.need(n, what);
    try {
      const s = decoder.decode(this.buf.subarray(this.at, this.at + n));
      this.at += n;
      return s;
    } catch {
      throw new ProtocolError(`${what} is not valid UTF-8`);
    }
  }
  end(what: string): void {
    if (this.at !== this.buf.byteLength) throw new ProtocolError(`trailing bytes after ${what}`);
  }
}

export function decodeRequest(buf: Uint8Array, header: Header): RequestBody {
  if (buf.byteLength < MIN_REQUEST_BYTES) throw new ProtocolError("request not padded to the minimum size");
  const r = new BodyReader(buf);
  const offset = r.u64("offset");
  const length = r.u64("length");
  const segmentBytes = r.u16("segment size");
  const windowSegments = r.u32("window");
  const sha256 = r.bytes(SHA256_BYTES, "sha256");
  const name = r.string(MAX_NAME_BYTES, "name");
  const mac = header.flags & FLAG_HAS_MAC ? r.bytes(MAC_BYTES, "mac") : undefined;
  // The rest is padding (anti-amplification): ignored.
  return { offset, length, segmentBytes, windowSegments, sha256, name, mac, pieceHashes: (header.flags & FLAG_PIECE_HASHES) !== 0 };
}

export function decodeAccept(buf: Uint8Array): AcceptBody {
  const r = new BodyReader(buf);
  const body = {
    fileSize: r.u64("file size"),
    offset: r.u64("offset"),
    length: r.u64("length"),
    segmentBytes: r.u16("segment size"),
    cookie: r.u32("cookie"),
    sha256: r.bytes(SHA256_BYTES, "sha256"),
    fecBlock: r.u8("FEC block"),
  };
  r.end("ACCEPT");
  return body;
}

export function decodeAck(buf: Uint8Array): AckBody {
  if (buf.byteLength !== ACK_BYTES) throw new ProtocolError("ACK of the wrong length");
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    windowSegments: view.getUint32(HEADER_BYTES),
    echoTimestampUs: view.getUint32(HEADER_BYTES + 4),
    ackDelayUs: view.getUint32(HEADER_BYTES + 8),
    received: view.getUint32(HEADER_BYTES + 12),
    cookie: view.getUint32(HEADER_BYTES + 16),
  };
}

export function decodeError(buf: Uint8Array): ErrorBody {
  const r = new BodyReader(buf);
  const code = r.u8("error code");
  const text = r.string(MAX_ERROR_TEXT_BYTES, "error text");
  r.end("ERROR");
  return { code, text };
}

/** Builders for the control packets. DATA and ACK are built in place by the hot paths. */
export function encodeRequest(sessionId: number, body: RequestBody, timestampUs: number): Uint8Array {
  const nameBytes = encoder.encode(body.name);
  if (nameBytes.byteLength > MAX_NAME_BYTES) throw new RangeError("name too long");
  const used = HEADER_BYTES + 8 + 8 + 2 + 4 + SHA256_BYTES + 2 + nameBytes.byteLength + (body.mac ? MAC_BYTES : 0);
  const buf = new Uint8Array(Math.max(MIN_REQUEST_BYTES, used));
  const view = new DataView(buf.buffer);
  const flags = (body.mac ? FLAG_HAS_MAC : 0) | (body.pieceHashes ? FLAG_PIECE_HASHES : 0);
  writeHeader(buf, view, PacketType.Request, flags, sessionId, 0, timestampUs);
  let at = HEADER_BYTES;
  view.setUint32(at, Math.floor(body.offset / 4294967296));
  view.setUint32(at + 4, body.offset >>> 0);
  view.setUint32(at + 8, Math.floor(body.length / 4294967296));
  view.setUint32(at + 12, body.length >>> 0);
  view.setUint16(at + 16, body.segmentBytes);
  view.setUint32(at + 18, body.windowSegments);
  at += 22;
  buf.set(body.sha256, at);
  at += SHA256_BYTES;
  view.setUint16(at, nameBytes.byteLength);
  buf.set(nameBytes, at + 2);
  at += 2 + nameBytes.byteLength;
  if (body.mac) buf.set(body.mac, at);
  seal(buf, view, buf.byteLength);
  return buf;
}

export function encodeAccept(sessionId: number, body: AcceptBody, timestampUs: number): Uint8Array {
  const buf = new Uint8Array(HEADER_BYTES + 8 + 8 + 8 + 2 + 4 + SHA256_BYTES + 1);
  const view = new DataView(buf.buffer);
  writeHeader(buf, view, PacketType.Accept, 0, sessionId, 0, timestampUs);
  let at = HEADER_BYTES;
  for (const v of [body.fileSize, body.offset, body.length]) {
    view.setUint32(at, Math.floor(v / 4294967296));
    view.setUint32(at + 4, v >>> 0);
    at += 8;
  }
  view.setUint16(at, body.segmentBytes);
  view.setUint32(at + 2, body.cookie);
  buf.set(body.sha256, at + 6);
  buf[at + 6 + SHA256_BYTES] = body.fecBlock;
  seal(buf, view, buf.byteLength);
  return buf;
}

export function encodeError(sessionId: number, body: ErrorBody, timestampUs: number): Uint8Array {
  const text = encoder.encode(truncateUtf8(body.text, MAX_ERROR_TEXT_BYTES));
  const buf = new Uint8Array(HEADER_BYTES + 1 + 2 + text.byteLength);
  const view = new DataView(buf.buffer);
  writeHeader(buf, view, PacketType.Error, 0, sessionId, 0, timestampUs);
  buf[HEADER_BYTES] = body.code;
  view.setUint16(HEADER_BYTES + 1, text.byteLength);
  buf.set(text, HEADER_BYTES + 3);
  seal(buf, view, buf.byteLength);
  return buf;
}

export function encodeFin(sessionId: number, timestampUs: number): Uint8Array {
  const buf = new Uint8Array(HEADER_BYTES);
  const view = new DataView(buf.buffer);
  writeHeader(buf, view, PacketType.Fin, 0, sessionId, 0, timestampUs);
  seal(buf, view, buf.byteLength);
  return buf;
}

/** A probe is never smaller than a padded REQUEST, so answering it can never amplify. */
export const MIN_PROBE_BYTES = MIN_REQUEST_BYTES;
export const PROBE_ACK_BYTES = HEADER_BYTES + 4;

export function encodeProbe(probeId: number, datagramBytes: number, timestampUs: number): Uint8Array {
  if (datagramBytes < MIN_PROBE_BYTES || datagramBytes > MAX_DATAGRAM_BYTES) throw new RangeError(`probe size ${datagramBytes} out of range`);
  const buf = new Uint8Array(datagramBytes);
  const view = new DataView(buf.buffer);
  writeHeader(buf, view, PacketType.Probe, 0, probeId, 0, timestampUs);
  seal(buf, view, buf.byteLength);
  return buf;
}

export function encodeProbeAck(probeId: number, datagramBytes: number, timestampUs: number): Uint8Array {
  const buf = new Uint8Array(PROBE_ACK_BYTES);
  const view = new DataView(buf.buffer);
  writeHeader(buf, view, PacketType.ProbeAck, 0, probeId, 0, timestampUs);
  view.setUint32(HEADER_BYTES, datagramBytes);
  seal(buf, view, buf.byteLength);
  return buf;
}

export function decodeProbeAck(buf: Uint8Array): number {
  if (buf.byteLength !== PROBE_ACK_BYTES) throw new ProtocolError("PROBE_ACK of the wrong length");
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(HEADER_BYTES);
}

/** ACKs are built into a buffer the caller reuses. */
export const ACK_BYTES = HEADER_BYTES + 20;
/** The receiver's ACK fields and the session cookie are passed apart, so the hot path builds no object. */
export function writeAck(buf: Uint8Array, view: DataView, sessionId: number, cumulative: number, body: Omit<AckBody, "cookie">, cookie: number, timestampUs: number): void {
  writeHeader(buf, view, PacketType.Ack, body.gap ? FLAG_GAP : 0, sessionId, cumulative, timestampUs);
  view.setUint32(HEADER_BYTES, body.windowSegments);
  view.setUint32(HEADER_BYTES + 4, body.echoTimestampUs >>> 0);
  view.setUint32(HEADER_BYTES + 8, body.ackDelayUs >>> 0);
  view.setUint32(HEADER_BYTES + 12, body.received >>> 0);
  view.setUint32(HEADER_BYTES + 16, cookie >>> 0);
  seal(buf, view, ACK_BYTES);
}

/** Microseconds on a monotonic clock, truncated to 32 bits (wraps every ~71 min; only differences matter). */
export function timestampUs(nowMs: number): number {
  return Math.floor(nowMs * 1000) >>> 0;
}

/** Elapsed µs between two 32-bit timestamps, correct across one wrap. */
export function elapsedUs(fromUs: number, toUs: number): number {
  return (toUs - fromUs) >>> 0;
}
