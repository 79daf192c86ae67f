import { renameSync, unlinkSync } from "node:fs";
import { open } from "node:fs/promises";
import { FtxError } from "../errors.ts";
import { PART_SUFFIX } from "../files/core/safe-name.ts";
import { pieceBytesFor, pieceCountFor } from "../files/core/pieces.ts";
import { hasBit } from "./part-trailer.ts";
import { SYNC_AFTER_BYTES, writerErrorCode, type WriterReply, type WriterRequest } from "./part-writer-protocol.ts";
import { dropFromPageCache } from "../files/page-cache.ts";
import { copyRange } from "../util/bytes.ts";

/**
 * A session's in-order bytes are gathered into blocks of this size and handed to the writer thread, which writes
 * and hashes them: a synchronous write into the page cache can take milliseconds, and hashing costs a
 * quarter of the receiving thread's time at full rate — long enough, either of them, for the socket's
 * fixed receive buffer to overflow.
 */
const BLOCK_BYTES = 256 * 1024;
/**
 * Blocks kept for reuse, shared by every part file of the process: enough to ride out a slow disk for
 * a moment without allocating per block. (Per part file, 100 files of 1 MiB allocated and first-touched
 * 400 fresh blocks: a fifth of the fetch's main-thread time.)
 */
const POOL_BLOCKS = 32;

/** One writer thread per process, shared by every part file; kept alive only while it has work. */
class WriterThread {
  private static instance: WriterThread | undefined;
  private readonly worker: Worker;
  private readonly listeners = new Map<number, (msg: WriterReply) => void>();
  private outstanding = 0;
  private readonly free: Uint8Array<ArrayBuffer>[] = [];

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
      for (const [id, listener] of this.listeners) listener({ op: "error", id, request: "commit", code: "E_IO", message });
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

  takeBlock(): Uint8Array<ArrayBuffer> {
    return this.free.pop() ?? new Uint8Array(BLOCK_BYTES);
  }

  /** A block the writer thread has finished with (transferred back to us) goes back to the pool. */
  recycle(buffer: ArrayBuffer): void {
    if (buffer.byteLength === BLOCK_BYTES && this.free.length < POOL_BLOCKS) this.free.push(new Uint8Array(buffer));
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
 * Start the writer thread now, so that its start (7–11 ms here: a JavaScript VM of its own and its
 * module) overlaps whatever comes before the first part file opens.
 */
export function startWriterThread(): void {
  WriterThread.get();
}

/** Where the bytes of one download session go: appended in order from the session's first offset. */
export interface DownloadSink {
  /** `bytes[start, end)` are the next bytes (a range, so a received datagram's payload needs no subarray). */
  append(bytes: Uint8Array, start: number, end: number): void;
  /** Received bytes not yet on their way to disk; the session closes its window when this grows. */
  readonly backlogBytes: number;
  /** Call `callback` once, when `backlogBytes` has fallen below `bytes`. */
  whenBacklogBelow?(bytes: number, callback: () => void): void;
}

/**
 * A download in progress: `<name>.ftx-part` beside the final name, the file's full size plus a small
 * trailer recording which pieces are verified (part-trailer.ts). Several ranges can be written at once
 * (one `RangeSink` each); the writer thread checks each piece as it completes and reports it through
 * `onPieces`. `commit` checks the whole file's SHA-256 and renames atomically, so the final name only
 * ever holds verified content. Reopening resumes from the pieces the trailer records.
 */
export class PartFile {
  private readonly id = nextPartId++;
  private readonly writer = WriterThread.get();
  private inFlight = 0;
  private drainWaiters: { below: number; callback: () => void }[] = [];
  private buffered = 0;
  private writeError: FtxError | undefined;
  private waiting: { op: string; resolve: (msg: WriterReply) => void } | undefined;
  private closed = false;
  readonly pieceBytes: number;
  readonly pieceCount: number;
  /** One bit per piece: verified and written (the writer's view, as last reported). */
  verified: Uint8Array = new Uint8Array(0);
  onPieces: ((verified: number[], failed: number[]) => void) | undefined;
  /**
   * Check every piece the moment it completes. Without it, pieces arriving in order are checked by the
   * whole file's hash alone (a second SHA-256 pass saved), and a bad one is found by `commit`.
   */
  verifyEachPiece = true;
  /** The piece hashes were given to the writer (at open, or by setHashes since). */
  private hashesKnown = true;

  private constructor(
    readonly finalPath: string,
    readonly partPath: string,
    readonly size: number,
  ) {
    this.pieceBytes = pieceBytesFor(size);
    this.pieceCount = pieceCountFor(size);
    this.writer.listen(this.id, (msg) => this.onReply(msg));
  }

  /**
   * Opens (or creates) the part file for this content; `pieceHashes` are trusted (checked against the
   * index). Without them (`undefined`: they are being fetched while the first bytes arrive) nothing
   * already in a part file is trusted, pieces at the hash frontier are left to the whole file's check,
   * and others wait for `setHashes`: open so only where no part file exists.
   */
  static async open(finalPath: string, size: number, sha256: string, pieceHashes: Uint8Array | undefined): Promise<PartFile> {
    const part = new PartFile(finalPath, finalPath + PART_SUFFIX, size);
    part.hashesKnown = pieceHashes !== undefined;
    const hashes = pieceHashes?.slice().buffer as ArrayBuffer | undefined;
    const reply = await part.request({ op: "open", id: part.id, path: part.partPath, size, sha256, pieceBytes: part.pieceBytes, pieceHashes: hashes });
    if (reply.op !== "opened") {
      part.writer.forget(part.id);
      throw part.writeError ?? part.unexpected(reply);
    }
    part.verified = reply.verified;
    return part;
  }

  /** The trusted piece hashes, for a part opened without them: pieces that waited for them are reported through `onPieces`. */
  setHashes(pieceHashes: Uint8Array): void {
    if (this.hashesKnown || this.closed) return;
    this.hashesKnown = true;
    const buffer = pieceHashes.slice().buffer as ArrayBuffer;
    this.writer.post({ op: "hashes", id: this.id, pieceHashes: buffer }, [buffer]);
  }

  isVerified(piece: number): boolean {
    return hasBit(this.verified, piece);
  }

  /** Bytes in verified pieces. */
  get verifiedBytes(): number {
    let n = 0;
    for (let i = 0; i < this.pieceCount; i++) if (this.isVerified(i)) n += Math.min(this.pieceBytes, this.size - i * this.pieceBytes);
    return n;
  }

  /** What the writer thread reported, as the error for the user: its code decides, the detail is its message. */
  private failed(reply: Extract<WriterReply, { op: "error" }>): FtxError {
    return new FtxError(reply.code, `cannot write ${this.partPath}: ${reply.message}`, { detail: reply.message });
  }

  private unexpected(reply: WriterReply): FtxError {
    return new FtxError("E_IO", `cannot write ${this.partPath}: the writer thread answered ${reply.op}`);
  }

  private request(req: WriterRequest): Promise<WriterReply> {
    if (this.writeError !== undefined && req.op !== "open")
      return Promise.resolve({ op: "error", id: this.id, request: req.op, code: writerErrorCode(this.writeError), message: this.writeError.detail ?? this.writeError.message });
    return new Promise((resolve) => {
      this.waiting = { op: req.op, resolve };
      this.writer.post(req);
    });
  }

  private onReply(msg: WriterReply): void {
    if (msg.op === "error") this.writeError ??= this.failed(msg);
    if (msg.op === "checked" || (msg.op === "error" && msg.request === "hashes")) {
      if (msg.op === "checked") this.applyVerdicts(msg.verified, msg.failed);
      else if (this.drainWaiters.length > 0) this.wakeDrainWaiters();
      return;
    }
    if (msg.op === "written" || (msg.op === "error" && msg.request === "write")) {
      this.inFlight--;
      if (msg.buffer) this.writer.recycle(msg.buffer);
      if (this.drainWaiters.length > 0) this.wakeDrainWaiters();
      if (msg.op === "written") this.applyVerdicts(msg.verified, msg.failed);
      return;
    }
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.resolve(msg);
  }

  private applyVerdicts(verified: number[], failed: number[]): void {
    if (verified.length === 0 && failed.length === 0) return;
    for (const i of verified) this.verified[i >> 3] = this.verified[i >> 3]! | (1 << (i & 7));
    this.onPieces?.(verified, failed);
  }

  /** Call back once the backlog is below `bytes` (at once if it already is). */
  whenBacklogBelow(bytes: number, callback: () => void): void {
    this.drainWaiters.push({ below: bytes, callback });
    this.wakeDrainWaiters();
  }

  private wakeDrainWaiters(): void {
    const backlog = this.backlogBytes;
    const due = this.drainWaiters.filter((w) => backlog < w.below || this.writeError !== undefined);
    if (due.length === 0) return;
    this.drainWaiters = this.drainWaiters.filter((w) => !due.includes(w));
    for (const w of due) w.callback();
  }

  /** Bytes waiting for the disk, over every range being written. */
  get backlogBytes(): number {
    return this.inFlight * BLOCK_BYTES + this.buffered;
  }

  /** Why writing failed, if it did: E_NO_SPACE when the disk is full, else E_IO. */
  get failure(): FtxError | undefined {
    return this.writeError;
  }

  /** A sink for one session's bytes, starting at `offset`. */
  stream(offset: number): RangeSink {
    return new RangeSink(this, offset);
  }

  /** @internal for RangeSink */
  takeBlock(): Uint8Array<ArrayBuffer> {
    return this.writer.takeBlock();
  }

  /** @internal for RangeSink */
  noteBuffered(delta: number): void {
    this.buffered += delta;
  }

  /** @internal for RangeSink */
  post(offset: number, block: Uint8Array<ArrayBuffer>, length: number): void {
    if (this.writeError) throw this.writeError;
    if (this.closed) return;
    this.inFlight++;
    const buffer = block.buffer as ArrayBuffer;
    this.writer.post({ op: "write", id: this.id, offset, buffer, length, verify: this.verifyEachPiece && this.hashesKnown }, [buffer]);
  }

  /**
   * Verify the whole file (then `onVerified`), make it durable and rename it into place; returns the
   * hash. If the hash is wrong and some pieces prove bad, returns those pieces instead (the part stays
   * open: fetch them again, commit again). If no piece can be blamed, throws E_INTEGRITY and discards
   * the part.
   */
  async commit(expectedSha256: string, onVerified?: () => void): Promise<{ sha256: string } | { badPieces: number[] }> {
    const reply = await this.request({ op: "commit", id: this.id, sha256: expectedSha256 });
    if (reply.op === "audited") {
      for (const i of reply.failed) this.verified[i >> 3] = this.verified[i >> 3]! & ~(1 << (i & 7));
      return { badPieces: reply.failed };
    }
    this.finish();
    if (reply.op !== "committed" || this.writeError) throw this.writeError ?? this.unexpected(reply);
    if (reply.sha256 !== expectedSha256) {
      try {
        unlinkSync(this.partPath);
      } catch {}
      throw new FtxError("E_INTEGRITY", `SHA-256 mismatch (got ${reply.sha256.slice(0, 12)}…, index says ${expectedSha256.slice(0, 12)}…)`);
    }
    onVerified?.();
    // Durable before it gets its final name, so a power cut cannot leave the name on unwritten bytes.
    // On the thread pool, not the writer thread: other downloads keep writing meanwhile, and
    // concurrent syncs share the file system's journal commits.
    const handle = await open(this.partPath, "r");
    try {
      await handle.datasync();
      // Like the background syncs before it, this one lets a large file's pages go (small files stay cached).
      if (this.size >= SYNC_AFTER_BYTES) dropFromPageCache(handle.fd, 0, this.size);
    } finally {
      await handle.close();
    }
    renameSync(this.partPath, this.finalPath);
    return { sha256: reply.sha256 };
  }

  /** Record what is verified and keep it, so a later run resumes from it. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.request({ op: "close", id: this.id });
    this.finish();
  }

  private finish(): void {
    this.closed = true;
    this.writer.forget(this.id);
  }
}

/**
 * One session's bytes, gathered into blocks and handed to the writer thread with their offset. The
 * owner calls `flush` when the session ends, so the piece it was in the middle of is written too.
 */
export class RangeSink implements DownloadSink {
  private block: Uint8Array<ArrayBuffer> | undefined;
  private blockUsed = 0;
  private blockOffset: number;
  /** Bytes appended so far. */
  received = 0;

  constructor(
    private readonly part: PartFile,
    readonly offset: number,
  ) {
    this.blockOffset = offset;
  }

  get backlogBytes(): number {
    return this.part.backlogBytes;
  }

  whenBacklogBelow(bytes: number, callback: () => void): void {
    this.part.whenBacklogBelow(bytes, callback);
  }

  append(bytes: Uint8Array, start: number, end: number): void {
    let from = start;
    while (from < end) {
      this.block ??= this.part.takeBlock();
      const n = copyRange(bytes, from, Math.min(end, from + this.block.byteLength - this.blockUsed), this.block, this.blockUsed);
      this.blockUsed += n;
      from += n;
      this.part.noteBuffered(n);
      if (this.blockUsed === this.block.byteLength) this.flush();
    }
    this.received += end - start;
  }

  flush(): void {
    if (!this.block || this.blockUsed === 0) return;
    const block = this.block;
    const length = this.blockUsed;
    this.part.noteBuffered(-length);
    this.block = undefined;
    this.blockUsed = 0;
    this.part.post(this.blockOffset, block, length);
    this.blockOffset += length;
  }
}
