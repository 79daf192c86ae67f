import { describe, expect, test } from "bun:test";
import { closeSync, ftruncateSync, fstatSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { preallocate } from "../../../src/files/preallocate.ts";

describe("preallocate", () => {
  test.skipIf(process.platform !== "linux")("reserves a sparse file's blocks and keeps its size", () => {
    const dir = mkdtempSync(join(tmpdir(), "ftx-prealloc-"));
    const fd = openSync(join(dir, "f.bin"), "w+");
    try {
      ftruncateSync(fd, (8 << 20) + 100);
      expect(fstatSync(fd).blocks * 512).toBeLessThan(1 << 20);
      expect(preallocate(fd, 8 << 20)).toBe("reserved");
      expect(fstatSync(fd).blocks * 512).toBeGreaterThanOrEqual(8 << 20);
      expect(fstatSync(fd).size).toBe((8 << 20) + 100);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a descriptor that cannot be reserved is 'unsupported' (write as usual), not a full disk", () => {
    expect(preallocate(-1, 4096)).toBe("unsupported");
    expect(preallocate(0, 0)).toBe("unsupported");
  });
});
