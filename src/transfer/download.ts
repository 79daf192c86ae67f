import { randomU32 } from "../util/random.ts";
import { FtxError, ProtocolError, type FtxErrorCode } from "../errors.ts";
import { GbnReceiver } from "./core/gbn-receiver.ts";
import { answerWaitMs } from "./core/rtt-estimator.ts";
import type { DownloadSink } from "./part-file.ts";
import type { AddressTokenSlot } from "./address-token-cache.ts";
import { clientRequestKeys, KxKind, kxKind, sessionCipher, type RequestKeys, type SessionCipher, type TransferCrypto } from "./core/session-keys.ts";
import { DatagramSealer } from "./core/datagram-aead.ts";
import {
  ACCEPT_AT,
  acceptNonce,
  ACK_BYTES,
  DATAGRAM_OVERHEAD_BYTES,
  decodeAccept,
  dataPayloadBytes,
  DATA_AT,
  isDataLength,
  decodeRepair,
  decodeError,
  decodeRetry,
  encodeBareRequest,
  encodeError,
  encodeFin,
  encodeRequest,
  firstDatagramBytes,
  FLAG_ACK_NOW,
  FLAG_PIECE_HASHES,
  FLAG_PLAINTEXT,
  FLAG_SEALED,
  HEADER_BYTES,
  openBody,
  PacketType,
  readHeader,
  segmentCount,
  timestampUs,
  TransferErrorCode,
  WIRE_VERSION,
  writeAck,
  type AcceptBody,
  type Greeting,
  type Header,
} from "./core/wire.ts";

export interface DownloadSpec {
  name: string;
  /** Size of what is asked for: the file, or its piece-hash list. */
  size: number;
  /** The range wanted: `length` bytes from `offset`. */
  offset: number;
  length: number;
  /** Ask for the file's piece hashes rather than its bytes. */
  pieceHashes?: boolean;
  sha256: string;
  /** The server, already resolved to an IP (Bun's UDP send does no DNS). */
  ip: string;
  port: number;
  display: string;
  /** The key exchange (CPace with a token, X25519 without), AEAD and random source of the session's keys. */
  crypto: TransferCrypto;
  /** --insecure-plaintext: DATA, ACK, REPAIR, FIN and ERROR in clear after the ACCEPT (the server must allow it). */
  plaintext?: boolean;
  segmentBytes: number;
  /** The path's round trip as a probe measured it just before, if one did: it times the REQUEST's retries. */
  pathRttMs?: number;
  windowSegments: number;
  ackEvery: number;
  /** Silence from the server for this long fails the session. */
  idleTimeoutMs: number;
  /** Where this server's address token is kept between sessions (address-token-cache.ts). */
  addressTokens?: AddressTokenSlot;
}

/**
 * REQUEST retransmission, doubling up to the maximum until the idle timeout has passed since the
 * first (then the server counts as unreachable). The first wait is 500 ms, or, when the path probe
 * has just measured the round trip, answerWaitMs of it (RFC 9002 §6.2.2 lets a new connection start
 * from an earlier RTT). A lost REQUEST or ACCEPT cost every session it struck half a second, on
 * loopback and at 5 % loss alike; a needless retry costs the server one more ACCEPT.
 */
const REQUEST_FIRST_RETRY_MS = 500;
/** RETRYs one session follows: a server that asks again for a token it has just given is broken. */
const MAX_RETRIES = 3;
const REQUEST_MAX_RETRY_MS = 2000;
const ACK_DELAY_MS = 2;
/** The largest FEC block a server may ask for (the receiver keeps one block of segments). */
const MAX_FEC_BLOCK = 128;
/**
 * Flow control against the disk: when this much received data is still waiting to be written, the
 * advertised window closes (0) until the backlog is below half of it, and then an ACK reopens it, so
 * memory stays bounded even when the network is faster than the disk. (A window of one segment, as
 * before, still let 64 KiB through per loopback round trip: a fetch of a sparse 8 GiB file, whose
 * writes the kernel throttled, grew to 2.8 GB.) A lost reopening ACK is repeated by the probe timer.
 */
const WRITE_BACKLOG_HIGH_BYTES = 4 << 20;
const WRITE_BACKLOG_RESUME_BYTES = 2 << 20;
/** After reopening the window, the ACK is repeated if no data has come within this long. */
const REOPEN_REPEAT_MS = 5;
/**
 * When nothing arrives for this long, the ACK is sent again (doubling up to PROBE_MAX_MS). Without it
 * a session could deadlock: a server still bound by the anti-amplification limit whose ACKs with the
 * cookie were all lost may not send, and a client that has everything sent so far has no reason to
 * (RFC 9002 §6.2.2.1 makes QUIC clients probe for the same reason).
 */
const PROBE_FIRST_MS = 50;
const PROBE_MAX_MS = 1000;

export type DownloadState = "requesting" | "receiving" | "done" | "failed";

/**
 * What each ERROR a file server sends means to the client, as an FtxError code (file-fetch.ts decides
 * by the code what to do with that server: ask again soon, rest it, or stop using it for this file).
 */
const CODE_OF_SERVER_ERROR: Record<TransferErrorCode, FtxErrorCode> = {
  [TransferErrorCode.NotFound]: "E_NOT_FOUND", // it does not serve this name (any more)
  [TransferErrorCode.Forbidden]: "E_AUTH", // our token is wrong or missing
  [TransferErrorCode.Busy]: "E_LIMIT", // at its session cap: ask again in a moment
  [TransferErrorCode.Changed]: "E_CHANGED", // its copy is no longer this content
  [TransferErrorCode.BadRequest]: "E_PROTOCOL", // it refused what we asked (a range outside its file)
  [TransferErrorCode.Internal]: "E_IO", // it could not read its file
  [TransferErrorCode.Timeout]: "E_TIMEOUT",
  [TransferErrorCode.Cancelled]: "E_CLOSED", // it ended the session
};

/** The FtxError for an ERROR from a file server; a code this version does not know counts as the server's I/O failure. */
export function serverError(code: number, text: string, display: string): FtxError {
  const detail = text === "" ? `error ${code}` : text;
  return new FtxError(CODE_OF_SERVER_ERROR[code as TransferErrorCode] ?? "E_IO", `file server ${display}: ${detail}`, { detail });
}

/** What a simulator replaces: the clock (monotonic ms) and the session id. The real client uses neither. */
export interface DownloadEnvironment {
  now?: () => number;
  sessionId?: number;
}

/**
 * One session with one file server: REQUEST (retransmitted until ACCEPT), then DATA in through a
 * GbnReceiver into the part file, ACKs out. The owner routes datagrams here by session id and calls
 * `onTimer` at `pollTimeout()`.
 */
export class Download {
  readonly sessionId: number;
  state: DownloadState = "requesting";
  failure: FtxError | undefined;
  private receiver: GbnReceiver | undefined;
  private accept: AcceptBody | undefined;
  private request: Uint8Array;
  private retries = 0;
  private requestRetryMs: number;
  private nextRequestAt: number;
  private readonly requestDeadline: number;
  private lastHeardAt: number;
  private probeDelayMs = PROBE_FIRST_MS;
  /** The window is closed (0) until the writes catch up. */
  private windowClosed = false;
  /** ACKs wait for the end of a run of datagrams read together (receive). */
  private acksHeld = false;
  private nextProbeAt = Infinity;
  private ackBuf = new Uint8Array(ACK_BYTES);
  private ackView = new DataView(this.ackBuf.buffer);
  /**
   * The keys of the REQUESTs sent, newest first (the ACCEPT's keys derive from one of them): a RETRY
   * that crossed our REQUEST makes us send another with a fresh share, while the server may already
   * have answered the first (and repeats that answer to the second).
   */
  private readonly requestKeys: RequestKeys[] = [];
  /** The session's keys, from the ACCEPT that opened. */
  private cipher: SessionCipher | undefined;
  /** Seals our ACK, FIN and ERROR, and says the server's datagrams come sealed; undefined: in clear. */
  private sealer: DatagramSealer | undefined;
  /** What sealing adds to each datagram of the session (0 in clear). */
  private overheadBytes = 0;
  /** Bytes received (and handed to the sink), from `spec.offset`. */
  received = 0;
  /** The session ends once this many bytes have arrived (lowered when another server takes the tail). */
  private limit: number;
  private settle!: { resolve: () => void; reject: (e: FtxError) => void };
  readonly finished: Promise<void>;
  readonly counters = { datagrams: 0, badLength: 0, throttled: 0, unauthenticated: 0 };
  /** For the few calls that come without a `now` (a shortened range, the window reopening, a failure). */
  private readonly clock: () => number;

  constructor(
    readonly spec: DownloadSpec,
    private readonly sink: DownloadSink,
    private readonly send: (bytes: Uint8Array) => void,
    now: number,
    /** Told when a deadline moved earlier outside the owner's calls (the window reopened). */
    private readonly deadlineMoved: (at: number) => void = () => {},
    env: DownloadEnvironment = {},
  ) {
    this.clock = env.now ?? (() => performance.now());
    this.sessionId = env.sessionId ?? (randomU32() || 1);
    this.limit = spec.length;
    this.finished = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.finished.catch(() => {});
    const request = this.encodeRequest(spec.addressTokens?.get(now), now);
    this.request = request instanceof FtxError ? new Uint8Array(0) : request;
    this.lastHeardAt = now;
    this.nextRequestAt = now;
    this.requestRetryMs = spec.pathRttMs === undefined ? REQUEST_FIRST_RETRY_MS : answerWaitMs(spec.pathRttMs, REQUEST_FIRST_RETRY_MS);
    this.requestDeadline = now + spec.idleTimeoutMs;
    if (request instanceof FtxError) this.fail(request, false);
    else this.onTimer(now);
  }

  /**
   * The REQUEST: sealed, answering the server's greeting with a fresh key share of ours; or bare (it
   * names nothing) when we have no greeting yet, to draw one in a RETRY. An FtxError when the greeting
   * cannot be answered: the server's exchange is not ours (a token on one side only), or its share is
   * not valid.
   */
  private encodeRequest(greeting: Greeting | undefined, now: number): Uint8Array | FtxError {
    const spec = this.spec;
    const flags = (spec.plaintext ? FLAG_PLAINTEXT : 0) | (spec.pieceHashes ? FLAG_PIECE_HASHES : 0);
    if (!greeting) return encodeBareRequest(this.sessionId, flags, timestampUs(now));
    if (greeting.kx !== kxKind(spec.crypto.kx))
      return this.error("E_AUTH", greeting.kx === KxKind.CPace ? "needs a token (--token or FTX_TOKEN)" : "has no token: it cannot prove it knows ours");
    const made = clientRequestKeys(spec.crypto, WIRE_VERSION, this.sessionId, greeting.epochId, greeting.share);
    if (!made) return this.error("E_AUTH", "sent a key share that is not valid");
    this.requestKeys.unshift(made.keys);
    if (this.requestKeys.length > MAX_RETRIES + 1) this.requestKeys.pop();
    const aead = spec.crypto.aead(made.keys.key);
    try {
      const body = { offset: spec.offset, length: spec.length, sha256: Buffer.from(spec.sha256, "hex"), name: spec.name, pieceHashes: spec.pieceHashes, plaintext: spec.plaintext, segmentBytes: spec.segmentBytes, windowSegments: spec.windowSegments };
      const hello = { token: greeting.token, kx: greeting.kx, epochId: greeting.epochId, share: made.share, confirm: made.keys.confirm };
      return encodeRequest(this.sessionId, body, hello, new DatagramSealer(aead, made.keys.iv), timestampUs(now));
    } finally {
      aead.dispose?.();
    }
  }

  /** Counters for `--verbose`: the window offered, datagrams, throttling, datagrams refused by the AEAD, and the receiver's own. */
  stats(): Record<string, number> {
    const o = this.cipher?.opener.stats;
    const aead: Record<string, number> = o ? { tampered: o.tampered, replayed: o.replayed + o.tooOld } : {};
    return { window: this.spec.windowSegments, ...this.counters, ...aead, ...(this.receiver?.counters ?? {}) };
  }

  /** The cipher of this session ("none" in clear), once the ACCEPT opened. */
  get cipherName(): string | undefined {
    return this.cipher === undefined ? undefined : this.sealer ? this.spec.crypto.aeadName : "none";
  }

  /** The range now ends `length` bytes from its start: what lies beyond went to another session. */
  shorten(length: number): void {
    if (length >= this.limit) return;
    this.limit = Math.max(length, this.received);
    if (this.state === "receiving" && this.received >= this.limit) this.complete(this.clock());
  }

  private updateWindow(): void {
    if (!this.receiver || this.windowClosed) return;
    if (this.sink.backlogBytes <= WRITE_BACKLOG_HIGH_BYTES || !this.sink.whenBacklogBelow) return;
    this.counters.throttled++;
    this.windowClosed = true;
    this.receiver.windowSegments = 0;
    this.sink.whenBacklogBelow(WRITE_BACKLOG_RESUME_BYTES, () => {
      this.windowClosed = false;
      if (this.state !== "receiving" || !this.receiver) return;
      const now = this.clock();
      this.receiver.windowSegments = this.spec.windowSegments;
      this.receiver.requestAck();
      this.flushAcks(now);
      // The server sends nothing until this ACK arrives: if no data follows soon, say it again (the
      // probe timer had backed off to as much as a second while the window was closed; at 5 % loss a
      // lost reopening ACK once cost a 256 MiB fetch three quarters of its speed).
      this.probeDelayMs = PROBE_FIRST_MS;
      this.nextProbeAt = now + REOPEN_REPEAT_MS;
      this.deadlineMoved(this.nextProbeAt);
    });
  }

  get segmentBytes(): number {
    return this.accept?.segmentBytes ?? this.spec.segmentBytes;
  }

  /**
   * What the socket read: one datagram, or several the kernel coalesced (UDP GRO: a run of one flow,
   * all as long as the first but the last). Each is checked whole (readHeader) and handled in turn,
   * and a run is acknowledged once, after its last datagram, as TCP acknowledges a coalesced segment.
   * Returns how many were dropped (damaged, another session's). Throws only for this download's own
   * failures (a full disk), never for what the network sent.
   */
  receive(data: Uint8Array, now: number): number {
    const first = firstDatagramBytes(data, this.accept?.segmentBytes ?? 0, this.accept?.length ?? 0, this.overheadBytes);
    if (first >= data.byteLength) return this.receiveOne(data, now);
    let dropped = 0;
    this.acksHeld = true;
    try {
      for (let at = 0; at < data.byteLength; at += first) dropped += this.receiveOne(data.subarray(at, Math.min(at + first, data.byteLength)), now);
    } finally {
      this.acksHeld = false;
      if (this.state === "receiving") this.sendAcks(now);
    }
    return dropped;
  }

  private receiveOne(data: Uint8Array, now: number): number {
    try {
      const header = readHeader(data);
      if (header.sessionId !== this.sessionId) return 1;
      const clear = this.open(header, data);
      if (clear === undefined) {
        this.counters.unauthenticated++;
        return 1;
      }
      this.handle(header, clear, now);
      return 0;
    } catch (err) {
      if (err instanceof ProtocolError) return 1;
      throw err;
    }
  }

  /**
   * A datagram of this session as its sender built it: opened in place when it comes sealed; undefined
   * when it does not authenticate, was seen before, or comes in clear where it must not (a clear ERROR
   * once the session is sealed).
   */
  private open(header: Header, data: Uint8Array): Uint8Array | undefined {
    switch (header.type) {
      case PacketType.Data:
      case PacketType.Repair:
        return this.sealer ? this.openSession(data) : data;
      case PacketType.Error:
        if ((header.flags & FLAG_SEALED) === 0) return this.sealer ? undefined : data;
        return this.cipher ? this.openSession(data) : undefined;
      case PacketType.Accept: {
        if (this.cipher) return data; // a repeat (our first ACK was lost): only acknowledged again
        // Each try opens a copy: a failed open leaves its body garbage.
        let cipher: SessionCipher | undefined;
        let opened: Uint8Array | undefined;
        for (const keys of this.requestKeys) {
          const c = sessionCipher(this.spec.crypto.aead, keys, acceptNonce(data), "client");
          const copy = data.slice();
          const end = openBody(copy, ACCEPT_AT.body, c.opener);
          if (end >= 0) {
            cipher = c;
            opened = copy.subarray(0, end);
            break;
          }
          c.dispose();
        }
        if (!cipher || !opened) return undefined;
        this.cipher = cipher;
        if (!this.spec.plaintext) {
          this.sealer = cipher.sealer;
          this.overheadBytes = DATAGRAM_OVERHEAD_BYTES;
          this.ackBuf = new Uint8Array(ACK_BYTES + DATAGRAM_OVERHEAD_BYTES);
          this.ackView = new DataView(this.ackBuf.buffer);
        }
        return opened;
      }
      default:
        return data;
    }
  }

  private openSession(data: Uint8Array): Uint8Array | undefined {
    const end = openBody(data, HEADER_BYTES, this.cipher!.opener);
    return end < 0 ? undefined : data.subarray(0, end);
  }

  handle(header: Header, data: Uint8Array, now: number): void {
    if (this.state === "done" || this.state === "failed") {
      // A late datagram for a finished session: the server missed our FIN.
      if (this.state === "done") this.send(encodeFin(this.sessionId, timestampUs(now), this.sealer));
      return;
    }
    this.lastHeardAt = now;
    this.probeDelayMs = PROBE_FIRST_MS;
    this.nextProbeAt = now + PROBE_FIRST_MS;
    switch (header.type) {
      case PacketType.Accept:
        return this.accept ? this.onRepeatedAccept(header.timestampUs, now) : this.onAccept(decodeAccept(data), header.timestampUs, now);
      case PacketType.Retry:
        return this.onRetry(decodeRetry(data), now);
      case PacketType.Data:
        return this.onData(header, data, now);
      case PacketType.Repair:
        return this.onRepair(header, data, now);
      case PacketType.Error: {
        const e = decodeError(data);
        return this.fail(serverError(e.code, e.text, this.spec.display), false);
      }
      default:
        throw new ProtocolError(`unexpected packet type ${header.type} from the server`);
    }
  }

  /** The server wants a greeting answered first: ask again at once with it (one round trip), and keep it for later sessions. */
  private onRetry(greeting: Greeting, now: number): void {
    if (this.state !== "requesting") return;
    if (++this.retries > MAX_RETRIES) return this.fail(this.error("E_PROTOCOL", "keeps refusing the address token it gave"));
    this.spec.addressTokens?.set(greeting, now);
    const request = this.encodeRequest(greeting, now);
    if (request instanceof FtxError) return this.fail(request, false);
    this.request = request;
    this.send(this.request);
    this.nextRequestAt = now + this.requestRetryMs;
  }

  /** Our first ACK was lost; the server repeats its ACCEPT. */
  private onRepeatedAccept(acceptTimestampUs: number, now: number): void {
    this.receiver?.noteEcho(acceptTimestampUs, now);
    this.receiver?.requestAck();
    this.flushAcks(now);
  }

  private onAccept(a: AcceptBody, acceptTimestampUs: number, now: number): void {
    if (Buffer.from(a.sha256).toString("hex") !== this.spec.sha256 || a.fileSize !== this.spec.size)
      return this.fail(this.error("E_INTEGRITY", `offers different content for ${this.spec.name}`));
    if (a.offset !== this.spec.offset || a.length !== this.spec.length || a.segmentBytes === 0 || a.segmentBytes > this.spec.segmentBytes)
      return this.fail(this.error("E_PROTOCOL", "answered with a range or segment size we did not ask for"));
    this.accept = a;
    this.state = "receiving";
    const totalSegments = segmentCount(a.length, a.segmentBytes);
    if (a.fecBlock > MAX_FEC_BLOCK) return this.fail(this.error("E_PROTOCOL", `asked for FEC blocks of ${a.fecBlock} segments`));
    this.receiver = new GbnReceiver({
      totalSegments,
      fecBlock: a.fecBlock,
      segmentBytes: a.segmentBytes,
      lastSegmentBytes: dataPayloadBytes(totalSegments - 1, a.segmentBytes, a.length),
      windowSegments: this.spec.windowSegments,
      // A large window of small segments would flood the server's one socket with ACKs: acknowledge
      // about four times per window (growth counts segments, so fewer ACKs do not slow it), and never
      // less often than every 16 segments; the delayed-ACK timer covers the tail.
      ackEvery: Math.max(this.spec.ackEvery, Math.min(16, Math.floor(this.spec.windowSegments / 4))),
      ackDelayMs: ACK_DELAY_MS,
    });
    this.receiver.noteEcho(acceptTimestampUs, now);
    this.receiver.requestAck(); // proves our address (echoes the cookie) so the server may speed up
    this.flushAcks(now);
    if (this.receiver.complete || this.limit === 0) this.complete(now);
  }

  private onData(header: Header, data: Uint8Array, now: number): void {
    const receiver = this.receiver;
    const accept = this.accept;
    if (!receiver || !accept) return;
    this.counters.datagrams++;
    if (!isDataLength(data, header.seq, accept.segmentBytes, accept.length)) {
      this.counters.badLength++;
      return;
    }
    // The payload is `data` from DATA_AT.payload on, passed as a range (no subarray per datagram).
    if (receiver.handleData(header.seq, header.timestampUs, now, (header.flags & FLAG_ACK_NOW) !== 0, accept.fecBlock > 0 ? data : undefined, DATA_AT.payload))
      this.deliver(data, DATA_AT.payload);
    this.afterDatagram(receiver, now);
  }

  /** A REPAIR: the receiver may rebuild a lost segment of its block and deliver what it held behind it. */
  private onRepair(header: Header, data: Uint8Array, now: number): void {
    const receiver = this.receiver;
    const accept = this.accept;
    if (!receiver || !accept || accept.fecBlock === 0) return;
    const payload = decodeRepair(data, accept.segmentBytes);
    if (!payload) {
      this.counters.badLength++;
      return;
    }
    receiver.handleRepair(header.seq, header.flags, header.timestampUs, now, payload);
    this.afterDatagram(receiver, now);
  }

  private afterDatagram(receiver: GbnReceiver, now: number): void {
    for (let bytes = receiver.pollDelivered(); bytes; bytes = receiver.pollDelivered()) this.deliver(bytes, 0);
    this.flushAcks(now);
    if (receiver.complete || this.received >= this.limit) this.complete(now);
  }

  /** The payload `bytes[from…]`, the next in order: to the sink, up to where this session's range now ends. */
  private deliver(bytes: Uint8Array, from: number): void {
    const take = Math.min(bytes.byteLength - from, this.limit - this.received);
    if (take > 0) {
      this.sink.append(bytes, from, from + take);
      this.received += take;
    }
    this.updateWindow();
  }

  private flushAcks(now: number): void {
    if (!this.acksHeld) this.sendAcks(now);
  }

  private sendAcks(now: number): void {
    const receiver = this.receiver;
    if (!receiver || !this.accept) return;
    for (let ack = receiver.pollAck(now); ack; ack = receiver.pollAck(now)) {
      writeAck(this.ackBuf, this.ackView, this.sessionId, ack.cumulative, ack, this.accept.cookie, timestampUs(now), this.sealer);
      this.send(this.ackBuf);
    }
  }

  private complete(now: number): void {
    this.sendAcks(now);
    this.send(encodeFin(this.sessionId, timestampUs(now), this.sealer));
    this.state = "done";
    this.settle.resolve();
  }

  /** An error about this session's server: the message names it, the detail says what it did. */
  private error(code: FtxErrorCode, detail: string): FtxError {
    return new FtxError(code, `file server ${this.spec.display} ${detail}`, { detail });
  }

  /**
   * Ends the session; unless the server ended it itself, tell it (best effort) so it frees the session
   * now: under the session's keys, so only once there is a session (before it, the server's session, if
   * it made one, ends on its idle timeout).
   */
  fail(err: FtxError, tellServer = true): void {
    if (this.state === "done" || this.state === "failed") return;
    if (tellServer && this.cipher) this.send(encodeError(this.sessionId, { code: TransferErrorCode.Cancelled, text: err.message }, timestampUs(this.clock()), this.sealer));
    this.state = "failed";
    this.failure = err;
    this.settle.reject(err);
  }

  /** Tell the server we are going away (best effort) and stop. */
  cancel(reason: string): void {
    if (this.state === "receiving" || this.state === "requesting") {
      this.fail(new FtxError("E_CLOSED", reason));
    }
  }

  onTimer(now: number): void {
    if (this.state === "requesting") {
      if (now >= this.nextRequestAt || now >= this.requestDeadline) {
        if (now >= this.requestDeadline) {
          return this.fail(this.error("E_UNREACHABLE", "does not answer"));
        }
        this.send(this.request);
        this.nextRequestAt = now + this.requestRetryMs;
        this.requestRetryMs = Math.min(REQUEST_MAX_RETRY_MS, 2 * this.requestRetryMs);
      }
      return;
    }
    if (this.state !== "receiving") return;
    if (this.windowClosed) this.lastHeardAt = now; // the server is silent because we asked it to wait
    // The same sum pollTimeout gives: `now - lastHeardAt` can fall a rounding error short of it.
    if (now >= this.lastHeardAt + this.spec.idleTimeoutMs) {
      return this.fail(this.error("E_TIMEOUT", `went silent for ${(this.spec.idleTimeoutMs / 1000).toFixed(0)}s`));
    }
    if (now >= this.nextProbeAt) {
      this.receiver?.requestAck();
      this.probeDelayMs = Math.min(PROBE_MAX_MS, this.probeDelayMs * 2);
      this.nextProbeAt = now + this.probeDelayMs;
    }
    this.flushAcks(now);
  }

  pollTimeout(): number | undefined {
    if (this.state === "requesting") return Math.min(this.nextRequestAt, this.requestDeadline);
    if (this.state !== "receiving") return undefined;
    const ackAt = this.receiver?.pollTimeout();
    const idleAt = this.lastHeardAt + this.spec.idleTimeoutMs;
    return Math.min(ackAt ?? Infinity, idleAt, this.nextProbeAt);
  }
}
