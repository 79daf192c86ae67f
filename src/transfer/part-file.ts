import { closeSync, constants, fstatSync, fsync, ftruncateSync, openSync, readSync, renameSync, unlinkSync, write } from "node:fs";
import { FtxError } from "../errors.ts";
import { PART_SUFFIX } from "../files/safe-name.ts";

/**
 * In-order bytes are gathered into blocks of this size, hashed, and written asynchronously (off the
 * event loop): a synchronous write into the page cache can take milliseconds, long enough for the
 * socket's fixed receive buffer to overflow at full rate.
 */
const BLOCK_BYTES = 256 * 1024;
/** Blocks kept for reuse: enough to ride out a slow disk for a moment without allocating per block. */
const POOL_BLOCKS = 32;

/**
 * A download in progress: `<name>.ftx-part` beside the final name. Bytes are appended in order and
 * hashed as they are written (no second pass); `commit` checks the SHA-256 and renames atomically,
 * so the final name only ever holds verified content. Reopening resumes from what the part holds.
 */
export class PartFile {
  private readonly fd: number;
  private readonly hasher = new Bun.CryptoHasher("sha256");
  private readonly free: Uint8Array[] = [];
  private block: Uint8Array;
  private blockUsed = 0;
  private queued: number; // bytes handed to writes (done or in flight)
  private inFlight = 0;
  private writeError: Error | undefined;
  private drained: (() => void) | undefined;
  readonly resumedFrom: number;
  private closed = false;

  private constructor(
    readonly finalPath: string,
    readonly partPath: string,
    fd: number,
    existing: number,
  ) {
    this.fd = fd;
    this.queued = existing;
    this.resumedFrom = existing;
    this.block = new Uint8Array(BLOCK_BYTES);
  }

  /** Opens (or creates) the part file; resumes from its length if it is not longer than `expectedSize`. */
  static open(finalPath: string, expectedSize: number): PartFile {
    const partPath = finalPath + PART_SUFFIX;
    let fd: number;
    try {
      fd = openSync(partPath, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    } catch (err) {
      throw new FtxError("E_IO", `cannot write ${partPath}: ${(err as Error).message}`);
    }
    let existing = fstatSync(fd).size;
    if (existing > expectedSize) {
      ftruncateSync(fd, 0);
      existing = 0;
    }
    const part = new PartFile(finalPath, partPath, fd, existing);
    part.hashExisting(existing);
    return part;
  }

  private hashExisting(length: number): void {
    let position = 0;
    while (position < length) {
      const n = readSync(this.fd, this.block, 0, Math.min(this.block.byteLength, length - position), position);
      if (n <= 0) break;
      this.hasher.update(this.block.subarray(0, n));
      position += n;
    }
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
    if (this.writeError) throw new FtxError("E_IO", `cannot write ${this.partPath}: ${this.writeError.message}`);
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
    if (this.blockUsed === 0) return;
    const block = this.block;
    const length = this.blockUsed;
    const position = this.queued;
    this.hasher.update(block.subarray(0, length));
    this.queued += length;
    this.blockUsed = 0;
    this.block = this.free.pop() ?? new Uint8Array(BLOCK_BYTES);
    this.inFlight++;
    this.writeAll(block, 0, length, position);
  }

  private writeAll(block: Uint8Array, offset: number, length: number, position: number): void {
    write(this.fd, block, offset, length, position, (err, written) => {
      if (!err && written < length) return this.writeAll(block, offset + written, length - written, position + written);
      if (err) this.writeError ??= err;
      this.inFlight--;
      if (this.free.length < POOL_BLOCKS) this.free.push(block);
      if (this.inFlight === 0) this.drained?.();
    });
  }

  private async drain(): Promise<void> {
    this.flushBlock();
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    this.drained = undefined;
    if (this.writeError) throw new FtxError("E_IO", `cannot write ${this.partPath}: ${this.writeError.message}`);
  }

  /** Flush, verify and rename into place. Returns the hash; throws E_INTEGRITY (and discards the part) on mismatch. */
  async commit(expectedSha256: string): Promise<string> {
    await this.drain();
    await new Promise<void>((resolve, reject) => fsync(this.fd, (err) => (err ? reject(err) : resolve())));
    const actual = this.hasher.digest("hex");
    this.closeFd();
    if (actual !== expectedSha256) {
      this.removePart();
      throw new FtxError("E_INTEGRITY", `SHA-256 mismatch (got ${actual.slice(0, 12)}…, index says ${expectedSha256.slice(0, 12)}…)`);
    }
    renameSync(this.partPath, this.finalPath);
    return actual;
  }

  /** Keep what arrived so a later run resumes from it. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.drain();
    } catch {}
    this.closeFd();
  }

  private closeFd(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  private removePart(): void {
    try {
      unlinkSync(this.partPath);
    } catch {}
  }
}
