import { describe, expect, test } from "bun:test";
import { MAX_PIECES, MIN_PIECE_BYTES, PieceHasher, pieceBytesFor, pieceCountFor, piecesRootOf } from "../../../src/files/core/pieces.ts";
import { decodeSlot, encodeSlot, hasBit, newBitmap, setBit, SLOT_BYTES } from "../../../src/transfer/part-trailer.ts";
import { Rng } from "../../support/random.ts";

const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest() as Uint8Array;

describe("pieces", () => {
  test("piece size: at least 1 MiB, a power of two, never more than 1,024 pieces", () => {
    expect(pieceBytesFor(0)).toBe(MIN_PIECE_BYTES);
    expect(pieceBytesFor(2 ** 30)).toBe(MIN_PIECE_BYTES);
    expect(pieceBytesFor(2 ** 30 + 1)).toBe(2 * MIN_PIECE_BYTES);
    expect(pieceBytesFor(8 * 2 ** 30)).toBe(8 * MIN_PIECE_BYTES);
    const rng = new Rng(5);
    for (let i = 0; i < 1000; i++) {
      const size = Math.floor(rng.next() * 2 ** 45);
      expect(pieceCountFor(size)).toBeLessThanOrEqual(MAX_PIECES);
      expect(Math.log2(pieceBytesFor(size)) % 1).toBe(0);
    }
  });

  test("one pass gives the file's SHA-256 and the root of its piece hashes, whatever the chunking", () => {
    const rng = new Rng(6);
    for (const size of [0, 1, 1000, MIN_PIECE_BYTES - 1, MIN_PIECE_BYTES, MIN_PIECE_BYTES + 1, 3 * MIN_PIECE_BYTES + 12345]) {
      const data = rng.bytes(size);
      const hasher = new PieceHasher(size);
      for (let at = 0; at < size; ) {
        const n = 1 + rng.int(300_000);
        hasher.update(data.subarray(at, at + n));
        at += n;
      }
      const { sha256, piecesRoot } = hasher.finish();
      expect(sha256).toBe(Buffer.from(sha(data)).toString("hex"));
      const list: Uint8Array[] = [];
      for (let at = 0; at < size; at += MIN_PIECE_BYTES) list.push(sha(data.subarray(at, at + MIN_PIECE_BYTES)));
      expect(piecesRoot).toBe(piecesRootOf(new Uint8Array(Buffer.concat(list))));
      expect(Buffer.from(hasher.pieceHashes).equals(Buffer.concat(list))).toBe(true);
    }
  });

  test("a stream of the wrong length is refused, not hashed into a wrong answer", () => {
    const short = new PieceHasher(10);
    short.update(new Uint8Array(9));
    expect(() => short.finish()).toThrow();
    const long = new PieceHasher(3 * MIN_PIECE_BYTES);
    long.update(new Uint8Array(3 * MIN_PIECE_BYTES + 1));
    expect(() => long.finish()).toThrow();
  });
});

describe("part-file trailer", () => {
  const content = sha(new Uint8Array([1, 2, 3]));

  test("a slot round-trips; another size, piece size or content is not this part's", () => {
    const bits = newBitmap();
    for (const i of [0, 5, 1023]) setBit(bits, i, true);
    const slot = encodeSlot({ generation: 7, size: 5 * 2 ** 32, pieceBytes: 8 << 20, sha256: content, verified: bits });
    expect(slot.byteLength).toBe(SLOT_BYTES);
    const back = decodeSlot(slot, 5 * 2 ** 32, 8 << 20, content)!;
    expect(back.generation).toBe(7);
    expect([0, 1, 5, 1023].map((i) => hasBit(back.verified, i))).toEqual([true, false, true, true]);
    expect(decodeSlot(slot, 5 * 2 ** 32 + 1, 8 << 20, content)).toBeUndefined();
    expect(decodeSlot(slot, 5 * 2 ** 32, 4 << 20, content)).toBeUndefined();
    expect(decodeSlot(slot, 5 * 2 ** 32, 8 << 20, sha(new Uint8Array([9])))).toBeUndefined();
  });

  test("fuzz: any torn or flipped slot (10,000 mutations) is rejected, never misread", () => {
    const rng = new Rng(7);
    const bits = newBitmap();
    for (let i = 0; i < 100; i++) setBit(bits, rng.int(1024), true);
    const good = encodeSlot({ generation: 3, size: 123456789, pieceBytes: 1 << 20, sha256: content, verified: bits });
    for (let i = 0; i < 10_000; i++) {
      const bad = good.slice();
      if (rng.chance(0.3)) bad.fill(0, rng.int(SLOT_BYTES)); // torn: the tail never reached the disk
      else for (let k = 1 + rng.int(4); k > 0; k--) bad[rng.int(SLOT_BYTES)]! ^= 1 + rng.int(255);
      if (Buffer.from(bad).equals(Buffer.from(good))) continue;
      expect(decodeSlot(bad, 123456789, 1 << 20, content)).toBeUndefined();
    }
  });
});
