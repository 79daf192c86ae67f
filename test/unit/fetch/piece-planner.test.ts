import { describe, expect, test } from "bun:test";
import { PiecePlanner, type PlannedRange } from "../../../src/fetch/core/piece-planner.ts";
import { Rng } from "../../support/random.ts";

const MiB = 1 << 20;

interface SimSource {
  id: number;
  bytesPerMs: number;
  /** Dies (stops delivering) at this time; its session fails `detectMs` later. */
  diesAt: number;
  /** Sends bad bytes: every piece it delivers fails verification. */
  bad: boolean;
  banned: boolean;
  range?: PlannedRange;
  deadSince?: number;
  delivered: number; // pieces that passed
}

interface SimResult {
  ms: number;
  complete: boolean;
  sources: SimSource[];
  overlaps: number;
}

/**
 * A fetch in miniature: sources deliver bytes at their rates into the ranges the planner gives them,
 * verdicts come back a step later, dead sources are noticed after `detectMs`, bad ones are banned at
 * their first bad piece. Time is simulated, 1 ms a step.
 */
function simulate(seed: number, opts: { size: number; pieceBytes: number; sources: Array<Partial<SimSource> & { bytesPerMs: number }>; detectMs?: number; maxMs?: number }): SimResult {
  const rng = new Rng(seed);
  const planner = new PiecePlanner(opts.size, opts.pieceBytes, () => false, 200);
  const sources: SimSource[] = opts.sources.map((s, id) => ({ id, diesAt: Infinity, bad: false, banned: false, delivered: 0, ...s }));
  const verdicts: Array<{ piece: number; ok: boolean; source: SimSource }> = [];
  const rates = new Map<number, number>();
  let overlaps = 0;
  const detectMs = opts.detectMs ?? 50;
  const maxMs = opts.maxMs ?? 200_000;
  let now = 0;
  const endRange = (s: SimSource, how: "done" | "failed") => {
    if (s.range) planner.close(s.range, how);
    s.range = undefined;
  };
  for (; now < maxMs && !planner.complete; now++) {
    // Verdicts from the previous step.
    for (const v of verdicts.splice(0)) {
      if (v.ok) {
        planner.pieceVerified(v.piece);
        v.source.delivered++;
      } else {
        const supplier = sources[planner.supplierOf(v.piece)]!;
        supplier.banned = true;
        endRange(supplier, "failed");
        planner.pieceFailed(v.piece);
      }
    }
    for (const s of sources) {
      const r = s.range;
      if (!r) continue;
      if (now >= s.diesAt) {
        s.deadSince ??= now;
        if (now - s.deadSince >= detectMs) endRange(s, "failed");
        continue;
      }
      const { length } = planner.byteRange(r);
      const before = planner.receivedPieces(r);
      r.received = Math.min(length, r.received + s.bytesPerMs * (0.5 + rng.next()));
      r.lastProgressAt = now;
      const after = planner.receivedPieces(r);
      for (let i = r.first + before; i < r.first + after; i++) verdicts.push({ piece: i, ok: !s.bad, source: s });
      if (r.received >= length) endRange(s, "done");
    }
    for (const s of sources) rates.set(s.id, s.range || s.delivered ? s.bytesPerMs : 0);
    const idle = sources.filter((s) => !s.range && !s.banned && now < s.diesAt);
    for (let i = 0; i < idle.length; i++) {
      const s = idle[i]!;
      const a = planner.assign(s.id, now, (id) => rates.get(id) ?? 0, idle.length - i);
      if (!a) break;
      if (a.cancelled) {
        const owner = sources[a.cancelled.source]!;
        if (owner.range === a.cancelled) owner.range = undefined;
      }
      s.range = a.range;
    }
    // No piece may be in two live ranges.
    const owners = new Map<number, number>();
    for (const r of planner.active)
      for (let i = r.first; i < r.end; i++) {
        if (owners.has(i)) overlaps++;
        owners.set(i, r.id);
      }
    if (sources.every((s) => s.banned || now >= s.diesAt + detectMs) && planner.activeCount === 0 && verdicts.length === 0) break;
  }
  return { ms: now, complete: planner.complete, sources, overlaps };
}

/**
 * Source 0 (slow) on the first half of the file, source 1 (fast) on the second half and just finished
 * with it; the slow one has received `slowReceived` bytes.
 */
function fastDoneBesideSlow(size: number, slowReceived: number, stallMs?: number) {
  const planner = new PiecePlanner(size, MiB, () => false, stallMs);
  const slow = planner.assign(0, 0, () => 0, 2)!.range;
  const fast = planner.assign(1, 0, () => 0, 1)!.range;
  slow.received = slowReceived;
  fast.received = planner.byteRange(fast).length;
  planner.close(fast, "done");
  return { planner, slow };
}

describe("piece planner", () => {
  test("one source gets the whole file as one range", () => {
    const planner = new PiecePlanner(10 * MiB + 5, MiB, () => false);
    const a = planner.assign(0, 0, () => 0)!;
    expect(planner.byteRange(a.range)).toEqual({ offset: 0, length: 10 * MiB + 5 });
    // A second source arriving with no rates known yet takes half of what the first has not started.
    const b = planner.assign(1, 0, () => 0)!;
    expect(b.shortened).toBe(a.range);
    expect([b.range.first, b.range.end, a.range.end]).toEqual([6, 11, 6]);
  });

  test("a first round shares the missing pieces evenly; verified pieces are skipped", () => {
    const planner = new PiecePlanner(12 * MiB, MiB, (i) => i < 3);
    const got = [0, 1, 2].map((id, i) => planner.byteRange(planner.assign(id, 0, () => 0, 3 - i)!.range));
    expect(got).toEqual([
      { offset: 3 * MiB, length: 3 * MiB },
      { offset: 6 * MiB, length: 3 * MiB },
      { offset: 9 * MiB, length: 3 * MiB },
    ]);
  });

  test("a finished fast source steals the tail of a slow one, in proportion to their rates", () => {
    const { planner, slow } = fastDoneBesideSlow(100 * MiB, 5 * MiB);
    const a = planner.assign(1, 10, (id) => [1, 3][id]!)!;
    expect(a.shortened).toBe(slow);
    // 50 pieces, 5 received, 1 in progress: 44 stealable, 3/4 of them to the fast source.
    expect(a.range.end - a.range.first).toBe(33);
    expect(slow.end).toBe(a.range.first);
  });

  test("a stalled range is taken over whole, from the piece it was in", () => {
    const planner = new PiecePlanner(8 * MiB, MiB, () => false, 200);
    const stuck = planner.assign(0, 0, () => 0, 1)!.range;
    stuck.received = 2 * MiB + 100;
    stuck.lastProgressAt = 10;
    const a = planner.assign(1, 500, () => 1)!;
    expect(a.cancelled).toBe(stuck);
    expect(planner.byteRange(a.range)).toEqual({ offset: 2 * MiB, length: 6 * MiB });
    expect(planner.pendingCount).toBe(2); // what the stalled source did deliver awaits its verdict
  });

  test("the end game: a much faster source takes over the last piece a slow one is still on", () => {
    const { planner, slow } = fastDoneBesideSlow(8 * MiB, 3 * MiB + 100, 10_000); // slow: pieces 0–3, on its last
    // At 1 KB/s the slow one needs ~17 min for the rest of its piece; the fast one needs 10 s for all of it.
    const a = planner.assign(1, 10, (id) => [1_000, 100_000][id]!)!;
    expect(a.cancelled).toBe(slow);
    expect(a.cancelledBecause).toBe("outpaced");
    expect(planner.byteRange(a.range)).toEqual({ offset: 3 * MiB, length: MiB });
    // Equal rates: no take-over, the owner finishes its own piece.
    const even = fastDoneBesideSlow(8 * MiB, 3 * MiB + 100, 10_000);
    expect(even.planner.assign(1, 10, () => 1000)).toBeUndefined();
  });

  test("pollTimeout: a waiting source is woken when the range it declined becomes stalled, not before", () => {
    const { planner, slow } = fastDoneBesideSlow(8 * MiB, 3 * MiB + 100, 200); // slow: pieces 0–3, on its last
    const even = () => 1000;
    expect(planner.assign(1, 10, even)).toBeUndefined();
    slow.lastProgressAt = 50;
    // No faster waiting source: only the stall can change the answer, at the last progress + stallMs.
    expect(planner.pollTimeout(60, even, 1000)).toBe(250);
    expect(planner.assign(1, 249, even)).toBeUndefined();
    expect(planner.assign(1, 250, even)?.cancelledBecause).toBe("stalled");
    expect(planner.pollTimeout(250, even, 1000)).toBe(450); // the new range, started at 250
    const idle = new PiecePlanner(MiB, MiB, () => false);
    expect(idle.pollTimeout(0, even, 1000)).toBeUndefined();
  });

  test("pollTimeout: a waiting source more than twice as fast is woken when the owner reaches its next piece, when the end game pays", () => {
    // Slow (1 MB/s) on pieces 0–3, 100 kB short of the end of piece 2; the waiting one does 2.5 MB/s.
    const { planner, slow } = fastDoneBesideSlow(8 * MiB, 3 * MiB - 100_000, 10_000);
    const rates = (id: number) => [1e6, 2.5e6][id]!;
    // Pieces 2 and 3 to fetch (839 ms each way for it, 1,678 ms twice over) against the owner's 1,149 ms: not yet.
    expect(planner.assign(1, 10, rates)).toBeUndefined();
    expect(planner.pollTimeout(10, rates, 2.5e6)).toBeCloseTo(110, 6);
    // At the start of piece 3, one piece is left: 419 ms twice over against the owner's 1,049 ms.
    slow.received = 3 * MiB;
    slow.lastProgressAt = 110;
    const a = planner.assign(1, 110, rates)!;
    expect(a.cancelledBecause).toBe("outpaced");
    expect(planner.byteRange(a.range)).toEqual({ offset: 3 * MiB, length: MiB });
    // Only twice as fast: the end game never pays at these rates, so only the stall deadline counts.
    const twice = fastDoneBesideSlow(8 * MiB, 3 * MiB - 100_000, 10_000);
    expect(twice.planner.pollTimeout(10, rates, 2e6)).toBe(10_000);
    // A prediction that is due at once is not retried at once: at least 10 ms.
    const close = fastDoneBesideSlow(8 * MiB, 3 * MiB - 10, 10_000);
    expect(close.planner.pollTimeout(10, rates, 2.5e6)).toBe(20);
  });

  test("simulation: 1,000 seeded runs with random rates, deaths and bad sources all complete, never assigning a piece twice", () => {
    const rng = new Rng(2024);
    let fastShare = 0;
    let balanced = 0;
    for (let seed = 0; seed < 1000; seed++) {
      const n = 1 + rng.int(5);
      const pieceBytes = 1 << (16 + rng.int(4));
      // Between 3 and 50 ms a piece; some die within the first second, some send bad bytes.
      const sources = Array.from({ length: n }, () => ({ bytesPerMs: pieceBytes / (3 + rng.int(48)), diesAt: rng.chance(0.2) ? rng.int(1000) : Infinity, bad: rng.chance(0.1) }));
      sources[0]!.diesAt = Infinity; // someone good must survive for the run to be able to finish
      sources[0]!.bad = false;
      const size = rng.int(100) * pieceBytes + rng.int(pieceBytes);
      const result = simulate(seed, { size, pieceBytes, sources });
      expect(result.overlaps).toBe(0);
      if (!result.complete) throw new Error(`seed ${seed}: not complete after ${result.ms} ms`);
      for (const s of result.sources) if (s.bad) expect(s.delivered).toBe(0);
      if (n === 2 && !sources.some((s) => s.bad || s.diesAt < Infinity) && size > 50 * pieceBytes) {
        const [a, b] = result.sources as [SimSource, SimSource];
        const fast = a.bytesPerMs > b.bytesPerMs ? a : b;
        fastShare += fast.delivered / (a.delivered + b.delivered) - fast.bytesPerMs / (a.bytesPerMs + b.bytesPerMs);
        balanced++;
      }
    }
    // Work is shared by rate: on average the fast source's share of pieces matches its share of the rate.
    expect(balanced).toBeGreaterThan(10);
    expect(Math.abs(fastShare / balanced)).toBeLessThan(0.1);
  });

  test("simulation: with rates 1 and 4, the slow source ends up with about a fifth of the file and both finish together", () => {
    const result = simulate(1, { size: 400 * MiB, pieceBytes: MiB, sources: [{ bytesPerMs: 10_000 }, { bytesPerMs: 40_000 }] });
    expect(result.complete).toBe(true);
    const [slow, fast] = result.sources as [SimSource, SimSource];
    expect(slow.delivered / 400).toBeGreaterThan(0.12);
    expect(slow.delivered / 400).toBeLessThan(0.28);
    expect(fast.delivered + slow.delivered).toBe(400);
    // Alone, the fast source needs 400 MiB / 40,000 B/ms ≈ 10,486 ms; together they need about 8,389.
    expect(result.ms).toBeLessThan(9500);
  });
});
