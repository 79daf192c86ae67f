import { describe, expect, test } from "bun:test";
import { ProtocolError } from "../../../src/errors.ts";
import { ByteReader, ByteWriter, readU64, writeU64 } from "../../../src/util/bytes.ts";

describe("u64 as two u32 words", () => {
  test("big-endian, exact up to 2^53 − 1, the same bytes as DataView's BigInt form", () => {
    const view = new DataView(new ArrayBuffer(8));
    for (const v of [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER]) {
      writeU64(view, 0, v);
      expect(view.getBigUint64(0)).toBe(BigInt(v));
      expect(readU64(view, 0, "size")).toBe(v);
    }
  });

  test("a value of 2^53 or more on the wire is a ProtocolError naming the field", () => {
    const view = new DataView(new ArrayBuffer(8));
    view.setBigUint64(0, 2n ** 53n);
    expect(() => readU64(view, 0, "file size")).toThrow(new ProtocolError("file size out of range"));
    view.setBigUint64(0, 2n ** 64n - 1n);
    expect(() => readU64(view, 0, "offset")).toThrow(ProtocolError);
  });

  test("the writer refuses what is not a u64 below 2^53 rather than write wrong bytes", () => {
    const view = new DataView(new ArrayBuffer(8));
    for (const v of [-1, 0.5, 2 ** 53, NaN, Infinity]) expect(() => writeU64(view, 0, v)).toThrow(RangeError);
  });

  test("ByteWriter and ByteReader use the same helpers", () => {
    const bytes = new ByteWriter(8).u64(2 ** 40 + 5).finish();
    expect(Buffer.from(bytes).toString("hex")).toBe("0000010000000005");
    expect(new ByteReader(bytes).u64("size")).toBe(2 ** 40 + 5);
    expect(() => new ByteReader(Uint8Array.of(0, 0x20, 0, 0, 0, 0, 0, 0)).u64("size")).toThrow(ProtocolError);
  });
});
