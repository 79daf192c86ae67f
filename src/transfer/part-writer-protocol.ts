/** Messages between a PartFile and the writer thread (part-writer.worker.ts). */
import { FtxError, type FtxErrorCode } from "../errors.ts";

/**
 * A part file is synced in the background each time this much more was written, and what a sync made
 * durable leaves the page cache. Smaller files are left to the final sync alone (a sync per megabyte
 * would cost more than it saves) and stay cached.
 */
export const SYNC_AFTER_BYTES = 8 << 20;
export type WriterRequest =
  /**
   * `pieceHashes` absent: not known yet (a fresh part, its bytes arriving while the list is fetched);
   * pieces are then taken at the hash frontier unchecked (as with `verify: false`) and held for `hashes`
   * elsewhere, and a part already on disk is not trusted.
   */
  | { op: "open"; id: number; path: string; size: number; sha256: string; pieceBytes: number; pieceHashes?: ArrayBuffer }
  /** The trusted piece hashes, for a part opened without them: the pieces held for them are checked now. */
  | { op: "hashes"; id: number; pieceHashes: ArrayBuffer }
  /** `verify`: check each piece as it completes even at the hash frontier (the fetch has several sources). */
  | { op: "write"; id: number; offset: number; buffer: ArrayBuffer; length: number; verify: boolean }
  | { op: "commit"; id: number; sha256: string }
  | { op: "close"; id: number };

export type WriterReply =
  | { op: "opened"; id: number; verified: Uint8Array }
  /** A write is done; the pieces it completed are listed, verified against their hashes or not. */
  | { op: "written"; id: number; buffer: ArrayBuffer; verified: number[]; failed: number[] }
  /** The answer to `hashes`: the pieces that were waiting for them, checked. */
  | { op: "checked"; id: number; verified: number[]; failed: number[] }
  | { op: "committed"; id: number; sha256: string }
  /** The commit found the whole file's hash wrong, audited every piece, and these failed: fetch them again. */
  | { op: "audited"; id: number; failed: number[] }
  | { op: "closed"; id: number }
  /** `code` says what failed (the disk is full, or any other I/O failure); `message` is the detail, for the user. */
  | { op: "error"; id: number; request: WriterRequest["op"]; code: WriterErrorCode; message: string; buffer?: ArrayBuffer };

/** How a writer failure crosses the thread boundary: a code, since an Error's class and fields do not. */
export type WriterErrorCode = Extract<FtxErrorCode, "E_IO" | "E_NO_SPACE">;

/**
 * The code for what the writer thread caught: its own FtxErrors keep theirs, and a system call that
 * found the disk (ENOSPC) or the user's quota (EDQUOT) full is E_NO_SPACE; anything else is E_IO.
 */
export function writerErrorCode(err: unknown): WriterErrorCode {
  if (err instanceof FtxError) return err.code === "E_NO_SPACE" ? "E_NO_SPACE" : "E_IO";
  const errno = (err as { code?: unknown } | null)?.code;
  return errno === "ENOSPC" || errno === "EDQUOT" ? "E_NO_SPACE" : "E_IO";
}
