import { describe, expect, test } from "bun:test";
import { blockFailureProbability, chooseFec, repairCount, repairsFor } from "../../../../src/transfer/core/fec/fec-policy.ts";
import { Rng } from "../../../support/random.ts";

describe("FEC policy", () => {
  test("no loss, no repair: m = 0 at any block size", () => {
    expect(chooseFec(0)).toMatchObject({ m: 0, overhead: 0, blockFailure: 0, meetsTarget: true });
    for (const k of [1, 8, 32, 64, 128]) expect(repairCount(0, k)).toBe(0);
  });

  test("a loss now and then (1 in 10,000) does not turn FEC on", () => {
    expect(chooseFec(0.0001).m).toBe(0);
  });

  test("at 1 % loss a block of 32 gets 2 repairs", () => {
    expect(repairCount(0.01, 32)).toBe(2);
    expect(blockFailureProbability(32, 2, 0.01)).toBeLessThan(0.01);
    expect(blockFailureProbability(32, 1, 0.01)).toBeGreaterThan(0.01);
  });

  test("the choices at 0.1 / 0.5 / 1 / 2 / 5 % loss, each within 2 × loss + 3 % and a go-back under 1 %", () => {
    const choices = [0.001, 0.005, 0.01, 0.02, 0.05].map((p) => {
      const c = chooseFec(p);
      expect(c.meetsTarget).toBe(true);
      expect(c.blockFailure).toBeLessThanOrEqual(0.01);
      expect(c.overhead).toBeLessThanOrEqual(2 * p + 0.03);
      return [c.k, c.m];
    });
    expect(choices).toEqual([
      [64, 1],
      [64, 2],
      [64, 3],
      [60, 4],
      [64, 8],
    ]);
  });

  test("more loss never means fewer repairs per data segment", () => {
    let previous = 0;
    for (let p = 0; p <= 0.1; p += 0.0025) {
      const { overhead } = chooseFec(p);
      expect(overhead).toBeGreaterThanOrEqual(previous - 0.006); // k and m move in steps
      previous = Math.max(previous, overhead);
    }
  });

  test("bursty loss asks for more repair than the same rate of independent losses", () => {
    expect(chooseFec(0.01, { burstLength: 3 }).m).toBeGreaterThan(chooseFec(0.01).m);
    expect(blockFailureProbability(32, 2, 0.01, 3)).toBeGreaterThan(blockFailureProbability(32, 2, 0.01, 1));
  });

  test("the binomial tail matches a seeded simulation", () => {
    const rng = new Rng(11);
    const [k, m, p, trials] = [32, 2, 0.02, 20000];
    let failed = 0;
    for (let t = 0; t < trials; t++) {
      let lost = 0;
      for (let i = 0; i < k + m; i++) if (rng.chance(p)) lost++;
      if (lost > m) failed++;
    }
    const predicted = blockFailureProbability(k, m, p);
    expect(Math.abs(failed / trials - predicted)).toBeLessThan(4 * Math.sqrt((predicted * (1 - predicted)) / trials));
  });

  test("a loss rate too high to meet the target still gets the most robust shape, flagged", () => {
    const c = chooseFec(0.5);
    expect(c.meetsTarget).toBe(false);
    expect(c.m).toBeGreaterThan(0);
  });
});

describe("repairs for a Go-Back-N sender", () => {
  test("none without loss; more with more loss or more in flight (a failed block resends everything in flight)", () => {
    expect(repairsFor(64, 0, 1000)).toBe(0);
    const at1 = repairsFor(64, 0.01, 1000);
    expect(at1).toBeGreaterThanOrEqual(2);
    expect(repairsFor(64, 0.05, 1000)).toBeGreaterThan(at1);
    expect(repairsFor(64, 0.01, 64)).toBeLessThanOrEqual(at1);
    expect(repairsFor(64, 0.5, 1000)).toBeLessThanOrEqual(8); // the decoder's capacity
  });
});
