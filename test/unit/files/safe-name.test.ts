import { expect, test } from "bun:test";
import { isSafeName, unsafeNameReason } from "../../../src/files/safe-name.ts";

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
