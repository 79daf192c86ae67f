/**
 * The part-file writer thread. Blocks arrive tagged with their offset (several ranges of one file can
 * be arriving at once, from several servers); each is written where it belongs and hashed.
 *
 * Two hashes matter: each piece's (against the trusted piece list) and the whole file's (against the
 * index, checked by `commit`). SHA-256 costs ~0.6 CPU-s per GiB here, so bytes are hashed twice only
 * where that buys something:
 * - bytes that arrive at the hash frontier (the first byte not yet in the whole-file hash) go straight
 *   into it; with `verify` they also go into their piece's hash, so a bad piece is caught at once;
 * - bytes beyond the frontier are checked per piece as they complete, and read back (a page-cache
 *   copy) into the whole-file hash when the frontier reaches them.
 * A fetch from one server sends `verify: false`: a bad piece there is found when `commit` sees the
 * whole file's hash is wrong and audits every piece, which names the pieces to fetch again.
 *
 * Crash safety: each time pieces complete, a trailer slot (part-trailer.ts) records them, so a fetch
 * killed at any instant loses nothing it had written. A record may run ahead of the disk (the page
 * cache survives a SIGKILL, not a power cut), which is safe because on reopening every recorded piece
 * is read back and checked against its hash before it is trusted: neither a crash at any point of any
 * write nor a damaged part file can bring a wrong byte into the result. An fdatasync runs in the
 * background all the time (on the thread pool, not this thread, which keeps writing; the next one
 * starts once SYNC_AFTER_BYTES more have been written): that bounds what a power cut can take, and
 * keeps write-back going while bytes arrive, so the sync before the final rename finds almost nothing
 * left. Measured with 1 GiB: syncing once a second, that last sync took 185–280 ms of a 2 s fetch;
 * continuously, 2–4 ms, and the fetch's median went from 1.96 to 1.45 s (6 runs each, alternating).
 *
 * What a background sync made durable below the hash frontier is never read again, so its pages are
 * handed back to the kernel (page-cache.ts): a large download keeps a few MiB of itself in the page
 * cache rather than all of it, and its next writes land in pages just freed. On this VM, whose host
 * takes free memory back, writing into pages not touched for a while cost up to 3 s of system time
 * per GiB; in a full `bun run bench`, 1 GiB fetches took 1.27–2.50 s (median 2.25) without this and
 * 1.31–1.66 s (median 1.41) with it, alternating, against curl's 1.21–1.69 s.
 */
import { closeSync, constants, fdatasync, fstatSync, ftruncateSync, openSync, readSync, unlinkSync, writeSync } from "node:fs";
import { FtxError } from "../errors.ts";
import { dropFromPageCache } from "../files/page-cache.ts";
import { preallocate } from "../files/preallocate.ts";
import { humanBytes } from "../util/format.ts";
import { decodeSlot, encodeSlot, hasBit, newBitmap, setBit, SLOT_BYTES, TRAILER_BYTES } from "./part-trailer.ts";
import { SYNC_AFTER_BYTES, writerErrorCode, type WriterReply, type WriterRequest } from "./part-writer-protocol.ts";

declare const self: Worker;

const PIECE_HASH_BYTES = 32;

interface PartialPiece {
  hasher: Bun.CryptoHasher | undefined; // undefined: at the frontier without verify, the whole-file hash is its check
  filled: number;
}

interface OpenPart {
  id: number;
  fd: number;
  size: number;
  pieceBytes: number;
  count: number;
  sha256: Uint8Array;
  /** Undefined until the list arrives (a part opened before it: see `parked`). */
  hashes: Uint8Array | undefined;
  /** Pieces completed away from the hash frontier before the hashes were known: their digests, checked when they come. */
  parked: Map<number, Uint8Array>;
  /** Pieces complete on disk: checked against their hash, or (at the frontier without verify) accepted pending the commit check. */
  done: Uint8Array;
  partial: Map<number, PartialPiece>;
  whole: Bun.CryptoHasher;
  /** Bytes [0, wholeBytes) are in `whole`. */
  wholeBytes: number;
  /** `whole` as it was at the start of the frontier piece: a piece that fails or restarts is taken back out. */
  wholeAtPiece: Bun.CryptoHasher;
  generation: number;
  syncing: boolean;
  /** Bytes written since the last background sync started. */
  unsynced: number;
  /** Bytes [0, droppedBytes) are synced, hashed, and given back to the page cache. */
  droppedBytes: number;
  dirty: boolean;
}

const parts = new Map<number, OpenPart>();
const scratch = new Uint8Array(1 << 20);

function reply(msg: WriterReply, transfer: ArrayBuffer[] = []): void {
  self.postMessage(msg, transfer);
}

function pieceLength(p: OpenPart, i: number): number {
  return Math.min(p.pieceBytes, p.size - i * p.pieceBytes);
}

/** Hash `length` bytes of the file from `offset` into `hasher` (and `also`), through the scratch buffer. */
function hashRange(fd: number, offset: number, length: number, hasher: Bun.CryptoHasher | undefined, also?: Bun.CryptoHasher): void {
  for (let at = 0; at < length; ) {
    const n = readSync(fd, scratch, 0, Math.min(scratch.byteLength, length - at), offset + at);
    if (n <= 0) throw new Error("part file is shorter than expected");
    hasher?.update(scratch.subarray(0, n));
    also?.update(scratch.subarray(0, n));
    at += n;
  }
}

function pieceMatches(p: OpenPart, i: number, digest: Uint8Array): boolean {
  if (!p.hashes) throw new Error("the piece hashes are not known yet");
  return Buffer.from(digest).equals(Buffer.from(p.hashes.subarray(i * PIECE_HASH_BYTES, (i + 1) * PIECE_HASH_BYTES)));
}

function checkPiece(p: OpenPart, i: number, alsoWhole: boolean): boolean {
  const hasher = new Bun.CryptoHasher("sha256");
  hashRange(p.fd, i * p.pieceBytes, pieceLength(p, i), hasher, alsoWhole ? p.whole : undefined);
  return pieceMatches(p, i, hasher.digest() as Uint8Array);
}

function open(req: Extract<WriterRequest, { op: "open" }>): OpenPart {
  const fd = openSync(req.path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  const p: OpenPart = {
    id: req.id,
    fd,
    size: req.size,
    pieceBytes: req.pieceBytes,
    count: Math.ceil(req.size / req.pieceBytes),
    sha256: Buffer.from(req.sha256, "hex"),
    hashes: req.pieceHashes === undefined ? undefined : new Uint8Array(req.pieceHashes),
    parked: new Map(),
    done: newBitmap(),
    partial: new Map(),
    whole: new Bun.CryptoHasher("sha256"),
    wholeBytes: 0,
    wholeAtPiece: new Bun.CryptoHasher("sha256"),
    generation: 0,
    syncing: false,
    unsynced: 0,
    droppedBytes: 0,
    dirty: false,
  };
  const length = fstatSync(fd).size;
  let record: ReturnType<typeof decodeSlot>;
  if (length === req.size + TRAILER_BYTES) {
    for (let slot = 0; slot < 2; slot++) {
      const bytes = new Uint8Array(SLOT_BYTES);
      readSync(fd, bytes, 0, SLOT_BYTES, req.size + slot * SLOT_BYTES);
      const state = decodeSlot(bytes, req.size, req.pieceBytes, p.sha256);
      if (state && (!record || state.generation > record.generation)) record = state;
    }
  }
  if (record) p.generation = record.generation;
  else {
    ftruncateSync(fd, req.size + TRAILER_BYTES);
  }
  reserveSpace(fd, req.path, req.size, length === 0);
  // Check what the part holds: the recorded pieces, or (no record: an older part, a crash before the
  // first checkpoint, a hand-made file) every whole piece within its length. One read per piece:
  // while the good pieces run from the start, the whole-file hash takes the same bytes.
  const have = Math.min(length, req.size);
  let contiguous = true;
  for (let i = 0; i < p.count; i++) {
    // Without the hashes nothing on disk can be trusted: the caller opens so only where there was no part.
    const candidate = p.hashes === undefined ? false : record ? hasBit(record.verified, i) : i * p.pieceBytes + pieceLength(p, i) <= have;
    if (!candidate) {
      contiguous = false;
      continue;
    }
    const before = contiguous ? p.whole.copy() : undefined;
    const good = checkPiece(p, i, contiguous);
    setBit(p.done, i, good);
    if (contiguous && good) p.wholeBytes += pieceLength(p, i);
    else if (contiguous) {
      p.whole = before!;
      contiguous = false;
    }
    if (record && !good) p.dirty = true;
  }
  if (!record) p.dirty = p.done.some((b) => b !== 0); // until the first checkpoint a crash leads back here: nothing is lost
  p.wholeAtPiece = p.whole.copy();
  checkpoint(p);
  advanceFrontier(p);
  return p;
}

/**
 * Reserve the file's blocks before any byte is fetched (preallocate.ts): a full disk fails the open,
 * with what it takes, not a write part way through. A part file this open created goes again.
 */
function reserveSpace(fd: number, path: string, size: number, created: boolean): void {
  if (preallocate(fd, size) !== "no-space") return;
  closeSync(fd);
  if (created) {
    try {
      unlinkSync(path);
    } catch {} // gone already: what matters is the disk-space error below
  }
  throw new FtxError("E_NO_SPACE", `not enough free disk space (${humanBytes(size)} needed); free some and fetch again`);
}

/** Read back the done pieces that the frontier has reached into the whole-file hash. */
function advanceFrontier(p: OpenPart): void {
  for (;;) {
    const i = p.wholeBytes / p.pieceBytes;
    if (!Number.isInteger(i) || i >= p.count || !hasBit(p.done, i) || p.partial.has(i)) return;
    hashRange(p.fd, p.wholeBytes, pieceLength(p, i), undefined, p.whole);
    p.wholeBytes += pieceLength(p, i);
    p.wholeAtPiece = p.whole.copy();
  }
}

/** Record the completed pieces in the next trailer slot (the other slot stays intact if this write tears). */
function checkpoint(p: OpenPart): void {
  if (!p.dirty) return;
  p.generation++;
  const slot = encodeSlot({ generation: p.generation, size: p.size, pieceBytes: p.pieceBytes, sha256: p.sha256, verified: p.done });
  writeSync(p.fd, slot, 0, SLOT_BYTES, p.size + (p.generation % 2) * SLOT_BYTES);
  p.dirty = false;
}

/** Keep one fdatasync of the part running in the background while writes continue. */
function backgroundSync(p: OpenPart): void {
  if (p.syncing || p.unsynced < SYNC_AFTER_BYTES) return;
  p.syncing = true;
  p.unsynced = 0;
  // Everything below the hash frontier is written by now, so this sync makes it clean; it is never
  // read again (the audit after a wrong whole-file hash reads it from disk), so its pages can go.
  const hashed = p.wholeBytes;
  fdatasync(p.fd, (err) => {
    p.syncing = false;
    if (err || parts.get(p.id) !== p || hashed <= p.droppedBytes) return; // closed: its descriptor may be another file's now
    dropFromPageCache(p.fd, p.droppedBytes, hashed - p.droppedBytes);
    p.droppedBytes = hashed;
  });
}

function write(p: OpenPart, offset: number, data: Uint8Array, verifyAsked: boolean, verified: number[], failed: number[]): void {
  // Without the hashes the frontier's pieces are left to the whole file's check, like a one-server fetch's.
  const verify = verifyAsked && p.hashes !== undefined;
  if (offset + data.byteLength > p.size) throw new Error(`write past the end of the file (${offset}+${data.byteLength} > ${p.size})`);
  for (let off = 0; off < data.byteLength; ) off += writeSync(p.fd, data, off, data.byteLength - off, offset + off);
  p.unsynced += data.byteLength;
  for (let at = 0; at < data.byteLength; ) {
    const i = Math.floor((offset + at) / p.pieceBytes);
    const pieceStart = i * p.pieceBytes;
    const within = offset + at - pieceStart;
    const length = pieceLength(p, i);
    const n = Math.min(data.byteLength - at, length - within);
    const chunk = data.subarray(at, at + n);
    at += n;
    if (hasBit(p.done, i)) continue;
    const frontierPiece = p.wholeBytes >= pieceStart && p.wholeBytes < pieceStart + length;
    let partial = p.partial.get(i);
    if (within === 0) {
      if (frontierPiece && p.wholeBytes > pieceStart) {
        // The frontier piece starts over (its first sender failed): take its bytes back out.
        p.whole = p.wholeAtPiece.copy();
        p.wholeBytes = pieceStart;
      }
      partial = { hasher: frontierPiece && !verify ? undefined : new Bun.CryptoHasher("sha256"), filled: 0 };
      p.partial.set(i, partial);
    } else if (!partial || partial.filled !== within) {
      p.partial.delete(i); // not contiguous with what we hashed: this piece starts over when it is sent again
      continue;
    }
    partial.hasher?.update(chunk);
    if (frontierPiece && p.wholeBytes === offset + at - n) {
      p.whole.update(chunk);
      p.wholeBytes += n;
    }
    partial.filled += n;
    if (partial.filled < length) continue;
    p.partial.delete(i);
    if (partial.hasher && !p.hashes) {
      p.parked.set(i, partial.hasher.digest() as Uint8Array);
      continue;
    }
    const good = partial.hasher ? pieceMatches(p, i, partial.hasher.digest() as Uint8Array) : true;
    if (good) {
      setBit(p.done, i, true);
      p.dirty = true;
      verified.push(i);
      if (p.wholeBytes === pieceStart + length) p.wholeAtPiece = p.whole.copy();
    } else {
      failed.push(i);
      if (p.wholeBytes > pieceStart && p.wholeBytes <= pieceStart + length) {
        p.whole = p.wholeAtPiece.copy();
        p.wholeBytes = pieceStart;
      }
    }
  }
  if (verified.length > 0) {
    advanceFrontier(p);
    checkpoint(p);
  }
}

/** The piece hashes arrive for a part opened without them: check the pieces parked for them. */
function setHashes(p: OpenPart, hashes: Uint8Array, verified: number[], failed: number[]): void {
  if (hashes.byteLength !== p.count * PIECE_HASH_BYTES) throw new Error(`${hashes.byteLength} bytes of piece hashes for ${p.count} pieces`);
  p.hashes = hashes;
  for (const [i, digest] of p.parked) {
    if (hasBit(p.done, i)) continue;
    if (pieceMatches(p, i, digest)) {
      setBit(p.done, i, true);
      p.dirty = true;
      verified.push(i);
    } else failed.push(i);
  }
  p.parked.clear();
  advanceFrontier(p);
  checkpoint(p);
}

/**
 * The whole file's hash is wrong: some piece accepted without its own check was bad. Check every
 * piece, drop the bad ones, and rebuild the whole-file hash over what is left.
 */
function audit(p: OpenPart): number[] {
  const failed: number[] = [];
  p.whole = new Bun.CryptoHasher("sha256");
  p.wholeBytes = 0;
  let contiguous = true;
  for (let i = 0; i < p.count; i++) {
    const good = hasBit(p.done, i) && checkPiece(p, i, contiguous);
    if (!good && hasBit(p.done, i)) {
      failed.push(i);
      setBit(p.done, i, false);
    }
    if (good && contiguous) p.wholeBytes += pieceLength(p, i);
    if (!good) contiguous = false;
  }
  // Bytes of the first bad piece may be in `whole`: rebuild it over the good prefix only.
  p.whole = new Bun.CryptoHasher("sha256");
  for (let at = 0, i = 0; at < p.wholeBytes; i++) {
    hashRange(p.fd, at, pieceLength(p, i), undefined, p.whole);
    at += pieceLength(p, i);
  }
  p.wholeAtPiece = p.whole.copy();
  p.dirty = true;
  checkpoint(p);
  return failed;
}

function closePart(id: number): void {
  const p = parts.get(id);
  parts.delete(id);
  if (p) closeSync(p.fd);
}

self.onmessage = (event: MessageEvent<WriterRequest>) => {
  const req = event.data;
  try {
    switch (req.op) {
      case "open": {
        const p = open(req);
        parts.set(req.id, p);
        return reply({ op: "opened", id: req.id, verified: p.done.slice() });
      }
      case "write": {
        const p = parts.get(req.id)!;
        const verified: number[] = [];
        const failed: number[] = [];
        write(p, req.offset, new Uint8Array(req.buffer, 0, req.length), req.verify, verified, failed);
        backgroundSync(p);
        return reply({ op: "written", id: req.id, buffer: req.buffer, verified, failed }, [req.buffer]);
      }
      case "hashes": {
        const p = parts.get(req.id)!;
        const verified: number[] = [];
        const failed: number[] = [];
        setHashes(p, new Uint8Array(req.pieceHashes), verified, failed);
        return reply({ op: "checked", id: req.id, verified, failed });
      }
      case "commit": {
        const p = parts.get(req.id)!;
        advanceFrontier(p);
        if (p.wholeBytes !== p.size) throw new Error(`only ${p.wholeBytes} of ${p.size} bytes are verified`);
        const sha256 = p.whole.digest("hex");
        if (sha256 !== req.sha256) {
          const failed = audit(p);
          if (failed.length > 0) return reply({ op: "audited", id: req.id, failed });
        }
        ftruncateSync(p.fd, p.size); // the trailer goes; the data stays (made durable by the caller, off this thread)
        closePart(req.id);
        return reply({ op: "committed", id: req.id, sha256 });
      }
      case "close": {
        const p = parts.get(req.id);
        if (p) checkpoint(p);
        closePart(req.id);
        return reply({ op: "closed", id: req.id });
      }
    }
  } catch (err) {
    if (req.op !== "write") {
      try {
        closePart(req.id);
      } catch {}
    }
    const message = err instanceof Error ? err.message : String(err);
    reply({ op: "error", id: req.id, request: req.op, code: writerErrorCode(err), message, buffer: req.op === "write" ? req.buffer : undefined });
  }
};
