import { beforeAll, describe, expect, test } from "bun:test";
import { FtxError, ProtocolError } from "../../../../src/errors.ts";
import { BlockDecoder, BlockEncoder, type BlockCodeOptions, MAX_BLOCK_DATA, MAX_BLOCK_REPAIR, repairCoefficient } from "../../../../src/transfer/core/fec/block-code.ts";
import { simdAvailable } from "../../../../src/transfer/core/fec/row-workspace.ts";
import { Rng } from "../../../support/random.ts";

interface Block {
  data: Uint8Array[];
  repairs: Uint8Array[];
}

/** k segments of `segmentBytes`, the last `lastBytes` long, and their m repairs. */
let options: BlockCodeOptions = {};

function encode(rng: Rng, k: number, m: number, segmentBytes: number, lastBytes: number, encoder = new BlockEncoder(k, m, segmentBytes, options)): Block {
  const data = Array.from({ length: k }, (_, i) => rng.bytes(i === k - 1 ? lastBytes : segmentBytes));
  // added in a random order: the code must not depend on it
  const order = data.map((_, i) => i).sort(() => rng.next() - 0.5);
  for (const i of order) encoder.addData(i, data[i]!);
  const repairs = Array.from({ length: m }, (_, j) => {
    const out = new Uint8Array(segmentBytes + 10);
    return out.slice(0, encoder.repair(j, out));
  });
  return { data, repairs };
}

/** Feeds the decoder every segment not in `lost` (indices 0…k−1 data, k…k+m−1 repairs) and recovers. */
function decode(block: Block, lost: Set<number>, segmentBytes: number, decoder?: BlockDecoder): Uint8Array[] | undefined {
  const k = block.data.length;
  const m = block.repairs.length;
  const dec = decoder ?? new BlockDecoder(k, m, segmentBytes, block.data[k - 1]!.byteLength, options);
  for (let i = 0; i < k; i++) if (!lost.has(i)) expect(dec.addData(i, block.data[i]!)).toBe(true);
  for (let j = 0; j < m; j++) if (!lost.has(k + j)) expect(dec.addRepair(j, block.repairs[j]!)).toBe(true);
  const recovered = dec.recover();
  if (recovered === undefined) {
    expect(dec.canRecover()).toBe(false);
    return undefined;
  }
  expect(dec.missingCount).toBe(0);
  const result = block.data.map((d) => d);
  const missingData = [...lost].filter((i) => i < k).sort((a, b) => a - b);
  expect(recovered.map((r) => r.index)).toEqual(missingData);
  for (const r of recovered) result[r.index] = r.bytes.slice();
  return result;
}

function subsets(n: number, maxSize: number): number[][] {
  const out: number[][] = [[]];
  for (let i = 0; i < n; i++) {
    for (const s of out.slice()) if (s.length < maxSize) out.push([...s, i]);
  }
  return out;
}

for (const kernel of ["simd", "js"] as const) {
describe(`systematic block code (Cauchy, row 0 = XOR), ${kernel} rows`, () => {
  beforeAll(() => {
    options = { kernel };
  });

  test("every pattern of at most m erasures among k + m is recovered exactly, k ≤ 8, m ≤ 3", () => {
    const rng = new Rng(1);
    let patterns = 0;
    for (let k = 1; k <= 8; k++) {
      for (let m = 1; m <= 3; m++) {
        const segmentBytes = 13; // not a multiple of 4
        const lastBytes = k === 1 ? 13 : 1 + rng.int(13);
        const block = encode(rng, k, m, segmentBytes, lastBytes);
        const dec = new BlockDecoder(k, m, segmentBytes, lastBytes, options);
        for (const lost of subsets(k + m, m)) {
          dec.reset(k, m, lastBytes); // reused, as the receiver will
          expect(decode(block, new Set(lost), segmentBytes, dec)).toEqual(block.data);
          patterns++;
        }
      }
    }
    expect(patterns).toBe(1054); // Σ over k ≤ 8, m ≤ 3, e ≤ m of C(k + m, e)
  });

  test("m + 1 erasures with a data segment among them: canRecover is false and recover gives undefined", () => {
    const rng = new Rng(2);
    for (let k = 1; k <= 8; k++) {
      for (let m = 1; m <= 3; m++) {
        const block = encode(rng, k, m, 9, 9);
        const dec = new BlockDecoder(k, m, 9, undefined, options);
        for (const lost of subsets(k + m, m + 1)) {
          if (lost.length !== m + 1 || !lost.some((i) => i < k)) continue;
          dec.reset();
          expect(decode(block, new Set(lost), 9, dec)).toBeUndefined();
          expect(dec.missingCount).toBeGreaterThan(dec.repairsReceived);
        }
      }
    }
  });

  test("random erasures in large blocks, up to 128 + 32, with 1374-byte segments (seeded)", () => {
    const seed = Number(process.env.FEC_SEED ?? 12345);
    const rng = new Rng(seed);
    for (let round = 0; round < 60; round++) {
      const k = round < 50 ? 1 + rng.int(64) : MAX_BLOCK_DATA;
      const m = round < 50 ? 1 + rng.int(16) : MAX_BLOCK_REPAIR;
      const segmentBytes = round < 50 ? 1374 : 37;
      const block = encode(rng, k, m, segmentBytes, 1 + rng.int(segmentBytes));
      const lost = new Set<number>();
      const erasures = rng.int(m + 1);
      while (lost.size < erasures) lost.add(rng.int(k + m));
      const result = decode(block, lost, segmentBytes);
      if (result === undefined) throw new Error(`seed ${seed} round ${round}: not recovered`);
      expect(result).toEqual(block.data);
    }
  });

  test("with m = 1 the repair is the XOR of the zero-padded segments", () => {
    const rng = new Rng(3);
    for (const [k, last] of [[1, 7], [5, 100], [32, 1], [32, 1374]] as const) {
      const block = encode(rng, k, 1, 1374, last);
      const xor = new Uint8Array(k === 1 ? last : 1374);
      for (const d of block.data) for (let i = 0; i < d.length; i++) xor[i]! ^= d[i]!;
      expect(block.repairs[0]).toEqual(xor);
    }
    for (let i = 0; i < MAX_BLOCK_DATA; i++) expect(repairCoefficient(0, i)).toBe(1);
  });

  test("a block's repairs do not depend on m: repair j is the same whether m is 2 or 8", () => {
    const data = Array.from({ length: 10 }, (_, i) => new Rng(i).bytes(50));
    const repairs = (m: number) => {
      const enc = new BlockEncoder(10, m, 50, options);
      data.forEach((d, i) => enc.addData(i, d));
      return Array.from({ length: 2 }, (_, j) => {
        const out = new Uint8Array(50);
        enc.repair(j, out);
        return out;
      });
    };
    expect(repairs(2)).toEqual(repairs(8));
  });

  test("encoder and decoder are reused across blocks of different shapes, the last one short", () => {
    const rng = new Rng(4);
    const enc = new BlockEncoder(16, 2, 100, options);
    const dec = new BlockDecoder(16, 2, 100, undefined, options);
    const shapes = [
      [16, 2, 100],
      [16, 4, 100],
      [16, 1, 100],
      [3, 2, 41],
    ] as const;
    for (const [k, m, last] of shapes) {
      enc.reset(k, m);
      dec.reset(k, m, last);
      const block = encode(rng, k, m, 100, last, enc);
      expect(decode(block, new Set([0, k - 1].slice(0, m)), 100, dec)).toEqual(block.data);
    }
  });

  test("a shorter segment added before a longer one still pads with zeros", () => {
    const enc = new BlockEncoder(2, 2, 8, options);
    const short = Uint8Array.of(1, 2, 3);
    const long = Uint8Array.of(9, 9, 9, 9, 9, 9, 9, 9);
    enc.addData(1, short);
    enc.addData(0, long);
    const r0 = new Uint8Array(8);
    expect(enc.repair(0, r0)).toBe(8);
    expect([...r0]).toEqual([8, 11, 10, 9, 9, 9, 9, 9]);
    const r1 = new Uint8Array(8);
    enc.repair(1, r1);
    const dec = new BlockDecoder(2, 2, 8, 3, options);
    dec.addRepair(0, r0);
    dec.addRepair(1, r1);
    expect(dec.recover()?.map((r) => [...r.bytes])).toEqual([[...long], [...short]]);
  });

  test("the encoder refuses misuse with RangeError", () => {
    const enc = new BlockEncoder(4, 2, 10, options);
    expect(() => enc.repair(0, new Uint8Array(10))).toThrow(RangeError); // block not complete
    expect(() => enc.addData(4, new Uint8Array(10))).toThrow(RangeError);
    expect(() => enc.addData(0, new Uint8Array(11))).toThrow(RangeError);
    enc.addData(0, new Uint8Array(10));
    expect(() => enc.addData(0, new Uint8Array(10))).toThrow(RangeError);
    for (let i = 1; i < 4; i++) enc.addData(i, new Uint8Array(10));
    expect(() => enc.repair(2, new Uint8Array(10))).toThrow(RangeError);
    expect(() => enc.repair(0, new Uint8Array(9))).toThrow(RangeError);
    expect(() => new BlockEncoder(0, 1, 10, options)).toThrow(RangeError);
    expect(() => new BlockEncoder(MAX_BLOCK_DATA + 1, 1, 10, options)).toThrow(RangeError);
    expect(() => new BlockEncoder(4, MAX_BLOCK_REPAIR + 1, 10, options)).toThrow(RangeError);
  });

  test("duplicates are ignored: the decoder keeps the first copy", () => {
    const rng = new Rng(5);
    const block = encode(rng, 4, 1, 20, 20);
    const dec = new BlockDecoder(4, 1, 20, undefined, options);
    expect(dec.addData(1, block.data[1]!)).toBe(true);
    expect(dec.addData(1, new Uint8Array(20))).toBe(false);
    expect(dec.addRepair(0, block.repairs[0]!)).toBe(true);
    expect(dec.addRepair(0, new Uint8Array(20))).toBe(false);
    dec.addData(0, block.data[0]!);
    dec.addData(3, block.data[3]!);
    expect(dec.recover()).toEqual([{ index: 2, bytes: block.data[2]! }]);
  });

  test("garbage indices and lengths: the decoder throws only ProtocolError or returns false, and still decodes", () => {
    const rng = new Rng(Number(process.env.FUZZ_SEED ?? 99));
    const k = 8;
    const m = 3;
    const block = encode(rng, k, m, 64, 30);
    const weird = [-1, k, m, 1.5, NaN, Infinity, -Infinity, 2 ** 53, -0, 255, 256];
    const outcomes = { protocolError: 0, duplicate: 0, added: 0 };
    for (let round = 0; round < 200; round++) {
      const dec = new BlockDecoder(k, m, 64, 30, options);
      const lost = new Set<number>();
      while (lost.size < m) lost.add(rng.int(k + m));
      for (let step = 0; step < 30; step++) {
        const isRepair = rng.chance(0.4);
        const index = rng.chance(0.5) ? rng.pick(weird) : rng.int(isRepair ? m : k);
        const bytes = rng.chance(0.5) ? rng.bytes(rng.pick([0, 1, 29, 30, 31, 63, 64, 65, 2000])) : isRepair ? block.repairs[index]! : block.data[index]!;
        if (bytes === undefined) continue;
        const realOne = Number.isInteger(index) && (isRepair ? block.repairs[index] === bytes : block.data[index] === bytes);
        if (realOne && lost.has(isRepair ? k + index : index)) continue;
        try {
          const fresh = isRepair ? dec.addRepair(index, bytes) : dec.addData(index, bytes);
          outcomes[fresh ? "added" : "duplicate"]++;
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
          expect((err as FtxError).code).toBe("E_PROTOCOL");
          outcomes.protocolError++;
        }
        expect(typeof dec.canRecover()).toBe("boolean");
      }
      // garbage of the right length is indistinguishable from data (the file's SHA-256 catches it);
      // recovery must still run to completion and return segments of the right lengths
      const recovered = dec.recover();
      if (recovered) for (const r of recovered) expect(r.bytes.byteLength).toBe(dec.dataBytes(r.index));
      else expect(dec.canRecover()).toBe(false);
    }
    expect(outcomes.protocolError).toBeGreaterThan(100);
    expect(outcomes.added).toBeGreaterThan(100);
    expect(outcomes.duplicate).toBeGreaterThan(10);
  });
});
}

describe("row kernels", () => {
  test("the coefficients and a repair of docs/fec.md's example (the wire depends on them)", () => {
    const row = (j: number) => Array.from({ length: 8 }, (_, i) => repairCoefficient(j, i));
    expect(row(1)).toEqual([0x7f, 0xfc, 0x7e, 0xfe, 0xe9, 0x74, 0x43, 0xd5]);
    expect(row(3)).toEqual([0x80, 0x1d, 0x83, 0x1b, 0xc7, 0x60, 0x24, 0x9e]);
    for (const kernel of ["simd", "js"] as const) {
      const enc = new BlockEncoder(3, 3, 4, { kernel });
      [Uint8Array.of(1, 2, 3, 4), Uint8Array.of(0x10, 0x20, 0x30, 0x40), Uint8Array.of(0xff, 0x80)].forEach((d, i) => enc.addData(i, d));
      const hex = [0, 1, 2].map((j) => {
        const out = new Uint8Array(4);
        enc.repair(j, out);
        return Buffer.from(out).toString("hex");
      });
      expect(hex).toEqual(["eea23344", "7bf90c10", "5431e69e"]);
    }
  });

  test("Bun runs the WebAssembly SIMD rows, and they give the same repairs as the JavaScript ones", () => {
    expect(simdAvailable()).toBe(true);
    const rng = new Rng(6);
    const data = Array.from({ length: 20 }, (_, i) => rng.bytes(i === 19 ? 77 : 1374));
    const repairs = (kernel: "simd" | "js") => {
      const enc = new BlockEncoder(20, 8, 1374, { kernel });
      data.forEach((d, i) => enc.addData(i, d.subarray(0)));
      return Array.from({ length: 8 }, (_, j) => {
        const out = new Uint8Array(1374);
        enc.repair(j, out);
        return out;
      });
    };
    expect(repairs("simd")).toEqual(repairs("js"));
  });
});
