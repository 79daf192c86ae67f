import { describe, expect, test } from "bun:test";
import { PathDirection, seededRandom, type PathDirectionConfig } from "../../../bench/paths/path-model.ts";

const MTU = 1500;

/**
 * Offers a packet of `sizeBytes` every `gapMs` for `durationMs` of simulated time, releasing whatever
 * is due in between, and returns the release times and the verdicts.
 */
function drive(path: PathDirection, sizeBytes: number, gapMs: number, durationMs: number) {
  const releasedAtMs: number[] = [];
  const verdicts = { queued: 0, dropped: 0, lost: 0 };
  let nextOfferMs = 0;
  let tag = 0;
  for (;;) {
    const due = path.nextReleaseAt();
    const offering = nextOfferMs < durationMs;
    if (!offering && due === undefined) break;
    if (offering && (due === undefined || nextOfferMs <= due)) {
      verdicts[path.offer(sizeBytes, nextOfferMs, tag++)]++;
      nextOfferMs += gapMs;
    } else {
      expect(path.pollRelease(due!)).toBeGreaterThanOrEqual(0);
      releasedAtMs.push(due!);
    }
  }
  return { releasedAtMs, verdicts };
}

function path(config: Partial<PathDirectionConfig>, seed = 1) {
  return new PathDirection(seededRandom(seed), { rateBitsPerSec: 0, delayMs: 0, lossRate: 0, ...config });
}

describe("PathDirection: the bottleneck", () => {
  test("a saturated link delivers its rate to within 1 %", () => {
    for (const rateBitsPerSec of [20e6, 100e6, 1e9]) {
      const p = path({ rateBitsPerSec, delayMs: 25 });
      // Offered at twice the rate, for 1e5 packets.
      const gapMs = ((MTU * 8) / rateBitsPerSec) * 1000 * 0.5;
      const { releasedAtMs, verdicts } = drive(p, MTU, gapMs, gapMs * 1e5);
      expect(verdicts.dropped).toBeGreaterThan(0);
      const spanMs = releasedAtMs.at(-1)! - releasedAtMs[0]!;
      const bitsPerSec = ((releasedAtMs.length - 1) * MTU * 8) / (spanMs / 1000);
      expect(Math.abs(bitsPerSec / rateBitsPerSec - 1)).toBeLessThan(0.01);
    }
  });

  test("below the rate, nothing is dropped and every packet arrives", () => {
    const p = path({ rateBitsPerSec: 100e6, delayMs: 10 });
    const gapMs = ((MTU * 8) / 100e6) * 1000 * 1.25;
    const { releasedAtMs, verdicts } = drive(p, MTU, gapMs, gapMs * 1e4);
    expect(verdicts).toEqual({ queued: 1e4, dropped: 0, lost: 0 });
    expect(releasedAtMs).toHaveLength(1e4);
  });

  test("a full drop-tail queue drops arrivals, and takes them again once it drains", () => {
    // 12 Mbit/s: a 1500-byte packet takes exactly 1 ms to serialize.
    const p = path({ rateBitsPerSec: 12e6, queueBytes: 10 * MTU });
    const first = Array.from({ length: 20 }, (_, i) => p.offer(MTU, 0, i));
    expect(first.filter((v) => v === "queued")).toHaveLength(10);
    expect(first.slice(10).every((v) => v === "dropped")).toBe(true);
    expect(p.backlogBytes(0)).toBe(10 * MTU);
    expect(p.backlogBytes(4)).toBe(6 * MTU);
    // At 4 ms four packets have left: four more fit, the fifth does not.
    expect(Array.from({ length: 5 }, (_, i) => p.offer(MTU, 4, 100 + i))).toEqual(["queued", "queued", "queued", "queued", "dropped"]);
    expect(p.counters).toMatchObject({ offered: 25, queued: 14, dropped: 11, lost: 0 });
  });

  test("the queue may be given in milliseconds of the rate", () => {
    const p = path({ rateBitsPerSec: 12e6, queueMs: 5 });
    expect(p.queueBytes).toBe(5 * MTU);
    expect(Array.from({ length: 6 }, () => p.offer(MTU, 0))).toEqual(["queued", "queued", "queued", "queued", "queued", "dropped"]);
  });

  test("with no rate there is no queue: every packet is taken", () => {
    const p = path({ rateBitsPerSec: 0, delayMs: 5 });
    for (let i = 0; i < 10_000; i++) expect(p.offer(MTU, 0, i)).toBe("queued");
    expect(p.inFlight).toBe(10_000);
    expect(p.release(5)).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
  });
});

describe("PathDirection: delay", () => {
  test("a packet arrives exactly the one-way delay after it was offered, when there is no bottleneck", () => {
    const p = path({ delayMs: 25 });
    expect(p.offer(100, 3, 7)).toBe("queued");
    expect(p.nextReleaseAt()).toBe(28);
    expect(p.pollRelease(27.999)).toBe(-1);
    expect(p.pollRelease(28)).toBe(7);
    expect(p.nextReleaseAt()).toBeUndefined();
  });

  test("behind a bottleneck: serialization, then the delay; back-to-back packets queue behind each other", () => {
    const p = path({ rateBitsPerSec: 12e6, delayMs: 25 });
    p.offer(MTU, 0, 1);
    p.offer(MTU, 0, 2);
    p.offer(MTU / 2, 0.5, 3);
    expect(p.release(25.999)).toEqual([]);
    expect(p.release(26)).toEqual([1]);
    expect(p.nextReleaseAt()).toBe(27);
    expect(p.release(27.4)).toEqual([2]);
    expect(p.release(27.5)).toEqual([3]);
  });

  test("packets leave in the order they came, across the ring growing", () => {
    const p = new PathDirection(seededRandom(1), { rateBitsPerSec: 1e9, delayMs: 50, lossRate: 0, queueBytes: 1e9 }, 4);
    for (let i = 0; i < 5000; i++) p.offer(40 + (i % 1460), i * 0.001, i);
    expect(p.release(1e6)).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });
});

describe("PathDirection: loss", () => {
  function lossRun(config: Partial<PathDirectionConfig>, packets: number, seed: number) {
    const p = path(config, seed);
    let lost = 0;
    let bursts = 0;
    let previousLost = false;
    for (let i = 0; i < packets; i++) {
      const isLost = p.offer(MTU, i, i) === "lost";
      if (isLost) lost++;
      if (isLost && !previousLost) bursts++;
      previousLost = isLost;
      p.release(i);
    }
    return { rate: lost / packets, meanBurst: lost / bursts };
  }

  test("random loss: the rate over 1e5 packets matches, bursts are as short as independence makes them", () => {
    for (const seed of [1, 2, 3]) {
      for (const lossRate of [0.01, 0.05]) {
        const { rate, meanBurst } = lossRun({ lossRate }, 1e5, seed);
        expect(Math.abs(rate - lossRate)).toBeLessThan(4 * Math.sqrt((lossRate * (1 - lossRate)) / 1e5));
        expect(Math.abs(meanBurst - 1 / (1 - lossRate))).toBeLessThan(0.05);
      }
    }
  });

  test("Gilbert–Elliott: the stationary loss rate and the mean burst length both match", () => {
    for (const seed of [1, 2, 3]) {
      for (const [lossRate, burstLen] of [
        [0.01, 4],
        [0.02, 8],
      ] as const) {
        const { rate, meanBurst } = lossRun({ lossRate, burstLen }, 1e6, seed);
        expect(Math.abs(rate / lossRate - 1)).toBeLessThan(0.1);
        expect(Math.abs(meanBurst / burstLen - 1)).toBeLessThan(0.1);
      }
    }
  });

  test("a lost packet used the bottleneck: a saturated link with 50 % loss delivers half its rate", () => {
    const p = path({ rateBitsPerSec: 12e6, lossRate: 0.5 });
    const { releasedAtMs, verdicts } = drive(p, MTU, 0.5, 1e5 * 0.5);
    const delivered = (releasedAtMs.length * MTU * 8) / (releasedAtMs.at(-1)! / 1000);
    expect(verdicts.lost).toBeGreaterThan(0);
    expect(Math.abs(delivered / 6e6 - 1)).toBeLessThan(0.02);
  });

  test("the same seed replays the same losses; another seed does not", () => {
    const verdicts = (seed: number) => {
      const p = path({ lossRate: 0.1, burstLen: 3 }, seed);
      return Array.from({ length: 2000 }, (_, i) => p.offer(MTU, i));
    };
    expect(verdicts(42)).toEqual(verdicts(42));
    expect(verdicts(42)).not.toEqual(verdicts(43));
  });

  test("a configuration out of range is refused", () => {
    expect(() => path({ lossRate: 1 })).toThrow(RangeError);
    expect(() => path({ lossRate: -0.1 })).toThrow(RangeError);
    expect(() => path({ delayMs: -1 })).toThrow(RangeError);
    expect(() => path({ rateBitsPerSec: Number.NaN })).toThrow(RangeError);
  });
});

describe("seededRandom", () => {
  test("uniform in [0, 1): ten bins of 1e5 draws each within 3 % of a tenth", () => {
    const r = seededRandom(9);
    const bins = new Array<number>(10).fill(0);
    for (let i = 0; i < 1e5; i++) {
      const x = r();
      expect(x >= 0 && x < 1).toBe(true);
      bins[Math.floor(x * 10)]!++;
    }
    for (const b of bins) expect(Math.abs(b / 1e4 - 1)).toBeLessThan(0.03);
  });
});
