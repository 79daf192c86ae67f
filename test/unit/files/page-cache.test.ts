import { describe, expect, test } from "bun:test";
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dropFromPageCache } from "../../../src/files/page-cache.ts";
import { residentBytes } from "../../support/page-cache.ts";

const canMeasure = process.platform === "linux" && residentBytes("/proc/self/exe") !== undefined;

describe("dropFromPageCache", () => {
  test.skipIf(!canMeasure)("frees the synced range's pages and leaves the rest cached", () => {
    const dir = mkdtempSync(join(tmpdir(), "ftx-pagecache-"));
    const path = join(dir, "f.bin");
    const fd = openSync(path, "w+");
    try {
      const block = new Uint8Array(1 << 20).fill(1);
      for (let i = 0; i < 32; i++) writeSync(fd, block, 0, block.byteLength, i << 20);
      fdatasyncSync(fd);
      expect(residentBytes(path)).toBe(32 << 20);
      expect(dropFromPageCache(fd, 0, 24 << 20)).toBe(true);
      const left = residentBytes(path)!;
      expect(left).toBeGreaterThanOrEqual(8 << 20);
      expect(left).toBeLessThan(12 << 20);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an empty range, or a platform without posix_fadvise, is a no-op that says so", () => {
    expect(dropFromPageCache(0, 0, 0)).toBe(false);
  });
});
