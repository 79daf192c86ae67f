import { ProtocolError } from "../../errors.ts";
import { readU64, readU64Bytes, truncateUtf8, writeU64 } from "../../util/bytes.ts";
import { MAX_NAME_BYTES } from "../../files/core/name-limits.ts";
import { SHA256_BYTES } from "../../util/crypto.ts";
import { DATAGRAM_OVERHEAD_BYTES, type DatagramOpener, type DatagramSealer } from "./datagram-aead.ts";
import { CONFIRM_BYTES, EPOCH_ID_BYTES, SERVER_NONCE_BYTES, SHARE_BYTES } from "./session-keys.ts";

/**
 * The transfer protocol's datagrams (docs/PROTOCOL.md §2 has the byte layout and test vectors). Every
 * datagram starts with the same 26-byte header; the checksum covers the whole datagram with its own
 * field read as zero. Each packet's fields are at the offsets of its `…_AT` table below, which both its
 * writer and its reader use. Decoders never allocate for DATA: the payload is a view into the received
 * buffer.
 */
export const WIRE_MAGIC = 0x4658; // "FX"
/**
 * 2: REPAIR datagrams (forward error correction), the ACCEPT's FEC block, the ACK's received count and gap flag.
 * 3: address tokens (RETRY, the PROBE_ACK's and the REQUEST's token, the MAC over it), REQUEST no longer padded.
 * 4: encryption (docs/PROTOCOL.md §4): greetings in PROBE_ACK and RETRY, the REQUEST's key share and
 *    sealed body, the ACCEPT's nonce, every later datagram sealed (pn and tag after its body); no MAC.
 */
export const WIRE_VERSION = 4;
/** Versions before this one get an ERROR in their own layout telling the user to upgrade (§2). */
export const FIRST_UPGRADE_VERSION = 2;

/** Where each header field starts; `end` is the header's length. */
export const HEADER_AT = {
  magic: 0, // u16
  version: 2, // u8
  type: 3, // u8
  flags: 4, // u8
  reserved: 5, // u8, zero
  sessionId: 6, // u32
  seq: 10, // u64
  timestampUs: 18, // u32
  crc: 22, // u32
  end: 26,
} as const;
export const HEADER_BYTES = HEADER_AT.end;

export { SHA256_BYTES };
export const MAX_ERROR_TEXT_BYTES = 512;
/**
 * An address token (§2 "Address validation"): `issued_s: u32` (the server's clock in seconds when it
 * made the token) and 16 bytes of HMAC-SHA256(server secret, label ‖ client address ‖ issued_s).
 */
export const ADDRESS_TOKEN_AT = {
  issuedS: 0, // u32
  tag: 4, // 16 bytes
  end: 20,
} as const;
export const ADDRESS_TOKEN_BYTES = ADDRESS_TOKEN_AT.end;
export const ADDRESS_TOKEN_TAG_BYTES = ADDRESS_TOKEN_AT.end - ADDRESS_TOKEN_AT.tag;
/**
 * A greeting (in PROBE_ACK and RETRY): an address token and the server's key share of this epoch
 * (session-keys.ts), all a client needs to send a sealed REQUEST.
 */
export const GREETING_AT = {
  token: 0, // ADDRESS_TOKEN_BYTES
  kx: ADDRESS_TOKEN_BYTES, // u8: KxKind
  epochId: ADDRESS_TOKEN_BYTES + 1, // EPOCH_ID_BYTES
  share: ADDRESS_TOKEN_BYTES + 1 + EPOCH_ID_BYTES, // SHARE_BYTES
  end: ADDRESS_TOKEN_BYTES + 1 + EPOCH_ID_BYTES + SHARE_BYTES,
} as const;
export const GREETING_BYTES = GREETING_AT.end;
/** What sealing adds to a datagram: pn (8) and tag (16) after its body. */
export { DATAGRAM_OVERHEAD_BYTES };

/**
 * The body fields, as offsets from the datagram's first byte. A packet of fixed size has `end`, its
 * length; a variable one names where its variable part starts.
 */
const REQUEST_BODY = HEADER_BYTES + ADDRESS_TOKEN_BYTES + 1 + EPOCH_ID_BYTES + SHARE_BYTES + CONFIRM_BYTES;
/** REQUEST: clear fields (the address token and the client's key exchange), then the sealed body from `body`. */
export const REQUEST_AT = {
  token: HEADER_BYTES + 0, // ADDRESS_TOKEN_BYTES, all zero: none (then nothing else is set: a bare REQUEST)
  kx: HEADER_BYTES + ADDRESS_TOKEN_BYTES, // u8: KxKind, as the greeting said
  epochId: HEADER_BYTES + ADDRESS_TOKEN_BYTES + 1, // EPOCH_ID_BYTES: the greeting's
  share: HEADER_BYTES + ADDRESS_TOKEN_BYTES + 1 + EPOCH_ID_BYTES, // SHARE_BYTES: the client's
  confirm: HEADER_BYTES + ADDRESS_TOKEN_BYTES + 1 + EPOCH_ID_BYTES + SHARE_BYTES, // CONFIRM_BYTES
  body: REQUEST_BODY, // sealed from here under the REQUEST key (pn 0), to the end:
  offset: REQUEST_BODY + 0, // u64
  length: REQUEST_BODY + 8, // u64, 0: to the end
  segmentBytes: REQUEST_BODY + 16, // u16, proposed
  windowSegments: REQUEST_BODY + 18, // u32
  sha256: REQUEST_BODY + 22, // 32 bytes
  nameLength: REQUEST_BODY + 22 + SHA256_BYTES, // u16
  name: REQUEST_BODY + 24 + SHA256_BYTES, // nameLength bytes, then pn and tag
} as const;
/** RETRY: "show me this token first" (the server's answer to a REQUEST without a valid one), with its greeting. */
export const RETRY_AT = {
  greeting: HEADER_BYTES + 0, // GREETING_BYTES
  end: HEADER_BYTES + GREETING_BYTES,
} as const;
/** ACCEPT: the server's nonce in clear, then the sealed body (pn 0 of the server's direction). */
export const ACCEPT_AT = {
  nonce: HEADER_BYTES + 0, // SERVER_NONCE_BYTES
  body: HEADER_BYTES + SERVER_NONCE_BYTES,
  fileSize: HEADER_BYTES + SERVER_NONCE_BYTES + 0, // u64
  offset: HEADER_BYTES + SERVER_NONCE_BYTES + 8, // u64
  length: HEADER_BYTES + SERVER_NONCE_BYTES + 16, // u64
  segmentBytes: HEADER_BYTES + SERVER_NONCE_BYTES + 24, // u16, negotiated
  cookie: HEADER_BYTES + SERVER_NONCE_BYTES + 26, // u32
  sha256: HEADER_BYTES + SERVER_NONCE_BYTES + 30, // 32 bytes
  fecBlock: HEADER_BYTES + SERVER_NONCE_BYTES + 30 + SHA256_BYTES, // u8: data segments per FEC block, 0 = no REPAIR
  end: HEADER_BYTES + SERVER_NONCE_BYTES + 31 + SHA256_BYTES, // the clear body's end; then pn and tag
} as const;
export const ERROR_AT = {
  code: HEADER_BYTES + 0, // u8
  textLength: HEADER_BYTES + 1, // u16
  text: HEADER_BYTES + 3, // textLength bytes, the end of the datagram
} as const;
export const DATA_AT = {
  payload: HEADER_BYTES + 0, // to the end of the datagram; its length is dataPayloadBytes
} as const;
export const ACK_AT = {
  windowSegments: HEADER_BYTES + 0, // u32
  echoTimestampUs: HEADER_BYTES + 4, // u32
  ackDelayUs: HEADER_BYTES + 8, // u32
  received: HEADER_BYTES + 12, // u32: DATA and REPAIR datagrams received so far, mod 2^32
  cookie: HEADER_BYTES + 16, // u32
  end: HEADER_BYTES + 20,
} as const;
/** REPAIR: header seq = the block's first segment, header flags = the repair's index j in its block. */
export const REPAIR_AT = {
  payload: HEADER_BYTES + 0, // as long as the block's longest segment
} as const;
export const PROBE_ACK_AT = {
  datagramBytes: HEADER_BYTES + 0, // u32
  greeting: HEADER_BYTES + 4, // GREETING_BYTES
  end: HEADER_BYTES + 4 + GREETING_BYTES,
} as const;

export const RETRY_BYTES = RETRY_AT.end;
/**
 * The smallest REQUEST: a bare one (no token yet: all zero after the header, asking for a greeting)
 * is this long, larger than the RETRY that answers it, so answering one never amplifies. A sealed
 * REQUEST is longer still.
 */
export const MIN_REQUEST_BYTES = 128;
/** A sealed REQUEST for a name of `nameBytes`. */
export function requestBytes(nameBytes: number): number {
  return REQUEST_AT.name + nameBytes + DATAGRAM_OVERHEAD_BYTES;
}
export const PROBE_ACK_BYTES = PROBE_ACK_AT.end;
/** A probe is never smaller than its answer, so answering it can never amplify. */
export const MIN_PROBE_BYTES = PROBE_ACK_BYTES;
/** An ACCEPT is always sealed. */
export const ACCEPT_BYTES = ACCEPT_AT.end + DATAGRAM_OVERHEAD_BYTES;
/** ACKs are built into a buffer the caller reuses (DATAGRAM_OVERHEAD_BYTES longer when sealed). */
export const ACK_BYTES = ACK_AT.end;
export const FIN_BYTES = HEADER_BYTES;
/** The largest UDP payload over IPv4 (65535 − 20 − 8); minus our header, the largest segment. */
export const MAX_DATAGRAM_BYTES = 65507;
/**
 * The largest datagram a network link carries (a jumbo frame's): up to this, datagrams are a
 * network's, sent in runs (GSO) and many per round trip; beyond it, only loopback's 16–64 KiB ones.
 */
export const JUMBO_DATAGRAM_BYTES = 9216;
/**
 * The largest segment: a sealed datagram carries pn and tag after it. Segments always leave that room,
 * so a `--insecure-plaintext` session moves the same segments (and measures only the sealing).
 */
export const MAX_SEGMENT_BYTES = MAX_DATAGRAM_BYTES - HEADER_BYTES - DATAGRAM_OVERHEAD_BYTES;
export const MIN_SEGMENT_BYTES = 512;
/** A datagram that fits the common 1500-byte MTU with room for IPv6 and tunnels: the size to use when no probe says more. */
export const INTERNET_DATAGRAM_BYTES = 1400;

/** A segment size both sides can use: what a REQUEST asks for, a probe found, or a user pinned, within the bounds. */
export function clampSegmentBytes(bytes: number): number {
  return Math.max(MIN_SEGMENT_BYTES, Math.min(MAX_SEGMENT_BYTES, bytes));
}

/** The segment that fills a sealed datagram of `datagramBytes` (what a probe found to arrive). */
export function segmentBytesFor(datagramBytes: number): number {
  return datagramBytes - HEADER_BYTES - DATAGRAM_OVERHEAD_BYTES;
}
export { MAX_NAME_BYTES };

/** How many DATA segments carry a range of `rangeBytes` (segment numbers 0 … count − 1). */
export function segmentCount(rangeBytes: number, segmentBytes: number): number {
  return Math.ceil(rangeBytes / segmentBytes);
}

/**
 * The DATA length rule: segment `seq` of a range of `rangeBytes` carries `segmentBytes`, except the
 * last, which carries what is left (`rangeBytes − seq · segmentBytes`). 0 for a segment past the range.
 * The server sizes what it sends by it and the client checks what it receives against it.
 */
export function dataPayloadBytes(seq: number, segmentBytes: number, rangeBytes: number): number {
  return Math.max(0, Math.min(segmentBytes, rangeBytes - seq * segmentBytes));
}

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
   * Server → client: repair `flags` (its index j) of the FEC block whose first segment is `seq`:
   * Σ c(j, i) · segment_i over GF(2^8) (src/transfer/core/fec/block-code.ts).
   */
  Repair = 9,
  /**
   * Server → client: the answer to a REQUEST from an address that has not shown a valid address token:
   * the token to send the REQUEST again with. Stateless, and smaller than any REQUEST.
   */
  Retry = 10,
}

/**
 * REQUEST: after the ACCEPT, the session's datagrams go in clear (`--insecure-plaintext`, to measure
 * what sealing costs; the server must allow it). The REQUEST and ACCEPT are sealed all the same.
 */
export const FLAG_PLAINTEXT = 0x01;
/** ERROR: sealed under the session's keys (an ERROR before a session exists is clear, and says nothing of a file). */
export const FLAG_SEALED = 0x01;
/** REQUEST: send the file's piece hashes (32 bytes per piece, src/files/core/pieces.ts) instead of its bytes. */
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
  /** What the session carries: the file's bytes, or its list of piece hashes. */
  pieceHashes?: boolean;
  /** DATA, ACK, REPAIR, FIN and ERROR in clear after the ACCEPT (FLAG_PLAINTEXT). */
  plaintext?: boolean;
}

/** The address token and the server's key share for this epoch (session-keys.ts). */
export interface Greeting {
  token: Uint8Array;
  kx: number;
  epochId: Uint8Array;
  share: Uint8Array;
}

/** A REQUEST's clear part: the greeting it answers (but the share, its own) and its key confirmation. */
export interface RequestHello {
  token: Uint8Array;
  kx: number;
  epochId: Uint8Array;
  share: Uint8Array;
  confirm: Uint8Array;
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

/**
 * The checksum of a received datagram, its own field taken as zero: the field is zeroed for the one
 * native CRC call over the whole datagram and put back, so the bytes read the same afterwards. A
 * received Uint8Array has no ArrayBuffer object of its own until something asks for one (a subarray, a
 * DataView), and making it costs ~0.4 µs: the receive path reads the header by bytes and checks the
 * CRC without either. (Per 1,400-byte datagram on a fresh array: this +0.3 µs over the allocation;
 * a CRC over a subarray +0.7 µs.)
 */
export function datagramCrc(datagram: Uint8Array): number {
  const saved = takeCrcField(datagram);
  const sum = crc(datagram);
  putCrcField(datagram, saved);
  return sum;
}

/** Zeroes the crc field of a received datagram, returning what it held (put back with putCrcField). */
function takeCrcField(datagram: Uint8Array): number {
  const saved = u32At(datagram, HEADER_AT.crc);
  const at = HEADER_AT.crc;
  datagram[at] = datagram[at + 1] = datagram[at + 2] = datagram[at + 3] = 0;
  return saved;
}

function putCrcField(datagram: Uint8Array, value: number): void {
  const at = HEADER_AT.crc;
  datagram[at] = value >>> 24;
  datagram[at + 1] = (value >>> 16) & 0xff;
  datagram[at + 2] = (value >>> 8) & 0xff;
  datagram[at + 3] = value & 0xff;
}

/**
 * The length of the first datagram in `buf`, which the kernel may have coalesced from a run (UDP GRO:
 * datagrams of one flow, all as long as the first but the last): read from the first one's header,
 * for a session of `segmentBytes` segments over `rangeBytes` (0 before it knows them), whose DATA
 * carries `overheadBytes` after its payload when sealed. A run is split
 * at multiples of this length, and each piece is then checked whole by `readHeader`, so a wrong
 * answer (a damaged header) only loses the run. The whole buffer when the header says nothing better.
 */
export function firstDatagramBytes(buf: Uint8Array, segmentBytes: number, rangeBytes: number, overheadBytes = 0): number {
  const total = buf.byteLength;
  if (total < HEADER_BYTES) return total;
  let length: number;
  switch (buf[HEADER_AT.type]) {
    case PacketType.Data:
    case PacketType.Repair: {
      if (segmentBytes === 0) return total;
      const hi = u32At(buf, HEADER_AT.seq);
      const seq = hi >= 0x200000 ? -1 : hi * 4294967296 + u32At(buf, HEADER_AT.seq + 4);
      length = seq < 0 ? total : HEADER_BYTES + dataPayloadBytes(seq, segmentBytes, rangeBytes) + overheadBytes;
      break;
    }
    case PacketType.Accept:
      length = ACCEPT_BYTES;
      break;
    case PacketType.Retry:
      length = RETRY_BYTES;
      break;
    case PacketType.Error:
      // A sealed one's length is sealed with it: it can only be a run's last (shorter) datagram, or alone.
      if ((buf[HEADER_AT.flags]! & FLAG_SEALED) !== 0) return total;
      length = total < ERROR_AT.text ? total : ERROR_AT.text + u16At(buf, ERROR_AT.textLength);
      break;
    default:
      return total;
  }
  return length <= HEADER_BYTES || length > total ? total : length;
}

/** Big-endian reads straight from the bytes (no DataView: see datagramCrc). */
function u16At(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function u32At(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

export function writeHeader(buf: Uint8Array, view: DataView, type: PacketType, flags: number, sessionId: number, seq: number, timestampUs: number): void {
  view.setUint16(HEADER_AT.magic, WIRE_MAGIC);
  buf[HEADER_AT.version] = WIRE_VERSION;
  buf[HEADER_AT.type] = type;
  buf[HEADER_AT.flags] = flags;
  buf[HEADER_AT.reserved] = 0;
  view.setUint32(HEADER_AT.sessionId, sessionId);
  writeU64(view, HEADER_AT.seq, seq);
  view.setUint32(HEADER_AT.timestampUs, timestampUs >>> 0);
}

/**
 * Seals the clear datagram `buf[0, bodyEnd)` (its body from `bodyAt`, aad the bytes before with the
 * checksum field zero) in place, then writes the checksum over the sealed datagram. `buf` has
 * DATAGRAM_OVERHEAD_BYTES of room after `bodyEnd`. Returns the sealed length.
 */
export function sealBody(buf: Uint8Array, view: DataView, bodyAt: number, bodyEnd: number, sealer: DatagramSealer): number {
  view.setUint32(HEADER_AT.crc, 0);
  const length = sealer.sealInPlace(buf, bodyAt, bodyEnd);
  view.setUint32(HEADER_AT.crc, crc(length === buf.byteLength ? buf : buf.subarray(0, length)));
  return length;
}

/**
 * Opens a received sealed datagram (checksum already checked by readHeader) in place: the length of
 * the clear datagram (its first bytes then read as the sender built them, checksum field aside), or
 * −1 when it does not authenticate or was seen before (the opener counts which).
 */
export function openBody(datagram: Uint8Array, bodyAt: number, opener: DatagramOpener): number {
  const saved = takeCrcField(datagram);
  const end = opener.openInPlace(datagram, bodyAt);
  putCrcField(datagram, saved);
  return end;
}

/** Where a sealed datagram's body starts: after the header, or after the clear fields of REQUEST and ACCEPT. */
export function bodyAtOf(type: PacketType): number {
  return type === PacketType.Request ? REQUEST_AT.body : type === PacketType.Accept ? ACCEPT_AT.body : HEADER_BYTES;
}

/** Fill in the checksum of a finished datagram `buf[0..length)`. */
export function seal(buf: Uint8Array, view: DataView, length: number): void {
  view.setUint32(HEADER_AT.crc, 0);
  view.setUint32(HEADER_AT.crc, crc(buf.subarray(0, length)));
}

/**
 * `seal` for a datagram that is all of `datagram` (`view` over the same bytes, from its first): no
 * subarray, so a hot path that keeps an exact-length view of its buffer allocates nothing per datagram.
 */
export function sealDatagram(datagram: Uint8Array, view: DataView): void {
  view.setUint32(HEADER_AT.crc, 0);
  view.setUint32(HEADER_AT.crc, crc(datagram));
}

/**
 * Validate magic, version and checksum and read the header. Throws ProtocolError for anything that is
 * not an intact ftx datagram; the shells count it and drop it. The received bytes are not written.
 */
export function readHeader(buf: Uint8Array): Header {
  if (buf.byteLength < HEADER_BYTES) throw new ProtocolError(`datagram of ${buf.byteLength} bytes is shorter than the header`);
  if (u16At(buf, HEADER_AT.magic) !== WIRE_MAGIC) throw new ProtocolError("bad magic");
  const version = buf[HEADER_AT.version]!;
  if (version !== WIRE_VERSION) throw new VersionError(version);
  if (u32At(buf, HEADER_AT.crc) !== datagramCrc(buf)) throw new ProtocolError("checksum mismatch");
  const type = buf[HEADER_AT.type]!;
  if (type < PacketType.Request || type > PacketType.Retry) throw new ProtocolError(`unknown packet type ${type}`);
  if (buf[HEADER_AT.reserved] !== 0) throw new ProtocolError("reserved byte is not zero");
  return {
    type,
    flags: buf[HEADER_AT.flags]!,
    sessionId: u32At(buf, HEADER_AT.sessionId),
    seq: readU64Bytes(buf, HEADER_AT.seq, "sequence number"),
    timestampUs: u32At(buf, HEADER_AT.timestampUs),
  };
}

/** A datagram of another wire version (the server answers an old client's REQUEST with `encodeUpgradeError`). */
export class VersionError extends ProtocolError {
  constructor(readonly version: number) {
    super(`unsupported version ${version}`);
  }
}

function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** A new datagram of `bytes` with its header written; the caller writes the body and seals it. */
function start(bytes: number, type: PacketType, flags: number, sessionId: number, seq: number, timestampUs: number): { buf: Uint8Array; view: DataView } {
  const buf = new Uint8Array(bytes);
  const view = new DataView(buf.buffer);
  writeHeader(buf, view, type, flags, sessionId, seq, timestampUs);
  return { buf, view };
}

/** A UTF-8 string of `length` bytes at `at`, already bounds-checked. */
function readUtf8(buf: Uint8Array, at: number, length: number, what: string): string {
  try {
    return decoder.decode(buf.subarray(at, at + length));
  } catch {
    throw new ProtocolError(`${what} is not valid UTF-8`);
  }
}

// ---- greetings ----

function writeGreeting(buf: Uint8Array, at: number, g: Greeting): void {
  if (g.token.byteLength !== ADDRESS_TOKEN_BYTES || g.epochId.byteLength !== EPOCH_ID_BYTES || g.share.byteLength !== SHARE_BYTES) throw new RangeError("greeting field of the wrong length");
  buf.set(g.token, at + GREETING_AT.token);
  buf[at + GREETING_AT.kx] = g.kx;
  buf.set(g.epochId, at + GREETING_AT.epochId);
  buf.set(g.share, at + GREETING_AT.share);
}

function readGreeting(buf: Uint8Array, at: number): Greeting {
  return {
    token: buf.slice(at + GREETING_AT.token, at + GREETING_AT.token + ADDRESS_TOKEN_BYTES),
    kx: buf[at + GREETING_AT.kx]!,
    epochId: buf.slice(at + GREETING_AT.epochId, at + GREETING_AT.epochId + EPOCH_ID_BYTES),
    share: buf.slice(at + GREETING_AT.share, at + GREETING_AT.share + SHARE_BYTES),
  };
}

// ---- REQUEST ----

/** A REQUEST without a token (the client has no greeting yet): all zero after the header, MIN_REQUEST_BYTES long; it draws a RETRY. */
export function encodeBareRequest(sessionId: number, flags: number, timestampUs: number): Uint8Array {
  const { buf, view } = start(MIN_REQUEST_BYTES, PacketType.Request, flags, sessionId, 0, timestampUs);
  seal(buf, view, buf.byteLength);
  return buf;
}

/**
 * A sealed REQUEST: the clear `hello` (greeting's token, kx and epoch, the client's share and key
 * confirmation), then `body` sealed by `sealer` (the REQUEST key's, used for this datagram only).
 */
export function encodeRequest(sessionId: number, body: RequestBody, hello: RequestHello, sealer: DatagramSealer, timestampUs: number): Uint8Array {
  const nameBytes = encoder.encode(body.name);
  if (nameBytes.byteLength > MAX_NAME_BYTES) throw new RangeError("name too long");
  if (hello.token.byteLength !== ADDRESS_TOKEN_BYTES || hello.epochId.byteLength !== EPOCH_ID_BYTES || hello.share.byteLength !== SHARE_BYTES || hello.confirm.byteLength !== CONFIRM_BYTES)
    throw new RangeError("REQUEST key field of the wrong length");
  const flags = (body.plaintext ? FLAG_PLAINTEXT : 0) | (body.pieceHashes ? FLAG_PIECE_HASHES : 0);
  const bodyEnd = REQUEST_AT.name + nameBytes.byteLength;
  const { buf, view } = start(bodyEnd + DATAGRAM_OVERHEAD_BYTES, PacketType.Request, flags, sessionId, 0, timestampUs);
  buf.set(hello.token, REQUEST_AT.token);
  buf[REQUEST_AT.kx] = hello.kx;
  buf.set(hello.epochId, REQUEST_AT.epochId);
  buf.set(hello.share, REQUEST_AT.share);
  buf.set(hello.confirm, REQUEST_AT.confirm);
  writeU64(view, REQUEST_AT.offset, body.offset);
  writeU64(view, REQUEST_AT.length, body.length);
  view.setUint16(REQUEST_AT.segmentBytes, body.segmentBytes);
  view.setUint32(REQUEST_AT.windowSegments, body.windowSegments);
  buf.set(body.sha256.subarray(0, SHA256_BYTES), REQUEST_AT.sha256);
  view.setUint16(REQUEST_AT.nameLength, nameBytes.byteLength);
  buf.set(nameBytes, REQUEST_AT.name);
  sealBody(buf, view, REQUEST_AT.body, bodyEnd, sealer);
  return buf;
}

function isZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

/** A REQUEST's clear part; undefined for a bare one (no token: answer with a RETRY). */
export function decodeRequestHello(buf: Uint8Array): RequestHello | undefined {
  if (buf.byteLength < MIN_REQUEST_BYTES) throw new ProtocolError("truncated REQUEST");
  const token = buf.subarray(REQUEST_AT.token, REQUEST_AT.token + ADDRESS_TOKEN_BYTES);
  if (isZero(token)) return undefined;
  if (buf.byteLength < REQUEST_AT.name + DATAGRAM_OVERHEAD_BYTES) throw new ProtocolError("truncated REQUEST");
  return {
    token: token.slice(),
    kx: buf[REQUEST_AT.kx]!,
    epochId: buf.slice(REQUEST_AT.epochId, REQUEST_AT.epochId + EPOCH_ID_BYTES),
    share: buf.slice(REQUEST_AT.share, REQUEST_AT.share + SHARE_BYTES),
    confirm: buf.slice(REQUEST_AT.confirm, REQUEST_AT.confirm + CONFIRM_BYTES),
  };
}

/** The body of an opened REQUEST: `clear` is the datagram up to its body's end (openBody's length). */
export function decodeRequestBody(clear: Uint8Array, header: Header): RequestBody {
  if (clear.byteLength < REQUEST_AT.name) throw new ProtocolError("truncated REQUEST");
  const view = viewOf(clear);
  const nameLength = view.getUint16(REQUEST_AT.nameLength);
  if (nameLength > MAX_NAME_BYTES) throw new ProtocolError("name too long");
  if (clear.byteLength !== REQUEST_AT.name + nameLength) throw new ProtocolError("REQUEST of the wrong length for its name");
  return {
    offset: readU64(view, REQUEST_AT.offset, "offset"),
    length: readU64(view, REQUEST_AT.length, "length"),
    segmentBytes: view.getUint16(REQUEST_AT.segmentBytes),
    windowSegments: view.getUint32(REQUEST_AT.windowSegments),
    sha256: clear.slice(REQUEST_AT.sha256, REQUEST_AT.sha256 + SHA256_BYTES),
    name: readUtf8(clear, REQUEST_AT.name, nameLength, "name"),
    pieceHashes: (header.flags & FLAG_PIECE_HASHES) !== 0,
    plaintext: (header.flags & FLAG_PLAINTEXT) !== 0,
  };
}

// ---- RETRY ----

export function encodeRetry(sessionId: number, greeting: Greeting, timestampUs: number): Uint8Array {
  const { buf, view } = start(RETRY_BYTES, PacketType.Retry, 0, sessionId, 0, timestampUs);
  writeGreeting(buf, RETRY_AT.greeting, greeting);
  seal(buf, view, buf.byteLength);
  return buf;
}

/** The greeting a RETRY carries (copies). */
export function decodeRetry(buf: Uint8Array): Greeting {
  if (buf.byteLength !== RETRY_BYTES) throw new ProtocolError("RETRY of the wrong length");
  return readGreeting(buf, RETRY_AT.greeting);
}

// ---- ACCEPT ----

/** An ACCEPT: the server's nonce in clear, the body sealed by the session's `sealer` (its first datagram). */
export function encodeAccept(sessionId: number, body: AcceptBody, nonce: Uint8Array, sealer: DatagramSealer, timestampUs: number): Uint8Array {
  if (nonce.byteLength !== SERVER_NONCE_BYTES) throw new RangeError("server nonce of the wrong length");
  const { buf, view } = start(ACCEPT_BYTES, PacketType.Accept, 0, sessionId, 0, timestampUs);
  buf.set(nonce, ACCEPT_AT.nonce);
  writeU64(view, ACCEPT_AT.fileSize, body.fileSize);
  writeU64(view, ACCEPT_AT.offset, body.offset);
  writeU64(view, ACCEPT_AT.length, body.length);
  view.setUint16(ACCEPT_AT.segmentBytes, body.segmentBytes);
  view.setUint32(ACCEPT_AT.cookie, body.cookie >>> 0);
  buf.set(body.sha256.subarray(0, SHA256_BYTES), ACCEPT_AT.sha256);
  buf[ACCEPT_AT.fecBlock] = body.fecBlock;
  sealBody(buf, view, ACCEPT_AT.body, ACCEPT_AT.end, sealer);
  return buf;
}

/** The server's nonce of a (still sealed) ACCEPT: the session's keys need it before the ACCEPT can be opened. */
export function acceptNonce(buf: Uint8Array): Uint8Array {
  if (buf.byteLength !== ACCEPT_BYTES) throw new ProtocolError("ACCEPT of the wrong length");
  return buf.subarray(ACCEPT_AT.nonce, ACCEPT_AT.nonce + SERVER_NONCE_BYTES);
}

/** An opened ACCEPT's body: `clear` is the datagram up to ACCEPT_AT.end. */
export function decodeAccept(clear: Uint8Array): AcceptBody {
  if (clear.byteLength !== ACCEPT_AT.end) throw new ProtocolError("ACCEPT of the wrong length");
  const view = viewOf(clear);
  return {
    fileSize: readU64(view, ACCEPT_AT.fileSize, "file size"),
    offset: readU64(view, ACCEPT_AT.offset, "offset"),
    length: readU64(view, ACCEPT_AT.length, "length"),
    segmentBytes: view.getUint16(ACCEPT_AT.segmentBytes),
    cookie: view.getUint32(ACCEPT_AT.cookie),
    sha256: clear.slice(ACCEPT_AT.sha256, ACCEPT_AT.sha256 + SHA256_BYTES),
    fecBlock: clear[ACCEPT_AT.fecBlock]!,
  };
}

// ---- ERROR ----

/** An ERROR; sealed (FLAG_SEALED) when a session's `sealer` is given, else clear (then its text must name no file). */
export function encodeError(sessionId: number, body: ErrorBody, timestampUs: number, sealer?: DatagramSealer): Uint8Array {
  const text = encoder.encode(truncateUtf8(body.text, MAX_ERROR_TEXT_BYTES));
  const bodyEnd = ERROR_AT.text + text.byteLength;
  const { buf, view } = start(bodyEnd + (sealer ? DATAGRAM_OVERHEAD_BYTES : 0), PacketType.Error, sealer ? FLAG_SEALED : 0, sessionId, 0, timestampUs);
  buf[ERROR_AT.code] = body.code;
  view.setUint16(ERROR_AT.textLength, text.byteLength);
  buf.set(text, ERROR_AT.text);
  if (sealer) sealBody(buf, view, HEADER_BYTES, bodyEnd, sealer);
  else seal(buf, view, buf.byteLength);
  return buf;
}

export function decodeError(buf: Uint8Array): ErrorBody {
  if (buf.byteLength < ERROR_AT.text) throw new ProtocolError("truncated ERROR");
  const textLength = viewOf(buf).getUint16(ERROR_AT.textLength);
  if (textLength > MAX_ERROR_TEXT_BYTES) throw new ProtocolError("error text too long");
  if (buf.byteLength !== ERROR_AT.text + textLength) throw new ProtocolError("ERROR of the wrong length for its text");
  return { code: buf[ERROR_AT.code]!, text: readUtf8(buf, ERROR_AT.text, textLength, "error text") };
}

// ---- DATA ----

/**
 * Complete a DATA datagram whose payload is already in place at `DATA_AT.payload` (the server reads
 * the file straight into its send buffer): write the header and the checksum. `datagram` is exactly
 * the datagram, `view` a view over the same bytes; nothing is allocated.
 */
export function finishData(datagram: Uint8Array, view: DataView, flags: number, sessionId: number, seq: number, timestampUs: number, sealer?: DatagramSealer): void {
  finishPayload(datagram, view, PacketType.Data, flags, sessionId, seq, timestampUs, sealer);
}

/** DATA and REPAIR: the header, then the seal (the payload is the body) or the checksum. */
function finishPayload(datagram: Uint8Array, view: DataView, type: PacketType, flags: number, sessionId: number, seq: number, timestampUs: number, sealer: DatagramSealer | undefined): void {
  writeHeader(datagram, view, type, flags, sessionId, seq, timestampUs);
  if (sealer) sealBody(datagram, view, HEADER_BYTES, datagram.byteLength - DATAGRAM_OVERHEAD_BYTES, sealer);
  else sealDatagram(datagram, view);
}

/** A new datagram with `payload` after the header and room for sealing when it will be sealed. */
function withPayload(payload: Uint8Array, sealed: boolean): { buf: Uint8Array; view: DataView } {
  const buf = new Uint8Array(HEADER_BYTES + payload.byteLength + (sealed ? DATAGRAM_OVERHEAD_BYTES : 0));
  buf.set(payload, HEADER_BYTES);
  return { buf, view: new DataView(buf.buffer) };
}

/** A DATA datagram carrying `payload` (tests and simulators; the server uses `finishData` in place), sealed when a `sealer` is given. */
export function encodeData(sessionId: number, seq: number, flags: number, payload: Uint8Array, timestampUs: number, sealer?: DatagramSealer): Uint8Array {
  const { buf, view } = withPayload(payload, sealer !== undefined);
  finishData(buf, view, flags, sessionId, seq, timestampUs, sealer);
  return buf;
}

/**
 * The payload of DATA segment `seq` (a view into `datagram`, no copy), or undefined when its length
 * is not what the DATA length rule (`dataPayloadBytes`) says for that segment of a range of
 * `rangeBytes`: the receiver counts that and drops it.
 */
export function decodeData(datagram: Uint8Array, seq: number, segmentBytes: number, rangeBytes: number): Uint8Array | undefined {
  return isDataLength(datagram, seq, segmentBytes, rangeBytes) ? datagram.subarray(DATA_AT.payload) : undefined;
}

/** Whether a DATA datagram for segment `seq` has the length that segment must have (its payload is then from DATA_AT.payload on). */
export function isDataLength(datagram: Uint8Array, seq: number, segmentBytes: number, rangeBytes: number): boolean {
  const expected = dataPayloadBytes(seq, segmentBytes, rangeBytes);
  return expected !== 0 && datagram.byteLength === DATA_AT.payload + expected;
}

// ---- REPAIR ----

/** Complete a REPAIR whose payload is in place at `REPAIR_AT.payload`: repair `j` of the block starting at segment `blockStart`. */
export function finishRepair(datagram: Uint8Array, view: DataView, j: number, sessionId: number, blockStart: number, timestampUs: number, sealer?: DatagramSealer): void {
  finishPayload(datagram, view, PacketType.Repair, j, sessionId, blockStart, timestampUs, sealer);
}

/** A REPAIR carrying `payload` (tests and simulators; the server uses `finishRepair` in place), sealed when a `sealer` is given. */
export function encodeRepair(sessionId: number, blockStart: number, j: number, payload: Uint8Array, timestampUs: number, sealer?: DatagramSealer): Uint8Array {
  const { buf, view } = withPayload(payload, sealer !== undefined);
  finishRepair(buf, view, j, sessionId, blockStart, timestampUs, sealer);
  return buf;
}

/** The payload of a REPAIR (a view, no copy), or undefined when it is empty or longer than a segment. */
export function decodeRepair(datagram: Uint8Array, segmentBytes: number): Uint8Array | undefined {
  const length = datagram.byteLength - REPAIR_AT.payload;
  if (length <= 0 || length > segmentBytes) return undefined;
  return datagram.subarray(REPAIR_AT.payload);
}

// ---- ACK ----

/**
 * The receiver's ACK fields and the session cookie are passed apart, so the hot path builds no object.
 * `buf` is ACK_BYTES long, or ACK_BYTES + DATAGRAM_OVERHEAD_BYTES with a `sealer`.
 */
export function writeAck(buf: Uint8Array, view: DataView, sessionId: number, cumulative: number, body: Omit<AckBody, "cookie">, cookie: number, timestampUs: number, sealer?: DatagramSealer): void {
  writeHeader(buf, view, PacketType.Ack, body.gap ? FLAG_GAP : 0, sessionId, cumulative, timestampUs);
  view.setUint32(ACK_AT.windowSegments, body.windowSegments);
  view.setUint32(ACK_AT.echoTimestampUs, body.echoTimestampUs >>> 0);
  view.setUint32(ACK_AT.ackDelayUs, body.ackDelayUs >>> 0);
  view.setUint32(ACK_AT.received, body.received >>> 0);
  view.setUint32(ACK_AT.cookie, cookie >>> 0);
  if (sealer) sealBody(buf, view, HEADER_BYTES, ACK_BYTES, sealer);
  else seal(buf, view, ACK_BYTES);
}

export function decodeAck(buf: Uint8Array): AckBody {
  if (buf.byteLength !== ACK_BYTES) throw new ProtocolError("ACK of the wrong length");
  const view = viewOf(buf);
  return {
    windowSegments: view.getUint32(ACK_AT.windowSegments),
    echoTimestampUs: view.getUint32(ACK_AT.echoTimestampUs),
    ackDelayUs: view.getUint32(ACK_AT.ackDelayUs),
    received: view.getUint32(ACK_AT.received),
    cookie: view.getUint32(ACK_AT.cookie),
    gap: (buf[HEADER_AT.flags]! & FLAG_GAP) !== 0,
  };
}

// ---- FIN ----

export function encodeFin(sessionId: number, timestampUs: number, sealer?: DatagramSealer): Uint8Array {
  const { buf, view } = start(FIN_BYTES + (sealer ? DATAGRAM_OVERHEAD_BYTES : 0), PacketType.Fin, 0, sessionId, 0, timestampUs);
  if (sealer) sealBody(buf, view, HEADER_BYTES, FIN_BYTES, sealer);
  else seal(buf, view, buf.byteLength);
  return buf;
}

/** FIN has no body: anything after the header is malformed. */
export function decodeFin(buf: Uint8Array): void {
  if (buf.byteLength !== FIN_BYTES) throw new ProtocolError("FIN of the wrong length");
}

// ---- PROBE / PROBE_ACK ----

export function encodeProbe(probeId: number, datagramBytes: number, timestampUs: number): Uint8Array {
  if (datagramBytes < MIN_PROBE_BYTES || datagramBytes > MAX_DATAGRAM_BYTES) throw new RangeError(`probe size ${datagramBytes} out of range`);
  const { buf, view } = start(datagramBytes, PacketType.Probe, 0, probeId, 0, timestampUs);
  seal(buf, view, buf.byteLength);
  return buf;
}

/** A PROBE's size, which is all it says; one smaller than its answer is refused (it could amplify). */
export function decodeProbe(buf: Uint8Array): number {
  if (buf.byteLength < MIN_PROBE_BYTES) throw new ProtocolError("PROBE smaller than the minimum");
  return buf.byteLength;
}

export interface ProbeAckBody {
  /** The size of the PROBE that arrived. */
  datagramBytes: number;
  /** An address token for the client's address and the server's key share: its REQUESTs need no RETRY while it is fresh. */
  greeting: Greeting;
}

export function encodeProbeAck(probeId: number, body: ProbeAckBody, timestampUs: number): Uint8Array {
  const { buf, view } = start(PROBE_ACK_BYTES, PacketType.ProbeAck, 0, probeId, 0, timestampUs);
  view.setUint32(PROBE_ACK_AT.datagramBytes, body.datagramBytes);
  writeGreeting(buf, PROBE_ACK_AT.greeting, body.greeting);
  seal(buf, view, buf.byteLength);
  return buf;
}

export function decodeProbeAck(buf: Uint8Array): ProbeAckBody {
  if (buf.byteLength !== PROBE_ACK_BYTES) throw new ProtocolError("PROBE_ACK of the wrong length");
  return { datagramBytes: viewOf(buf).getUint32(PROBE_ACK_AT.datagramBytes), greeting: readGreeting(buf, PROBE_ACK_AT.greeting) };
}

// ---- for older peers ----

/**
 * An ERROR in the layout of wire version `version` (its header differs from ours only in the version
 * byte, and its ERROR body is ours), so an old client says why instead of timing out. Only for
 * versions ≥ FIRST_UPGRADE_VERSION.
 */
export function encodeUpgradeError(version: number, sessionId: number, text: string, timestampUs: number): Uint8Array {
  const buf = encodeError(sessionId, { code: TransferErrorCode.BadRequest, text }, timestampUs);
  const view = new DataView(buf.buffer);
  buf[HEADER_AT.version] = version;
  seal(buf, view, buf.byteLength);
  return buf;
}

/** Reads an old version's ERROR (the tests' reader of `encodeUpgradeError`): its version and body. */
export function decodeUpgradeError(buf: Uint8Array): { version: number; sessionId: number; body: ErrorBody } {
  if (buf.byteLength < HEADER_BYTES) throw new ProtocolError("truncated ERROR");
  const view = viewOf(buf);
  if (view.getUint16(HEADER_AT.magic) !== WIRE_MAGIC) throw new ProtocolError("bad magic");
  if (view.getUint32(HEADER_AT.crc) !== datagramCrc(buf)) throw new ProtocolError("checksum mismatch");
  if (buf[HEADER_AT.type] !== PacketType.Error) throw new ProtocolError("not an ERROR");
  return { version: buf[HEADER_AT.version]!, sessionId: view.getUint32(HEADER_AT.sessionId), body: decodeError(buf) };
}

/** Microseconds on a monotonic clock, truncated to 32 bits (wraps every ~71 min; only differences matter). */
export function timestampUs(nowMs: number): number {
  return Math.floor(nowMs * 1000) >>> 0;
}

/** Elapsed µs between two 32-bit timestamps, correct across one wrap. */
export function elapsedUs(fromUs: number, toUs: number): number {
  return (toUs - fromUs) >>> 0;
}
