/** Messages between a PartFile and the writer thread (part-writer.worker.ts). */
export type WriterRequest =
  | { op: "open"; id: number; path: string; expectedSize: number }
  | { op: "write"; id: number; buffer: ArrayBuffer; length: number }
  | { op: "commit"; id: number }
  | { op: "close"; id: number };

export type WriterReply =
  | { op: "opened"; id: number; existing: number }
  | { op: "written"; id: number; buffer: ArrayBuffer }
  | { op: "committed"; id: number; sha256: string }
  | { op: "closed"; id: number }
  | { op: "error"; id: number; request: WriterRequest["op"]; message: string; buffer?: ArrayBuffer };
