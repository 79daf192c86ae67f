/** Messages between a PartFile and the writer thread (part-writer.worker.ts). */

/**
 * A part file is synced in the background each time this much more was written, and what a sync made
 * durable leaves the page cache. Smaller files are left to the final sync alone (a sync per megabyte
 * would cost more than it saves) and stay cached.
 */
export const SYNC_AFTER_BYTES = 8 << 20;
export type WriterRequest =
  | { op: "open"; id: number; path: string; size: number; sha256: string; pieceBytes: number; pieceHashes: ArrayBuffer }
  /** `verify`: check each piece as it completes even at the hash frontier (the fetch has several sources). */
  | { op: "write"; id: number; offset: number; buffer: ArrayBuffer; length: number; verify: boolean }
  | { op: "commit"; id: number; sha256: string }
  | { op: "close"; id: number };

export type WriterReply =
  | { op: "opened"; id: number; verified: Uint8Array }
  /** A write is done; the pieces it completed are listed, verified against their hashes or not. */
  | { op: "written"; id: number; buffer: ArrayBuffer; verified: number[]; failed: number[] }
  | { op: "committed"; id: number; sha256: string }
  /** The commit found the whole file's hash wrong, audited every piece, and these failed: fetch them again. */
  | { op: "audited"; id: number; failed: number[] }
  | { op: "closed"; id: number }
  | { op: "error"; id: number; request: WriterRequest["op"]; message: string; buffer?: ArrayBuffer };
