import { describe, expect, test } from "bun:test";
import { decodeBody, encodeMessage } from "../../../src/index/core/codec.ts";
import { MAX_STATUS_SERVERS_PER_FRAME, MsgType, type StatusServer } from "../../../src/index/core/messages.ts";
import { Registry } from "../../../src/index/core/registry.ts";
import { MemoryStore } from "../../../src/index/memory-store.ts";
import { MasterObserver } from "../../../src/ops/master-observer.ts";
import { buildStatus, statusFrames, toReport } from "../../../src/ops/status-report.ts";
import { toText } from "../../../src/commands/status.ts";

const SHA = "f".repeat(64);

describe("status report", () => {
  test("built from the registry and the observer; frames bounded; report and text as ftx status shows them", () => {
    const registry = new Registry(new MemoryStore(), 60_000);
    const observer = new MasterObserver(Date.UTC(2026, 0, 1));
    for (const [peerId, address] of [[2, "127.0.0.1:9002"], [1, "127.0.0.1:9001"]] as const) {
      observer.connectionOpened(peerId, Date.UTC(2026, 0, 1, 0, 0, peerId));
      registry.addServer(peerId, address, 0);
      observer.joined(peerId, address, Date.UTC(2026, 0, 1, 0, 1));
    }
    registry.addFiles(1, [{ name: "a", size: 10, sha256: SHA }, { name: "b", size: 5, sha256: SHA }], 0);
    const snap = buildStatus(registry, observer, 3);
    expect(snap.servers.map((s) => [s.address, s.files, s.bytes])).toEqual([["127.0.0.1:9001", 2, 15], ["127.0.0.1:9002", 0, 0]]);
    const frames = statusFrames(7, snap);
    expect(frames.map((f) => f.type)).toEqual([MsgType.StatusServers, MsgType.StatusEnd]);
    const back = frames.map((f) => decodeBody(encodeMessage(f).subarray(4)));
    expect(back).toEqual(frames);
    const report = toReport(snap);
    expect(report.master.counters).toMatchObject({ connections: 3, servers: 2, files: 2, bytes: 15, registrations_total: 2 });
    expect(report.servers[0]).toEqual({ address: "127.0.0.1:9001", files: 2, bytes: 15, connectedSince: "2026-01-01T00:00:01.000Z", lastHeartbeat: "2026-01-01T00:01:00.000Z", master: observer.localId });
    const text = toText(report, Date.UTC(2026, 0, 1, 0, 1, 30));
    expect(text).toContain("2 file server(s), 2 file(s), 15 B");
    expect(text).toMatch(/127\.0\.0\.1:9001\s+2\s+15 B\s+2026-01-01T00:00:01\.000Z\s+30\.0s ago/);
    expect(text).not.toContain("MASTER"); // one master: no column for it
  });

  test("5,000 servers go out in frames of at most 2,000, each under the frame limit; a frame claiming more is refused", () => {
    const servers: StatusServer[] = Array.from({ length: 5000 }, (_, i) => ({ address: `[2001:db8::${i.toString(16)}]:65535`, files: 200_000, bytes: 2 ** 50, connectedSinceMs: 1, lastHeartbeatMs: 2, master: "m".repeat(64) }));
    const frames = statusFrames(1, { masterId: "x", startedAtMs: 0, servers, counters: [] });
    expect(frames.map((f) => (f.type === MsgType.StatusServers ? f.servers.length : -1))).toEqual([2000, 2000, 1000, -1]);
    for (const f of frames) encodeMessage(f); // throws past MAX_FRAME_BYTES
    const tooMany = encodeMessage({ type: MsgType.StatusServers, requestId: 1, servers: [] });
    tooMany[9] = 0x07; // count: 0x07d1 = 2001
    tooMany[10] = 0xd1;
    expect(() => decodeBody(tooMany.subarray(4))).toThrow(/at most 2000/);
    expect(() => encodeMessage({ type: MsgType.StatusServers, requestId: 1, servers: servers.slice(0, MAX_STATUS_SERVERS_PER_FRAME + 1) })).toThrow(RangeError);
  });

  test("Registry.firstNames is matchingNames' first N, without sorting everything", () => {
    const registry = new Registry(new MemoryStore(), 60_000);
    registry.addServer(1, "127.0.0.1:1", 0);
    const names = Array.from({ length: 500 }, (_, i) => `d${(i * 7919) % 500}/f.txt`);
    registry.addFiles(1, names.map((name) => ({ name, size: 1, sha256: SHA })), 0);
    for (const [pattern, limit] of [["", 10], ["d1", 5], ["*/f.txt", 600], ["nothing", 3]] as const) {
      const all = registry.matchingNames(pattern);
      expect(registry.firstNames(pattern, limit)).toEqual({ names: all.slice(0, limit), matched: all.length });
    }
  });
});
