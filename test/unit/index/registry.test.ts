import { describe, expect, test } from "bun:test";
import { MemoryStore } from "../../../src/index/memory-store.ts";
import { DEFAULT_REGISTRY_LIMITS, fileCostBytes, Registry, type RegistryLimits } from "../../../src/index/core/registry.ts";

const A = "a".repeat(64);
const B = "b".repeat(64);
const LEASE = 6000;

function fresh(limits: Partial<RegistryLimits> = { maxFilesPerServer: 1000, maxServers: 10 }) {
  return new Registry(new MemoryStore(), LEASE, { ...DEFAULT_REGISTRY_LIMITS, ...limits });
}

describe("registry", () => {
  test("one entry per (name, sha256) listing every server that holds it", () => {
    const r = fresh();
    r.addServer(1, "127.0.0.1:1000", 0);
    r.addServer(2, "[::1]:2000", 0);
    r.addFiles(1, [{ name: "x", size: 3, sha256: A }], 0);
    r.addFiles(2, [{ name: "x", size: 3, sha256: A }, { name: "y", size: 1, sha256: B }], 0);
    expect(r.list("")).toEqual([
      { name: "x", size: 3, sha256: A, servers: ["127.0.0.1:1000", "[::1]:2000"] },
      { name: "y", size: 1, sha256: B, servers: ["[::1]:2000"] },
    ]);
  });

  test("a changed file replaces its old entry; two contents under one name are two entries", () => {
    const r = fresh();
    r.addServer(1, "h:1", 0);
    r.addServer(2, "h:2", 0);
    r.addFiles(1, [{ name: "x", size: 3, sha256: A }], 0);
    r.addFiles(2, [{ name: "x", size: 3, sha256: A }], 0);
    r.addFiles(1, [{ name: "x", size: 4, sha256: B }], 0);
    expect(r.list("x").map((e) => [e.sha256, e.servers])).toEqual([
      [A, ["h:2"]],
      [B, ["h:1"]],
    ]);
    r.removeFiles(2, ["x"], 0);
    expect(r.list("").map((e) => e.sha256)).toEqual([B]);
  });

  test("unsafe names and bad hashes are refused with a reason; good ones in the same batch are kept", () => {
    const r = fresh();
    r.addServer(1, "h:1", 0);
    const rejected = r.addFiles(
      1,
      [
        { name: "../x", size: 1, sha256: A },
        { name: "/etc/passwd", size: 1, sha256: A },
        { name: "a\u0000b", size: 1, sha256: A },
        { name: "ok", size: 1, sha256: "nothex" },
        { name: "fine/name.txt", size: 1, sha256: A },
      ],
      0,
    );
    expect(rejected.map((x) => x.reason)).toEqual(["'..' segment in name", "absolute name", "control character in name", "invalid sha256"]);
    expect(r.list("").map((e) => e.name)).toEqual(["fine/name.txt"]);
  });

  test("per-server file cap and server cap", () => {
    const r = fresh({ maxFilesPerServer: 2, maxServers: 1 });
    expect(r.addServer(1, "h:1", 0)).toBeUndefined();
    expect(r.addServer(2, "h:2", 0)).toMatch(/maximum of 1 file servers/);
    const rejected = r.addFiles(1, ["a", "b", "c"].map((name) => ({ name, size: 0, sha256: A })), 0);
    expect(rejected).toEqual([{ name: "c", reason: "more than 2 files from one server" }]);
    // Replacing an existing name is not a new file.
    expect(r.addFiles(1, [{ name: "a", size: 1, sha256: B }], 0)).toEqual([]);
  });

  test("leases: silent servers expire exactly at the deadline; traffic renews", () => {
    const r = fresh();
    r.addServer(1, "h:1", 0);
    r.addServer(2, "h:2", 1000);
    r.addFiles(1, [{ name: "x", size: 0, sha256: A }], 0);
    expect(r.pollTimeout()).toBe(LEASE);
    expect(r.expire(LEASE - 1)).toEqual([]);
    r.touch(1, 5000);
    expect(r.expire(LEASE + 1000)).toEqual([2]);
    expect(r.expire(5000 + LEASE - 1)).toEqual([]);
    expect(r.expire(5000 + LEASE)).toEqual([1]);
    expect(r.list("")).toEqual([]);
    expect(r.pollTimeout()).toBeUndefined();
  });

  test("removing a server removes its files at once", () => {
    const r = fresh();
    r.addServer(1, "h:1", 0);
    r.addFiles(1, [{ name: "x", size: 0, sha256: A }], 0);
    r.removeServer(1);
    expect(r.list("")).toEqual([]);
    expect(r.hasServer(1)).toBe(false);
  });

  test("files from a server that never announced are refused", () => {
    const r = fresh();
    expect(r.addFiles(9, [{ name: "x", size: 0, sha256: A }], 0)[0]!.reason).toMatch(/announce first/);
  });

  test("patterns: substring is case-insensitive, glob * stays in a folder, ** crosses", () => {
    const r = fresh();
    r.addServer(1, "h:1", 0);
    r.addFiles(1, ["README.md", "docs/a.txt", "docs/deep/b.txt", "c.TXT"].map((name) => ({ name, size: 0, sha256: A })), 0);
    expect(r.list("readme").map((e) => e.name)).toEqual(["README.md"]);
    expect(r.list("txt").map((e) => e.name)).toEqual(["c.TXT", "docs/a.txt", "docs/deep/b.txt"]);
    expect(r.list("docs/*.txt").map((e) => e.name)).toEqual(["docs/a.txt"]);
    expect(r.list("docs/**/*.txt").map((e) => e.name)).toEqual(["docs/a.txt", "docs/deep/b.txt"]);
    expect(r.list("*.md").map((e) => e.name)).toEqual(["README.md"]);
    expect(r.list("[cd]*").map((e) => e.name)).toEqual(["c.TXT"]);
    expect(r.list("nomatch")).toEqual([]);
  });

  test("a server's list is budgeted in bytes, not only in files; what leaves gives its bytes back", () => {
    const name = (i: number) => `${"n".repeat(200)}/${"m".repeat(200)}/${String(i).padStart(3, "0")}`;
    const perFile = fileCostBytes(name(0));
    const r = fresh({ maxFilesPerServer: 1000, maxServers: 10, maxBytesPerServer: perFile * 3 + 10, maxIndexBytes: perFile * 5 });
    r.addServer(1, "127.0.0.1:1", 0);
    r.addServer(2, "127.0.0.1:2", 0);
    const files = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ name: name(from + i), size: 1, sha256: A }));
    const rejected = r.addFiles(1, files(0, 5), 0);
    expect(rejected.map((x) => x.name)).toEqual([name(3), name(4)]);
    expect(rejected[0]!.reason).toContain("MiB of the index");
    expect(r.bytes).toBe(perFile * 3);
    // Re-sending the same names costs nothing more.
    expect(r.addFiles(1, files(0, 3), 0)).toEqual([]);
    // The index-wide budget: server 2 gets only what is left of it.
    expect(r.addFiles(2, files(10, 3), 0).map((x) => x.reason)).toEqual([expect.stringContaining("index is full")]);
    r.removeFiles(1, [name(0)], 0);
    expect(r.bytes).toBe(perFile * 4);
    r.removeServer(1);
    expect(r.bytes).toBe(perFile * 2);
  });
});
