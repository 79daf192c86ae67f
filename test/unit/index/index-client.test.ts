import { describe, expect, test } from "bun:test";
import { errorFromMaster } from "../../../src/index/index-client.ts";
import { IndexErrorCode } from "../../../src/index/core/messages.ts";

describe("errorFromMaster", () => {
  test("the master's error code decides the FtxError code; the master's words are the detail", () => {
    const cases: [number, string][] = [
      [IndexErrorCode.AuthFailed, "E_AUTH"],
      [IndexErrorCode.Limit, "E_LIMIT"],
      [IndexErrorCode.Timeout, "E_TIMEOUT"],
      [IndexErrorCode.Protocol, "E_PROTOCOL"],
      [IndexErrorCode.Version, "E_PROTOCOL"],
    ];
    for (const [code, expected] of cases) {
      const e = errorFromMaster(code, "authentication failed", "127.0.0.1:7700");
      expect(e.code).toBe(expected as never);
      expect(e.detail).toBe("authentication failed");
    }
  });
});
