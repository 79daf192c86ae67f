import { describe, expect, test } from "bun:test";
import { admit, type ConnView } from "../../../src/index/core/admission.ts";
import { ListingJob } from "../../../src/index/core/listing.ts";
import { LogLimiter } from "../../../src/index/core/log-limiter.ts";
import { compilePattern } from "../../../src/index/core/pattern.ts";
import { Rng } from "../../support/random.ts";

describe("ListingJob", () => {
  test("matches in slices of bounded work and hands the matches out sorted", () => {
    const rng = new Rng(7);
    const names = Array.from({ length: 5000 }, (_, i) => `d${rng.int(50)}/f${i}.${rng.pick(["txt", "bin"])}`);
    const job = new ListingJob(1, names.values(), compilePattern("**/*.txt"));
    let slices = 0;
    while (job.advance(2000) === "matching") slices++;
    expect(slices).toBeGreaterThan(10); // the work came in many small pieces
    const out: string[] = [];
    for (let n = job.next(); n !== undefined; n = job.next()) out.push(n);
    expect(out).toEqual(names.filter((n) => n.endsWith(".txt")).sort());
  });

  test("a pattern that costs more than its budget is given up, not run to the end", () => {
    const names = Array.from({ length: 10_000 }, () => "a".repeat(300));
    const job = new ListingJob(1, names.values(), compilePattern("*" + "a".repeat(200) + "b*"), 1_000_000);
    let state = job.advance(100_000);
    while (state === "matching") state = job.advance(100_000);
    expect(state).toBe("too-costly");
    expect(job.steps).toBeLessThan(1_000_000 + 200_000);
    expect(job.next()).toBeUndefined();
  });
});

describe("admission", () => {
  const view = (id: number, address: string, unauthenticated: boolean, idleClient = false, silent = false): ConnView => ({ id, address, unauthenticated, idleClient, silent });
  const limits = { maxConnections: 4, maxConnectionsPerAddress: 3 };

  test("room left: admitted", () => {
    expect(admit([view(1, "a", true)], "a", limits)).toEqual({ kind: "admit" });
  });

  test("an address at its limit: its oldest unauthenticated connection makes room, then its oldest idle client", () => {
    expect(admit([view(1, "a", false), view(2, "a", true), view(3, "a", true)], "a", limits)).toMatchObject({ kind: "evict-then-admit", id: 2 });
    expect(admit([view(1, "a", false), view(2, "a", false, true), view(3, "a", false)], "a", limits)).toMatchObject({ kind: "evict-then-admit", id: 2 });
    expect(admit([view(1, "a", false), view(2, "a", false), view(3, "a", false)], "a", limits)).toMatchObject({ kind: "refuse" });
  });

  test("a connection that has sent nothing goes before one that is in its handshake, however young", () => {
    expect(admit([view(1, "a", true), view(2, "a", true, false, true), view(3, "a", false)], "a", limits)).toMatchObject({ kind: "evict-then-admit", id: 2 });
  });

  test("a full master closes the oldest idle unauthenticated connection anywhere, never a file server or a busy client", () => {
    expect(admit([view(1, "a", false), view(2, "b", false), view(3, "c", true), view(4, "c", true)], "d", limits)).toMatchObject({ kind: "evict-then-admit", id: 3 });
    expect(admit([view(1, "a", false), view(2, "b", false), view(3, "c", false), view(4, "c", false)], "d", limits)).toMatchObject({ kind: "refuse" });
  });
});

describe("LogLimiter", () => {
  test("one line per kind per interval, the next one saying how many were held back", () => {
    const l = new LogLimiter(10_000);
    expect(l.admit("busy", "refusing x", 0)).toBe("refusing x");
    for (let i = 1; i <= 500; i++) expect(l.admit("busy", "refusing x", i)).toBeUndefined();
    expect(l.admit("auth", "auth failed", 600)).toBe("auth failed");
    expect(l.admit("busy", "refusing y", 10_000)).toBe("refusing y (and 500 more like it in the last 10s)");
  });
});
