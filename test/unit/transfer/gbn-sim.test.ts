import { describe, expect, test } from "bun:test";
import { Rng } from "../../support/random.ts";
import { CLEAN, type LinkProfile } from "../../support/sim-link.ts";
import { simulateTransfer } from "../../support/sim-transfer.ts";
import { SendKind } from "../../../src/transfer/core/gbn-sender.ts";

/**
 * Thousands of seeded transfers over impaired simulated links. A failure prints its seed; replay one
 * with SIMULATION_SEED=<seed> bun test gbn-sim.
 */
const RUNS = Number(process.env.SIMULATION_RUNS ?? 5000);

function randomProfile(rng: Rng, mtu: number): LinkProfile {
  return {
    loss: rng.next() * 0.3,
    duplicate: rng.next() * 0.05,
    reorder: rng.next() * 0.1,
    corrupt: rng.next() * 0.02,
    delayMs: 0.05 + rng.next() * 20,
    jitterMs: rng.next() * 5,
    mtu,
    refuse: rng.next() * 0.2,
  };
}

function runSeed(seed: number) {
  const rng = new Rng(seed);
  const segmentBytes = 64 + rng.int(1400);
  const size = rng.chance(0.05) ? rng.int(3) : rng.int(segmentBytes * 150);
  const data = rng.bytes(size);
  const forward = randomProfile(rng, 1500);
  const backward = randomProfile(rng, 1500);
  const receiverWindow = 4 + rng.int(128);
  const ackEvery = 1 + rng.int(4);
  let windowViolation: string | undefined;
  const result = simulateTransfer(rng, {
    data,
    segmentBytes,
    forward,
    backward,
    receiverWindow,
    ackEvery,
    maxSimMs: 3_600_000,
    onTransmit: (s, seq) => {
      // A tail-loss probe resends what is already out, even if the window has shrunk since.
      if (s.transmitKind !== SendKind.Probe && seq - s.base >= s.window) windowViolation ??= `seq ${seq} base ${s.base} window ${s.window}`;
    },
  });
  return { result, data, windowViolation };
}

describe("Go-Back-N over simulated impaired links", () => {
  test(`${RUNS} seeded runs deliver the exact bytes (loss 0–30 %, duplication, reordering, jitter, corruption, refused sends)`, () => {
    const only = process.env.SIMULATION_SEED;
    const seeds = only ? [Number(only)] : Array.from({ length: RUNS }, (_, i) => i + 1);
    let totalSimMs = 0;
    let corrupted = 0;
    for (const seed of seeds) {
      const { result, data, windowViolation } = runSeed(seed);
      const ok = result.event?.type === "completed" && Buffer.from(result.output).equals(Buffer.from(data)) && windowViolation === undefined;
      if (!ok) {
        throw new Error(
          `seed ${seed} failed (replay: SIMULATION_SEED=${seed}): event=${JSON.stringify(result.event)} simMs=${result.simMs.toFixed(0)} ` +
            `window=${windowViolation ?? "ok"} stats=${JSON.stringify(result.sender.stats())}`,
        );
      }
      totalSimMs += result.simMs;
      corrupted += result.dropped.corrupt;
    }
    expect(totalSimMs).toBeGreaterThan(0);
    if (!only) expect(corrupted).toBeGreaterThan(100); // the checksum really was exercised
  }, 60_000); // ~3 s alone; more on a loaded 2-core machine

  test("a clean link completes without a single retransmission", () => {
    const data = new Rng(5).bytes(200_000);
    const r = simulateTransfer(new Rng(5), { data, segmentBytes: 1000, forward: CLEAN, backward: CLEAN });
    expect(r.event).toEqual({ type: "completed" });
    expect(Buffer.from(r.output).equals(Buffer.from(data))).toBe(true);
    expect(r.sender.counters.retransmitted).toBe(0);
    expect(r.sender.counters.timeouts).toBe(0);
  });

  test("a path whose MTU is below the datagram size fails cleanly in bounded time instead of hanging", () => {
    const data = new Rng(9).bytes(10_000);
    const r = simulateTransfer(new Rng(9), { data, segmentBytes: 1400, forward: { ...CLEAN, mtu: 1200 }, backward: CLEAN, idleTimeoutMs: 10_000 });
    expect(r.event).toEqual({ type: "failed", reason: "no acknowledgement for 10s" });
    expect(r.simMs).toBeLessThan(10_100); // idle is counted from the last ACK (the short last segment fits and draws one)
  });
});
