import type { Socket, TCPSocketListener } from "bun";
import { FtxError, type ProtocolError } from "../errors.ts";
import { silentLogger, type Logger } from "../log.ts";
import { formatAddress, unmapIPv4 } from "../net/address.ts";
import { DeadlineTimer } from "../util/deadline-timer.ts";
import { newNonce } from "./nonce.ts";
import { aes256gcm } from "../crypto/aes-gcm.ts";
import { cpace } from "../crypto/cpace.ts";
import { SECRET_BYTES } from "../crypto/core/key-exchange.ts";
import { x25519 } from "../crypto/x25519.ts";
import { randomBytes } from "../util/random.ts";
import { ServerHandshake, type HandshakeCrypto } from "./core/handshake.ts";
import { FramedPeer } from "./framed-peer.ts";
import { encodeMessage } from "./core/codec.ts";
import { MemoryStore } from "./memory-store.ts";
import { IndexErrorCode, MAX_FRAME_BYTES, MAX_PREAUTH_FRAME_BYTES, MsgType, type IndexMessage, type ListEntry } from "./core/messages.ts";
import { admit, DEFAULT_ADMISSION_LIMITS, type ConnView } from "./core/admission.ts";
import type { ListingJob } from "./core/listing.ts";
import { LogLimiter } from "./core/log-limiter.ts";
import { PatternError } from "./core/pattern.ts";
import { escapeControl } from "../util/terminal-text.ts";
import { PeerSession, type SessionConfig, type SessionEffect, type SessionState } from "./core/peer-session.ts";
import { DEFAULT_REGISTRY_LIMITS, Registry, type RegistryLimits } from "./core/registry.ts";
import type { RegistryStore } from "./core/store.ts";
import { MasterObserver } from "../ops/master-observer.ts";
import { buildStatus, statusFrames, type ReadonlyIndex } from "../ops/status-report.ts";

export interface MasterOptions {
  host: string;
  port: number;
  token?: string;
  /** --insecure-plaintext: peers that ask may talk unencrypted (still authenticated by the token). */
  allowPlaintext?: boolean;
  heartbeatTimeoutMs: number;
  logger?: Logger;
  store?: RegistryStore;
  limits?: RegistryLimits;
  maxConnections?: number;
  /** Connections from one IP address (default 1024); when full, its oldest idle unauthenticated one makes room. */
  maxConnectionsPerAddress?: number;
  /** A peer whose unread answers stay above OUTPUT_HOLD_BYTES this long is dropped (default 10 s). */
  outputStallMs?: number;
  /** From TCP accept to WELCOME; a peer dribbling its handshake is cut off after this. */
  handshakeTimeoutMs?: number;
  /** A client connection that completes no frame for this long is closed. */
  clientIdleTimeoutMs?: number;
}

interface Conn {
  socket: Socket<Conn>;
  peer: FramedPeer;
  session: PeerSession;
  /** The IP the connection comes from (per-address limits). */
  address: string;
  /** LIST requests in order; the first one's answer is being prepared or sent. */
  lists: ListRequest[];
  /** Complete frames received from it. */
  frames: number;
  /** Time spent on its listings so far: the least served goes first (a short legit LIST overtakes floods). */
  listServedMs: number;
  /** When its output backlog went above OUTPUT_HOLD_BYTES (its requests are not read meanwhile). */
  heldSince: number | undefined;
}

interface ListRequest {
  requestId: number;
  pattern: string;
  job?: ListingJob;
  total: number;
}

/** What the master has parsed, by the state each message arrived in: tests and fuzzers read it. */
export interface MasterStats {
  framesByState: Record<SessionState, number>;
  /** Byte streams that could never be a frame (bad length, garbage, a message that does not decode). */
  undecodable: number;
}

/** Keep each list frame well under MAX_FRAME_BYTES and small enough to build in well under a millisecond. */
const LIST_CHUNK_BYTES = 64 * 1024;
/** One connection's turn of listing work lasts about this long; turns go round the connections. */
const LIST_TURN_MS = 1;
/** The event loop runs listing work for at most this long before it takes I/O (heartbeats) again. */
const LIST_SLICE_MS = 4;
/** Matching steps between two looks at the clock (~0.1–0.5 ms of work). */
const LIST_STEPS_PER_CHECK = 20_000;
/**
 * Above this much unsent output a peer's requests are no longer read (the socket is paused) until it
 * has read its answers; past `outputStallMs` there it is dropped, and past DEFAULT_MAX_QUEUED_BYTES
 * (64 MiB) at once.
 */
const OUTPUT_HOLD_BYTES = 1 << 20;
const DEFAULT_OUTPUT_STALL_MS = 10_000;

/**
 * The index over TCP: a thin shell. Each connection's protocol (handshake, token, what each role may
 * send, deadlines) is a PeerSession, a pure state machine over the Registry; this shell feeds it
 * messages, carries out what it returns, streams list answers in bounded chunks, and keeps one timer
 * armed at the earliest deadline of the registry's leases and the sessions.
 */
export class MasterServer {
  private listener!: TCPSocketListener<Conn>;
  private readonly conns = new Map<number, Conn>();
  private readonly registry: Registry;
  private readonly logger: Logger;
  private nextConnId = 1;
  private readonly timer = new DeadlineTimer(() => this.onTimeout(performance.now()));
  private readonly maxConnections: number;
  private readonly sessionConfig: SessionConfig;
  private readonly crypto: HandshakeCrypto;
  private readonly misbehaviour = new LogLimiter();
  /** Connections with LIST work that can run now (not waiting for their peer to read). */
  private readonly listing = new Set<Conn>();
  private listingScheduled = false;
  readonly stats: MasterStats = {
    framesByState: { "awaiting-hello": 0, "awaiting-auth": 0, "file-server": 0, announced: 0, client: 0, closed: 0 },
    undecodable: 0,
  };
  /** Operators' view (ftx status, --http): counters and server presence, fed by the hooks marked "ops". */
  readonly observer = new MasterObserver();

  private constructor(private readonly opts: MasterOptions) {
    this.logger = opts.logger ?? silentLogger;
    this.registry = new Registry(opts.store ?? new MemoryStore(), opts.heartbeatTimeoutMs, opts.limits ?? DEFAULT_REGISTRY_LIMITS);
    this.maxConnections = opts.maxConnections ?? 4096;
    this.crypto = { kx: opts.token === undefined ? x25519 : cpace(opts.token, "ftx-index"), aead: aes256gcm };
    this.sessionConfig = {
      heartbeatTimeoutMs: opts.heartbeatTimeoutMs,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 5000,
      clientIdleTimeoutMs: opts.clientIdleTimeoutMs ?? 30_000,
    };
  }

  static start(opts: MasterOptions): MasterServer {
    const server = new MasterServer(opts);
    server.listen();
    return server;
  }

  get port(): number {
    return this.listener.port;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Read-only access to the index for the operators' view (src/ops). */
  get index(): ReadonlyIndex {
    return this.registry;
  }

  private listen(): void {
    const self = this;
    try {
      this.listener = Bun.listen<Conn>({
        hostname: this.opts.host,
        port: this.opts.port,
        socket: {
          binaryType: "uint8array",
          open(socket) {
            self.onOpen(socket);
          },
          data(socket, chunk) {
            socket.data?.peer.receive(chunk);
          },
          drain(socket) {
            const conn = socket.data;
            if (!conn) return;
            conn.peer.flush();
            self.checkBacklog(conn, performance.now()); // a held peer that read its answers is read again
          },
          close(socket) {
            self.onClose(socket);
          },
          error(socket, err) {
            self.logger.debug(`connection error from ${socket.data?.session.remote ?? "?"}: ${err.message}`);
          },
        },
      });
    } catch (err) {
      const where = formatAddress(this.opts.host, this.opts.port);
      throw new FtxError("E_IO", `cannot listen on ${where}: ${(err as Error).message}`, { cause: err });
    }
  }

  stop(): void {
    this.timer.cancel();
    this.opts.store?.close?.();
    for (const conn of this.conns.values()) conn.peer.destroy();
    this.conns.clear();
    this.listener?.stop(true);
  }

  private onOpen(socket: Socket<Conn>): void {
    const now = performance.now();
    const remote = formatAddress(unmapIPv4(socket.remoteAddress), socket.remotePort);
    const address = unmapIPv4(socket.remoteAddress);
    const verdict = admit(this.connViews(), address, {
      maxConnections: this.maxConnections,
      maxConnectionsPerAddress: this.opts.maxConnectionsPerAddress ?? DEFAULT_ADMISSION_LIMITS.maxConnectionsPerAddress,
    });
    if (verdict.kind === "refuse") {
      this.logMisbehaviour("busy", "warn", `refusing ${remote}: ${verdict.why}`, now);
      socket.write(encodeMessage({ type: MsgType.Error, code: IndexErrorCode.Busy, message: "master busy: too many connections, try again later" }));
      socket.end();
      return;
    }
    if (verdict.kind === "evict-then-admit") {
      const victim = this.conns.get(verdict.id);
      if (victim) {
        this.logMisbehaviour("evict-idle", "warn", `closing idle connection ${victim.session.remote} to make room (${verdict.why})`, now);
        victim.peer.send({ type: MsgType.Error, code: IndexErrorCode.Busy, message: "master busy: idle connection closed to make room" });
        victim.peer.destroy(true);
        this.dropConn(victim);
      }
    }
    const id = this.nextConnId++;
    const handshake = new ServerHandshake(this.crypto, this.opts.allowPlaintext ?? false, newNonce(), randomBytes(SECRET_BYTES));
    const session = new PeerSession(id, remote, address, handshake, this.registry, this.sessionConfig, now);
    const conn: Conn = { socket, peer: undefined as unknown as FramedPeer, session, address, lists: [], heldSince: undefined, frames: 0, listServedMs: 0 };
    conn.peer = new FramedPeer(socket as Socket<unknown>, {
      onMessage: (msg) => this.onMessage(conn, msg),
      onProtocolError: (err) => this.onProtocolError(conn, err),
    });
    conn.peer.maxFrameBytes = MAX_PREAUTH_FRAME_BYTES;
    socket.data = conn;
    this.conns.set(id, conn);
    this.observer.connectionOpened(id, Date.now()); // ops
    this.logger.debug(`connection from ${remote}`);
    this.wakeFor(session);
  }

  private onClose(socket: Socket<Conn>): void {
    const conn = socket.data;
    if (!conn || this.conns.get(conn.session.peerId) !== conn) return;
    conn.peer.closed = true;
    this.dropConn(conn);
  }

  private dropConn(conn: Conn): void {
    if (this.conns.get(conn.session.peerId) !== conn) return;
    this.conns.delete(conn.session.peerId);
    this.listing.delete(conn);
    conn.lists.length = 0;
    this.apply(conn, conn.session.handleClose());
    this.observer.connectionClosed(conn.session.peerId, "closed"); // ops
  }

  private *connViews(): Iterable<ConnView> {
    for (const c of this.conns.values()) {
      const state = c.session.state;
      yield {
        id: c.session.peerId,
        address: c.address,
        unauthenticated: state === "awaiting-hello" || state === "awaiting-auth",
        silent: c.frames === 0,
        idleClient: state === "client" && c.lists.length === 0,
      };
    }
  }

  /** Peer misbehaviour: one line per kind per interval, with a count of the ones held back. */
  private logMisbehaviour(kind: string, level: "debug" | "info" | "warn", text: string, now: number): void {
    const line = this.misbehaviour.admit(kind, escapeControl(text), now);
    if (line !== undefined) this.logger[level](line);
  }

  private onProtocolError(conn: Conn, err: ProtocolError): void {
    this.stats.undecodable++;
    this.apply(conn, conn.session.handleProtocolError(err.message));
  }

  private onMessage(conn: Conn, msg: IndexMessage): void {
    this.stats.framesByState[conn.session.state]++;
    conn.frames++;
    const now = performance.now();
    if (msg.type === MsgType.Status && conn.session.state === "client") {
      this.sendStatus(conn, msg.requestId); // ops
      this.checkBacklog(conn, now);
      return;
    }
    const before = conn.session.state;
    this.apply(conn, conn.session.handle(msg, now));
    this.observe(conn, msg, before);
    const state = conn.session.state;
    if (state === "client" || state === "file-server" || state === "announced") conn.peer.maxFrameBytes = MAX_FRAME_BYTES;
    this.checkBacklog(conn, now);
    this.wakeFor(conn.session);
  }

  /**
   * A peer that does not read what we send: stop reading its requests while its backlog is above
   * OUTPUT_HOLD_BYTES (pause the socket), and have the timer drop it if it stays there.
   */
  private checkBacklog(conn: Conn, now: number): void {
    if (conn.peer.closed) return;
    // Over the mark, or a listing waiting for the peer to take what it was sent: either way the peer is
    // not reading, and its requests wait too (a listing that cannot go on for outputStallMs is dropped).
    const over = conn.peer.pendingBytes > OUTPUT_HOLD_BYTES || (conn.peer.pendingBytes > 0 && conn.lists.length > 0);
    if (over && conn.heldSince === undefined) {
      conn.heldSince = now;
      conn.peer.holdDecoding();
      conn.socket.pause();
      this.timer.wakeBy(now + this.outputStallMs);
    } else if (!over && conn.heldSince !== undefined) {
      conn.heldSince = undefined;
      conn.socket.resume();
      conn.peer.resumeDecoding();
    }
  }

  private get outputStallMs(): number {
    return this.opts.outputStallMs ?? DEFAULT_OUTPUT_STALL_MS;
  }

  // ---- ops: what the operators' view is told (src/ops) -------------------------------------------
  private observe(conn: Conn, msg: IndexMessage, before: SessionState): void {
    const after = conn.session.state;
    const peerId = conn.session.peerId;
    if (after === "announced") {
      if (msg.type === MsgType.Announce) this.observer.joined(peerId, formatAddress(msg.host === "" ? unmapIPv4(conn.socket.remoteAddress) : msg.host, msg.port), Date.now());
      else if (msg.type === MsgType.FilesAdd || msg.type === MsgType.FilesRemove) this.observer.filesChanged(peerId, Date.now());
      else this.observer.heard(peerId, Date.now());
    } else if (before === "announced") this.observer.left(peerId, "refused");
  }

  private sendStatus(conn: Conn, requestId: number): void {
    for (const frame of statusFrames(requestId, buildStatus(this.registry, this.observer, this.conns.size))) conn.peer.send(frame);
    this.observer.statusAnswered();
  }

  /** Carry out what a session decided. */
  private apply(conn: Conn, effects: SessionEffect[]): void {
    for (const effect of effects) {
      switch (effect.kind) {
        case "send":
          conn.peer.send(effect.msg);
          break;
        case "end":
          conn.lists.length = 0;
          conn.peer.end();
          break;
        case "list":
          this.sendList(conn, effect.requestId, effect.pattern);
          break;
        case "seal":
          conn.peer.sealWith(effect.sealer);
          break;
        case "open":
          conn.peer.openWith(effect.opener);
          break;
        case "log":
          if (effect.misbehaviour !== undefined) this.logMisbehaviour(effect.misbehaviour, effect.level, effect.text, performance.now());
          else this.logger[effect.level](escapeControl(effect.text));
          break;
      }
    }
  }

  /** Make sure the timer fires by this session's next deadline (an earlier one already armed is kept). */
  private wakeFor(session: PeerSession): void {
    const at = session.pollTimeout();
    if (at !== undefined) this.timer.wakeBy(at);
  }

  /**
   * The one timer fired: drop the servers whose lease ran out, close sessions past their handshake or
   * idle deadline, and arm again at the earliest deadline left (the registry's own, or a session's).
   */
  private onTimeout(now: number): void {
    for (const peerId of this.registry.expire(now)) {
      this.observer.left(peerId, "evicted"); // ops
      const conn = this.conns.get(peerId);
      if (conn) this.apply(conn, conn.session.evict());
    }
    let next = this.registry.pollTimeout() ?? Infinity;
    for (const conn of this.conns.values()) {
      if (conn.peer.closed) continue;
      if (conn.heldSince !== undefined) {
        if (now - conn.heldSince >= this.outputStallMs) {
          this.logMisbehaviour("not-reading", "warn", `dropping ${conn.session.remote}: it has not read its answers for ${this.outputStallMs / 1000}s`, now);
          conn.peer.destroy();
          this.dropConn(conn);
          continue;
        }
        next = Math.min(next, conn.heldSince + this.outputStallMs);
      }
      this.apply(conn, conn.session.handleTimeout(now));
      const at = conn.session.pollTimeout();
      if (at !== undefined && at < next) next = at;
    }
    if (next !== Infinity) this.timer.wakeBy(next);
  }

  /**
   * Answers a LIST in slices: its names are matched a few milliseconds at a time (ListingJob), then
   * streamed in ~256 KiB frames, the next only when the socket has taken the previous ones. Requests on
   * one connection are answered one after another, in order; only the first holds a job, the others
   * just their pattern. Work for all connections runs in turns from `setImmediate`, so sockets
   * (heartbeats, other clients) are served between slices whatever one pattern or index costs. The next
 * turn goes to the connection whose listings have had the least time so far, so a short LIST is not
 * queued behind floods of long ones.
   */
  private sendList(conn: Conn, requestId: number, pattern: string): void {
    conn.lists.push({ requestId, pattern, total: 0 });
    if (conn.lists.length === 1) this.wantListing(conn);
  }

  private wantListing(conn: Conn): void {
    if (conn.peer.closed || conn.lists.length === 0) return;
    this.listing.add(conn);
    if (!this.listingScheduled) {
      this.listingScheduled = true;
      setImmediate(() => this.runListingSlice());
    }
  }

  private runListingSlice(): void {
    this.listingScheduled = false;
    const started = performance.now();
    let now = started;
    while (this.listing.size > 0 && now - started < LIST_SLICE_MS) {
      // Least attained service first: the connection whose listings have had the least time so far.
      let conn: Conn | undefined;
      for (const c of this.listing) if (conn === undefined || c.listServedMs < conn.listServedMs) conn = c;
      const more = this.listStep(conn!);
      const after = performance.now();
      conn!.listServedMs += after - now;
      now = after;
      if (!more) this.listing.delete(conn!);
    }
    if (this.listing.size > 0 && !this.listingScheduled) {
      this.listingScheduled = true;
      setImmediate(() => this.runListingSlice());
    }
  }

  /** One turn of a connection's listing work; false when it has nothing it can do now. */
  private listStep(conn: Conn): boolean {
    if (conn.peer.closed) return false;
    const req = conn.lists[0];
    if (!req) return false;
    if (!req.job) {
      try {
        req.job = this.registry.listing(req.requestId, req.pattern);
      } catch (err) {
        if (!(err instanceof PatternError)) throw err;
        this.refuseList(conn, err.message);
        return false;
      }
    }
    const job = req.job;
    if (job.state === "matching") {
      const turnEnd = performance.now() + LIST_TURN_MS;
      let state = job.advance(LIST_STEPS_PER_CHECK);
      while (state === "matching" && performance.now() < turnEnd) state = job.advance(LIST_STEPS_PER_CHECK);
      if (state === "too-costly") {
        this.refuseList(conn, `pattern too costly: matching it took more than ${job.steps} steps`);
        return false;
      }
      return true;
    }
    if (conn.peer.pendingBytes > 0) {
      conn.peer.onDrained = () => {
        conn.peer.onDrained = undefined;
        this.checkBacklog(conn, performance.now());
        this.wantListing(conn);
      };
      this.checkBacklog(conn, performance.now());
      return false;
    }
    const chunk: ListEntry[] = [];
    let bytes = 0;
    let name: string | undefined;
    while (bytes < LIST_CHUNK_BYTES && (name = job.next()) !== undefined) {
      for (const e of this.registry.entriesFor(name)) {
        chunk.push(e);
        bytes += 64 + e.name.length * 3 + e.servers.reduce((n, s) => n + 1 + s.length, 0);
      }
    }
    if (chunk.length > 0) conn.peer.send({ type: MsgType.ListEntries, requestId: req.requestId, entries: chunk });
    req.total += chunk.length;
    if (name === undefined) {
      conn.peer.send({ type: MsgType.ListEnd, requestId: req.requestId, total: req.total, stale: this.registry.stale });
      conn.lists.shift();
      this.observer.listAnswered(); // ops
      conn.session.listAnswered(performance.now());
      this.wakeFor(conn.session);
    }
    this.checkBacklog(conn, performance.now());
    return conn.lists.length > 0;
  }

  private refuseList(conn: Conn, why: string): void {
    this.logMisbehaviour("costly-pattern", "warn", `refused a LIST from ${conn.session.remote}: ${why}`, performance.now());
    conn.lists.length = 0;
    conn.peer.send({ type: MsgType.Error, code: IndexErrorCode.Limit, message: why });
    conn.peer.end();
  }
}
