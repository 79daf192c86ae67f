import { MAX_STATUS_SERVERS_PER_FRAME, MsgType, STATUS_FORMAT_VERSION, type IndexMessage, type ListEntry, type StatusServer } from "../index/core/messages.ts";
import type { Registry } from "../index/core/registry.ts";
import type { MasterObserver } from "./master-observer.ts";

/** What the operators' view reads of the index: nothing that writes. */
export type ReadonlyIndex = Pick<Registry, "serverSummary" | "remoteServers" | "masterId" | "matchingNames" | "firstNames" | "entriesFor" | "stale">;

/**
 * `ftx status --json` and `GET /api/servers`: one shape. Times are ISO 8601 (null when this master
 * cannot know them: a server registered through another master sharing the index).
 */
export interface StatusReport {
  master: {
    id: string;
    startedAt: string;
    /** Named counters; `connections` is the number open now, `*_total` count since start. */
    counters: Record<string, number>;
  };
  servers: Array<{
    address: string;
    files: number;
    bytes: number;
    connectedSince: string | null;
    lastHeartbeat: string | null;
    master: string;
  }>;
}

/** The status as it goes on the wire: servers (this master's first, then the others', by address) and counters. */
export interface StatusSnapshot {
  masterId: string;
  startedAtMs: number;
  servers: StatusServer[];
  counters: Array<{ name: string; value: number }>;
}

export function buildStatus(index: ReadonlyIndex, observer: MasterObserver, connections: number): StatusSnapshot {
  const masterId = index.masterId ?? observer.localId;
  const servers: StatusServer[] = [];
  for (const p of observer.servers()) {
    const summary = index.serverSummary(p.peerId);
    if (!summary) continue;
    servers.push({ address: summary.address, files: summary.files, bytes: summary.bytes, connectedSinceMs: p.connectedSinceMs, lastHeartbeatMs: p.lastHeartbeatMs, master: masterId });
  }
  servers.sort(byAddress);
  const remote = index.remoteServers().map((r) => ({ address: r.address, files: r.files, bytes: r.bytes, connectedSinceMs: 0, lastHeartbeatMs: 0, master: r.master }));
  remote.sort(byAddress);
  servers.push(...remote);
  const c = observer.counters;
  const counters = [
    { name: "connections", value: connections },
    { name: "servers", value: servers.length },
    { name: "files", value: servers.reduce((n, s) => n + s.files, 0) },
    { name: "bytes", value: servers.reduce((n, s) => n + s.bytes, 0) },
    { name: "connections_total", value: c.connectionsTotal },
    { name: "lists_total", value: c.listsTotal },
    { name: "status_total", value: c.statusTotal },
    { name: "registrations_total", value: c.registrationsTotal },
    { name: "evictions_total", value: c.evictionsTotal },
    { name: "departures_total", value: c.departuresTotal },
    { name: "stale", value: index.stale ? 1 : 0 },
  ];
  return { masterId, startedAtMs: observer.startedAtMs, servers, counters };
}

function byAddress(a: StatusServer, b: StatusServer): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : 0;
}

/** STATUS_SERVERS frames of at most MAX_STATUS_SERVERS_PER_FRAME each, then STATUS_END. */
export function statusFrames(requestId: number, snap: StatusSnapshot): IndexMessage[] {
  const frames: IndexMessage[] = [];
  for (let i = 0; i < snap.servers.length; i += MAX_STATUS_SERVERS_PER_FRAME)
    frames.push({ type: MsgType.StatusServers, requestId, servers: snap.servers.slice(i, i + MAX_STATUS_SERVERS_PER_FRAME) });
  frames.push({ type: MsgType.StatusEnd, requestId, format: STATUS_FORMAT_VERSION, masterId: snap.masterId, startedAtMs: snap.startedAtMs, counters: snap.counters });
  return frames;
}

const iso = (ms: number): string | null => (ms > 0 ? new Date(ms).toISOString() : null);

export function toReport(snap: StatusSnapshot): StatusReport {
  return {
    master: { id: snap.masterId, startedAt: new Date(snap.startedAtMs).toISOString(), counters: Object.fromEntries(snap.counters.map((c) => [c.name, c.value])) },
    servers: snap.servers.map((s) => ({
      address: s.address,
      files: s.files,
      bytes: s.bytes,
      connectedSince: iso(s.connectedSinceMs),
      lastHeartbeat: iso(s.lastHeartbeatMs),
      master: s.master,
    })),
  };
}

/** `ls --json`'s shape, for `GET /api/files`. */
export function toLsJson(entries: ListEntry[]): Array<{ name: string; size: number; sha256: string; servers: string[] }> {
  return entries.map((e) => ({ name: e.name, size: e.size, sha256: e.sha256, servers: e.servers }));
}
