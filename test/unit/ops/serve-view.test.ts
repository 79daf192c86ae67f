import { describe, expect, test } from "bun:test";
import { ServeTally } from "../../../src/ops/serve-http.ts";
import { ServerEndpoint } from "../../../src/transfer/core/server-endpoint.ts";
import type { SenderStats } from "../../../src/transfer/core/gbn-sender.ts";
import { Rng } from "../../support/random.ts";
import { SessionPeer } from "../../support/session-peer.ts";
import { MemoryFiles, simFile, type SimFile } from "../../support/sim-endpoints.ts";
import { testCrypto } from "../../support/transfer-crypto.ts";

const rng = new Rng(18);
const FILE = simFile(rng, "big.bin", 100_000);
const SECRET = new Uint8Array(32).fill(5);

/** A session from `address`, its REQUEST sealed against the greeting the endpoint gives at `now` (a client has one from its first probe). */
function open(ep: ServerEndpoint<SimFile, number>, peer: SessionPeer, sessionId: number, address: string, offset: number, now: number): void {
  ep.handle(peer.request(FILE, sessionId, { address, at: now, offset, length: FILE.size - offset }), address, 5000, now);
  while (ep.pollTransmit(now));
}

describe("the file server's operators' view", () => {
  test("activeSessions lists the open transfers, and forgets them once closed", () => {
    const ep = new ServerEndpoint<SimFile, number>({ files: new MemoryFiles([FILE]), randomU32: () => 7, idleTimeoutMs: 1000, tokenSecret: SECRET, crypto: testCrypto({ seed: 1 }) });
    const peer = new SessionPeer(ep, testCrypto({ seed: 2 }));
    open(ep, peer, 1, "10.0.0.1", 0, 0);
    open(ep, peer, 2, "10.0.0.2", 40_000, 5);
    const active = ep.activeSessions().sort((a, b) => a.sessionId - b.sessionId);
    expect(active.map((s) => [s.sessionId, s.address, s.name, s.offset, s.end, s.segmentBytes, s.pieceHashes, s.createdAt])).toEqual([
      [1, "10.0.0.1", "big.bin", 0, 100_000, 1000, false, 0],
      [2, "10.0.0.2", "big.bin", 40_000, 100_000, 1000, false, 5],
    ]);
    expect(active[0]!.stats.sent).toBeGreaterThan(0);
    ep.handleTimeout(60_000); // both idle past their timeout
    expect(ep.activeSessions()).toEqual([]);
  });

  test("ServeTally adds up retransmitted and repair bytes of finished sessions, by their segment size", () => {
    const tally = new ServeTally();
    const stats = (retransmitted: number, repairs: number) => ({ retransmitted, repairs }) as SenderStats;
    const peer = (sessionId: number) => ({ address: "10.0.0.1", port: 5000, sessionId });
    tally.onEvent({ type: "opened", ...peer(1), name: "a", pieceHashes: false, offset: 0, length: 10, segmentBytes: 1200 });
    tally.onEvent({ type: "opened", ...peer(2), name: "b", pieceHashes: false, offset: 0, length: 10, segmentBytes: 60_000 });
    tally.onEvent({ type: "completed", ...peer(1), name: "a", via: "acknowledged", stats: stats(3, 2) });
    tally.onEvent({ type: "failed", ...peer(2), name: "b", reason: "gone", stats: stats(1, 0) });
    tally.onEvent({ type: "completed", ...peer(9), name: "never opened", via: "fin", stats: stats(5, 5) });
    tally.onEvent({ type: "dropped", address: "10.0.0.1", port: 1, reason: "short" });
    expect({ retransmitted: tally.retransmittedBytes, repair: tally.repairBytes }).toEqual({ retransmitted: 3 * 1200 + 60_000, repair: 2 * 1200 });
  });
});
