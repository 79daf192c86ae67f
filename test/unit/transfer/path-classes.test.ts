import { describe, expect, test } from "bun:test";
import { Rng } from "../../support/random.ts";
import { pathProfiles, type PathClass } from "../../support/sim-paths.ts";
import { simulateFlows, simulateTransfer } from "../../support/sim-transfer.ts";

/**
 * The real sender, receiver, rate controller and FEC over simulated paths (a bottleneck rate with a
 * 50 ms drop-tail queue, propagation delay, random or bursty loss both ways), in simulated time:
 * deterministic, a few seconds for all of them. Each class asserts the share of the link it must
 * reach — link × (1 − loss), on the wire (1,400-byte datagrams) — and that what went on top of the
 * data (resent and repair datagrams) stays bounded. The floors sit a little under what the code
 * measured when they were set (docs/PROTOCOL.md §2 has the table); a change that loses more fails.
 */
const SEGMENT = 1374;
const WIRE = 1400;

interface Expectation extends PathClass {
  /** Link use at least this. */
  use: number;
  /** Resent + repair datagrams at most this share of the file's segments. */
  extra: number;
  seconds: number;
  /**
   * Repairs at most this share of the segments: FEC follows the loss measured, so a path that loses
   * nothing gets none, and one whose queue overflowed only at start-up gets little.
   */
  repairsAtMost?: number;
  /** The sender's timer fires up to this late (a busy event loop's): pacing must not lose the time. */
  timerLateMs?: number;
  /** The receiver reads its socket up to this late, then all that came (a busy client, GRO reads): ACKs come in bunches. */
  readLateMs?: number;
}

const CLASSES: Expectation[] = [
  { name: "100 Mbit/s × 50 ms, clean", mbit: 100, rttMs: 50, loss: 0, use: 0.9, extra: 0.05, seconds: 8, repairsAtMost: 0.002 },
  { name: "100 Mbit/s × 50 ms, 1 % loss", mbit: 100, rttMs: 50, loss: 0.01, use: 0.8, extra: 0.16, seconds: 8 },
  { name: "100 Mbit/s × 50 ms, 2 % loss", mbit: 100, rttMs: 50, loss: 0.02, use: 0.75, extra: 0.2, seconds: 8 },
  { name: "100 Mbit/s × 50 ms, 1 % loss in bursts of 4", mbit: 100, rttMs: 50, loss: 0.01, burstLength: 4, use: 0.55, extra: 0.65, seconds: 8 },
  { name: "20 Mbit/s × 200 ms, clean", mbit: 20, rttMs: 200, loss: 0, use: 0.86, extra: 0.07, seconds: 8, repairsAtMost: 0.015 },
  { name: "20 Mbit/s × 200 ms, 2 % loss", mbit: 20, rttMs: 200, loss: 0.02, use: 0.75, extra: 0.2, seconds: 8 },
  // Pacing that dropped the tokens of a late wake-up reached 0.83 here.
  { name: "20 Mbit/s × 200 ms, clean, timer up to 4 ms late", mbit: 20, rttMs: 200, loss: 0, use: 0.84, extra: 0.07, seconds: 8, timerLateMs: 4 },
  { name: "1 Gbit/s × 20 ms, 1 % loss", mbit: 1000, rttMs: 20, loss: 0.01, use: 0.55, extra: 0.15, seconds: 0.4 },
  { name: "LAN 1 Gbit/s × 0.1 ms, clean", mbit: 1000, rttMs: 0.1, loss: 0, use: 0.9, extra: 0, seconds: 0.4, repairsAtMost: 0 },
  { name: "LAN 1 Gbit/s × 0.1 ms, 5 % loss", mbit: 1000, rttMs: 0.1, loss: 0.05, use: 0.65, extra: 0.2, seconds: 0.4 },
  // A window of 2 BDPs and a fixed 48 KiB for aggregated ACKs (no measured aggregation) reached
  // 0.52–0.59 clean and 0.46 at 1 % loss: 55 segments in flight where the working RTT is 20× the path's.
  { name: "LAN 1 Gbit/s × 0.1 ms, clean, the receiver reading up to 2 ms late", mbit: 1000, rttMs: 0.1, loss: 0, use: 0.9, extra: 0.01, seconds: 0.4, readLateMs: 2 },
  { name: "LAN 1 Gbit/s × 0.1 ms, 1 % loss, the receiver reading up to 2 ms late", mbit: 1000, rttMs: 0.1, loss: 0.01, use: 0.75, extra: 0.2, seconds: 0.4, readLateMs: 2 },
];

const FLOW = { segmentBytes: SEGMENT, receiverWindow: 20_000, ackEvery: 16, maxWindow: 32_768, fecBlock: 64 };

describe("paths: link use and overhead in simulated time", () => {
  for (const c of CLASSES) {
    test(c.name, () => {
      const linkBytesPerMs = c.mbit * 125;
      const size = Math.round(linkBytesPerMs * c.seconds * 1000 * (SEGMENT / WIRE));
      for (const seed of [1, 2]) {
        const data = new Rng(seed).bytes(size);
        const { forward, backward } = pathProfiles(c);
        const r = simulateTransfer(new Rng(seed), { ...FLOW, data, forward, backward, maxSimMs: 600_000, timerLateMs: c.timerLateMs, readLateMs: c.readLateMs });
        expect(r.event).toEqual({ type: "completed" });
        expect(Buffer.from(r.output).equals(Buffer.from(data))).toBe(true);
        const use = ((size / r.simMs) * (WIRE / SEGMENT)) / (linkBytesPerMs * (1 - c.loss));
        const st = r.sender.stats();
        const extra = (st.retransmitted + st.repairs) / Math.ceil(size / SEGMENT);
        expect({ seed, use: Math.min(use, c.use) }).toEqual({ seed, use: c.use });
        expect({ seed, extra: Math.max(extra, c.extra) }).toEqual({ seed, extra: c.extra });
        if (c.repairsAtMost !== undefined) expect(st.repairs).toBeLessThanOrEqual(c.repairsAtMost * Math.ceil(size / SEGMENT));
      }
    }, 60_000);
  }
});

describe("paths: sharing a bottleneck", () => {
  const path: PathClass = { name: "100 Mbit/s × 50 ms", mbit: 100, rttMs: 50, loss: 0 };
  const shareWhileBoth = (flows: ReturnType<typeof simulateFlows>["flows"], from: number) => {
    const until = Math.min(...flows.map((f) => f.finishedAt!));
    const at = (f: (typeof flows)[number], t: number) => f.progress.filter(([s]) => s <= t).at(-1)?.[1] ?? 0;
    const got = flows.map((f) => at(f, until) - at(f, from));
    return { shares: got.map((g) => g / got.reduce((a, b) => a + b, 0)), use: (got.reduce((a, b) => a + b, 0) * (WIRE / SEGMENT)) / (until - from) / (path.mbit * 125) };
  };

  test("two fetches started together share it evenly and fill it together (0 % loss)", () => {
    const { forward, backward } = pathProfiles(path);
    const r = simulateFlows(new Rng(9), forward, backward, [0, 1].map((i) => ({ ...FLOW, data: new Rng(i + 5).bytes(60e6) })), 600_000);
    for (const f of r.flows) expect(f.event).toEqual({ type: "completed" });
    const { shares, use } = shareWhileBoth(r.flows, 1000);
    for (const s of shares) {
      expect(s).toBeGreaterThanOrEqual(0.4);
      expect(s).toBeLessThanOrEqual(0.6);
    }
    expect(use).toBeGreaterThan(0.85);
  }, 60_000);

  // With random loss each run's split depends on where the losses fall (which flow's block fails and
  // goes back): one seed says little, so the smaller share is judged over several. The build before
  // the ACK-delay, pacing-credit and first-block changes had a median of 0.34 and a worst of 0.14 here.
  test("two fetches started together share it evenly and fill it together (1 % loss, over 7 seeds)", () => {
    const { forward, backward } = pathProfiles({ ...path, loss: 0.01 });
    const smaller: number[] = [];
    for (let seed = 1; seed <= 7; seed++) {
      const r = simulateFlows(new Rng(seed), forward, backward, [0, 1].map((i) => ({ ...FLOW, data: new Rng(i + 5).bytes(60e6) })), 600_000);
      for (const f of r.flows) expect(f.event).toEqual({ type: "completed" });
      const { shares, use } = shareWhileBoth(r.flows, 1000);
      smaller.push(Math.min(...shares));
      expect({ seed, use: use > 0.65 }).toEqual({ seed, use: true });
    }
    smaller.sort((a, b) => a - b);
    expect(smaller[3]).toBeGreaterThanOrEqual(0.4); // the median
    expect(smaller[0]).toBeGreaterThanOrEqual(0.3);
  }, 120_000);

  test("a fetch that starts 3 s later gets its share", () => {
    const { forward, backward } = pathProfiles(path);
    const r = simulateFlows(new Rng(11), forward, backward, [0, 3000].map((startAtMs, i) => ({ ...FLOW, data: new Rng(i + 7).bytes(80e6), startAtMs })), 600_000);
    for (const f of r.flows) expect(f.event).toEqual({ type: "completed" });
    const { shares } = shareWhileBoth(r.flows, 6000);
    for (const s of shares) {
      expect(s).toBeGreaterThanOrEqual(0.35);
      expect(s).toBeLessThanOrEqual(0.65);
    }
  }, 60_000);
});
