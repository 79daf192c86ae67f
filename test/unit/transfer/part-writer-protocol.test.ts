import { describe, expect, test } from "bun:test";
import { FtxError } from "../../../src/errors.ts";
import { writerErrorCode } from "../../../src/transfer/part-writer-protocol.ts";

/** What the writer thread caught becomes a code that crosses to the main thread; the code decides, not the message. */
describe("writerErrorCode", () => {
  const errno = (code: string) => Object.assign(new Error("whatever the system says"), { code });

  test("a full disk or quota is E_NO_SPACE", () => {
    expect(writerErrorCode(errno("ENOSPC"))).toBe("E_NO_SPACE");
    expect(writerErrorCode(errno("EDQUOT"))).toBe("E_NO_SPACE");
  });

  test("any other failure of a system call is E_IO", () => {
    for (const code of ["EIO", "EACCES", "ENOENT", "EROFS", "EBADF"]) expect(writerErrorCode(errno(code))).toBe("E_IO");
  });

  test("the writer's own errors keep their code, whatever their message says", () => {
    expect(writerErrorCode(new FtxError("E_NO_SPACE", "anything"))).toBe("E_NO_SPACE");
    expect(writerErrorCode(new FtxError("E_IO", "no space left on device (ENOSPC)"))).toBe("E_IO");
    expect(writerErrorCode(new Error("ENOSPC: no space left on device"))).toBe("E_IO"); // no errno code: the text is not read
    expect(writerErrorCode("a string")).toBe("E_IO");
    expect(writerErrorCode(undefined)).toBe("E_IO");
  });
});
