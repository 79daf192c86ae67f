import { renameSync, unlinkSync } from "node:fs";
import { FtxError } from "../errors.ts";
import { PART_SUFFIX } from "../files/safe-name.ts";
import type { WriterReply, WriterRequest } from "./part-writer-protocol.ts";

/**
 * In-order bytes are gathered into blocks of this size and handed to the writer thread, which writes
 * and hashes them: a synchronous write into the page cache can take milliseconds, and hashing costs a
 * quarter of the receiving thread's time at full rate — long enough, either of them, for the socket's
 * fixed receive buffer to overflow.
 */
const BLOCK_BYTES = 256 * 1024;
/** Blocks kept for reuse: enough to ride out a slow disk for a moment without allocating per block. */
const POOL_BLOCKS = 32;

/** One writer thread per process, shared by every part file; kept alive only while it has work. */
class WriterThread {
  private static instance: WriterThread | undefined;
  private readonly worker: Worker;
  private readonly listeners = new Map<number, (msg: WriterReply) => void>();
  private outstanding = 0;

  private constructor() {
    this.worker = new Worker(workerUrl());
    this.worker.onmessage = (event: MessageEvent<WriterReply>) => {
      if (--this.outstanding === 0) this.worker.unref();
      this.listeners.get(event.data.id)?.(event.data);
    };
    // A writer that cannot start or dies must fail the downloads waiting on it, never hang them.
    this.worker.onerror = (event) => {
      const message = `writer thread failed: ${(event as ErrorEvent).message ?? "unknown error"}`;
      this.outstanding = 0;
      this.worker.unref();
      for (const [id, listener] of this.listeners) listener({ op: "error", id, request: "commit", message });
    };
    this.worker.unref();
  }

  static get(): WriterThread {
    WriterThread.instance ??= new WriterThread();
    return WriterThread.instance;
  }

  listen(id: number, listener: (msg: WriterReply) => void): void {
    this.listeners.set(id, listener);
  }

  forget(id: number): void {
    this.listeners.delete(id);
  }

  post(req: WriterRequest, transfer: ArrayBuffer[] = []): void {
    if (this.outstanding++ === 0) this.worker.ref();
    this.worker.postMessage(req, transfer);
  }
}

/**
 * Where the writer's code is. From source it sits beside this file. In the executable built by
 * build.ts it is a second entry point, embedded by its path under the common root of the entry
 * points (src/), while import.meta.url names the bundle: so it is found by that path.
 */
function workerUrl(): string {
  const compiled = import.meta.url.includes("/$bunfs/");
  return compiled ? new URL("./transfer/part-writer.worker.ts", import.meta.url).href : new URL("./part-writer.worker.ts", import.meta.url).href;
}

let nextPartId = 1;

/**
 * A download in progress: `<name>.ftx-part` beside the final name. Bytes are appended in order and
 * hashed as they are written (no second pass), off the receiving thread; `commit` checks the SHA-256
 * and renames atomically, so the final name only ever holds verified content. Reopening resumes from
 * what the part holds.
 */
export class PartFile {
  private readonly id = nextPartId++;
  private readonly writer = WriterThread.get();
  private readonly free: Uint8Array<ArrayBuffer>[] = [];
  private block: Uint8Array<ArrayBuffer> = new Uint8Array(BLOCK_BYTES);
  private blockUsed = 0;
  private queued = 0; // bytes handed to the writer (done or in flight)
  private inFlight = 0;
  private writeError: string | undefined;
  private waiting: { op: string; resolve: (msg: WriterReply) => void } | undefined;
  private closed = false;
  resumedFrom = 0;

  private constructor(
    readonly finalPath: string,
    readonly partPath: string,
  ) {
    this.writer.listen(this.id, (msg) => this.onReply(msg));
  }

  /** Opens (or creates) the part file; resumes from its length if it is not longer than `expectedSize`. */
  static async open(finalPath: string, expectedSize: number): Promise<PartFile> {
    const part = new PartFile(finalPath, finalPath + PART_SUFFIX);
    const reply = await part.request({ op: "open", id: part.id, path: part.partPath, expectedSize });
    if (reply.op !== "opened") {
      part.writer.forget(part.id);
      throw new FtxError("E_IO", `cannot write ${part.partPath}: ${reply.op === "error" ? reply.message : "unexpected reply"}`);
    }
    part.queued = part.resumedFrom = reply.existing;
    return part;
  }

  private request(req: WriterRequest): Promise<WriterReply> {
    if (this.writeError !== undefined && req.op !== "open")
      return Promise.resolve({ op: "error", id: this.id, request: req.op, message: this.writeError });
    return new Promise((resolve) => {
      this.waiting = { op: req.op, resolve };
      this.writer.post(req);
    });
  }

  private onReply(msg: WriterReply): void {
    if (msg.op === "error") this.writeError ??= msg.message;
    if (msg.op === "written" || (msg.op === "error" && msg.request === "write")) {
      this.inFlight--;
      if (msg.buffer && this.free.length < POOL_BLOCKS) this.free.push(new Uint8Array(msg.buffer));
      return;
    }
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.resolve(msg);
  }

  /** Bytes received so far (written, in flight or buffered). */
  get size(): number {
    return this.queued + this.blockUsed;
  }

  /** Bytes waiting for the disk: the receiver shrinks its window when this grows (flow control). */
  get backlogBytes(): number {
    return this.inFlight * BLOCK_BYTES + this.blockUsed;
  }

  append(bytes: Uint8Array): void {
    if (this.writeError) throw new FtxError("E_IO", `cannot write ${this.partPath}: ${this.writeError}`);
    let from = 0;
    while (from < bytes.byteLength) {
      const n = Math.min(bytes.byteLength - from, this.block.byteLength - this.blockUsed);
      this.block.set(bytes.subarray(from, from + n), this.blockUsed);
      this.blockUsed += n;
      from += n;
      if (this.blockUsed === this.block.byteLength) this.flushBlock();
    }
  }

  private flushBlock(): void {
    if (this.blockUsed === 0 || this.closed) return;
    const buffer = this.block.buffer as ArrayBuffer;
    const length = this.blockUsed;
    this.queued += length;
    this.blockUsed = 0;
    this.block = this.free.pop() ?? new Uint8Array(BLOCK_BYTES);
    this.inFlight++;
    this.writer.post({ op: "write", id: this.id, buffer, length }, [buffer]);
  }

  /** Flush, verify and rename into place. Returns the hash; throws E_INTEGRITY (and discards the part) on mismatch. */
  async commit(expectedSha256: string): Promise<string> {
    this.flushBlock();
    const reply = await this.request({ op: "commit", id: this.id });
    this.finish();
    if (reply.op !== "committed" || this.writeError) {
      throw new FtxError("E_IO", `cannot write ${this.partPath}: ${this.writeError ?? (reply.op === "error" ? reply.message : "unexpected reply")}`);
    }
    if (reply.sha256 !== expectedSha256) {
      try {
        unlinkSync(this.partPath);
      } catch {}
      throw new FtxError("E_INTEGRITY", `SHA-256 mismatch (got ${reply.sha256.slice(0, 12)}…, index says ${expectedSha256.slice(0, 12)}…)`);
    }
    renameSync(this.partPath, this.finalPath);
    return reply.sha256;
  }

  /** Keep what arrived so a later run resumes from it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flushBlock();
    await this.request({ op: "close", id: this.id });
    this.finish();
  }

  private finish(): void {
    this.closed = true;
    this.writer.forget(this.id);
  }
}
