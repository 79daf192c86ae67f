import { ProtocolError } from "../../errors.ts";
import { ByteReader, ByteWriter, truncateUtf8 } from "../../util/bytes.ts";
import {
  INDEX_MAGIC,
  MAC_BYTES,
  MAX_ADDRESS_BYTES,
  MAX_COUNTER_NAME_BYTES,
  MAX_MASTER_ID_BYTES,
  MAX_STATUS_COUNTERS,
  MAX_STATUS_SERVERS_PER_FRAME,
  MAX_ERROR_TEXT_BYTES,
  MAX_FRAME_BYTES,
  MAX_NAME_BYTES,
  MAX_PATTERN_BYTES,
  MsgType,
  NONCE_BYTES,
  FLAG_PLAINTEXT,
  INDEX_VERSION,
  KxKind,
  Role,
  SHARE_BYTES,
  SHA256_BYTES,
  type FileRecord,
  type IndexMessage,
  type ListEntry,
  type StatusServer,
} from "./messages.ts";

/** Frame header: u32 length of (type byte + payload). */
const LENGTH_PREFIX_BYTES = 4;
/** Smallest encodings, used to reject counts that the frame cannot possibly hold before allocating. */
const MIN_FILE_RECORD_BYTES = 2 + 8 + 2 * SHA256_BYTES;
const MIN_NAME_BYTES = 2;
const MIN_LIST_ENTRY_BYTES = MIN_FILE_RECORD_BYTES + 2;

/** A close upper estimate of a message's size, so the writer allocates once instead of doubling. */
function sizeHint(msg: IndexMessage): number {
  switch (msg.type) {
    case MsgType.FilesAdd:
      return 16 + msg.files.reduce((n, f) => n + 44 + f.name.length * 3, 0);
    case MsgType.FilesRemove:
      return 16 + msg.names.reduce((n, name) => n + 2 + name.length * 3, 0);
    case MsgType.ListEntries:
      return 16 + msg.entries.reduce((n, e) => n + 46 + e.name.length * 3 + e.servers.reduce((m, s) => m + 1 + s.length, 0), 0);
    default:
      return 128;
  }
}

export function encodeMessage(msg: IndexMessage): Uint8Array {
  const w = new ByteWriter(sizeHint(msg));
  w.u32(0).u8(msg.type);
  switch (msg.type) {
    case MsgType.Hello:
      w.u32(INDEX_MAGIC).u8(msg.version).u8(msg.role).u8(msg.kx).u8(msg.plaintext ? FLAG_PLAINTEXT : 0);
      w.bytes(fixed(msg.nonce, NONCE_BYTES, "nonce")).bytes(fixed(msg.share, SHARE_BYTES, "share"));
      break;
    case MsgType.Challenge:
      w.u8(msg.version).u8(msg.kx).u8(msg.plaintext ? FLAG_PLAINTEXT : 0).bytes(fixed(msg.nonce, NONCE_BYTES, "nonce"));
      w.bytes(fixed(msg.share, SHARE_BYTES, "share")).bytes(fixed(msg.confirm, MAC_BYTES, "confirm"));
      break;
    case MsgType.Auth:
      w.bytes(fixed(msg.mac, MAC_BYTES, "mac"));
      break;
    case MsgType.Welcome:
      w.u32(msg.peerId).u32(msg.heartbeatIntervalMs).u32(msg.heartbeatTimeoutMs);
      break;
    case MsgType.Error:
      w.u8(msg.code).string(2, truncateUtf8(msg.message, MAX_ERROR_TEXT_BYTES), MAX_ERROR_TEXT_BYTES);
      break;
    case MsgType.Ping:
    case MsgType.Pong:
      w.u32(msg.seq);
      break;
    case MsgType.Announce:
      w.string(1, msg.host, MAX_ADDRESS_BYTES).u16(msg.port);
      break;
    case MsgType.FilesAdd:
      w.u32(msg.files.length);
      for (const f of msg.files) writeFileRecord(w, f);
      break;
    case MsgType.FilesRemove:
      w.u32(msg.names.length);
      for (const n of msg.names) w.string(2, n, MAX_NAME_BYTES);
      break;
    case MsgType.FileRejected:
      w.string(2, msg.name, MAX_NAME_BYTES).string(2, truncateUtf8(msg.reason, MAX_ERROR_TEXT_BYTES), MAX_ERROR_TEXT_BYTES);
      break;
    case MsgType.List:
      w.u32(msg.requestId).string(2, msg.pattern, MAX_PATTERN_BYTES);
      break;
    case MsgType.ListEntries:
      w.u32(msg.requestId).u32(msg.entries.length);
      for (const e of msg.entries) {
        writeFileRecord(w, e);
        w.u16(e.servers.length);
        for (const s of e.servers) w.string(1, s, MAX_ADDRESS_BYTES);
      }
      break;
    case MsgType.ListEnd:
      w.u32(msg.requestId).u32(msg.total).u8(msg.stale ? 1 : 0);
      break;
    case MsgType.Status:
      w.u32(msg.requestId);
      break;
    case MsgType.StatusServers:
      if (msg.servers.length > MAX_STATUS_SERVERS_PER_FRAME) throw new RangeError(`${msg.servers.length} servers in one STATUS_SERVERS frame (at most ${MAX_STATUS_SERVERS_PER_FRAME})`);
      w.u32(msg.requestId).u16(msg.servers.length);
      for (const s of msg.servers) writeStatusServer(w, s);
      break;
    case MsgType.StatusEnd:
      if (msg.counters.length > MAX_STATUS_COUNTERS) throw new RangeError(`${msg.counters.length} counters (at most ${MAX_STATUS_COUNTERS})`);
      w.u32(msg.requestId).u8(msg.format).string(1, msg.masterId, MAX_MASTER_ID_BYTES).u64(msg.startedAtMs).u8(msg.counters.length);
      for (const c of msg.counters) w.string(1, c.name, MAX_COUNTER_NAME_BYTES).u64(c.value);
      break;
  }
  const bodyLength = w.length - LENGTH_PREFIX_BYTES;
  if (bodyLength > MAX_FRAME_BYTES) throw new RangeError(`frame of ${bodyLength} bytes exceeds ${MAX_FRAME_BYTES}`);
  w.setU32At(0, bodyLength);
  return w.finish();
}

/** A fixed-size field: written only at the size its reader takes, so the writer cannot emit a frame the reader refuses. */
function fixed(bytes: Uint8Array, n: number, what: string): Uint8Array {
  if (bytes.byteLength !== n) throw new RangeError(`${what} must be ${n} bytes, not ${bytes.byteLength}`);
  return bytes;
}

function writeFileRecord(w: ByteWriter, f: FileRecord): void {
  w.string(2, f.name, MAX_NAME_BYTES).u64(f.size).hex(f.sha256, SHA256_BYTES).hex(f.piecesRoot ?? UNKNOWN_ROOT, SHA256_BYTES);
}

function writeStatusServer(w: ByteWriter, s: StatusServer): void {
  w.string(1, s.address, MAX_ADDRESS_BYTES).u32(s.files).u64(s.bytes).u64(s.connectedSinceMs).u64(s.lastHeartbeatMs).string(1, s.master, MAX_MASTER_ID_BYTES);
}

function readStatusServer(r: ByteReader): StatusServer {
  return {
    address: r.string(1, MAX_ADDRESS_BYTES, "server address"),
    files: r.u32("file count"),
    bytes: r.u64("bytes"),
    connectedSinceMs: r.u64("connected since"),
    lastHeartbeatMs: r.u64("last heartbeat"),
    master: r.string(1, MAX_MASTER_ID_BYTES, "master id"),
  };
}

/** Smallest STATUS_SERVERS entry: empty address and master id. */
const MIN_STATUS_SERVER_BYTES = 1 + 4 + 8 + 8 + 8 + 1;

/** All zeros on the wire: the sender did not give a pieces root. */
const UNKNOWN_ROOT = "0".repeat(64);

function readFileRecord(r: ByteReader): FileRecord {
  const name = r.string(2, MAX_NAME_BYTES, "file name");
  const size = r.u64("file size");
  const sha256 = r.hex(SHA256_BYTES, "sha256");
  const piecesRoot = r.hex(SHA256_BYTES, "pieces root");
  return piecesRoot === UNKNOWN_ROOT ? { name, size, sha256 } : { name, size, sha256, piecesRoot };
}

function readCount(r: ByteReader, minEntryBytes: number, what: string): number {
  const count = r.u32(`${what} count`);
  if (count * minEntryBytes > r.remaining) throw new ProtocolError(`${what} count ${count} does not fit in the frame`);
  return count;
}

function readKx(r: ByteReader): KxKind {
  const kx = r.u8("key exchange");
  if (kx !== KxKind.X25519 && kx !== KxKind.CPace) throw new ProtocolError(`unknown key exchange ${kx}`);
  return kx;
}

function readFlags(r: ByteReader): boolean {
  const flags = r.u8("flags");
  if ((flags & ~FLAG_PLAINTEXT) !== 0) throw new ProtocolError(`unknown flags 0x${flags.toString(16)}`);
  return flags === FLAG_PLAINTEXT;
}

/** Decode one frame body (type byte + payload), as delimited by the length prefix. */
export function decodeBody(body: Uint8Array): IndexMessage {
  const r = new ByteReader(body);
  const type = r.u8("message type");
  let msg: IndexMessage;
  switch (type) {
    case MsgType.Hello: {
      const magic = r.u32("magic");
      if (magic !== INDEX_MAGIC) throw new ProtocolError("not an ftx index peer (bad magic)");
      const version = r.u8("version");
      // Another version's HELLO is read no further: the master answers it with an "upgrade" error.
      if (version !== INDEX_VERSION) return { type, version, role: Role.Client, kx: KxKind.X25519, plaintext: false, nonce: new Uint8Array(NONCE_BYTES), share: new Uint8Array(SHARE_BYTES) };
      const role = r.u8("role");
      if (role !== Role.FileServer && role !== Role.Client) throw new ProtocolError(`unknown role ${role}`);
      const kx = readKx(r);
      const plaintext = readFlags(r);
      msg = { type, version, role, kx, plaintext, nonce: r.bytesCopy(NONCE_BYTES, "nonce"), share: r.bytesCopy(SHARE_BYTES, "share") };
      break;
    }
    case MsgType.Challenge: {
      const version = r.u8("version");
      if (version !== INDEX_VERSION) return { type, version, kx: KxKind.X25519, plaintext: false, nonce: new Uint8Array(NONCE_BYTES), share: new Uint8Array(SHARE_BYTES), confirm: new Uint8Array(MAC_BYTES) };
      const kx = readKx(r);
      const plaintext = readFlags(r);
      msg = { type, version, kx, plaintext, nonce: r.bytesCopy(NONCE_BYTES, "nonce"), share: r.bytesCopy(SHARE_BYTES, "share"), confirm: r.bytesCopy(MAC_BYTES, "confirm") };
      break;
    }
    case MsgType.Auth:
      msg = { type, mac: r.bytesCopy(MAC_BYTES, "mac") };
      break;
    case MsgType.Welcome:
      msg = { type, peerId: r.u32(), heartbeatIntervalMs: r.u32(), heartbeatTimeoutMs: r.u32() };
      break;
    case MsgType.Error:
      msg = { type, code: r.u8("error code"), message: r.string(2, MAX_ERROR_TEXT_BYTES, "error text") };
      break;
    case MsgType.Ping:
    case MsgType.Pong:
      msg = { type, seq: r.u32("seq") };
      break;
    case MsgType.Announce:
      msg = { type, host: r.string(1, MAX_ADDRESS_BYTES, "host"), port: r.u16("port") };
      break;
    case MsgType.FilesAdd: {
      const count = readCount(r, MIN_FILE_RECORD_BYTES, "file");
      const files: FileRecord[] = [];
      for (let i = 0; i < count; i++) files.push(readFileRecord(r));
      msg = { type, files };
      break;
    }
    case MsgType.FilesRemove: {
      const count = readCount(r, MIN_NAME_BYTES, "name");
      const names: string[] = [];
      for (let i = 0; i < count; i++) names.push(r.string(2, MAX_NAME_BYTES, "file name"));
      msg = { type, names };
      break;
    }
    case MsgType.FileRejected:
      msg = { type, name: r.string(2, MAX_NAME_BYTES, "file name"), reason: r.string(2, MAX_ERROR_TEXT_BYTES, "reason") };
      break;
    case MsgType.List:
      msg = { type, requestId: r.u32("request id"), pattern: r.string(2, MAX_PATTERN_BYTES, "pattern") };
      break;
    case MsgType.ListEntries: {
      const requestId = r.u32("request id");
      const count = readCount(r, MIN_LIST_ENTRY_BYTES, "entry");
      const entries: ListEntry[] = [];
      for (let i = 0; i < count; i++) {
        const rec = readFileRecord(r);
        const n = r.u16("server count");
        if (n > r.remaining) throw new ProtocolError(`server count ${n} does not fit in the frame`);
        const servers: string[] = [];
        for (let j = 0; j < n; j++) servers.push(r.string(1, MAX_ADDRESS_BYTES, "server address"));
        entries.push({ ...rec, servers });
      }
      msg = { type, requestId, entries };
      break;
    }
    case MsgType.ListEnd: {
      const requestId = r.u32("request id");
      const total = r.u32("total");
      const flags = r.u8("flags");
      msg = { type, requestId, total, stale: (flags & 1) === 1 };
      break;
    }
    case MsgType.Status:
      msg = { type, requestId: r.u32("request id") };
      break;
    case MsgType.StatusServers: {
      const requestId = r.u32("request id");
      const count = r.u16("server count");
      if (count > MAX_STATUS_SERVERS_PER_FRAME) throw new ProtocolError(`${count} servers in one STATUS_SERVERS frame (at most ${MAX_STATUS_SERVERS_PER_FRAME})`);
      if (count * MIN_STATUS_SERVER_BYTES > r.remaining) throw new ProtocolError(`server count ${count} does not fit in the frame`);
      const servers: StatusServer[] = [];
      for (let i = 0; i < count; i++) servers.push(readStatusServer(r));
      msg = { type, requestId, servers };
      break;
    }
    case MsgType.StatusEnd: {
      const requestId = r.u32("request id");
      const format = r.u8("status format");
      const masterId = r.string(1, MAX_MASTER_ID_BYTES, "master id");
      const startedAtMs = r.u64("started at");
      const count = r.u8("counter count");
      if (count > MAX_STATUS_COUNTERS) throw new ProtocolError(`${count} counters (at most ${MAX_STATUS_COUNTERS})`);
      const counters: Array<{ name: string; value: number }> = [];
      for (let i = 0; i < count; i++) counters.push({ name: r.string(1, MAX_COUNTER_NAME_BYTES, "counter name"), value: r.u64("counter value") });
      msg = { type, requestId, format, masterId, startedAtMs, counters };
      break;
    }
    default:
      throw new ProtocolError(`unknown message type 0x${type.toString(16).padStart(2, "0")}`);
  }
  r.end(MsgType[type] ?? "message");
  return msg;
}

/**
 * Reassembles frames from a TCP byte stream. `push` bytes as they arrive, then call `next()` until it
 * returns undefined ("incomplete": wait for more). A ProtocolError from either means "invalid": close
 * the peer. Memory is bounded by MAX_FRAME_BYTES plus one read.
 */
export class FrameDecoder {
  private buf = new Uint8Array(4096);
  private start = 0;
  private end = 0;
  /** The largest frame accepted now: the master keeps it tiny until the peer has authenticated. */
  maxFrameBytes = MAX_FRAME_BYTES;

  get bufferedBytes(): number {
    return this.end - this.start;
  }

  push(chunk: Uint8Array): void {
    const needed = this.end - this.start + chunk.byteLength;
    if (this.end + chunk.byteLength > this.buf.byteLength) {
      if (needed <= this.buf.byteLength && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        let size = this.buf.byteLength;
        while (size < needed) size *= 2;
        const next = new Uint8Array(size);
        next.set(this.buf.subarray(this.start, this.end));
        this.buf = next;
      }
      this.end -= this.start;
      this.start = 0;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.byteLength;
    // Check the announced length as soon as it is readable, so an oversized frame is refused before
    // we buffer it.
    this.peekLength();
  }

  private peekLength(): number | undefined {
    if (this.end - this.start < LENGTH_PREFIX_BYTES) return undefined;
    const b = this.buf;
    const s = this.start;
    const length = ((b[s]! << 24) | (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!) >>> 0;
    if (length === 0) throw new ProtocolError("empty frame");
    if (length > this.maxFrameBytes) throw new ProtocolError(`frame of ${length} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
    return length;
  }

  next(): IndexMessage | undefined {
    const body = this.nextBody();
    return body === undefined ? undefined : decodeBody(body);
  }

  /**
   * The next whole frame's body, undecoded (an encrypted one is opened first), or undefined. It is a view
   * into the buffer, valid until the next `push`.
   */
  nextBody(): Uint8Array | undefined {
    const length = this.peekLength();
    if (length === undefined || this.end - this.start < LENGTH_PREFIX_BYTES + length) return undefined;
    const bodyStart = this.start + LENGTH_PREFIX_BYTES;
    const body = this.buf.subarray(bodyStart, bodyStart + length);
    this.start = bodyStart + length;
    if (this.start === this.end) this.start = this.end = 0;
    return body;
  }
}
