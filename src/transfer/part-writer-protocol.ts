/** Messages between a PartFile and the writer thread (part-writer.worker.ts). */
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
