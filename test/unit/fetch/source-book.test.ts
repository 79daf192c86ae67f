import { describe, expect, test } from "bun:test";
import { FtxError, type FtxErrorCode } from "../../../src/errors.ts";
import type { ListEntry } from "../../../src/index/core/messages.ts";
import {
  BUSY_RETRY_MS,
  COOLDOWN_FIRST_MS,
  COOLDOWN_MAX_MS,
  LOOKUP_EVERY_MS,
  RATE_TIME_CONSTANT_MS,
  SourceBook,
  sessionErrorAction,
} from "../../../src/fetch/core/source-book.ts";
import { Rng } from "../../support/random.ts";

const SHA = "ab".repeat(32);
const ROOT = "cd".repeat(32);

function book(servers: string[], opts: { now?: number; retryForMs?: number; random?: () => number } = {}): SourceBook {
  return new SourceBook(servers, opts.now ?? 0, { sha256: SHA, piecesRoot: ROOT, retryForMs: opts.retryForMs ?? 15_000, random: opts.random ?? (() => 0.5) });
}

function fail(b: SourceBook, id: number, now: number, code: FtxErrorCode = "E_TIMEOUT", message = `file server ${b.source(id)!.server} timed out`) {
  b.sessionStarted(id, now);
  return b.sessionEnded(id, now, { kind: "failed", error: new FtxError(code, message) });
}

function entry(servers: string[], over: Partial<ListEntry> = {}): ListEntry {
  return { name: "f.bin", size: 1, sha256: SHA, piecesRoot: ROOT, servers, ...over } as ListEntry;
}

describe("SourceBook: rests", () => {
  test("each failure in a row doubles the rest from 0.5 s, up to 4 s; a completed session resets it", () => {
    const b = book(["a:1"]);
    const rests: number[] = [];
    let now = 0;
    for (let i = 0; i < 6; i++) {
      const v = fail(b, 0, now);
      expect(v.kind).toBe("rested");
      if (v.kind !== "rested") return;
      expect(v.failures).toBe(i + 1);
      rests.push(v.restUntil - now);
      // Not usable until the rest is over, usable exactly then.
      expect(b.usable(0, v.restUntil - 1)).toBe(false);
      expect(b.usable(0, v.restUntil)).toBe(true);
      now = v.restUntil;
      b.handleTimeout(now);
    }
    expect(rests).toEqual([COOLDOWN_FIRST_MS, 1000, 2000, COOLDOWN_MAX_MS, COOLDOWN_MAX_MS, COOLDOWN_MAX_MS]);
    b.sessionStarted(0, now);
    expect(b.sessionEnded(0, now, { kind: "done" })).toEqual({ kind: "ok" });
    expect(b.source(0)!.failures).toBe(0);
    const v = fail(b, 0, now);
    expect(v.kind === "rested" && v.restUntil - now).toBe(COOLDOWN_FIRST_MS);
  });

  test("a stalled session rests its server like a failure, without making its error the file's", () => {
    const b = book(["a:1"]);
    b.sessionStarted(0, 0);
    expect(b.sessionEnded(0, 100, { kind: "stalled" })).toEqual({ kind: "rested", restUntil: 100 + COOLDOWN_FIRST_MS, failures: 1 });
    expect(b.lastError).toBeUndefined();
  });

  test("a busy server (E_LIMIT) is asked again after 125–375 ms from the injected jitter, and it is no failure", () => {
    for (const [r, wait] of [
      [0, 125],
      [0.5, 250],
      [0.999999, 375],
    ] as const) {
      const b = book(["a:1"], { random: () => r });
      const v = fail(b, 0, 1000, "E_LIMIT", "file server a:1 is busy");
      expect(v.kind).toBe("busy");
      expect(v.kind === "busy" && v.restUntil - 1000).toBeCloseTo(wait, 3);
      expect(b.source(0)!.failures).toBe(0);
      expect(b.lastError).toBeUndefined();
    }
    const rng = new Rng(7);
    const b = book(["a:1"], { random: () => rng.next() });
    for (let i = 0, now = 0; i < 1000; i++, now += 1000) {
      const v = fail(b, 0, now, "E_LIMIT", "busy");
      const wait = v.kind === "busy" ? v.restUntil - now : NaN;
      expect(wait).toBeGreaterThanOrEqual(BUSY_RETRY_MS / 2);
      expect(wait).toBeLessThan(BUSY_RETRY_MS * 1.5);
    }
  });
});

describe("SourceBook: what an error's code means", () => {
  test("the table: E_LIMIT busy; not found, integrity, auth, protocol ban; anything else rests", () => {
    const codes: FtxErrorCode[] = ["E_USAGE", "E_NOT_FOUND", "E_AUTH", "E_PROTOCOL", "E_TIMEOUT", "E_UNREACHABLE", "E_IO", "E_NO_SPACE", "E_UNSAFE_NAME", "E_AMBIGUOUS", "E_INTEGRITY", "E_LIMIT", "E_CLOSED"];
    expect(Object.fromEntries(codes.map((c) => [c, sessionErrorAction(c)]))).toEqual({
      E_USAGE: "rest",
      E_NOT_FOUND: "ban",
      E_AUTH: "ban",
      E_PROTOCOL: "ban",
      E_TIMEOUT: "rest",
      E_UNREACHABLE: "rest",
      E_IO: "rest",
      E_NO_SPACE: "rest",
      E_UNSAFE_NAME: "rest",
      E_AMBIGUOUS: "rest",
      E_INTEGRITY: "ban",
      E_LIMIT: "busy",
      E_CLOSED: "rest",
    });
  });

  test("a ban keeps its reason, is news once, and outlasts any rest; the file's error is the ban's", () => {
    const b = book(["a:1", "b:2"]);
    const v = fail(b, 0, 0, "E_NOT_FOUND", "file server a:1 does not have f.bin");
    expect(v).toEqual({ kind: "banned", newly: true });
    expect(b.source(0)!.banned).toBe("file server a:1 does not have f.bin");
    expect(b.lastError?.code).toBe("E_NOT_FOUND");
    // A second reason changes nothing and is no news.
    expect(b.ban(0, new FtxError("E_INTEGRITY", "file server a:1 sent bad data"))).toBe(false);
    expect(b.source(0)!.banned).toBe("file server a:1 does not have f.bin");
    expect(fail(b, 0, 10)).toEqual({ kind: "banned", newly: false });
    expect(b.usable(0, 1e9)).toBe(false);
    expect(b.idle(1e9).map((s) => s.server)).toEqual(["b:2"]);
    expect(b.candidateCount).toBe(1);
    expect(b.othersCanHelp(1)).toBe(false);
    expect(b.othersCanHelp(0)).toBe(true);
    // A banned source's rest is no deadline.
    expect(b.pollTimeout()).toBeUndefined();
  });

  test("a ban from outside (a bad piece) during a session: the session's end then reports it banned, not news", () => {
    const b = book(["a:1"]);
    b.sessionStarted(0, 0);
    expect(b.ban(0, new FtxError("E_INTEGRITY", "file server a:1 sent bad data"))).toBe(true);
    expect(b.sessionEnded(0, 5, { kind: "stopped" })).toEqual({ kind: "banned", newly: false });
  });
});

describe("SourceBook: rates", () => {
  test("a steady rate reported at irregular moments is learned; older samples fade with the time constant", () => {
    const b = book(["a:1"]);
    const rng = new Rng(3);
    b.sessionStarted(0, 0);
    let now = 0;
    let bytes = 0;
    // 10 MB/s, reported every 1–400 ms.
    while (now < 5000) {
      const dt = 1 + rng.int(400);
      now += dt;
      bytes += dt * 10_000;
      b.handleBytes(0, bytes, now);
    }
    expect(b.rateOf(0)).toBeCloseTo(10e6, -3);
    // Then it halves: after one time constant, ~63 % of the way there, whether said in one report or in many.
    const one = book(["a:1"]);
    const many = book(["a:1"]);
    for (const x of [one, many]) {
      x.sessionStarted(0, 0);
      x.handleBytes(0, 50e6, 5000);
    }
    expect(one.rateOf(0)).toBeCloseTo(10e6 * (1 - Math.exp(-5000 / RATE_TIME_CONSTANT_MS)), -3);
    one.handleBytes(0, 50e6 + 5e6 * 0.3, 5300);
    for (let t = 5010; t <= 5300; t += 10) many.handleBytes(0, 50e6 + (t - 5000) * 5000, t);
    const expected = 10e6 + (5e6 - 10e6) * (1 - Math.exp(-1));
    expect(one.rateOf(0)).toBeCloseTo(expected, -4);
    expect(many.rateOf(0)).toBeCloseTo(expected, -4);
  });

  test("bytes add up over sessions; a report at the same instant counts its bytes and waits to weigh them", () => {
    const b = book(["a:1"]);
    b.sessionStarted(0, 0);
    expect(b.handleBytes(0, 1000, 100)).toBe(true);
    expect(b.handleBytes(0, 1000, 200)).toBe(false);
    const before = b.rateOf(0);
    expect(b.handleBytes(0, 3000, 200)).toBe(true);
    expect(b.rateOf(0)).toBe(before);
    expect(b.source(0)!.deliveredBytes).toBe(3000);
    b.sessionEnded(0, 200, { kind: "done" });
    // Idle, the rate is kept: it is what the server can do, not what it is doing.
    const kept = b.rateOf(0);
    b.sessionStarted(0, 10_000);
    expect(b.rateOf(0)).toBe(kept);
    b.handleBytes(0, 500, 10_100);
    expect(b.source(0)!.deliveredBytes).toBe(3500);
    expect(b.deliveredBytes).toBe(3500);
    expect(b.deliveringCount).toBe(1);
    // Reports for a source with no session are ignored.
    b.sessionEnded(0, 10_100, { kind: "done" });
    expect(b.handleBytes(0, 99_999, 10_200)).toBe(false);
    expect(b.deliveredBytes).toBe(3500);
  });

  test("the idle sources come fastest first, then fewest failures in a row", () => {
    const b = book(["slow:1", "fast:2", "flaky:3", "new:4"]);
    const run = (id: number, bytes: number) => {
      b.sessionStarted(id, 0);
      b.handleBytes(id, bytes, 1000);
      b.sessionEnded(id, 1000, { kind: "done" });
    };
    run(0, 1e6);
    run(1, 8e6);
    run(2, 1e6);
    fail(b, 2, 1000);
    expect(b.idle(1000).map((s) => s.server)).toEqual(["fast:2", "slow:1", "new:4"]);
    expect(b.idle(1000 + COOLDOWN_FIRST_MS).map((s) => s.server)).toEqual(["fast:2", "slow:1", "flaky:3", "new:4"]);
    expect(b.pickIdle(1000)).toBe(1);
    b.sessionStarted(1, 1000);
    expect(b.pickIdle(1000)).toBe(0);
  });
});

describe("SourceBook: deadlines", () => {
  test("pollTimeout is exactly the earliest armed deadline: rests, the next lookup, the patience", () => {
    const b = book(["a:1", "b:2", "c:3"], { retryForMs: 3000 });
    expect(b.pollTimeout()).toBeUndefined();
    fail(b, 0, 0); // rests until 500; asks the index at once
    fail(b, 1, 100, "E_LIMIT", "busy"); // until 350 (random 0.5)
    // The lookup is wanted and allowed now: its deadline is when it was wanted.
    expect(b.pollTimeout()).toBe(0);
    expect(b.pollLookup(0)).toBe(true);
    // While it is under way it is no deadline; the busy rest is the earliest.
    expect(b.pollTimeout()).toBe(350);
    b.handleLookup([entry(["a:1", "b:2", "c:3"])]);
    b.handleTimeout(350);
    expect(b.pollTimeout()).toBe(500);
    b.handleTimeout(500);
    expect(b.pollTimeout()).toBeUndefined();
    // Nobody can deliver: patience runs from the last progress (0), the index may be asked at 1000.
    b.setStarving(true, 600);
    expect(b.pollTimeout()).toBe(LOOKUP_EVERY_MS);
    expect(b.pollLookup(999)).toBe(false);
    expect(b.pollLookup(1000)).toBe(true);
    b.handleLookup([entry(["a:1", "b:2", "c:3"])]);
    expect(b.pollTimeout()).toBe(3000);
    b.setStarving(true, 1000);
    expect(b.pollTimeout()).toBe(2000);
    b.piecesVerified(1500); // progress moves the patience; the lookup stays next
    expect(b.pollTimeout()).toBe(2000);
    b.pollLookup(2000);
    b.lookupFailed();
    expect(b.pollTimeout()).toBe(4500);
    b.setStarving(false, 2000);
    expect(b.pollTimeout()).toBeUndefined();
    // A rest that ends after a lookup and before the patience is the one.
    b.setStarving(true, 2100);
    fail(b, 2, 2100); // until 2600
    expect(b.pollTimeout()).toBe(2600);
  });

  test("the earliest of many rests, whatever order they were set in; an unlisted source’s rest is none", () => {
    const rng = new Rng(11);
    for (let round = 0; round < 50; round++) {
      const servers = Array.from({ length: 8 }, (_, i) => `s${i}:1`);
      const b = book(servers, { random: () => rng.next() });
      const ends: number[] = [];
      for (let i = 0; i < 8; i++) {
        const now = rng.int(1000);
        const v = rng.chance(0.5) ? fail(b, i, now, "E_LIMIT", "busy") : fail(b, i, now);
        if (v.kind === "busy" || v.kind === "rested") ends.push(v.restUntil);
      }
      b.pollLookup(0); // what the failures asked for is under way
      expect(b.pollTimeout()).toBe(Math.min(...ends));
    }
    const b = book(["a:1", "b:2"]);
    fail(b, 0, 0);
    b.pollLookup(0);
    b.handleLookup([entry(["b:2"])]);
    expect(b.pollTimeout()).toBeUndefined();
  });

  test("--retry-for: nobody can deliver for that long since the last progress, then give up with the last error", () => {
    const b = book(["a:1"], { retryForMs: 2000 });
    b.sessionStarted(0, 0);
    b.handleBytes(0, 100, 400); // progress at 400
    b.sessionEnded(0, 500, { kind: "failed", error: new FtxError("E_UNREACHABLE", "file server a:1 is unreachable") });
    b.setStarving(true, 500);
    expect(b.expired(2399)).toBe(false);
    expect(b.expired(2400)).toBe(true);
    expect(b.giveUpError().code).toBe("E_UNREACHABLE");
    // Not while someone can deliver, however long it has been.
    b.setStarving(false, 9000);
    expect(b.expired(9000)).toBe(false);
    // Without any error, the file fails as unreachable.
    const quiet = book([], { retryForMs: 100 });
    quiet.setStarving(true, 0);
    expect(quiet.expired(100)).toBe(true);
    expect(quiet.giveUpError().code).toBe("E_UNREACHABLE");
  });

  test("the index is asked at most once a second, never twice at once, and a wish made meanwhile is kept", () => {
    const b = book(["a:1"]);
    expect(b.pollLookup(0)).toBe(false); // nobody asked for it
    b.wantLookup(0);
    expect(b.pollLookup(0)).toBe(true);
    b.wantLookup(10);
    expect(b.pollLookup(2000)).toBe(false); // the first is still under way
    b.lookupFailed();
    expect(b.pollTimeout()).toBe(LOOKUP_EVERY_MS);
    expect(b.pollLookup(LOOKUP_EVERY_MS - 1)).toBe(false);
    expect(b.pollLookup(LOOKUP_EVERY_MS)).toBe(true);
    b.handleLookup([]);
    expect(b.pollLookup(5000)).toBe(false); // nothing wanted any more
    // Lookups over 60 s of starving, asked for at every chance: one a second at most.
    const s = book(["a:1"]);
    let asked = 0;
    for (let now = 0; now < 60_000; now += 7) {
      s.setStarving(true, now);
      if (s.pollLookup(now)) {
        asked++;
        s.handleLookup([entry(["a:1"])]);
      }
    }
    expect(asked).toBe(60);
  });
});

describe("SourceBook: the index's answers", () => {
  test("a server no longer listed stops being usable; a new one is added; other content or other pieces name nobody", () => {
    const b = book(["a:1", "b:2"]);
    const added = b.handleLookup([entry(["b:2", "c:3"]), entry(["d:4"], { sha256: "ee".repeat(32) }), entry(["e:5"], { piecesRoot: "ff".repeat(32) })]);
    expect(added).toEqual(["c:3"]);
    expect(b.sources.map((s) => [s.server, s.listed])).toEqual([
      ["a:1", false],
      ["b:2", true],
      ["c:3", true],
    ]);
    expect(b.usable(0, 0)).toBe(false);
    expect(b.idle(0).map((s) => s.server)).toEqual(["b:2", "c:3"]);
    expect(b.idOf("c:3")).toBe(2);
    expect(b.candidateCount).toBe(2);
    // Back in the next answer: usable again, same id, its history kept.
    expect(b.handleLookup([entry(["a:1", "b:2", "c:3"])])).toEqual([]);
    expect(b.usable(0, 0)).toBe(true);
    expect(b.sources.length).toBe(3);
  });
});
