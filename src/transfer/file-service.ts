import type { udp } from "bun";
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { randomU32 } from "../util/crypto.ts";
import { FtxError, ProtocolError } from "../errors.ts";
import type { Catalog, CatalogEntry } from "../files/catalog.ts";
import { silentLogger, type Logger } from "../log.ts";
import { formatAddress, unmapIPv4 } from "../net/address.ts";
import { growReceiveBuffer } from "../net/socket-options.ts";
import { udpErrorOf } from "../net/udp-error.ts";
import { DeadlineTimer } from "../util/deadline-timer.ts";
import { GbnSender } from "./gbn-sender.ts";
import { verifyRequestMac } from "./request-mac.ts";
import {
  clampSegmentBytes,
  decodeAck,
  decodeRequest,
  encodeAccept,
  encodeError,
  encodeProbeAck,
  HEADER_BYTES,
  MIN_PROBE_BYTES,
  MAX_SEGMENT_BYTES,
  PacketType,
  readHeader,
  seal,
  timestampUs,
  TransferErrorCode,
  writeHeader,
  FLAG_ACK_NOW,
  type RequestBody,
} from "./wire.ts";

export interface FileServiceOptions {
  host: string;
  port: number;
  catalog: Catalog;
  token?: string;
  logger?: Logger;
  maxSessions?: number;
  maxSessionsPerAddress?: number;
  /** A session whose client says nothing for this long is dropped. */
  idleTimeoutMs?: number;
}

/** RFC 9000 §8.1: until the client proves its address, send at most 3× what it sent. */
const AMPLIFICATION_FACTOR = 3;
const MAX_WINDOW_SEGMENTS = 4096;
/** Segments prepared and handed to the kernel in one sendMany. */
const SEND_BATCH = 8;
/**
 * The receive buffer the server's one socket asks for (socket-options.ts): every client's ACKs,
 * REQUESTs and path probes (up to 64 KiB each) land in it, and 20 clients starting at once overflowed
 * the default 208 KiB with their probes.
 */
const RECEIVE_BUFFER_BYTES = 2 << 20;
/** How often (in segments) a session re-checks that its file is unchanged on disk. */
const CHANGE_CHECK_EVERY = 256;

interface Session {
  key: string;
  sessionId: number;
  address: string; // as Bun reports it, for send()
  port: number;
  peer: string; // formatted, for logs
  entry: CatalogEntry;
  fd: number;
  /** Set when the session carries the piece-hash list (from memory) rather than the file. */
  pieceHashes: Uint8Array | undefined;
  offset: number;
  segmentBytes: number;
  totalSegments: number;
  end: number; // absolute byte offset one past the last byte served
  sender: GbnSender;
  cookie: number;
  validated: boolean;
  bytesReceived: number;
  bytesSent: number;
  accept: Uint8Array;
  wakeAt: number | undefined;
  sinceChangeCheck: number;
}

export interface FileServiceStats {
  sessions: number;
  peakConcurrent: number;
  completed: number;
  failed: number;
  dropped: number; // datagrams that failed validation
  bytesSent: number;
}

/**
 * The file server's UDP side: one socket for all sessions (so one open port, NAT and relays work),
 * sessions told apart by (client address, session id). A thin shell around GbnSender: it reads the
 * segments the engine asks for straight from disk into one reused datagram buffer.
 */
export class FileService {
  private readonly sessions = new Map<string, Session>();
  private readonly perAddress = new Map<string, number>();
  private readonly logger: Logger;
  /** Datagram buffers for one batch, reused: a batch goes out in one sendMany. */
  private readonly ring = Array.from({ length: SEND_BATCH }, () => new Uint8Array(HEADER_BYTES + MAX_SEGMENT_BYTES));
  private readonly ringViews = this.ring.map((b) => new DataView(b.buffer));
  private readonly batch: Array<Uint8Array | number | string> = [];
  private readonly batchSeqs: number[] = [];
  private readonly wake = new DeadlineTimer(() => this.onTimer());
  private sendBlocked = false;
  private readonly maxSessions: number;
  private readonly maxPerAddress: number;
  private readonly idleTimeoutMs: number;
  readonly counters: FileServiceStats = { sessions: 0, peakConcurrent: 0, completed: 0, failed: 0, dropped: 0, bytesSent: 0 };

  private constructor(
    private readonly socket: udp.Socket<"uint8array">,
    private readonly opts: FileServiceOptions,
  ) {
    this.logger = opts.logger ?? silentLogger;
    this.maxSessions = opts.maxSessions ?? 512;
    this.maxPerAddress = opts.maxSessionsPerAddress ?? 64;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 10_000;
  }

  static async start(opts: FileServiceOptions): Promise<FileService> {
    let service: FileService | undefined;
    let socket: udp.Socket<"uint8array">;
    try {
      socket = await Bun.udpSocket({
        hostname: opts.host,
        port: opts.port,
        binaryType: "uint8array",
        socket: {
          data(_s, data, port, address) {
            service?.onDatagram(data, port, address);
          },
          drain() {
            service?.onDrain();
          },
          error(first, second) {
            // ICMP errors from clients that went away: expected, and never fatal to the service.
            service?.logger.debug(`UDP socket error: ${udpErrorOf(first, second).message}`);
          },
        },
      });
    } catch (err) {
      throw new FtxError("E_IO", `cannot bind UDP ${formatAddress(opts.host, opts.port)}: ${(err as Error).message}`);
    }
    service = new FileService(socket, opts);
    const granted = growReceiveBuffer(socket, RECEIVE_BUFFER_BYTES);
    service.logger.debug(`UDP receive buffer: ${granted === undefined ? "the system's default (could not be sized)" : `${granted} bytes`}`);
    return service;
  }

  get port(): number {
    return this.socket.port;
  }

  stop(): void {
    this.wake.cancel();
    for (const s of [...this.sessions.values()]) this.close(s);
    this.socket.close();
  }

  private onDatagram(data: Uint8Array, port: number, address: string): void {
    const now = performance.now();
    let header;
    try {
      header = readHeader(data);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.counters.dropped++;
      return;
    }
    const key = `${address}|${port}|${header.sessionId}`;
    const session = this.sessions.get(key);
    try {
      switch (header.type) {
        case PacketType.Request:
          if (session) {
            // The ACCEPT was lost: answer again, within the address-validation budget.
            session.bytesReceived += data.byteLength;
            this.sendControl(session, session.accept);
          } else this.onRequest(decodeRequest(data, header), header.sessionId, key, address, port, data.byteLength, now);
          return;
        case PacketType.Ack: {
          if (!session) return;
          const ack = decodeAck(data);
          session.bytesReceived += data.byteLength;
          if (ack.cookie !== session.cookie) return; // not from the address we answered: spoofed or stale
          session.validated = true;
          session.sender.handleAck(header.seq, ack.windowSegments, ack.echoTimestampUs, ack.ackDelayUs, now);
          this.pump(session, now);
          return;
        }
        case PacketType.Probe:
          // Stateless: say how big the datagram that arrived was. The answer is 30 bytes, the probe ≥ 1200.
          if (data.byteLength >= MIN_PROBE_BYTES) this.send(encodeProbeAck(header.sessionId, data.byteLength, timestampUs(now)), port, address);
          return;
        case PacketType.Fin:
        case PacketType.Error:
          if (session) {
            if (header.type === PacketType.Fin) this.counters.completed++;
            this.close(session);
          }
          return;
        default:
          this.counters.dropped++;
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.counters.dropped++;
      this.logger.debug(`bad datagram from ${formatAddress(unmapIPv4(address), port)}: ${err.message}`);
    }
  }

  /**
   * One socket serves every client, so the kernel's report of an ICMP error (ECONNREFUSED: a client
   * that went away, a probe socket closed before its last answers came) makes Bun's send throw on
   * whichever send comes next, to anyone, and that datagram is not sent. The report clears the error,
   * so these two make the send once more; a second failure is news about one peer only, never a
   * reason to stop serving the others.
   */
  private sendPastQueuedError(bytes: Uint8Array, port: number, address: string): boolean {
    try {
      return this.socket.send(bytes, port, address);
    } catch {
      return this.socket.send(bytes, port, address);
    }
  }

  private sendManyPastQueuedError(batch: Array<Uint8Array | number | string>): number {
    try {
      return this.socket.sendMany(batch);
    } catch {
      return this.socket.sendMany(batch);
    }
  }

  private send(bytes: Uint8Array, port: number, address: string): boolean {
    try {
      if (this.sendPastQueuedError(bytes, port, address)) return true;
      // The socket's send buffer is full: stop pumping until Bun says it drained.
      this.sendBlocked = true;
      return false;
    } catch (err) {
      this.logger.debug(`send to ${formatAddress(unmapIPv4(address), port)} failed: ${(err as Error).message}`);
      return false;
    }
  }

  private refuse(sessionId: number, address: string, port: number, code: TransferErrorCode, text: string): void {
    this.send(encodeError(sessionId, { code, text }, timestampUs(performance.now())), port, address);
  }

  private onRequest(req: RequestBody, sessionId: number, key: string, address: string, port: number, receivedBytes: number, now: number): void {
    const peer = formatAddress(unmapIPv4(address), port);
    // An ERROR is far smaller than the padded REQUEST, so refusals never amplify.
    if (this.opts.token !== undefined && !verifyRequestMac(this.opts.token, sessionId, req.offset, req.length, req.sha256, req.name, req.mac)) {
      this.logger.warn(`refused ${peer}: authentication failed`);
      return this.refuse(sessionId, address, port, TransferErrorCode.Forbidden, "authentication failed: wrong or missing token");
    }
    const entry = this.opts.catalog.get(req.name);
    const wantedSha = Buffer.from(req.sha256).toString("hex");
    if (!entry) return this.refuse(sessionId, address, port, TransferErrorCode.NotFound, `${req.name} is not served here`);
    if (entry.sha256 !== wantedSha)
      return this.refuse(sessionId, address, port, TransferErrorCode.Changed, `${req.name} has changed since it was listed`);
    const pieceHashes = req.pieceHashes ? entry.pieceHashes : undefined;
    const size = pieceHashes ? pieceHashes.byteLength : entry.size;
    const what = pieceHashes ? `the piece hashes of ${req.name}` : req.name;
    const end = req.length === 0 ? size : req.offset + req.length;
    if (req.offset > size || end > size || end < req.offset)
      return this.refuse(sessionId, address, port, TransferErrorCode.BadRequest, `range ${req.offset}+${req.length} is outside ${what} (${size} bytes)`);
    if (this.sessions.size >= this.maxSessions)
      return this.refuse(sessionId, address, port, TransferErrorCode.Busy, "server busy: too many transfers, try again");
    if ((this.perAddress.get(address) ?? 0) >= this.maxPerAddress)
      return this.refuse(sessionId, address, port, TransferErrorCode.Busy, `server busy: more than ${this.maxPerAddress} transfers from your address`);

    let fd: number;
    try {
      fd = openSync(entry.path, constants.O_RDONLY | constants.O_NOFOLLOW);
      const st = fstatSync(fd);
      if (st.ino !== entry.ino || st.size !== entry.size || st.mtimeMs !== entry.mtimeMs) {
        closeSync(fd);
        this.opts.catalog.requestScan();
        return this.refuse(sessionId, address, port, TransferErrorCode.Changed, `${req.name} has changed since it was listed`);
      }
    } catch {
      this.opts.catalog.requestScan();
      return this.refuse(sessionId, address, port, TransferErrorCode.NotFound, `${req.name} is no longer readable here`);
    }

    const segmentBytes = clampSegmentBytes(req.segmentBytes);
    const totalSegments = Math.ceil((end - req.offset) / segmentBytes);
    const cookie = randomU32();
    const accept = encodeAccept(sessionId, { fileSize: size, offset: req.offset, length: end - req.offset, segmentBytes, cookie, sha256: req.sha256 }, timestampUs(now));
    const session: Session = {
      key,
      sessionId,
      address,
      port,
      peer,
      entry,
      fd,
      pieceHashes,
      offset: req.offset,
      segmentBytes,
      totalSegments,
      end,
      sender: new GbnSender({ totalSegments, maxWindowSegments: MAX_WINDOW_SEGMENTS, idleTimeoutMs: this.idleTimeoutMs }, now, Math.max(1, req.windowSegments)),
      cookie,
      validated: false,
      bytesReceived: receivedBytes,
      bytesSent: 0,
      accept,
      wakeAt: undefined,
      sinceChangeCheck: 0,
    };
    this.sessions.set(key, session);
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    this.counters.sessions++;
    if (this.sessions.size > this.counters.peakConcurrent) this.counters.peakConcurrent = this.sessions.size;
    this.logger.debug(`${peer} requests ${what} from byte ${req.offset} (${end - req.offset} bytes, ${segmentBytes}-byte segments)`);
    this.sendControl(session, accept);
    this.pump(session, now);
  }

  /** Sends a control datagram if the address-validation budget allows. */
  private sendControl(s: Session, bytes: Uint8Array): void {
    if (!s.validated && s.bytesSent + bytes.byteLength > AMPLIFICATION_FACTOR * s.bytesReceived) return;
    s.bytesSent += bytes.byteLength;
    this.send(bytes, s.port, s.address);
  }

  /** The send buffer has room again: every session gets its turn, in order. */
  private onDrain(): void {
    this.sendBlocked = false;
    const now = performance.now();
    for (const s of [...this.sessions.values()]) {
      if (this.sendBlocked) break;
      this.pump(s, now);
    }
  }

  private pump(s: Session, now: number): void {
    const full = HEADER_BYTES + s.segmentBytes;
    const batch = this.batch;
    const seqs = this.batchSeqs;
    while (!this.sendBlocked) {
      // Prepare up to a batch of segments (read, header, checksum), each in its own buffer...
      batch.length = 0;
      seqs.length = 0;
      let bytes = 0;
      while (seqs.length < SEND_BATCH) {
        if (!s.validated && s.bytesSent + bytes + full > AMPLIFICATION_FACTOR * s.bytesReceived) break;
        const seq = s.sender.pollTransmit(now);
        if (seq === undefined) break;
        const total = this.prepareSegment(s, seq, now, seqs.length);
        if (total === 0) return; // aborted: the session is gone
        batch.push(this.ring[seqs.length]!.subarray(0, total), s.port, s.address);
        seqs.push(seq);
        bytes += total;
      }
      if (seqs.length === 0) break;
      // ...then hand them to the kernel in one call. What did not fit is taken back, last first.
      const sent = this.sendBatch(batch, s);
      for (let i = seqs.length - 1; i >= sent; i--) s.sender.unsend(seqs[i]!);
      for (let i = 0; i < sent; i++) {
        const length = (batch[i * 3] as Uint8Array).byteLength;
        s.bytesSent += length;
        this.counters.bytesSent += length;
      }
      if (sent < seqs.length) break;
    }
    for (let ev = s.sender.pollEvent(); ev; ev = s.sender.pollEvent()) {
      if (ev.type === "completed") {
        this.counters.completed++;
        const st = s.sender.stats();
        this.logger.debug(
          `${s.peer} received ${s.entry.name}: srtt ${st.srttMs.toFixed(2)}ms rto ${st.rtoMs.toFixed(0)}ms cwnd ${st.cwnd.toFixed(0)} ` +
            `peer window ${st.peerWindow} sent ${st.sent} resent ${st.retransmitted} timeouts ${st.timeouts} fast ${st.fastRetransmits} probes ${st.probes}`,
        );
      } else {
        this.counters.failed++;
        this.logger.debug(`session with ${s.peer} for ${s.entry.name} ended: ${ev.reason}`);
      }
      this.close(s);
      return;
    }
    this.schedule(s, s.sender.pollTimeout(now));
  }

  /** Sends a batch of datagrams (buffer, port, address, …); returns how many went out. */
  private sendBatch(batch: Array<Uint8Array | number | string>, s: Session): number {
    try {
      const sent = this.sendManyPastQueuedError(batch);
      // Fewer than asked: the socket's send buffer is full; stop pumping until Bun says it drained.
      if (sent < batch.length / 3) this.sendBlocked = true;
      return sent;
    } catch (err) {
      this.logger.debug(`send to ${s.peer} failed: ${(err as Error).message}`);
      return 0;
    }
  }

  /** Reads segment `seq` into ring buffer `slot` and seals it; returns its length, or 0 if the session was aborted. */
  private prepareSegment(s: Session, seq: number, now: number, slot: number): number {
    const dgram = this.ring[slot]!;
    const view = this.ringViews[slot]!;
    const position = s.offset + seq * s.segmentBytes;
    const length = Math.min(s.segmentBytes, s.end - position);
    if (++s.sinceChangeCheck >= CHANGE_CHECK_EVERY) {
      s.sinceChangeCheck = 0;
      const st = fstatSync(s.fd);
      if (st.size !== s.entry.size || st.mtimeMs !== s.entry.mtimeMs) return this.abort(s, TransferErrorCode.Changed, `${s.entry.name} changed during the transfer`);
    }
    let read: number;
    try {
      if (s.pieceHashes) {
        dgram.set(s.pieceHashes.subarray(position, position + length), HEADER_BYTES);
        read = length;
      } else read = readSync(s.fd, dgram, HEADER_BYTES, length, position);
    } catch (err) {
      return this.abort(s, TransferErrorCode.Internal, `cannot read ${s.entry.name}: ${(err as Error).message}`);
    }
    if (read !== length) return this.abort(s, TransferErrorCode.Changed, `${s.entry.name} changed during the transfer`);
    writeHeader(dgram, view, PacketType.Data, s.sender.awaitingAck ? FLAG_ACK_NOW : 0, s.sessionId, seq, s.sender.stamp(now));
    const total = HEADER_BYTES + length;
    seal(dgram, view, total);
    return total;
  }

  private abort(s: Session, code: TransferErrorCode, text: string): 0 {
    this.logger.warn(`transfer of ${s.entry.name} to ${s.peer} stopped: ${text}`);
    this.sendControl(s, encodeError(s.sessionId, { code, text }, timestampUs(performance.now())));
    this.counters.failed++;
    this.close(s);
    return 0;
  }

  private close(s: Session): void {
    if (!this.sessions.delete(s.key)) return;
    const n = (this.perAddress.get(s.address) ?? 1) - 1;
    if (n <= 0) this.perAddress.delete(s.address);
    else this.perAddress.set(s.address, n);
    try {
      closeSync(s.fd);
    } catch {}
  }

  /** One timer for all sessions, armed for the earliest deadline. */
  private schedule(s: Session, at: number | undefined): void {
    s.wakeAt = at;
    if (at !== undefined) this.wake.wakeBy(at);
  }

  private onTimer(): void {
    const now = performance.now();
    for (const s of [...this.sessions.values()]) {
      if (s.wakeAt !== undefined && s.wakeAt <= now + 0.25) {
        s.sender.handleTimeout(now);
        this.pump(s, now); // re-schedules s
      } else if (s.wakeAt !== undefined) this.wake.wakeBy(s.wakeAt);
    }
  }
}
