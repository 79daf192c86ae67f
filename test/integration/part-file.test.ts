import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { FtxError } from "../../src/errors.ts";
import { pieceCountFor } from "../../src/files/core/pieces.ts";
import { PartFile } from "../../src/transfer/part-file.ts";
import { tempDir } from "../support/ftx-process.ts";
import { canMountSmallFileSystem, smallFileSystem } from "../support/small-file-system.ts";

/** Failures of the writer thread reach the main thread as codes (an Error's class does not cross it). */
const canMount = canMountSmallFileSystem();
const dirs: { cleanup(): void }[] = [];
afterAll(() => dirs.forEach((d) => d.cleanup()));

async function openError(path: string, size: number): Promise<FtxError> {
  const hashes = new Uint8Array(32 * Math.max(1, pieceCountFor(size)));
  try {
    const part = await PartFile.open(path, size, "00".repeat(32), hashes);
    await part.close();
  } catch (err) {
    return err as FtxError;
  }
  throw new Error("PartFile.open succeeded");
}

describe("PartFile errors from the writer thread", () => {
  test.skipIf(!canMount)("a disk too small for the file is E_NO_SPACE, and the new part file goes", async () => {
    const d = tempDir();
    dirs.push(d);
    const at = join(d.path, "small");
    const unmount = smallFileSystem(at)!;
    try {
      const e = await openError(join(at, "big.bin"), 16 << 20);
      expect(e).toBeInstanceOf(FtxError);
      expect(e.code).toBe("E_NO_SPACE");
      expect(existsSync(join(at, "big.bin.ftx-part"))).toBe(false);
    } finally {
      unmount();
    }
  });

  test("a part file that cannot be created is E_IO", async () => {
    const d = tempDir();
    dirs.push(d);
    const e = await openError(join(d.path, "no-such-folder", "f.bin"), 1000);
    expect(e).toBeInstanceOf(FtxError);
    expect(e.code).toBe("E_IO");
  });
});
