import { RedisClient } from "bun";
import { randomBytes } from "../util/random.ts";
import { FtxError, errorMessage } from "../errors.ts";
import { silentLogger, type Logger } from "../log.ts";
import { MemoryStore } from "./memory-store.ts";
import type { FileRecord, ListEntry } from "./core/messages.ts";
import type { RegistryStore, ServerSummary } from "./core/store.ts";

/**
 * A registry store shared by several masters through Redis (docs/PROTOCOL.md, "Shared index").
 *
 * Writes go through: this master's own file servers live in `own` (so the Registry's checks stay
 * synchronous and exact) and are published to Redis in MULTI/EXEC transactions, one per server per
 * tick, each carrying a lease (PEXPIRE) renewed by heartbeats. Reads come from `view`: everyone's
 * servers as last read from Redis (refreshed every REFRESH_MS, fetching only servers whose version
 * changed), with this master's own servers mirrored in at once. A server whose master dies simply
 * expires from Redis; no master needs to notice.
 */
const KEY_PREFIX = "ftx:";
const LIVE_KEY = `${KEY_PREFIX}live`; // zset: server id → lease expiry (epoch ms)
const serverKey = (id: string) => `${KEY_PREFIX}srv:${id}`; // hash: addr, v (version)
const filesKey = (id: string) => `${KEY_PREFIX}files:${id}`; // hash: name → "size:sha256[:piecesRoot]"

const REFRESH_MS = 500;
/** With Redis unreachable this long, what others registered is dropped from our answers. */
const STALE_LIMIT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 3000;

interface Pending {
  full: boolean;
  adds: Map<string, FileRecord>;
  removes: Set<string>;
  renew: boolean;
  remove: boolean;
}

export class RedisStore implements RegistryStore {
  private readonly own = new MemoryStore();
  private readonly view = new MemoryStore();
  readonly masterId = Buffer.from(randomBytes(6)).toString("hex");
  private readonly pending = new Map<number, Pending>();
  private readonly lastRenew = new Map<number, number>();
  /** Remote server id → [local id in `view`, version last loaded]. */
  private readonly remote = new Map<string, { localId: number; version: string }>();
  private nextLocalId = 1 << 30; // remote servers' ids in `view`, far from our own peer ids
  private flushScheduled = false;
  private writing: Promise<void> = Promise.resolve();
  private refreshTimer: Timer | undefined;
  private healthy = true;
  private lastGoodRefresh = Date.now();
  private republish = false;
  private closed = false;

  private constructor(
    private readonly writer: RedisClient,
    private readonly reader: RedisClient,
    private readonly url: string,
    private readonly leaseMs: number,
    private readonly logger: Logger,
  ) {}

  /** Connects (two connections: transactions on one, snapshot reads on the other) or fails clearly. */
  static async connect(url: string, leaseMs: number, logger: Logger = silentLogger): Promise<RedisStore> {
    await probe(url);
    const options = { connectionTimeout: CONNECT_TIMEOUT_MS, autoReconnect: false, enableOfflineQueue: false, maxRetries: 0 };
    const writer = new RedisClient(url, options);
    const reader = new RedisClient(url, options);
    try {
      await Promise.race([
        Promise.all([writer.connect(), reader.connect()]).then(() => reader.send("PING", [])),
        Bun.sleep(CONNECT_TIMEOUT_MS).then(() => Promise.reject(new Error("timed out"))),
      ]);
    } catch (err) {
      writer.close();
      reader.close();
      throw new FtxError("E_UNREACHABLE", `cannot reach the shared store ${redactUrl(url)}: ${errorMessage(err)} (is redis-server running there?)`);
    }
    const store = new RedisStore(writer, reader, url, leaseMs, logger);
    await store.refresh();
    store.refreshTimer = setInterval(() => void store.refresh(), REFRESH_MS);
    return store;
  }

  private globalId(peerId: number): string {
    return `${this.masterId}-${peerId}`;
  }

  // ---- writes: local at once, Redis in the background -------------------------------------------

  private pendingFor(peerId: number): Pending {
    let p = this.pending.get(peerId);
    if (!p) {
      p = { full: false, adds: new Map(), removes: new Set(), renew: false, remove: false };
      this.pending.set(peerId, p);
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return p;
  }

  addServer(peerId: number, address: string): void {
    this.own.addServer(peerId, address);
    this.view.addServer(peerId, address);
    this.pendingFor(peerId).full = true;
  }

  removeServer(peerId: number): void {
    this.own.removeServer(peerId);
    this.view.removeServer(peerId);
    this.lastRenew.delete(peerId);
    const p = this.pendingFor(peerId);
    p.remove = true;
  }

  putFile(peerId: number, file: FileRecord): void {
    this.own.putFile(peerId, file);
    this.view.putFile(peerId, file);
    const p = this.pendingFor(peerId);
    p.removes.delete(file.name);
    p.adds.set(file.name, file);
  }

  deleteFile(peerId: number, name: string): boolean {
    const had = this.own.deleteFile(peerId, name);
    this.view.deleteFile(peerId, name);
    if (had) {
      const p = this.pendingFor(peerId);
      p.adds.delete(name);
      p.removes.add(name);
    }
    return had;
  }

  renew(peerId: number, now: number): void {
    // Refresh the lease a few times per lease, not on every frame.
    if (now - (this.lastRenew.get(peerId) ?? -Infinity) < this.leaseMs / 4) return;
    this.lastRenew.set(peerId, now);
    this.pendingFor(peerId).renew = true;
  }

  /** One MULTI/EXEC per server with changes: readers never see half a list. */
  private flush(): void {
    this.flushScheduled = false;
    const batch = [...this.pending];
    this.pending.clear();
    const expiresAt = String(Date.now() + this.leaseMs);
    const lease = String(this.leaseMs);
    const work = async () => {
      for (const [peerId, p] of batch) {
        const id = this.globalId(peerId);
        const commands: Array<[string, string[]]> = [];
        if (p.remove || !this.own.hasServer(peerId)) {
          commands.push(["DEL", [serverKey(id), filesKey(id)]], ["ZREM", [LIVE_KEY, id]]);
        } else {
          if (p.full) {
            commands.push(["DEL", [filesKey(id)]]);
            const fields = this.own.filesOf(peerId).flatMap((f) => [f.name, encodeFileValue(f)]);
            for (let i = 0; i < fields.length; i += 2000) commands.push(["HSET", [filesKey(id), ...fields.slice(i, i + 2000)]]);
            commands.push(["HSET", [serverKey(id), "addr", this.own.addressOf(peerId) ?? ""]]);
          } else {
            const fields = [...p.adds.values()].flatMap((f) => [f.name, encodeFileValue(f)]);
            for (let i = 0; i < fields.length; i += 2000) commands.push(["HSET", [filesKey(id), ...fields.slice(i, i + 2000)]]);
            if (p.removes.size > 0) commands.push(["HDEL", [filesKey(id), ...p.removes]]);
          }
          if (p.full || p.adds.size > 0 || p.removes.size > 0) commands.push(["HINCRBY", [serverKey(id), "v", "1"]]);
          commands.push(["PEXPIRE", [serverKey(id), lease]], ["PEXPIRE", [filesKey(id), lease]], ["ZADD", [LIVE_KEY, expiresAt, id]]);
        }
        await this.transaction(commands);
      }
    };
    this.writing = this.writing.then(work).catch((err) => this.onRedisError(err));
  }

  private async transaction(commands: Array<[string, string[]]>): Promise<void> {
    // Issued back to back on the writer connection, which carries nothing else: nothing can slip
    // between MULTI and EXEC.
    const replies = [this.writer.send("MULTI", []), ...commands.map(([c, a]) => this.writer.send(c, a)), this.writer.send("EXEC", [])];
    await Promise.all(replies);
  }

  // ---- reads: the view ----------------------------------------------------------------------------

  hasServer(peerId: number): boolean {
    return this.own.hasServer(peerId);
  }
  serverCount(): number {
    return this.own.serverCount();
  }
  fileCount(peerId: number): number {
    return this.own.fileCount(peerId);
  }
  getFile(peerId: number, name: string): FileRecord | undefined {
    return this.own.getFile(peerId, name);
  }
  allNames(): Iterator<string> {
    return this.view.allNames();
  }

  names(match: (name: string) => boolean): string[] {
    return this.view.names(match);
  }
  entriesFor(name: string): ListEntry[] {
    return this.view.entriesFor(name);
  }
  isStale(): boolean {
    return !this.healthy;
  }

  // ---- operators' view (ftx status) ---------------------------------------------------------------
  serverSummary(peerId: number): ServerSummary | undefined {
    return this.own.serverSummary(peerId);
  }
  remoteServers(): Array<ServerSummary & { master: string }> {
    const out: Array<ServerSummary & { master: string }> = [];
    for (const [id, r] of this.remote) {
      const summary = this.view.serverSummary(r.localId);
      if (summary) out.push({ ...summary, master: id.slice(0, id.lastIndexOf("-")) });
    }
    return out;
  }

  /** Bring the view up to date with everyone else's servers, loading only those that changed. */
  private async refresh(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.reader.connected) await this.reader.connect();
      if (!this.writer.connected) await this.writer.connect();
      const now = Date.now();
      const ids = ((await this.reader.send("ZRANGEBYSCORE", [LIVE_KEY, String(now), "+inf"])) as string[]).filter((id) => !id.startsWith(`${this.masterId}-`));
      const heads = (await Promise.all(ids.map((id) => this.reader.send("HMGET", [serverKey(id), "addr", "v"])))) as Array<[string | null, string | null]>;
      const changed: Array<{ id: string; addr: string; version: string }> = [];
      const alive = new Set<string>();
      ids.forEach((id, i) => {
        const [addr, version] = heads[i]!;
        if (addr === null || version === null) return; // expired between the two reads
        alive.add(id);
        if (this.remote.get(id)?.version !== version) changed.push({ id, addr, version });
      });
      const files = (await Promise.all(changed.map((c) => this.reader.send("HGETALL", [filesKey(c.id)])))) as Array<Record<string, string>>;
      changed.forEach((c, i) => this.loadRemote(c.id, c.addr, c.version, files[i] ?? {}));
      for (const [id, r] of this.remote) {
        if (!alive.has(id)) {
          this.view.removeServer(r.localId);
          this.remote.delete(id);
        }
      }
      if (Math.random() < 0.05) await this.reader.send("ZREMRANGEBYSCORE", [LIVE_KEY, "-inf", String(now)]);
      this.lastGoodRefresh = Date.now();
      if (!this.healthy) {
        this.healthy = true;
        this.logger.info(`shared store ${redactUrl(this.url)} is back`);
      }
      if (this.republish) {
        // Redis may have lost everything (restart): publish our servers again in full.
        this.republish = false;
        for (const peerId of this.own.serverIds()) this.pendingFor(peerId).full = true;
      }
    } catch (err) {
      this.onRedisError(err);
    }
  }

  private loadRemote(id: string, addr: string, version: string, files: Record<string, string>): void {
    let entry = this.remote.get(id);
    if (entry) this.view.removeServer(entry.localId);
    else entry = { localId: this.nextLocalId++, version };
    entry.version = version;
    this.remote.set(id, entry);
    this.view.addServer(entry.localId, addr);
    for (const [name, value] of Object.entries(files)) {
      const file = decodeFileValue(name, value);
      if (file) this.view.putFile(entry.localId, file);
    }
  }

  private onRedisError(err: unknown): void {
    if (this.closed) return;
    this.republish = true;
    if (this.healthy) {
      this.healthy = false;
      this.logger.warn(`lost the shared store ${redactUrl(this.url)} (${errorMessage(err)}); answering from what this master last knew, marked stale`);
    }
    if (Date.now() - this.lastGoodRefresh > STALE_LIMIT_MS && this.remote.size > 0) {
      this.logger.warn(`shared store unreachable for ${STALE_LIMIT_MS / 1000}s: listing only this master's own file servers`);
      for (const r of this.remote.values()) this.view.removeServer(r.localId);
      this.remote.clear();
    }
  }

  close(): void {
    if (this.closed) return;
    clearInterval(this.refreshTimer);
    // Best effort: take our servers out now rather than at lease expiry.
    const ids = this.own.serverIds().map((p) => this.globalId(p));
    this.closed = true;
    if (ids.length > 0 && this.writer.connected) {
      void this.writer.send("DEL", ids.flatMap((id) => [serverKey(id), filesKey(id)])).catch(() => {});
      void this.writer.send("ZREM", [LIVE_KEY, ...ids]).catch(() => {});
    }
    setTimeout(() => {
      this.writer.close();
      this.reader.close();
    }, 100);
  }
}

/** A refused connection is reported at once (the Redis client would wait out its whole timeout). */
async function probe(url: string): Promise<void> {
  let host: string;
  let port: number;
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[|\]$/g, "");
    port = Number(u.port || 6379);
  } catch {
    throw new FtxError("E_USAGE", `--store: '${url}' is not a valid URL`);
  }
  try {
    const socket = await Bun.connect({ hostname: host, port, socket: { data() {} } });
    socket.end();
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new FtxError("E_UNREACHABLE", `cannot reach the shared store ${redactUrl(url)}: ${code === "ECONNREFUSED" ? "connection refused" : errorMessage(err)} (is redis-server running there?)`);
  }
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//***@");
}

function encodeFileValue(f: FileRecord): string {
  return f.piecesRoot === undefined ? `${f.size}:${f.sha256}` : `${f.size}:${f.sha256}:${f.piecesRoot}`;
}

/** Another master wrote it, perhaps another version of ftx: anything malformed is skipped, not trusted. */
function decodeFileValue(name: string, value: string): FileRecord | undefined {
  const [sizeText, sha256, piecesRoot] = value.split(":");
  const size = Number(sizeText);
  const hex = /^[0-9a-f]{64}$/;
  if (!Number.isSafeInteger(size) || size < 0 || !sha256 || !hex.test(sha256)) return undefined;
  if (piecesRoot !== undefined && !hex.test(piecesRoot)) return undefined;
  return piecesRoot === undefined ? { name, size, sha256 } : { name, size, sha256, piecesRoot };
}
