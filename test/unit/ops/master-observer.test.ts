import { describe, expect, test } from "bun:test";
import { MasterObserver, type ObserverEvent } from "../../../src/ops/master-observer.ts";

describe("MasterObserver", () => {
  test("joins, leaves, evictions and counters; events only while someone listens", () => {
    const o = new MasterObserver(1000);
    const events: ObserverEvent[] = [];
    o.connectionOpened(1, 1100);
    o.joined(1, "127.0.0.1:4000", 1200);
    expect(o.server(1)).toEqual({ peerId: 1, address: "127.0.0.1:4000", connectedSinceMs: 1100, lastHeartbeatMs: 1200 });
    const stop = o.subscribe((ev) => events.push(ev));
    o.heard(1, 1500);
    expect(o.server(1)!.lastHeartbeatMs).toBe(1500);
    expect(events).toEqual([]); // a heartbeat is no event
    o.joined(1, "127.0.0.1:4000", 1600); // the same address again: nothing new
    expect(events).toEqual([]);
    o.connectionOpened(2, 1700);
    o.joined(2, "127.0.0.1:4001", 1700);
    o.filesChanged(2, 1800);
    o.left(2, "evicted");
    o.connectionClosed(2, "closed"); // already gone: counted once
    o.connectionClosed(1, "closed");
    o.listAnswered();
    stop();
    o.statusAnswered();
    expect(events.filter((e) => e.type !== "counts")).toEqual([
      { type: "join", server: { peerId: 2, address: "127.0.0.1:4001", connectedSinceMs: 1700, lastHeartbeatMs: 1700 } },
      { type: "files", peerId: 2 },
      { type: "leave", peerId: 2, address: "127.0.0.1:4001", reason: "evicted" },
      { type: "leave", peerId: 1, address: "127.0.0.1:4000", reason: "closed" },
    ]);
    expect(o.counters).toEqual({ connectionsTotal: 2, listsTotal: 1, statusTotal: 1, registrationsTotal: 2, evictionsTotal: 1, departuresTotal: 1 });
    expect(o.serverCount).toBe(0);
    expect(o.listenerCount).toBe(0);
  });

  test("a re-announce with a new address is a leave of the old and a join of the new", () => {
    const o = new MasterObserver(0);
    const events: ObserverEvent[] = [];
    o.subscribe((ev) => events.push(ev));
    o.joined(5, "10.0.0.1:1", 10);
    o.joined(5, "10.0.0.1:2", 20);
    expect(events.filter((e) => e.type !== "counts").map((e) => (e.type === "join" ? `join ${e.server.address}` : e.type === "leave" ? `leave ${e.address}` : e.type))).toEqual([
      "join 10.0.0.1:1",
      "leave 10.0.0.1:1",
      "join 10.0.0.1:2",
    ]);
    expect(o.server(5)!.connectedSinceMs).toBe(20);
  });
});
