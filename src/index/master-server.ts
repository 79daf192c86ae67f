import type { Socket, TCPSocketListener } from "bun";
import { FtxError, type ProtocolError } from "../errors.ts";
import { silentLogger, type Logger } from "../log.ts";
import { formatAddress, unmapIPv4 } from "../net/address.ts";
import { DeadlineTimer } from "../util/deadline-timer.ts";
import { newNonce } from "./nonce.ts";
import { FramedPeer } from "./framed-peer.ts";
import { encodeMessage } from "./core/codec.ts";
import { MemoryStore } from "./memory-store.ts";
import { IndexErrorCode, MsgType, type IndexMessage, type ListEntry } from "./core/messages.ts";
import { PeerSession, type SessionConfig, type SessionEffect, type SessionState } from "./core/peer-session.ts";
import { DEFAULT_REGISTRY_LIMITS, Registry, type RegistryLimits } from "./core/registry.ts";
import type { RegistryStore } from "./core/store.ts";
import { MasterObserver } from "../ops/master-observer.ts";
import { buildStatus, statusFrames, type ReadonlyIndex } from "../ops/status-report.ts";

export interface MasterOptions {
  host: string;
  port: number;
  token?: string;
  heartbeatTimeoutMs: number;
  logger?: Logger;
  store?: RegistryStore;
  limits?: RegistryLimits;
  maxConnections?: number;
  /** From TCP accept to WELCOME; a peer dribbling its handshake is cut off after this. */
  handshakeTimeoutMs?: number;
  /** A client connection that completes no frame for this long is closed. */
  clientIdleTimeoutMs?: number;
}

interface Conn {
  socket: Socket<Conn>;
  peer: FramedPeer;
  session: PeerSession;
  lists: ListJob[];
}

interface ListJob {
  requestId: number;
  names: string[];
  cursor: number;
  total: number;
}

/** What the master has parsed, by the state each message arrived in: tests and fuzzers read it. */
export interface MasterStats {
  framesByState: Record<SessionState, number>;
  /** Byte streams that could never be a frame (bad length, garbage, a message that does not decode). */
  undecodable: number;
}

/** Keep each list frame well under MAX_FRAME_BYTES and give the writer pieces it can interleave. */
const LIST_CHUNK_BYTES = 256 * 1024;

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
    this.sessionConfig = {
      token: opts.token,
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
            socket.data?.peer.flush();
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
    if (this.conns.size >= this.maxConnections) {
      this.logger.warn(`refusing ${remote}: ${this.maxConnections} connections already open`);
      socket.write(encodeMessage({ type: MsgType.Error, code: IndexErrorCode.Busy, message: "master busy: too many connections, try again later" }));
      socket.end();
      return;
    }
    const id = this.nextConnId++;
    const session = new PeerSession(id, remote, unmapIPv4(socket.remoteAddress), newNonce(), this.registry, this.sessionConfig, now);
    const conn: Conn = { socket, peer: undefined as unknown as FramedPeer, session, lists: [] };
    conn.peer = new FramedPeer(socket as Socket<unknown>, {
      onMessage: (msg) => this.onMessage(conn, msg),
      onProtocolError: (err) => this.onProtocolError(conn, err),
    });
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
    this.conns.delete(conn.session.peerId);
    this.apply(conn, conn.session.handleClose());
    this.observer.connectionClosed(conn.session.peerId, "closed"); // ops
  }

  private onProtocolError(conn: Conn, err: ProtocolError): void {
    this.stats.undecodable++;
    this.apply(conn, conn.session.handleProtocolError(err.message));
  }

  private onMessage(conn: Conn, msg: IndexMessage): void {
    this.stats.framesByState[conn.session.state]++;
    if (msg.type === MsgType.Status && conn.session.state === "client") return this.sendStatus(conn, msg.requestId); // ops
    const before = conn.session.state;
    this.apply(conn, conn.session.handle(msg, performance.now()));
    this.observe(conn, msg, before);
    this.wakeFor(conn.session);
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
        case "log":
          this.logger[effect.level](effect.text);
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
      this.apply(conn, conn.session.handleTimeout(now));
      const at = conn.session.pollTimeout();
      if (at !== undefined && at < next) next = at;
    }
    if (next !== Infinity) this.timer.wakeBy(next);
  }

  /**
   * Streams a LIST answer in ~256 KiB frames, producing the next frame only when the socket has taken
   * the previous ones: memory per request stays bounded whatever the size of the index. Requests on one
   * connection are answered one after another, in order.
   */
  private sendList(conn: Conn, requestId: number, pattern: string): void {
    conn.lists.push({ requestId, names: this.registry.matchingNames(pattern), cursor: 0, total: 0 });
    if (conn.lists.length === 1) this.pumpLists(conn);
  }

  private pumpLists(conn: Conn): void {
    conn.peer.onDrained = undefined;
    while (conn.lists.length > 0 && !conn.peer.closed) {
      const job = conn.lists[0]!;
      while (job.cursor < job.names.length) {
        if (conn.peer.pendingBytes > 0) {
          conn.peer.onDrained = () => this.pumpLists(conn);
          return;
        }
        const chunk: ListEntry[] = [];
        let bytes = 0;
        while (job.cursor < job.names.length && bytes < LIST_CHUNK_BYTES) {
          for (const e of this.registry.entriesFor(job.names[job.cursor]!)) {
            chunk.push(e);
            bytes += 64 + e.name.length * 3 + e.servers.reduce((n, s) => n + 1 + s.length, 0);
          }
          job.cursor++;
        }
        if (chunk.length > 0) conn.peer.send({ type: MsgType.ListEntries, requestId: job.requestId, entries: chunk });
        job.total += chunk.length;
      }
      conn.peer.send({ type: MsgType.ListEnd, requestId: job.requestId, total: job.total, stale: this.registry.stale });
      conn.lists.shift();
      this.observer.listAnswered(); // ops
      conn.session.listAnswered(performance.now());
      this.wakeFor(conn.session);
    }
  }
}
