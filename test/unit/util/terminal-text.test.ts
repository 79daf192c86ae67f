import { describe, expect, test } from "bun:test";
import { escapeControl } from "../../../src/util/terminal-text.ts";

describe("escapeControl", () => {
  test("C0, DEL and C1 controls become visible escapes; nothing a terminal obeys is left", () => {
    const hostile = "a\u001b]0;owned\u0007b\u001b[2Jc\r\n\t\u0000\u007f\u009b\u0085";
    const out = escapeControl(hostile);
    expect(out).toBe("a\\e]0;owned\\x07b\\e[2Jc\\r\\n\\t\\x00\\x7f\\u{9b}\\u{85}");
    expect(out).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });

  test("ordinary text, unicode and lone backslashes pass unchanged; a backslash that would read as an escape is doubled", () => {
    expect(escapeControl("docs/é 😀 C:\\dir")).toBe("docs/é 😀 C:\\dir");
    expect(escapeControl("a\\nb")).toBe("a\\\\nb");
    expect(escapeControl("a\\x41")).toBe("a\\\\x41");
  });
});
