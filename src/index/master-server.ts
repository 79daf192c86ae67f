import type { Socket, TCPSocketListener } from "bun";
import { FtxError, type ProtocolError } from "../errors.ts";
import { silentLogger, type Logger } from "../log.ts";
import { formatAddress, unmapIPv4 } from "../net/address.ts";
import { FramedPeer } from "./framed-peer.ts";
import { newNonce, verifyMac } from "./auth.ts";
import { encodeMessage } from "./codec.ts";
import { MemoryStore } from "./memory-store.ts";
import { INDEX_VERSION, IndexErrorCode, MsgType, Role, type IndexMessage, type ListEntry } from "./messages.ts";
import { DEFAULT_REGISTRY_LIMITS, Registry, type RegistryLimits } from "./registry.ts";
import type { RegistryStore } from "./store.ts";

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

type Phase = "hello" | "auth" | "ready";

interface Conn {
  socket: Socket<Conn>;
  peer: FramedPeer;
  id: number;
  remote: string;
  phase: Phase;
  role: Role;
  clientNonce: Uint8Array;
  serverNonce: Uint8Array;
  openedAt: number;
  lastFrameAt: number;
  announced: boolean;
  lists: ListJob[];
}

interface ListJob {
  requestId: number;
  names: string[];
  cursor: number;
  total: number;
}

/** Heartbeats go out three times per timeout, so two lost beats never evict a live server. */
const BEATS_PER_TIMEOUT = 3;
const TICK_MS = 200;
/** Keep each list frame well under MAX_FRAME_BYTES and give the writer pieces it can interleave. */
const LIST_CHUNK_BYTES = 256 * 1024;
/** A client may pipeline this many LIST requests; each holds only its sorted name list while queued. */
const MAX_QUEUED_LISTS = 64;

/**
 * The index over TCP: a thin shell around Registry. Handles the handshake (version, token
 * challenge–response), feeds registration messages into the registry, answers list requests in
 * bounded chunks, and enforces handshake/idle/heartbeat deadlines on one timer.
 */
export class MasterServer {
  private listener!: TCPSocketListener<Conn>;
  private readonly conns = new Map<number, Conn>();
  private readonly registry: Registry;
  private readonly logger: Logger;
  private nextConnId = 1;
  private tick: Timer | undefined;
  private readonly maxConnections: number;
  private readonly handshakeTimeoutMs: number;
  private readonly clientIdleTimeoutMs: number;

  private constructor(private readonly opts: MasterOptions) {
    this.logger = opts.logger ?? silentLogger;
    this.registry = new Registry(opts.store ?? new MemoryStore(), opts.heartbeatTimeoutMs, opts.limits ?? DEFAULT_REGISTRY_LIMITS);
    this.maxConnections = opts.maxConnections ?? 4096;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 5000;
    this.clientIdleTimeoutMs = opts.clientIdleTimeoutMs ?? 30_000;
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
            self.logger.debug(`connection error from ${socket.data?.remote ?? "?"}: ${err.message}`);
          },
        },
      });
    } catch (err) {
      const where = formatAddress(this.opts.host, this.opts.port);
      throw new FtxError("E_IO", `cannot listen on ${where}: ${(err as Error).message}`, { cause: err });
    }
    this.tick = setInterval(() => this.onTick(performance.now()), TICK_MS);
  }

  stop(): void {
    if (this.tick) clearInterval(this.tick);
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
    const conn: Conn = {
      socket,
      peer: undefined as unknown as FramedPeer,
      id: this.nextConnId++,
      remote,
      phase: "hello",
      role: Role.Client,
      clientNonce: new Uint8Array(),
      serverNonce: newNonce(),
      openedAt: now,
      lastFrameAt: now,
      announced: false,
      lists: [],
    };
    conn.peer = new FramedPeer(socket as Socket<unknown>, {
      onMessage: (msg) => this.onMessage(conn, msg),
      onProtocolError: (err) => this.onProtocolError(conn, err),
    });
    socket.data = conn;
    this.conns.set(conn.id, conn);
    this.logger.debug(`connection from ${remote}`);
  }

  private onClose(socket: Socket<Conn>): void {
    const conn = socket.data;
    if (!conn || !this.conns.has(conn.id)) return;
    conn.peer.closed = true;
    this.conns.delete(conn.id);
    if (conn.announced) {
      this.registry.removeServer(conn.id);
      this.logger.info(`file server ${conn.remote} disconnected; its files left the index`);
    }
  }

  private refuse(conn: Conn, code: IndexErrorCode, message: string): void {
    conn.peer.send({ type: MsgType.Error, code, message });
    conn.peer.end();
    if (conn.announced) {
      this.registry.removeServer(conn.id);
      conn.announced = false;
    }
  }

  private onProtocolError(conn: Conn, err: ProtocolError): void {
    this.logger.warn(`protocol error from ${conn.remote}: ${err.message}; closing`);
    this.refuse(conn, IndexErrorCode.Protocol, `protocol error: ${err.message}`);
  }

  private onMessage(conn: Conn, msg: IndexMessage): void {
    const now = performance.now();
    conn.lastFrameAt = now;
    if (conn.announced) this.registry.touch(conn.id, now);
    switch (conn.phase) {
      case "hello":
        return this.onHello(conn, msg);
      case "auth":
        return this.onAuth(conn, msg);
      case "ready":
        return conn.role === Role.FileServer ? this.onFileServerMessage(conn, msg, now) : this.onClientMessage(conn, msg);
    }
  }

  private onHello(conn: Conn, msg: IndexMessage): void {
    if (msg.type !== MsgType.Hello) return this.refuse(conn, IndexErrorCode.Protocol, "protocol error: expected HELLO");
    if (msg.version !== INDEX_VERSION)
      return this.refuse(conn, IndexErrorCode.Version, `unsupported protocol version ${msg.version} (this master speaks ${INDEX_VERSION})`);
    conn.role = msg.role;
    conn.clientNonce = msg.nonce;
    conn.phase = "auth";
    conn.peer.send({ type: MsgType.Challenge, version: INDEX_VERSION, authRequired: this.opts.token !== undefined, nonce: conn.serverNonce });
  }

  private onAuth(conn: Conn, msg: IndexMessage): void {
    if (msg.type !== MsgType.Auth) return this.refuse(conn, IndexErrorCode.Protocol, "protocol error: expected AUTH");
    const token = this.opts.token;
    if (token !== undefined && !verifyMac(token, conn.role, conn.clientNonce, conn.serverNonce, msg.mac)) {
      this.logger.warn(`authentication failed for ${conn.remote} (${conn.role === Role.FileServer ? "file server" : "client"})`);
      return this.refuse(conn, IndexErrorCode.AuthFailed, "authentication failed: wrong or missing token (--token / FTX_TOKEN)");
    }
    conn.phase = "ready";
    const timeout = this.opts.heartbeatTimeoutMs;
    conn.peer.send({
      type: MsgType.Welcome,
      peerId: conn.id,
      heartbeatIntervalMs: Math.max(100, Math.floor(timeout / BEATS_PER_TIMEOUT)),
      heartbeatTimeoutMs: timeout,
    });
  }

  private onFileServerMessage(conn: Conn, msg: IndexMessage, now: number): void {
    switch (msg.type) {
      case MsgType.Ping:
        conn.peer.send({ type: MsgType.Pong, seq: msg.seq });
        return;
      case MsgType.Announce: {
        const host = msg.host === "" ? unmapIPv4(conn.socket.remoteAddress) : msg.host;
        if (msg.port === 0) return this.refuse(conn, IndexErrorCode.Protocol, "protocol error: announced UDP port 0");
        const address = formatAddress(host, msg.port);
        const refusal = this.registry.addServer(conn.id, address, now);
        if (refusal) return this.refuse(conn, IndexErrorCode.Limit, refusal);
        conn.announced = true;
        this.logger.info(`file server ${conn.remote} registered, serving at ${address}`);
        return;
      }
      case MsgType.FilesAdd: {
        if (!conn.announced) return this.refuse(conn, IndexErrorCode.Protocol, "protocol error: FILES_ADD before ANNOUNCE");
        const rejected = this.registry.addFiles(conn.id, msg.files, now);
        for (const r of rejected.slice(0, 100)) conn.peer.send({ type: MsgType.FileRejected, name: r.name, reason: r.reason });
        if (rejected.length > 0) this.logger.warn(`refused ${rejected.length} file(s) from ${conn.remote}: ${rejected[0]!.reason}`);
        return;
      }
      case MsgType.FilesRemove:
        if (!conn.announced) return this.refuse(conn, IndexErrorCode.Protocol, "protocol error: FILES_REMOVE before ANNOUNCE");
        this.registry.removeFiles(conn.id, msg.names, now);
        return;
      default:
        return this.refuse(conn, IndexErrorCode.Protocol, `protocol error: unexpected ${MsgType[msg.type]} from a file server`);
    }
  }

  private onClientMessage(conn: Conn, msg: IndexMessage): void {
    switch (msg.type) {
      case MsgType.Ping:
        conn.peer.send({ type: MsgType.Pong, seq: msg.seq });
        return;
      case MsgType.List:
        if (conn.lists.length >= MAX_QUEUED_LISTS) return this.refuse(conn, IndexErrorCode.Limit, `more than ${MAX_QUEUED_LISTS} list requests in flight`);
        return this.sendList(conn, msg.requestId, msg.pattern);
      default:
        return this.refuse(conn, IndexErrorCode.Protocol, `protocol error: unexpected ${MsgType[msg.type]} from a client`);
    }
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
    }
  }

  private onTick(now: number): void {
    for (const peerId of this.registry.expire(now)) {
      const conn = this.conns.get(peerId);
      if (!conn) continue;
      conn.announced = false;
      this.logger.warn(`file server ${conn.remote} silent for ${this.opts.heartbeatTimeoutMs / 1000}s; its files left the index`);
      this.refuse(conn, IndexErrorCode.Timeout, "heartbeat timeout: evicted from the index, register again");
    }
    for (const conn of this.conns.values()) {
      if (conn.peer.closed) continue;
      if (conn.phase !== "ready" && now - conn.openedAt > this.handshakeTimeoutMs) {
        this.logger.debug(`handshake timeout for ${conn.remote}`);
        this.refuse(conn, IndexErrorCode.Timeout, "handshake timeout");
      } else if (conn.phase === "ready" && !conn.announced) {
        const limit = conn.role === Role.FileServer ? this.opts.heartbeatTimeoutMs : this.clientIdleTimeoutMs;
        if (now - conn.lastFrameAt > limit) this.refuse(conn, IndexErrorCode.Timeout, "idle timeout");
      }
    }
  }
}

