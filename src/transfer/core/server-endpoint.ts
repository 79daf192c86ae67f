import { ProtocolError } from "../../errors.ts";
import { AddressTokens, ADDRESS_TOKEN_LIFETIME_MS } from "./address-token.ts";
import { SenderRepairs } from "./fec/sender-repairs.ts";
import { GbnSender, SendKind, type SenderStats } from "./gbn-sender.ts";
import { KxKind, ServerShares, sessionCipher, SERVER_NONCE_BYTES, type RequestKeys, type SessionCipher, type TransferCrypto } from "./session-keys.ts";
import { DatagramOpener, type DatagramSealer } from "./datagram-aead.ts";
import {
  dataPayloadBytes,
  datagramCrc,
  DATA_AT,
  DATAGRAM_OVERHEAD_BYTES,
  decodeAck,
  decodeFin,
  decodeProbe,
  decodeRequestBody,
  decodeRequestHello,
  encodeAccept,
  encodeError,
  encodeProbeAck,
  encodeRetry,
  encodeUpgradeError,
  clampSegmentBytes,
  finishData,
  FLAG_ACK_NOW,
  FLAG_GAP,
  FLAG_SEALED,
  HEADER_BYTES,
  openBody,
  REQUEST_AT,
  type Greeting,
  FIRST_UPGRADE_VERSION,
  finishRepair,
  HEADER_AT,
  REPAIR_AT,
  JUMBO_DATAGRAM_BYTES,
  MAX_DATAGRAM_BYTES,
  PacketType,
  readHeader,
  segmentCount,
  timestampUs,
  TransferErrorCode,
  VersionError,
  WIRE_VERSION,
  type Header,
  type RequestBody,
} from "./wire.ts";

/**
 * The file server's side of the transfer protocol (docs/PROTOCOL.md §2), sans-IO: every session of
 * one UDP socket, told apart by (client address, client port, session id). It never touches a socket,
 * a file, a clock or a random source: datagrams come in through `handle`, time is the `now` passed in,
 * files are read through `ServedFiles`, cookies come from the `randomU32` it is given. The shell
 * (file-service.ts, or a simulator) drives it:
 *
 *   handle(datagram, address, port, now)   a datagram arrived
 *   pollTransmit(now) → Transmit           call until undefined, send what it gives
 *   unsend()                               the newest transmit was not sent (socket full): take it back
 *   handleDrain(now)                       the socket can take more again
 *   pollTimeout() → ms | undefined         the one deadline for all sessions
 *   handleTimeout(now)                     that deadline (or a later moment) came
 *   pollEvent() → EndpointEvent            log-worthy news, call until undefined
 */

/** RFC 9000 §8.1: until the client proves its address (an ACK echoes the cookie), send at most 3× what it sent. */
export const AMPLIFICATION_FACTOR = 3;
/**
 * What a REQUEST with a valid address token counts as received, for the budget above: the token
 * proved the client's IP receives (RFC 9000 §8.1.3 lets a server lift the limit altogether), but not
 * its port, so a REQUEST replayed toward another port of that IP still draws at most 3.6 KB.
 */
export const VALIDATED_REQUEST_CREDIT_BYTES = 1200;
/**
 * Sessions from one address whose cookie was not yet echoed: past this, a new one pushes the oldest
 * out (a legit client echoes within a round trip, so only replays are pushed out). Half the
 * per-address cap: 20 fetch processes of one host starting at once must not push each other out.
 */
export const MAX_UNVALIDATED_PER_ADDRESS = 32;
/** The congestion window's ceiling, and so the engine state a session may hold. */
export const MAX_WINDOW_SEGMENTS = 32768;
/**
 * FEC blocks of up to this many bytes of data (at most 64 segments, at least 4): 64 segments at a
 * 1500-byte MTU (86 KiB: a few repairs cover a block at 1–2 % loss, 64 + 3 at 1 %), 4 of loopback's
 * 64 KiB segments. The client holds one block in memory. The window never ends inside a block, so a
 * block is also the least a sender has in flight: 1 MiB blocks (16 on loopback) overflowed a slow
 * link's queue (a 3 MB/s relay holding 50 ms), for less repair overhead at 5 % loss on loopback.
 */
const FEC_BLOCK_BYTES = 128 * 1024;
const MAX_FEC_BLOCK = 64;
const MIN_FEC_BLOCK = 4;

/** The FEC block a session of this segment size uses. */
export function fecBlockFor(segmentBytes: number): number {
  return Math.max(MIN_FEC_BLOCK, Math.min(MAX_FEC_BLOCK, Math.floor(FEC_BLOCK_BYTES / segmentBytes)));
}
/** Transmits a shell may hold at once (one sendMany); each DATA one has a buffer of its own. */
export const SEND_BATCH = 8;
/**
 * A run (see `Transmit`) holds at most this many datagrams and this many bytes: what Linux's UDP GSO
 * takes in one send (UDP_MAX_SEGMENTS; the largest UDP payload).
 */
export const MAX_RUN_DATAGRAMS = 64;
export const MAX_RUN_BYTES = MAX_DATAGRAM_BYTES;
/**
 * Only datagrams up to a jumbo frame's go in runs: larger ones (loopback's 16–64 KiB) already move
 * enough per system call, and a run of three 16 KiB datagrams gains nothing worth a burst.
 */
export const MAX_RUN_DATAGRAM_BYTES = JUMBO_DATAGRAM_BYTES;
/**
 * Segments of at most a quarter of this are read from the file this much at a time and copied from
 * there: one read system call (0.8 µs here) per 1,374-byte segment was a third of the file server's
 * CPU at a 1500-byte MTU. 32 KiB a session, so 512 sessions hold 16 MiB.
 */
const READ_AHEAD_BYTES = 32 * 1024;
/** How often (in segments) a session re-checks that its file is unchanged on disk. */
export const CHANGE_CHECK_EVERY = 256;
export const DEFAULT_MAX_SESSIONS = 512;
export const DEFAULT_MAX_SESSIONS_PER_ADDRESS = 64;
/** A session whose client acknowledges nothing for this long is dropped. */
export const DEFAULT_IDLE_TIMEOUT_MS = 10_000;
/**
 * Control datagrams (ACCEPT, ERROR, PROBE_ACK) waiting while the socket is full. Past this, new ones
 * are dropped, as the kernel would: a flood of PROBEs cannot grow the server's memory.
 */
const MAX_QUEUED_CONTROLS = 1024;
/**
 * Key exchanges one address may make the server do: a burst of KX_BURST, refilled at KX_PER_SECOND. A
 * REQUEST past that is dropped and counted (`throttled`), as a full socket would drop it, and its client
 * asks again. A CPace exchange costs the server ~1.8 ms: without this, one address that receives (its
 * token is valid) could keep a core busy with REQUESTs under guessed tokens or fresh session ids.
 */
export const KX_BURST = 64;
export const KX_PER_SECOND = 200;
/** Addresses whose key-exchange budget is tracked; past this, those with a full budget are forgotten. */
const MAX_KX_BUCKETS = 4096;
/** Events not yet polled; past this, `dropped` events are only counted. */
const MAX_QUEUED_EVENTS = 1024;

/** What the server serves under a name: a catalog entry for the real one, a record in the simulator. */
export interface ServedFile {
  name: string;
  size: number;
  /** SHA-256 of the content, lowercase hex. */
  sha256: string;
  /** The piece-hash list (§3), sent instead of the bytes when a REQUEST has flag bit 1. */
  pieceHashes: Uint8Array;
}

export type OpenResult<H> = { ok: true; handle: H } | { ok: false; code: TransferErrorCode.Changed | TransferErrorCode.NotFound };

/** Storage, injected: the shell's is node:fs over the catalog, the simulator's is in memory. */
export interface ServedFiles<F extends ServedFile, H> {
  lookup(name: string): F | undefined;
  /** Opens the content; Changed when it is no longer what was hashed, NotFound when it cannot be read. */
  open(file: F): OpenResult<H>;
  /** Reads into `buf[bufOffset…]`; returns how many bytes it read (fewer: the file shrank). May throw. */
  read(handle: H, buf: Uint8Array, bufOffset: number, length: number, position: number): number;
  /** The open content no longer matches what was hashed (size or mtime moved). May throw. */
  changed(handle: H, file: F): boolean;
  close(handle: H): void;
  /** The catalog is out of date (a file changed or vanished under it): look again soon. */
  requestScan(): void;
}

export interface ServerEndpointConfig<F extends ServedFile, H> {
  files: ServedFiles<F, H>;
  /** Session cookies (32 random bits each). */
  randomU32: () => number;
  /** The key of its address tokens (address-token.ts): random, drawn once per process. */
  tokenSecret: Uint8Array;
  tokenLifetimeMs?: number;
  /**
   * The key exchange (CPace with the server's token, X25519 without), the AEAD and the random source
   * of the sessions' keys (session-keys.ts).
   */
  crypto: TransferCrypto;
  /** Sessions may ask for their datagrams in clear after the ACCEPT (`--insecure-plaintext`). */
  allowPlaintext?: boolean;
  maxSessions?: number;
  maxSessionsPerAddress?: number;
  idleTimeoutMs?: number;
  /**
   * The most datagrams one transmit may carry (≤ MAX_RUN_DATAGRAMS): a shell whose socket cuts a run
   * into datagrams itself (UDP GSO) asks for runs; 1 (the default) gives one datagram per transmit.
   */
  maxRunDatagrams?: number;
}

/**
 * What to send to one peer. The object and its bytes are the endpoint's: valid until SEND_BATCH more
 * polls. Usually one datagram; for a shell that asked for runs, `count` datagrams of one session back
 * to back, each `datagramBytes` long but the last, which may be shorter: exactly what a UDP GSO send
 * (UDP_SEGMENT = datagramBytes) cuts into datagrams, and what a shell without GSO sends one by one.
 */
export interface Transmit {
  bytes: Uint8Array;
  /** The length of every datagram in `bytes` but the last; bytes.byteLength when count is 1. */
  datagramBytes: number;
  count: number;
  address: string;
  port: number;
}

export interface Peer {
  address: string;
  port: number;
  sessionId: number;
}

export type EndpointEvent =
  | (Peer & { type: "opened"; name: string; pieceHashes: boolean; offset: number; length: number; segmentBytes: number })
  | (Peer & { type: "refused"; code: TransferErrorCode; text: string })
  /** `via`: every segment was acknowledged, or the client said FIN first. */
  | (Peer & { type: "completed"; name: string; via: "acknowledged" | "fin"; stats: SenderStats })
  /** `code`: the server stopped it and told the client so; absent: the engine gave up (no ACKs). */
  | (Peer & { type: "failed"; name: string; reason: string; code?: TransferErrorCode; stats: SenderStats })
  | (Peer & { type: "cancelled"; name: string })
  /** Pushed out: it never proved its port, or its address held more than its share of a full table. */
  | (Peer & { type: "evicted"; name: string; reason: string })
  | { type: "dropped"; address: string; port: number; reason: string };

export interface EndpointCounters {
  sessions: number;
  peakConcurrent: number;
  completed: number;
  failed: number;
  /** Datagrams that failed validation. */
  dropped: number;
  /** DATA bytes handed to the socket. */
  bytesSent: number;
  /** REQUESTs answered with a RETRY (no valid address token): they cost the server no state. */
  retries: number;
  /** Sessions pushed out for another (never validated, or a fair share for another address). */
  evicted: number;
  /** REQUESTs dropped before their key exchange: their address had used its budget (KX_BURST, KX_PER_SECOND). */
  throttled: number;
}

/** One open session as the operators' view shows it (`activeSessions`). */
export interface ActiveSession {
  sessionId: number;
  address: string;
  port: number;
  name: string;
  offset: number;
  end: number;
  segmentBytes: number;
  pieceHashes: boolean;
  /** Monotonic ms, as passed in. */
  createdAt: number;
  stats: SenderStats;
}

/** A session's file bytes read ahead: `buf[0, end − start)` holds the file's bytes [start, end). */
interface ReadAhead {
  readonly buf: Uint8Array;
  start: number;
  end: number;
}

class Session<F, H> {
  /** Small segments are copied from here, read READ_AHEAD_BYTES at a time (made at the first read). */
  readAhead: ReadAhead | undefined = undefined;
  /** Another session with the same id (from another address or port): ids are the client's choice. */
  sameId: Session<F, H> | undefined = undefined;
  validated = false;
  bytesSent = 0;
  sinceChangeCheck = 0;
  closed = false;
  /** In the ready queue (it may have something to send). */
  ready = false;
  readyNext: Session<F, H> | undefined = undefined;
  /** Its entry in the timer heap: when the endpoint must call on it without news (Infinity: none). */
  deadline = Infinity;
  heapIndex = -1;

  constructor(
    readonly sessionId: number,
    readonly address: string,
    readonly port: number,
    readonly file: F,
    readonly handle: H,
    /** Set when the session carries the piece-hash list (from memory) rather than the file. */
    readonly pieceHashes: Uint8Array | undefined,
    readonly offset: number,
    /** One past the last byte served. */
    readonly end: number,
    readonly segmentBytes: number,
    readonly sender: GbnSender,
    /** The encoder of REPAIR datagrams (absent for piece-hash sessions: small, and from memory). */
    readonly repairs: SenderRepairs | undefined,
    readonly cookie: number,
    readonly accept: Uint8Array,
    /** The session's keys (the ACCEPT is always sealed with them). */
    readonly cipher: SessionCipher,
    /** Seals DATA, REPAIR and ERROR; undefined: they go in clear (the client asked, the server allows). */
    readonly sealer: DatagramSealer | undefined,
    public bytesReceived: number,
    readonly createdAt: number,
  ) {
    this.overheadBytes = sealer ? DATAGRAM_OVERHEAD_BYTES : 0;
  }
  /** What sealing adds to each of its datagrams. */
  readonly overheadBytes: number;
}

interface Control {
  bytes: Uint8Array;
  address: string;
  port: number;
}

/** A datagram's place in a slot's buffer: its bytes and a view over them. */
interface Part {
  readonly bytes: Uint8Array;
  readonly view: DataView;
}

/** One of SEND_BATCH transmits handed out: what it was, so `unsend` can take it back. */
interface Slot<F, H> extends Transmit {
  readonly buffer: Uint8Array;
  /**
   * The places of a run's datagrams of `partBytes` each, made as first needed and kept while the
   * length repeats (no allocation per datagram); a shorter last datagram gets a place of its own.
   */
  parts: Part[];
  partBytes: number;
  /** The last run-long view of `buffer`, reused while the run's length repeats. */
  run: Uint8Array;
  session: Session<F, H> | undefined;
  /** The segments (or repairs' blocks) of the run, in the order they were polled; [] for a control datagram. */
  readonly seqs: Float64Array;
  control: Control | undefined;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += HEX[b];
  return s;
}

export class ServerEndpoint<F extends ServedFile = ServedFile, H = unknown> {
  /** Sessions by id; same-id sessions chained through `sameId`. No key string is built per datagram. */
  private readonly sessions = new Map<number, Session<F, H>>();
  private liveSessions = 0;
  private readonly perAddress = new Map<string, number>();
  private readonly files: ServedFiles<F, H>;
  private readonly randomU32: () => number;
  private readonly crypto: TransferCrypto;
  private readonly shares: ServerShares;
  private readonly allowPlaintext: boolean;
  private readonly tokens: AddressTokens;
  readonly maxSessions: number;
  readonly maxSessionsPerAddress: number;
  readonly idleTimeoutMs: number;

  private readonly controls: (Control | undefined)[] = [];
  private controlHead = 0;
  /** Sessions that may have something to send, served one datagram each in turn. */
  private readyHead: Session<F, H> | undefined = undefined;
  private readyTail: Session<F, H> | undefined = undefined;
  /** A binary min-heap of sessions by deadline; each session knows its index, so a move is O(log n). */
  private readonly heap: Session<F, H>[] = [];
  private readonly events: (EndpointEvent | undefined)[] = [];
  private eventHead = 0;

  private readonly slots: Slot<F, H>[];
  private readonly maxRun: number;
  private cursor = 0;
  /** How many of the newest transmits `unsend` may still take back. */
  private undoable = 0;
  private isBlocked = false;

  readonly counters: EndpointCounters = { sessions: 0, peakConcurrent: 0, completed: 0, failed: 0, dropped: 0, bytesSent: 0, retries: 0, evicted: 0, throttled: 0 };
  /** Per address: key exchanges it may still make the server do, and when that was last worked out. */
  private readonly kxBudget = new Map<string, { left: number; at: number }>();

  constructor(config: ServerEndpointConfig<F, H>) {
    this.files = config.files;
    this.randomU32 = config.randomU32;
    this.crypto = config.crypto;
    this.shares = new ServerShares(config.crypto);
    this.allowPlaintext = config.allowPlaintext ?? false;
    this.tokens = new AddressTokens(config.tokenSecret, config.tokenLifetimeMs ?? ADDRESS_TOKEN_LIFETIME_MS);
    this.maxSessions = config.maxSessions ?? DEFAULT_MAX_SESSIONS;
    this.maxSessionsPerAddress = config.maxSessionsPerAddress ?? DEFAULT_MAX_SESSIONS_PER_ADDRESS;
    this.idleTimeoutMs = config.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.maxRun = Math.max(1, Math.min(MAX_RUN_DATAGRAMS, config.maxRunDatagrams ?? 1));
    this.slots = Array.from({ length: SEND_BATCH }, () => {
      const buffer = new Uint8Array(MAX_RUN_BYTES);
      const seqs = new Float64Array(this.maxRun);
      return { buffer, parts: [], partBytes: 0, run: buffer, bytes: buffer, datagramBytes: 0, count: 0, address: "", port: 0, session: undefined, seqs, control: undefined };
    });
  }

  /** Sessions open now. */
  get sessionCount(): number {
    return this.liveSessions;
  }

  /** Operators' view (`ftx serve --http`): the sessions open now, read-only. */
  activeSessions(): ActiveSession[] {
    const out: ActiveSession[] = [];
    for (const first of this.sessions.values())
      for (let s: Session<F, H> | undefined = first; s; s = s.sameId)
        if (!s.closed)
          out.push({ sessionId: s.sessionId, address: s.address, port: s.port, name: s.file.name, offset: s.offset, end: s.end, segmentBytes: s.segmentBytes, pieceHashes: s.pieceHashes !== undefined, createdAt: s.createdAt, stats: s.sender.stats() });
    return out;
  }

  /** A transmit was taken back: nothing more until `handleDrain`. */
  get blocked(): boolean {
    return this.isBlocked;
  }

  // ---- inputs ----

  handle(datagram: Uint8Array, address: string, port: number, now: number): void {
    this.undoable = 0; // an input in between: the senders forget what they could undo
    let header;
    try {
      header = readHeader(datagram);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      if (err instanceof VersionError) this.answerOldVersion(datagram, err.version, address, port, now);
      return this.drop(address, port, err.message);
    }
    const s = this.find(header.sessionId, address, port);
    try {
      switch (header.type) {
        case PacketType.Request:
          if (s) {
            // The ACCEPT was lost: answer again, within the address-validation budget.
            s.bytesReceived += datagram.byteLength;
            this.sendControl(s, s.accept);
            this.makeReady(s); // the budget grew
            return;
          }
          return this.onRequest(datagram, header, address, port, now);
        case PacketType.Ack: {
          if (!s) return;
          s.bytesReceived += datagram.byteLength;
          const ack = decodeAck(this.opened(s, datagram));
          if (ack.cookie !== s.cookie) return; // not from the address we answered: spoofed or stale
          s.validated = true;
          s.sender.handleAck(header.seq, ack.windowSegments, ack.echoTimestampUs, ack.ackDelayUs, now, ack.received, (header.flags & FLAG_GAP) !== 0);
          return this.afterInput(s);
        }
        case PacketType.Probe:
          // Stateless: say how big the datagram that arrived was, with a greeting (the answer is never
          // more than the probe).
          this.queueControl(encodeProbeAck(header.sessionId, { datagramBytes: decodeProbe(datagram), greeting: this.greeting(address, now) }, timestampUs(now)), address, port);
          return;
        case PacketType.Fin:
          if (s) {
            decodeFin(this.opened(s, datagram));
            this.counters.completed++;
            this.emit({ type: "completed", address, port, sessionId: s.sessionId, name: s.file.name, via: "fin", stats: s.sender.stats() });
            this.close(s);
          }
          return;
        case PacketType.Error:
          if (s) {
            if (s.sealer && (header.flags & FLAG_SEALED) === 0) throw new ProtocolError("a clear ERROR for a sealed session");
            if (s.sealer) this.opened(s, datagram);
            this.emit({ type: "cancelled", address, port, sessionId: s.sessionId, name: s.file.name });
            this.close(s);
          }
          return;
        default:
          return this.drop(address, port, `unexpected packet type ${header.type}`);
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.drop(address, port, err.message);
    }
  }

  /** A session's datagram from its client, opened when the session is sealed (else as it came); ProtocolError when it does not authenticate. */
  private opened(s: Session<F, H>, datagram: Uint8Array): Uint8Array {
    if (!s.sealer) return datagram;
    const end = openBody(datagram, HEADER_BYTES, s.cipher.opener);
    if (end < 0) throw new ProtocolError(`datagram refused by the AEAD (${s.cipher.opener.lastRefusal})`);
    return datagram.subarray(0, end);
  }

  /** What a PROBE_ACK or RETRY to `address` carries now: an address token for it and this epoch's key share. */
  greeting(address: string, now: number): Greeting {
    const e = this.shares.epoch(now);
    return { token: this.tokens.issue(address, now), kx: this.shares.kxKind, epochId: e.id, share: e.share };
  }

  /**
   * A REQUEST for no session yet: a RETRY (no state) unless its address token is valid and its epoch
   * current; then its key exchange must complete and its confirmation check (else ERROR forbidden,
   * clear), its body open under the REQUEST key, and the session is admitted.
   */
  private onRequest(datagram: Uint8Array, header: Header, address: string, port: number, now: number): void {
    const hello = decodeRequestHello(datagram);
    const retry = () => {
      // No state for an address that has not shown it receives: a RETRY, smaller than any REQUEST.
      this.counters.retries++;
      this.queueControl(encodeRetry(header.sessionId, this.greeting(address, now), timestampUs(now)), address, port);
    };
    if (!hello || !this.tokens.check(hello.token, address, now)) return retry();
    const id = header.sessionId;
    // Only an address whose token was valid gets here: its refusals may be larger than its REQUEST.
    if (hello.kx !== this.shares.kxKind)
      return this.refuse(id, address, port, TransferErrorCode.Forbidden, this.shares.kxKind === KxKind.X25519 ? "authentication failed: this file server has no token" : "authentication failed: this file server needs a token (--token)", now);
    if (!this.takeKeyExchange(address, now)) {
      this.counters.throttled++;
      return;
    }
    const keys = this.shares.complete(WIRE_VERSION, id, hello.epochId, hello.share, hello.confirm, now);
    if (keys === "stale") return retry();
    if (keys === "invalid") return this.refuse(id, address, port, TransferErrorCode.Forbidden, "authentication failed: wrong or missing token", now);
    const aead = this.crypto.aead(keys.key);
    try {
      const end = openBody(datagram, REQUEST_AT.body, new DatagramOpener(aead, keys.iv));
      if (end < 0) return this.refuse(id, address, port, TransferErrorCode.Forbidden, "authentication failed: the REQUEST does not open", now);
      const req = decodeRequestBody(datagram.subarray(0, end), header);
      this.admit(req, keys, id, address, port, Math.max(datagram.byteLength, VALIDATED_REQUEST_CREDIT_BYTES), now);
    } finally {
      aead.dispose?.();
    }
  }

  /** Whether `address` may have one more key exchange now (a token bucket per address, see KX_BURST). */
  private takeKeyExchange(address: string, now: number): boolean {
    let b = this.kxBudget.get(address);
    if (!b) {
      if (this.kxBudget.size >= MAX_KX_BUCKETS) {
        for (const [a, x] of this.kxBudget) if (Math.min(KX_BURST, x.left + ((now - x.at) / 1000) * KX_PER_SECOND) >= KX_BURST) this.kxBudget.delete(a);
        if (this.kxBudget.size >= MAX_KX_BUCKETS) return false;
      }
      b = { left: KX_BURST, at: now };
      this.kxBudget.set(address, b);
    }
    b.left = Math.min(KX_BURST, b.left + (Math.max(0, now - b.at) / 1000) * KX_PER_SECOND);
    b.at = now;
    if (b.left < 1) return false;
    b.left -= 1;
    return true;
  }

  /** The socket has room again. */
  handleDrain(_now: number): void {
    this.undoable = 0;
    this.isBlocked = false;
  }

  /** Every session whose deadline is ≤ now gets its timer; the shell calls this at `pollTimeout()`. */
  handleTimeout(now: number): void {
    this.undoable = 0;
    const heap = this.heap;
    while (heap.length > 0 && heap[0]!.deadline <= now) {
      const s = heap[0]!;
      this.setDeadline(s, Infinity);
      s.sender.handleTimeout(now);
      this.afterInput(s);
    }
  }

  /** Ends every session (the server stops); no datagrams are sent for them. */
  closeAll(): void {
    const all: Session<F, H>[] = [];
    for (const first of this.sessions.values()) for (let s: Session<F, H> | undefined = first; s; s = s.sameId) all.push(s);
    for (const s of all) this.close(s);
  }

  // ---- outputs ----

  /**
   * The next transmit, or undefined (nothing now, or blocked). Control datagrams first, then DATA
   * from each session with something to send, in turn: one datagram each, or a run of up to
   * `maxRunDatagrams` of one session where the shell asked for runs.
   */
  pollTransmit(now: number): Transmit | undefined {
    if (this.isBlocked) return undefined;
    for (;;) {
      if (this.controlHead < this.controls.length) {
        const c = this.controls[this.controlHead]!;
        this.controls[this.controlHead++] = undefined;
        if (this.controlHead === this.controls.length) this.controls.length = this.controlHead = 0;
        const slot = this.takeSlot();
        slot.bytes = c.bytes;
        slot.datagramBytes = c.bytes.byteLength;
        slot.count = 1;
        slot.address = c.address;
        slot.port = c.port;
        slot.session = undefined;
        slot.control = c;
        return slot;
      }
      const s = this.readyHead;
      if (!s) return undefined;
      this.readyHead = s.readyNext;
      if (!this.readyHead) this.readyTail = undefined;
      s.readyNext = undefined;
      s.ready = false;
      if (s.closed) continue;
      if (!this.mayAmplify(s)) {
        // Only an ACK (or a repeated REQUEST) can let it send: until then only the idle limit matters
        // (its sender has had no ACK since it began). Its pacing deadline would say "now" forever.
        this.setDeadline(s, s.createdAt + this.idleTimeoutMs);
        continue;
      }
      const seq = s.sender.pollTransmit(now);
      if (seq === undefined) {
        this.setDeadline(s, s.sender.pollTimeout(now) ?? Infinity);
        continue;
      }
      const slot = this.slots[this.cursor]!;
      const first = this.prepare(s, seq, now, slot, 0, 0);
      if (first === 0) continue; // the session was stopped (its ERROR is queued), or had no repair to give
      slot.seqs[0] = seq;
      let count = 1;
      let total = first;
      // A run: more of this session's datagrams of the same length, while its sender gives them now.
      while (count < this.maxRun && first <= MAX_RUN_DATAGRAM_BYTES && total + first <= MAX_RUN_BYTES && !s.closed && this.mayAmplify(s, total)) {
        const next = s.sender.pollTransmit(now);
        if (next === undefined) break;
        if (this.expectedLength(s, next) > first) {
          s.sender.unsend(next); // longer than the run's datagrams: it starts the next transmit
          break;
        }
        const length = this.prepare(s, next, now, slot, count, total);
        if (length === 0) continue;
        slot.seqs[count++] = next;
        total += length;
        if (length < first) break; // a shorter datagram can only be a run's last
      }
      this.takeSlot();
      if (count === 1) slot.bytes = slot.parts[0]!.bytes;
      else {
        if (slot.run.byteLength !== total) slot.run = slot.buffer.subarray(0, total);
        slot.bytes = slot.run;
      }
      slot.datagramBytes = first;
      slot.count = count;
      slot.address = s.address;
      slot.port = s.port;
      slot.session = s;
      slot.control = undefined;
      s.bytesSent += total;
      this.counters.bytesSent += total;
      this.makeReady(s); // to the back of the queue: the others go first
      return slot;
    }
  }

  /** Whether an unvalidated session may send one more full datagram beyond `pending` bytes (RFC 9000 §8.1). */
  private mayAmplify(s: Session<F, H>, pending = 0): boolean {
    return s.validated || s.bytesSent + pending + DATA_AT.payload + s.segmentBytes + s.overheadBytes <= AMPLIFICATION_FACTOR * s.bytesReceived;
  }

  /** The length of what `seq` from the sender's newest poll becomes: DATA, or a REPAIR as long as its block's first segment. */
  private expectedLength(s: Session<F, H>, seq: number): number {
    return DATA_AT.payload + dataPayloadBytes(seq, s.segmentBytes, s.end - s.offset) + s.overheadBytes;
  }

  /** What the sender's newest poll gave, built into datagram `index` of `slot` (at byte `at`); its length, or 0. */
  private prepare(s: Session<F, H>, seq: number, now: number, slot: Slot<F, H>, index: number, at: number): number {
    return s.sender.transmitKind === SendKind.Repair ? this.prepareRepair(s, seq, now, slot, index, at) : this.prepareSegment(s, seq, now, slot, index, at);
  }

  /**
   * The newest transmit not yet taken back was not sent (the socket refused it). A shell that sent
   * only part of a batch calls this once per transmit left, newest first. DATA goes back to its
   * sender (it goes out again, not counted as lost); a control datagram goes back to the head of the
   * queue. The endpoint then gives nothing more until `handleDrain`.
   */
  unsend(): void {
    this.isBlocked = true;
    if (this.undoable === 0) return;
    this.undoable--;
    this.cursor = (this.cursor + SEND_BATCH - 1) % SEND_BATCH;
    const slot = this.slots[this.cursor]!;
    const s = slot.session;
    if (s) {
      for (let i = slot.count - 1; i >= 0; i--) s.sender.unsend(slot.seqs[i]!);
      s.bytesSent -= slot.bytes.byteLength;
      this.counters.bytesSent -= slot.bytes.byteLength;
      this.makeReadyFirst(s);
    } else if (slot.control) {
      if (this.controlHead > 0) this.controls[--this.controlHead] = slot.control;
      else this.controls.unshift(slot.control);
    }
    slot.session = undefined;
    slot.control = undefined;
  }

  /** The earliest deadline of any session (absolute ms), or undefined: then only a datagram can wake it. */
  pollTimeout(): number | undefined {
    const top = this.heap[0];
    return top === undefined || top.deadline === Infinity ? undefined : top.deadline;
  }

  pollEvent(): EndpointEvent | undefined {
    if (this.eventHead === this.events.length) return undefined;
    const ev = this.events[this.eventHead];
    this.events[this.eventHead++] = undefined;
    if (this.eventHead === this.events.length) this.events.length = this.eventHead = 0;
    return ev;
  }

  // ---- admission ----

  /**
   * A REQUEST that opened. Its refusals go in clear (no session, so no session keys yet): their text
   * names no file, size or range (the event the server logs does), the client knows what it asked.
   */
  private admit(req: RequestBody, keys: RequestKeys, sessionId: number, address: string, port: number, receivedBytes: number, now: number): void {
    if (req.plaintext && !this.allowPlaintext) return this.refuse(sessionId, address, port, TransferErrorCode.Forbidden, "this file server does not allow --insecure-plaintext", now);
    const file = this.files.lookup(req.name);
    if (!file) return this.refuse(sessionId, address, port, TransferErrorCode.NotFound, "not served here", now, `${req.name} is not served here`);
    if (file.sha256 !== hex(req.sha256)) return this.refuse(sessionId, address, port, TransferErrorCode.Changed, "has changed since it was listed", now, `${req.name} has changed since it was listed`);
    const pieceHashes = req.pieceHashes ? file.pieceHashes : undefined;
    const size = pieceHashes ? pieceHashes.byteLength : file.size;
    const what = pieceHashes ? `the piece hashes of ${req.name}` : req.name;
    const end = req.length === 0 ? size : req.offset + req.length;
    if (req.offset > size || end > size || end < req.offset)
      return this.refuse(sessionId, address, port, TransferErrorCode.BadRequest, "the range asked for is outside what is served", now, `range ${req.offset}+${req.length} is outside ${what} (${size} bytes)`);
    if (!this.makeRoom(address, now)) {
      const text =
        (this.perAddress.get(address) ?? 0) >= this.maxSessionsPerAddress
          ? `server busy: more than ${this.maxSessionsPerAddress} transfers from your address`
          : "server busy: too many transfers, try again";
      return this.refuse(sessionId, address, port, TransferErrorCode.Busy, text, now);
    }
    const opened = this.files.open(file);
    if (!opened.ok) {
      this.files.requestScan();
      const text = opened.code === TransferErrorCode.Changed ? "has changed since it was listed" : "is no longer readable here";
      return this.refuse(sessionId, address, port, opened.code, text, now, `${req.name} ${text}`);
    }

    const sealed = !req.plaintext;
    const segmentBytes = clampSegmentBytes(req.segmentBytes);
    const totalSegments = segmentCount(end - req.offset, segmentBytes);
    const cookie = this.randomU32() >>> 0;
    const fecBlock = pieceHashes ? 0 : fecBlockFor(segmentBytes);
    const cipher = sessionCipher(this.crypto.aead, keys, this.crypto.randomBytes(SERVER_NONCE_BYTES), "server");
    const nonce = cipher.serverNonce;
    const accept = encodeAccept(sessionId, { fileSize: size, offset: req.offset, length: end - req.offset, segmentBytes, cookie, sha256: req.sha256, fecBlock }, nonce, cipher.sealer, timestampUs(now));
    const sender = new GbnSender({ totalSegments, maxWindowSegments: MAX_WINDOW_SEGMENTS, idleTimeoutMs: this.idleTimeoutMs, fecBlock, segmentBytes }, now, Math.max(1, req.windowSegments));
    const repairs = fecBlock > 0 ? new SenderRepairs(fecBlock, segmentBytes, totalSegments) : undefined;
    const s = new Session<F, H>(sessionId, address, port, file, opened.handle, pieceHashes, req.offset, end, segmentBytes, sender, repairs, cookie, accept, cipher, sealed ? cipher.sealer : undefined, receivedBytes, now);
    s.sameId = this.sessions.get(sessionId);
    this.sessions.set(sessionId, s);
    this.liveSessions++;
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    this.counters.sessions++;
    if (this.liveSessions > this.counters.peakConcurrent) this.counters.peakConcurrent = this.liveSessions;
    this.emit({ type: "opened", address, port, sessionId, name: req.name, pieceHashes: pieceHashes !== undefined, offset: req.offset, length: end - req.offset, segmentBytes });
    this.sendControl(s, accept);
    this.afterInput(s); // an empty range is complete at once
  }

  /**
   * Room for one more session from `address` (whose token is valid), fair per address: a session that
   * never proved its port goes first (the address's own oldest when it has MAX_UNVALIDATED_PER_ADDRESS
   * of them or is at its cap; any address's oldest when the table is full); then, in a full table, the
   * oldest session of the address holding the most, if it holds at least two more than this one (so
   * shares converge and never flap). False: refuse with Busy.
   */
  private makeRoom(address: string, now: number): boolean {
    const mine = this.perAddress.get(address) ?? 0;
    let ownUnvalidated = 0;
    let ownOldest: Session<F, H> | undefined;
    let anyOldest: Session<F, H> | undefined;
    const needOwn = mine >= this.maxSessionsPerAddress || mine >= MAX_UNVALIDATED_PER_ADDRESS;
    const full = this.liveSessions >= this.maxSessions;
    if (needOwn || full) {
      for (const first of this.sessions.values()) {
        for (let s: Session<F, H> | undefined = first; s; s = s.sameId) {
          if (s.validated) continue;
          if (!anyOldest || s.createdAt < anyOldest.createdAt) anyOldest = s;
          if (s.address !== address) continue;
          ownUnvalidated++;
          if (!ownOldest || s.createdAt < ownOldest.createdAt) ownOldest = s;
        }
      }
    }
    if (ownOldest && (ownUnvalidated >= MAX_UNVALIDATED_PER_ADDRESS || mine >= this.maxSessionsPerAddress)) {
      this.evict(ownOldest, "server busy: pushed out by a newer REQUEST from your address before it was acknowledged", now);
    } else if (mine >= this.maxSessionsPerAddress) return false;
    if (this.liveSessions < this.maxSessions) return true;
    if (anyOldest && !anyOldest.closed) {
      this.evict(anyOldest, "server busy: pushed out of a full table before it was acknowledged", now);
      return true;
    }
    let heaviest: string | undefined;
    let most = 0;
    for (const [a, n] of this.perAddress) {
      if (n > most) {
        most = n;
        heaviest = a;
      }
    }
    if (heaviest === undefined || most < (this.perAddress.get(address) ?? 0) + 2) return false;
    let victim: Session<F, H> | undefined;
    for (const first of this.sessions.values())
      for (let s: Session<F, H> | undefined = first; s; s = s.sameId) if (s.address === heaviest && (!victim || s.createdAt < victim.createdAt)) victim = s;
    if (!victim) return false;
    this.evict(victim, "server busy: sharing its sessions fairly with other clients, try again", now);
    return true;
  }

  /**
   * Ends a session to make room, telling its client (ERROR busy, within the anti-amplification budget:
   * a legit client asks again in a moment rather than waiting out its idle timeout).
   */
  private evict(s: Session<F, H>, reason: string, now: number): void {
    this.sendControl(s, encodeError(s.sessionId, { code: TransferErrorCode.Busy, text: reason }, timestampUs(now), s.sealer));
    this.counters.evicted++;
    this.emit({ type: "evicted", address: s.address, port: s.port, sessionId: s.sessionId, name: s.file.name, reason });
    this.close(s);
  }

  /**
   * A datagram of another wire version. An older client's REQUEST (intact, checksum and all) gets an
   * ERROR in its own layout saying to upgrade, if that ERROR is no larger than the REQUEST (v2 padded
   * its REQUESTs to 1200 bytes, so it always fits): it is sent to an unvalidated address.
   */
  private answerOldVersion(datagram: Uint8Array, version: number, address: string, port: number, now: number): void {
    if (version < FIRST_UPGRADE_VERSION || version >= WIRE_VERSION) return;
    if (datagram[HEADER_AT.type] !== PacketType.Request) return;
    const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
    if (view.getUint32(HEADER_AT.crc) !== datagramCrc(datagram)) return;
    const text = `this file server speaks ftx wire version ${WIRE_VERSION}, not ${version}: upgrade ftx`;
    const answer = encodeUpgradeError(version, view.getUint32(HEADER_AT.sessionId), text, timestampUs(now));
    if (answer.byteLength <= datagram.byteLength) this.queueControl(answer, address, port);
  }

  /** A clear ERROR for a REQUEST that opened no session; `logText` (the event's) may say more than the wire's. */
  private refuse(sessionId: number, address: string, port: number, code: TransferErrorCode, text: string, now: number, logText = text): void {
    this.queueControl(encodeError(sessionId, { code, text }, timestampUs(now)), address, port);
    this.emit({ type: "refused", address, port, sessionId, code, text: logText });
  }

  // ---- sessions ----

  private find(sessionId: number, address: string, port: number): Session<F, H> | undefined {
    for (let s = this.sessions.get(sessionId); s; s = s.sameId) if (s.port === port && s.address === address) return s;
    return undefined;
  }

  /** After news for a session's sender: it finished, or it may have something to send. */
  private afterInput(s: Session<F, H>): void {
    const ev = s.sender.pollEvent();
    if (!ev) return this.makeReady(s);
    const base = { address: s.address, port: s.port, sessionId: s.sessionId, name: s.file.name, stats: s.sender.stats() };
    if (ev.type === "completed") {
      this.counters.completed++;
      this.emit({ type: "completed", ...base, via: "acknowledged" });
    } else {
      this.counters.failed++;
      this.emit({ type: "failed", ...base, reason: ev.reason });
    }
    this.close(s);
  }

  /** Stops a session on the server's side, telling the client why (within the budget). */
  private abort(s: Session<F, H>, code: TransferErrorCode, text: string, now: number): 0 {
    this.sendControl(s, encodeError(s.sessionId, { code, text }, timestampUs(now), s.sealer));
    this.counters.failed++;
    this.emit({ type: "failed", address: s.address, port: s.port, sessionId: s.sessionId, name: s.file.name, reason: text, code, stats: s.sender.stats() });
    this.close(s);
    return 0;
  }

  private close(s: Session<F, H>): void {
    if (s.closed) return;
    s.closed = true;
    const first = this.sessions.get(s.sessionId);
    if (first === s) {
      if (s.sameId) this.sessions.set(s.sessionId, s.sameId);
      else this.sessions.delete(s.sessionId);
    } else {
      for (let p = first; p; p = p.sameId) {
        if (p.sameId === s) {
          p.sameId = s.sameId;
          break;
        }
      }
    }
    s.sameId = undefined;
    this.liveSessions--;
    const n = (this.perAddress.get(s.address) ?? 1) - 1;
    if (n <= 0) this.perAddress.delete(s.address);
    else this.perAddress.set(s.address, n);
    this.setDeadline(s, Infinity);
    // A closed session still in the ready queue is skipped when its turn comes.
    this.files.close(s.handle);
    s.cipher.dispose();
  }

  /** Sends a session's control datagram if the address-validation budget allows. */
  private sendControl(s: Session<F, H>, bytes: Uint8Array): void {
    if (!s.validated && s.bytesSent + bytes.byteLength > AMPLIFICATION_FACTOR * s.bytesReceived) return;
    s.bytesSent += bytes.byteLength;
    this.queueControl(bytes, s.address, s.port);
  }

  private queueControl(bytes: Uint8Array, address: string, port: number): void {
    if (this.controls.length - this.controlHead >= MAX_QUEUED_CONTROLS) return;
    this.controls.push({ bytes, address, port });
  }

  private makeReady(s: Session<F, H>): void {
    if (s.ready || s.closed) return;
    s.ready = true;
    if (this.readyTail) this.readyTail.readyNext = s;
    else this.readyHead = s;
    this.readyTail = s;
  }

  /** A refused session goes first once the socket drains (unsend is called newest first, so order holds). */
  private makeReadyFirst(s: Session<F, H>): void {
    if (s.ready || s.closed) return;
    s.ready = true;
    s.readyNext = this.readyHead;
    this.readyHead = s;
    if (!this.readyTail) this.readyTail = s;
  }

  private takeSlot(): Slot<F, H> {
    const slot = this.slots[this.cursor]!;
    this.cursor = (this.cursor + 1) % SEND_BATCH;
    if (this.undoable < SEND_BATCH) this.undoable++;
    return slot;
  }

  /**
   * The place of datagram `index` of a run in `slot`, `length` bytes from byte `at`. Datagrams before
   * it in the run are all as long as the run's first (index 0 sets that length).
   */
  private part(slot: Slot<F, H>, index: number, at: number, length: number): Part {
    if (index === 0 && slot.partBytes !== length) {
      slot.parts.length = 0;
      slot.partBytes = length;
    }
    if (length !== slot.partBytes) return { bytes: slot.buffer.subarray(at, at + length), view: new DataView(slot.buffer.buffer, at, length) };
    return (slot.parts[index] ??= { bytes: slot.buffer.subarray(at, at + length), view: new DataView(slot.buffer.buffer, at, length) });
  }

  /** Reads segment `seq` into datagram `index` of `slot` (from byte `at`) and seals it; returns its length, or 0 if the session was stopped. */
  private prepareSegment(s: Session<F, H>, seq: number, now: number, slot: Slot<F, H>, index: number, at: number): number {
    const position = s.offset + seq * s.segmentBytes;
    const length = dataPayloadBytes(seq, s.segmentBytes, s.end - s.offset);
    if (++s.sinceChangeCheck >= CHANGE_CHECK_EVERY) {
      s.sinceChangeCheck = 0;
      let changed: boolean;
      try {
        changed = this.files.changed(s.handle, s.file);
      } catch (err) {
        return this.abort(s, TransferErrorCode.Internal, `cannot check ${s.file.name}: ${(err as Error).message}`, now);
      }
      if (changed) return this.abort(s, TransferErrorCode.Changed, `${s.file.name} changed during the transfer`, now);
    }
    const buffer = slot.buffer;
    const payloadAt = at + DATA_AT.payload;
    let read: number;
    try {
      if (s.pieceHashes) {
        buffer.set(s.pieceHashes.subarray(position, position + length), payloadAt);
        read = length;
      } else read = this.readFile(s, buffer, payloadAt, length, position);
    } catch (err) {
      return this.abort(s, TransferErrorCode.Internal, `cannot read ${s.file.name}: ${(err as Error).message}`, now);
    }
    if (read !== length) return this.abort(s, TransferErrorCode.Changed, `${s.file.name} changed during the transfer`, now);
    if (s.repairs && s.sender.transmitKind !== SendKind.Probe) {
      const repairs = s.sender.currentBlockRepairs;
      if (repairs > 0) {
        try {
          s.repairs.onData(seq, buffer.subarray(payloadAt, payloadAt + length), repairs, (earlier, into) => this.readSegment(s, earlier, into));
        } catch (err) {
          return this.abort(s, TransferErrorCode.Internal, `cannot read ${s.file.name}: ${(err as Error).message}`, now);
        }
      }
    }
    const total = DATA_AT.payload + length + s.overheadBytes;
    const p = this.part(slot, index, at, total);
    finishData(p.bytes, p.view, s.sender.awaitingAck ? FLAG_ACK_NOW : 0, s.sessionId, seq, s.sender.stamp(now), s.sealer);
    return total;
  }

  /** `length` bytes of the session's file from `position` into `buf[at…]`, through its read-ahead when segments are small; how many it got. */
  private readFile(s: Session<F, H>, buf: Uint8Array, at: number, length: number, position: number): number {
    if (s.segmentBytes * 4 > READ_AHEAD_BYTES) return this.files.read(s.handle, buf, at, length, position);
    const ra = (s.readAhead ??= { buf: new Uint8Array(READ_AHEAD_BYTES), start: 0, end: 0 });
    if (position < ra.start || position + length > ra.end) {
      ra.start = position;
      ra.end = position + this.files.read(s.handle, ra.buf, 0, Math.min(READ_AHEAD_BYTES, s.end - position), position);
    }
    const got = Math.max(0, Math.min(length, ra.end - position));
    buf.set(ra.buf.subarray(position - ra.start, position - ra.start + got), at);
    return got;
  }

  /** An earlier segment of a block whose repairs are being computed part-way through it (after a go-back). */
  private readSegment(s: Session<F, H>, seq: number, into: Uint8Array): Uint8Array {
    const position = s.offset + seq * s.segmentBytes;
    const length = Math.min(s.segmentBytes, s.end - position);
    const read = this.files.read(s.handle, into, 0, length, position);
    if (read !== length) throw new Error("short read");
    return into.subarray(0, length);
  }

  /** REPAIR `repairIndex` of the block starting at segment `blockStart` into datagram `index` of `slot` (from byte `at`); 0 when there is none to give. */
  private prepareRepair(s: Session<F, H>, blockStart: number, now: number, slot: Slot<F, H>, index: number, at: number): number {
    const length = s.repairs?.repair(blockStart, s.sender.repairIndex, slot.buffer.subarray(at + REPAIR_AT.payload)) ?? 0;
    if (length === 0) {
      // It never left: taken back (so an unsend of the run it was in finds its own), then forgotten.
      s.sender.unsend(blockStart);
      s.sender.dropRepairs();
      return 0;
    }
    const total = REPAIR_AT.payload + length + s.overheadBytes;
    const p = this.part(slot, index, at, total);
    finishRepair(p.bytes, p.view, s.sender.repairIndex, s.sessionId, blockStart, s.sender.stamp(now), s.sealer);
    return total;
  }

  private drop(address: string, port: number, reason: string): void {
    this.counters.dropped++;
    if (this.events.length - this.eventHead < MAX_QUEUED_EVENTS) this.emit({ type: "dropped", address, port, reason });
  }

  private emit(ev: EndpointEvent): void {
    this.events.push(ev);
  }

  // ---- the timer heap ----

  private setDeadline(s: Session<F, H>, at: number): void {
    const heap = this.heap;
    if (at === Infinity) {
      if (s.heapIndex < 0) return;
      const i = s.heapIndex;
      const last = heap.pop()!;
      s.heapIndex = -1;
      s.deadline = Infinity;
      if (last !== s) {
        heap[i] = last;
        last.heapIndex = i;
        this.siftDown(i);
        this.siftUp(i);
      }
      return;
    }
    const earlier = at < s.deadline;
    s.deadline = at;
    if (s.heapIndex < 0) {
      s.heapIndex = heap.length;
      heap.push(s);
      this.siftUp(s.heapIndex);
    } else if (earlier) this.siftUp(s.heapIndex);
    else this.siftDown(s.heapIndex);
  }

  private siftUp(i: number): void {
    const heap = this.heap;
    const s = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (p.deadline <= s.deadline) break;
      heap[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    heap[i] = s;
    s.heapIndex = i;
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const s = heap[i]!;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && heap[r]!.deadline < heap[l]!.deadline ? r : l;
      const child = heap[c]!;
      if (child.deadline >= s.deadline) break;
      heap[i] = child;
      child.heapIndex = i;
      i = c;
    }
    heap[i] = s;
    s.heapIndex = i;
  }
}
