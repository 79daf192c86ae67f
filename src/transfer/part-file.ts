import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { FtxError } from "../errors.ts";
import { PART_SUFFIX } from "../files/safe-name.ts";

/** In-order bytes are gathered into writes of this size: one syscall per MiB, not per datagram. */
const WRITE_BLOCK_BYTES = 1 << 20;

/**
 * A download in progress: `<name>.ftx-part` beside the final name. Bytes are appended in order and
 * hashed as they are written (no second pass); `commit` checks the SHA-256 and renames atomically,
 * so the final name only ever holds verified content. Reopening resumes from what the part holds.
 */
export class PartFile {
  private readonly fd: number;
  private readonly hasher = new Bun.CryptoHasher("sha256");
  private readonly block = new Uint8Array(WRITE_BLOCK_BYTES);
  private blockUsed = 0;
  private written: number; // bytes on disk
  readonly resumedFrom: number;
  private closed = false;

  private constructor(
    readonly finalPath: string,
    readonly partPath: string,
    fd: number,
    existing: number,
  ) {
    this.fd = fd;
    this.written = existing;
    this.resumedFrom = existing;
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

  /** Bytes received so far (on disk plus buffered). */
  get size(): number {
    return this.written + this.blockUsed;
  }

  append(bytes: Uint8Array): void {
    let from = 0;
    while (from < bytes.byteLength) {
      const n = Math.min(bytes.byteLength - from, this.block.byteLength - this.blockUsed);
      this.block.set(bytes.subarray(from, from + n), this.blockUsed);
      this.blockUsed += n;
      from += n;
      if (this.blockUsed === this.block.byteLength) this.flush();
    }
  }

  flush(): void {
    if (this.blockUsed === 0) return;
    const data = this.block.subarray(0, this.blockUsed);
    let off = 0;
    while (off < data.byteLength) off += writeSync(this.fd, data, off, data.byteLength - off, this.written + off);
    this.hasher.update(data);
    this.written += data.byteLength;
    this.blockUsed = 0;
  }

  /** Flush, verify and rename into place. Returns the hash; throws E_INTEGRITY (and discards the part) on mismatch. */
  commit(expectedSha256: string): string {
    this.flush();
    fsyncSync(this.fd);
    const actual = this.hasher.digest("hex");
    this.close();
    if (actual !== expectedSha256) {
      this.discard();
      throw new FtxError("E_INTEGRITY", `SHA-256 mismatch (got ${actual.slice(0, 12)}…, index says ${expectedSha256.slice(0, 12)}…)`);
    }
    renameSync(this.partPath, this.finalPath);
    return actual;
  }

  /** Keep what arrived so a later run resumes from it. */
  close(): void {
    if (this.closed) return;
    try {
      this.flush();
    } catch {}
    this.closed = true;
    closeSync(this.fd);
  }

  discard(): void {
    this.close();
    try {
      unlinkSync(this.partPath);
    } catch {}
  }
}
