import { randomBytes } from "../util/random.ts";

/**
 * What an operator sees of a master: counters, the file servers connected to it (since when, last
 * heard), and a stream of changes (a server joins or leaves, a counter moved). The master's TCP shell
 * feeds it through a handful of calls (master-server.ts, "operators' view" hooks); it never touches a
 * socket and is cheap enough to feed on every frame: a counter increment or a map write.
 *
 * Times are epoch ms (what operators read), passed in.
 */
export interface MasterCounters {
  /** Connections accepted since start (file servers and clients). */
  connectionsTotal: number;
  /** LIST requests answered. */
  listsTotal: number;
  /** STATUS requests answered. */
  statusTotal: number;
  /** File servers that announced themselves (a re-announce with a new address counts once more). */
  registrationsTotal: number;
  /** File servers dropped for silence (heartbeat timeout). */
  evictionsTotal: number;
  /** File servers that left: connection closed or refused after registering. */
  departuresTotal: number;
}

export interface ServerPresence {
  peerId: number;
  address: string;
  connectedSinceMs: number;
  lastHeartbeatMs: number;
}

export type ObserverEvent =
  | { type: "join"; server: ServerPresence }
  | { type: "leave"; peerId: number; address: string; reason: "closed" | "evicted" | "refused" }
  /** A registered server's file list changed (FILES_ADD / FILES_REMOVE). */
  | { type: "files"; peerId: number }
  /** A counter moved; listeners that show counts coalesce these. */
  | { type: "counts" };

export type ObserverListener = (ev: ObserverEvent) => void;

export class MasterObserver {
  readonly counters: MasterCounters = { connectionsTotal: 0, listsTotal: 0, statusTotal: 0, registrationsTotal: 0, evictionsTotal: 0, departuresTotal: 0 };
  /** Used when the store gives no id of its own (no shared index). */
  readonly localId = Buffer.from(randomBytes(6)).toString("hex");
  readonly startedAtMs: number;
  private readonly openedAt = new Map<number, number>();
  private readonly present = new Map<number, ServerPresence>();
  private readonly listeners = new Set<ObserverListener>();

  constructor(nowMs: number = Date.now()) {
    this.startedAtMs = nowMs;
  }

  /** Call `listener` on every change; returns the function that stops it. */
  subscribe(listener: ObserverListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  servers(): IterableIterator<ServerPresence> {
    return this.present.values();
  }

  server(peerId: number): ServerPresence | undefined {
    return this.present.get(peerId);
  }

  get serverCount(): number {
    return this.present.size;
  }

  // ---- fed by the master's shell ----------------------------------------------------------------

  connectionOpened(peerId: number, nowMs: number): void {
    this.openedAt.set(peerId, nowMs);
    this.counters.connectionsTotal++;
    this.emit({ type: "counts" });
  }

  /** The connection is gone; a registered server leaves with `reason`. */
  connectionClosed(peerId: number, reason: "closed" | "evicted" | "refused"): void {
    this.openedAt.delete(peerId);
    this.left(peerId, reason);
    this.emit({ type: "counts" });
  }

  /** A file server announced itself (or a new address). */
  joined(peerId: number, address: string, nowMs: number): void {
    const known = this.present.get(peerId);
    if (known?.address === address) return;
    const server = { peerId, address, connectedSinceMs: this.openedAt.get(peerId) ?? nowMs, lastHeartbeatMs: nowMs };
    if (known) this.emit({ type: "leave", peerId, address: known.address, reason: "closed" });
    this.present.set(peerId, server);
    this.counters.registrationsTotal++;
    this.emit({ type: "join", server: { ...server } }); // a copy: the presence itself changes with every heartbeat
    this.emit({ type: "counts" });
  }

  filesChanged(peerId: number, nowMs: number): void {
    this.heard(peerId, nowMs);
    this.emit({ type: "files", peerId });
  }

  /** A frame from a registered server: no event, only its last-heard time. */
  heard(peerId: number, nowMs: number): void {
    const server = this.present.get(peerId);
    if (server) server.lastHeartbeatMs = nowMs;
  }

  /** A registered server stopped being one without closing (refused after a protocol error). */
  left(peerId: number, reason: "closed" | "evicted" | "refused"): void {
    const server = this.present.get(peerId);
    if (!server) return;
    this.present.delete(peerId);
    if (reason === "evicted") this.counters.evictionsTotal++;
    else this.counters.departuresTotal++;
    this.emit({ type: "leave", peerId, address: server.address, reason });
    this.emit({ type: "counts" });
  }

  listAnswered(): void {
    this.counters.listsTotal++;
    this.emit({ type: "counts" });
  }

  statusAnswered(): void {
    this.counters.statusTotal++;
    this.emit({ type: "counts" });
  }

  private emit(ev: ObserverEvent): void {
    if (this.listeners.size === 0) return;
    for (const listener of this.listeners) listener(ev);
  }
}
