import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pieceBytesFor } from "../../src/files/core/pieces.ts";
import { PartFile } from "../../src/transfer/part-file.ts";
import { tempDir } from "../support/ftx-process.ts";
import { Rng } from "../support/random.ts";

/**
 * A fresh part file opened before its piece hashes are known (they are fetched beside the first
 * range): pieces at the hash frontier are taken for the whole file's check; pieces elsewhere wait for
 * the hashes and are judged when they come.
 */
const dirs: { cleanup(): void }[] = [];
afterAll(() => dirs.forEach((d) => d.cleanup()));

const SIZE = 4 * (1 << 20) - 1000; // four pieces, the last short
const PIECE = pieceBytesFor(SIZE);

function content(seed: number): { bytes: Uint8Array; hashes: Uint8Array; sha256: string } {
  const bytes = new Uint8Array(SIZE);
  const rng = new Rng(seed);
  for (let i = 0; i < SIZE; i++) bytes[i] = rng.next() * 256;
  const hashes = new Uint8Array(32 * Math.ceil(SIZE / PIECE));
  for (let i = 0; i * PIECE < SIZE; i++) hashes.set(new Bun.CryptoHasher("sha256").update(bytes.subarray(i * PIECE, Math.min(SIZE, (i + 1) * PIECE))).digest() as Uint8Array, 32 * i);
  return { bytes, hashes, sha256: new Bun.CryptoHasher("sha256").update(bytes).digest("hex") };
}

/** Verdicts as the part reports them, awaited one report at a time. */
function verdicts(part: PartFile) {
  const queue: { verified: number[]; failed: number[] }[] = [];
  let wake: (() => void) | undefined;
  part.onPieces = (verified, failed) => {
    queue.push({ verified: [...verified], failed: [...failed] });
    wake?.();
  };
  return async (): Promise<{ verified: number[]; failed: number[] }> => {
    while (queue.length === 0) await new Promise<void>((r) => (wake = r));
    return queue.shift()!;
  };
}

function piece(bytes: Uint8Array, i: number): Uint8Array {
  return bytes.subarray(i * PIECE, Math.min(SIZE, (i + 1) * PIECE));
}

describe("a part file whose piece hashes come after its first bytes", () => {
  test("frontier pieces are taken at once, others wait for the hashes and are judged by them; the file commits whole", async () => {
    const d = tempDir();
    dirs.push(d);
    const { bytes, hashes, sha256 } = content(1);
    const dest = join(d.path, "f.bin");
    const part = await PartFile.open(dest, SIZE, sha256, undefined);
    part.verifyEachPiece = true; // several sources: would check each piece, but cannot yet
    const next = verdicts(part);

    const first = part.stream(0);
    first.append(piece(bytes, 0), 0, PIECE);
    first.flush();
    expect(await next()).toEqual({ verified: [0], failed: [] });

    // Pieces 2 (good) and 3 (one byte wrong) away from the frontier: nothing is said of them yet.
    const bad = piece(bytes, 3).slice();
    bad[17]! ^= 1;
    const other = part.stream(2 * PIECE);
    other.append(piece(bytes, 2), 0, PIECE);
    other.append(bad, 0, bad.byteLength);
    other.flush();
    await Bun.sleep(50);
    expect(part.isVerified(2)).toBe(false);
    expect(part.isVerified(3)).toBe(false);

    part.setHashes(hashes);
    expect(await next()).toEqual({ verified: [2], failed: [3] });

    // Now every piece is checked as it completes.
    const again = part.stream(PIECE);
    again.append(piece(bytes, 1), 0, PIECE);
    again.flush();
    expect(await next()).toEqual({ verified: [1], failed: [] });
    const last = part.stream(3 * PIECE);
    last.append(piece(bytes, 3), 0, SIZE - 3 * PIECE);
    last.flush();
    expect(await next()).toEqual({ verified: [3], failed: [] });

    const result = await part.commit(sha256);
    expect(result).toEqual({ sha256 });
    expect(new Bun.CryptoHasher("sha256").update(readFileSync(dest)).digest("hex")).toBe(sha256);
  });

  test("a bad piece taken unchecked at the frontier is named by the commit's audit once the hashes are there", async () => {
    const d = tempDir();
    dirs.push(d);
    const { bytes, hashes, sha256 } = content(2);
    const dest = join(d.path, "g.bin");
    const part = await PartFile.open(dest, SIZE, sha256, undefined);
    part.verifyEachPiece = false;
    const next = verdicts(part);
    const damaged = bytes.slice();
    damaged[PIECE + 5]! ^= 0x40;
    const s = part.stream(0);
    s.append(damaged, 0, SIZE);
    s.flush();
    const seen: number[] = [];
    while (seen.length < 4) seen.push(...(await next()).verified);
    expect(seen.sort()).toEqual([0, 1, 2, 3]);
    part.setHashes(hashes);
    const result = await part.commit(sha256);
    expect(result).toEqual({ badPieces: [1] });
    const fix = part.stream(PIECE);
    fix.append(piece(bytes, 1), 0, PIECE);
    fix.flush();
    expect(await next()).toEqual({ verified: [1], failed: [] });
    expect(await part.commit(sha256)).toEqual({ sha256 });
    expect(new Bun.CryptoHasher("sha256").update(readFileSync(dest)).digest("hex")).toBe(sha256);
  });
});
