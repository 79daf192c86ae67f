import { expect, test } from "bun:test";
import { MAX_NAME_BYTES, MAX_SEGMENT_NAME_BYTES, PART_SUFFIX } from "../../../src/files/core/name-limits.ts";
import { isSafeName, unsafeNameReason } from "../../../src/files/core/safe-name.ts";

test("safe relative names pass", () => {
  for (const n of ["a", "a.txt", ".dot", "docs/a.txt", "x/y/z", "..a", "a..", "ünï/☃", "a b"]) expect(isSafeName(n)).toBe(true);
});

test("names that could climb out or confuse are refused, with a reason", () => {
  const cases: Array<[string, RegExp]> = [
    ["", /empty/],
    ["../x", /'\.\.'/],
    ["a/../../x", /'\.\.'/],
    ["/etc/passwd", /absolute/],
    ["./a", /'\.'/],
    ["a//b", /empty path segment/],
    ["a/", /empty path segment/],
    ["a\\..\\b", /backslash/],
    ["C:x", /drive/],
    ["a\u0000b", /control/],
    ["a\nb", /control/],
    ["a\u001b[31mb", /control/],
    ["x".repeat(5000), /longer/],
  ];
  for (const [name, reason] of cases) expect(unsafeNameReason(name)).toMatch(reason);
});

test("a name's limits are ones a fetch can meet: the whole name fits the wire, a segment plus .ftx-part fits NAME_MAX", () => {
  expect(MAX_SEGMENT_NAME_BYTES + Buffer.byteLength(PART_SUFFIX)).toBe(255);
  const segment = "s".repeat(MAX_SEGMENT_NAME_BYTES);
  const longest = `${segment}/`.repeat(4) + "t".repeat(MAX_NAME_BYTES - 4 * (MAX_SEGMENT_NAME_BYTES + 1));
  expect(Buffer.byteLength(longest)).toBe(MAX_NAME_BYTES);
  expect(unsafeNameReason(longest)).toBeUndefined();
  expect(unsafeNameReason(longest + "t")).toBe(`name of ${MAX_NAME_BYTES + 1} bytes, longer than ${MAX_NAME_BYTES}`);
  expect(unsafeNameReason(`dir/${segment}`)).toBeUndefined();
  expect(unsafeNameReason(`dir/${segment}x`)).toMatch(/path segment of 247 bytes, longer than 246/);
  expect(unsafeNameReason(`${segment}x/file`)).toMatch(/path segment of 247 bytes/);
  // Bytes, not characters: 124 two-byte letters are 248 bytes.
  expect(unsafeNameReason("é".repeat(123))).toBeUndefined();
  expect(unsafeNameReason("é".repeat(124))).toMatch(/248 bytes/);
});
