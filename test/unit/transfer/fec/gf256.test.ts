import { describe, expect, test } from "bun:test";
import { GF_EXP, GF_LOG, GF_POLYNOMIAL, gfDiv, gfInv, gfMul, mulAddRow, mulAddWords, mulRow } from "../../../../src/transfer/core/fec/gf256.ts";
import { Rng } from "../../../support/random.ts";

/** Carry-less multiplication reduced by the polynomial, bit by bit: the definition, not the tables. */
function slowMul(a: number, b: number): number {
  let product = 0;
  for (let bit = 0; bit < 8; bit++) if (b & (1 << bit)) product ^= a << bit;
  for (let bit = 15; bit >= 8; bit--) if (product & (1 << bit)) product ^= GF_POLYNOMIAL << (bit - 8);
  return product;
}

describe("GF(2^8) with x^8 + x^4 + x^3 + x^2 + 1", () => {
  test("every product matches shift-and-reduce multiplication", () => {
    let mismatches = 0;
    for (let a = 0; a < 256; a++) for (let b = 0; b < 256; b++) if (gfMul(a, b) !== slowMul(a, b)) mismatches++;
    expect(mismatches).toBe(0);
  });

  test("2 generates the group: exp runs through all 255 non-zero elements, and log inverts it", () => {
    expect(new Set(GF_EXP.subarray(0, 255)).size).toBe(255);
    for (let a = 1; a < 256; a++) expect(GF_EXP[GF_LOG[a]!]).toBe(a);
  });

  test("inverse and division", () => {
    for (let a = 1; a < 256; a++) {
      expect(gfMul(a, gfInv(a))).toBe(1);
      for (const b of [1, 2, 0x53, 0xff]) expect(gfMul(gfDiv(a, b), b)).toBe(a);
    }
    expect(gfDiv(0, 7)).toBe(0);
    expect(() => gfInv(0)).toThrow(RangeError);
    expect(() => gfDiv(3, 0)).toThrow(RangeError);
  });

  test("row operations equal byte-by-byte products, at every alignment and length", () => {
    const rng = new Rng(7);
    const src = rng.bytes(300);
    for (const coef of [0, 1, 2, 0x53, 0xff]) {
      for (const srcOffset of [0, 1, 2, 3]) {
        for (const length of [0, 1, 3, 4, 5, 127, 200]) {
          const s = src.subarray(srcOffset, srcOffset + length);
          const start = rng.bytes(length + 8);
          const expected = start.map((d, i) => (i < length ? d ^ slowMul(coef, s[i]!) : d));
          const bytes = start.slice();
          mulAddRow(bytes, s, coef, length);
          expect(bytes).toEqual(expected);
          const buffer = new ArrayBuffer((length + 8 + 3) & ~3);
          const aligned = new Uint8Array(buffer, 0, length + 8);
          aligned.set(start);
          mulAddWords(aligned, new Uint32Array(buffer), s, coef, length);
          expect(aligned).toEqual(expected);
          const assigned = start.slice();
          mulRow(assigned, s, coef, length);
          expect(assigned).toEqual(start.map((d, i) => (i < length ? slowMul(coef, s[i]!) : d)));
        }
      }
    }
  });
});
