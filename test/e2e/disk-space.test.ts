import { afterAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually, lsJson, runFtx, sha256Hex, startMaster, startServer, stopAll, tempDir } from "../support/ftx-process.ts";
import { canMountSmallFileSystem, smallFileSystem } from "../support/small-file-system.ts";

afterAll(stopAll);

const canMount = canMountSmallFileSystem();

test.skipIf(!canMount)("a file larger than the free space fails at once with what it needs; the other files still arrive", async () => {
  const share = tempDir();
  const work = tempDir();
  const out = join(work.path, "small-disk");
  const unmount = smallFileSystem(out)!;
  try {
    writeFileSync(join(share.path, "big.bin"), Buffer.alloc(16 << 20, 7));
    writeFileSync(join(share.path, "note.txt"), "fits");
    const { address } = await startMaster();
    await startServer(share.path, address);
    await eventually(async () => (await lsJson(address)).length === 2, 5000, "both listed");

    const started = performance.now();
    const r = await runFtx(["fetch", address, "big.bin", "note.txt", "-o", out, "--json"]);
    const seconds = (performance.now() - started) / 1000;
    expect(r.exitCode).toBe(1);
    const results = JSON.parse(r.stdout) as Array<{ name: string; ok: boolean; error: string | null; sha256: string | null }>;
    expect(results[0]!.ok).toBe(false);
    expect(results[0]!.error).toContain("not enough free disk space (16.0 MiB needed)");
    expect(r.stderr).toContain("big.bin");
    expect(r.stderr).not.toMatch(/\n\s+at /); // one line, no stack trace
    expect(r.stderr).not.toContain("kept in"); // there is no part file to resume from
    expect(results[1]).toMatchObject({ name: "note.txt", ok: true, sha256: sha256Hex("fits") });
    expect(readFileSync(join(out, "note.txt"), "utf8")).toBe("fits");
    // Nothing of the big file is left to fill the disk, and it failed before fetching (no retries).
    expect(readdirSync(out).sort()).toEqual(["note.txt"]);
    expect(existsSync(join(out, "big.bin.ftx-part"))).toBe(false);
    expect(seconds).toBeLessThan(10);
  } finally {
    unmount();
    work.cleanup();
    share.cleanup();
  }
});
