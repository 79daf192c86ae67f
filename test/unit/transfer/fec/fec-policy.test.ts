import { describe, expect, test } from "bun:test";
import { blockFailureProbability, chooseFec, LossEstimator, repairCount } from "../../../../src/transfer/fec/fec-policy.ts";
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

describe("loss estimator", () => {
  test("starts at 0 and converges on a steady rate", () => {
    const est = new LossEstimator();
    expect(est.lossRate).toBe(0);
    for (let i = 0; i < 200; i++) est.onInterval(1000, 980);
    expect(est.lossRate).toBeCloseTo(0.02, 6);
    expect(est.burstLength).toBe(1);
  });

  test("weighs intervals by their datagrams, and forgets with the half-life", () => {
    const est = new LossEstimator(1000);
    est.onInterval(1000, 900); // 10 %
    est.onInterval(10, 10);
    expect(est.lossRate).toBeGreaterThan(0.098);
    est.onInterval(1000, 1000); // one half-life of clean datagrams halves the lost count's weight
    expect(est.lossRate).toBeCloseTo((100 * 0.5 * 2 ** (-10 / 1000)) / (1000 * 0.5 * 2 ** (-10 / 1000) + 10 * 0.5 + 1000), 6);
    for (let i = 0; i < 30; i++) est.onInterval(1000, 1000);
    expect(est.lossRate).toBeLessThan(1e-9);
    expect(chooseFec(est.lossRate).m).toBe(0);
  });

  test("runs of losses give the burst length", () => {
    const est = new LossEstimator();
    for (let i = 0; i < 50; i++) est.onInterval(1000, 970, 10);
    expect(est.burstLength).toBeCloseTo(3, 6);
  });

  test("impossible counts are ignored, duplicates count as no loss", () => {
    const est = new LossEstimator();
    est.onInterval(100, 90);
    const before = est.lossRate;
    for (const [e, r] of [[0, 0], [-5, 1], [NaN, 1], [Infinity, 3], [10, -1], [10, NaN]] as const) expect(est.onInterval(e, r)).toBe(before);
    est.onInterval(100, 120);
    const decay = 2 ** (-100 / 4096);
    expect(est.lossRate).toBeCloseTo((10 * decay) / (100 * decay + 100), 9);
    expect(() => new LossEstimator(0)).toThrow(RangeError);
  });
});
