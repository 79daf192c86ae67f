/**
 * The part-file writer thread. Blocks arrive tagged with their offset (several ranges of one file can
 * be arriving at once, from several servers); each is written where it belongs and fed to the hash of
 * the piece it belongs to. A piece is checked the moment its last byte is written, so a server's bad
 * bytes are caught at the piece. Verified pieces are then read back, in file order, into the whole
 * file's SHA-256 (from the page cache: a copy, not a disk read), which is what `commit` checks.
 *
 * Crash safety: every second or so the data is fdatasync'd and only then is a trailer slot written
 * that marks the pieces verified before that sync (part-trailer.ts). A fetch killed at any instant
 * resumes from the last slot and never trusts bytes that were not on disk when they were recorded.
 */
import { closeSync, constants, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
import { decodeSlot, encodeSlot, hasBit, newBitmap, setBit, SLOT_BYTES, TRAILER_BYTES } from "./part-trailer.ts";
import type { WriterReply, WriterRequest } from "./part-writer-protocol.ts";

declare const self: Worker;

const PIECE_HASH_BYTES = 32;
const CHECKPOINT_EVERY_MS = 1000;

interface PartialPiece {
  hasher: Bun.CryptoHasher;
  filled: number;
}

interface OpenPart {
  fd: number;
  size: number;
  pieceBytes: number;
  count: number;
  sha256: Uint8Array;
  hashes: Uint8Array;
  verified: Uint8Array; // bitmap
  partial: Map<number, PartialPiece>;
  whole: Bun.CryptoHasher;
  frontier: number; // pieces [0, frontier) are in `whole`
  generation: number;
  lastCheckpoint: number;
  dirty: boolean;
  /** Opened without a trustworthy record: what it held was checked piece by piece. */
  rescued: boolean;
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
function hashRange(fd: number, offset: number, length: number, hasher: Bun.CryptoHasher, also?: Bun.CryptoHasher): void {
  for (let at = 0; at < length; ) {
    const n = readSync(fd, scratch, 0, Math.min(scratch.byteLength, length - at), offset + at);
    if (n <= 0) throw new Error("part file is shorter than expected");
    hasher.update(scratch.subarray(0, n));
    also?.update(scratch.subarray(0, n));
    at += n;
  }
}

function pieceMatches(p: OpenPart, i: number, digest: Uint8Array): boolean {
  return Buffer.from(digest).equals(Buffer.from(p.hashes.subarray(i * PIECE_HASH_BYTES, (i + 1) * PIECE_HASH_BYTES)));
}

function open(req: Extract<WriterRequest, { op: "open" }>): OpenPart {
  const fd = openSync(req.path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  const count = Math.ceil(req.size / req.pieceBytes);
  const p: OpenPart = {
    fd,
    size: req.size,
    pieceBytes: req.pieceBytes,
    count,
    sha256: Buffer.from(req.sha256, "hex"),
    hashes: new Uint8Array(req.pieceHashes),
    verified: newBitmap(),
    partial: new Map(),
    whole: new Bun.CryptoHasher("sha256"),
    frontier: 0,
    generation: 0,
    lastCheckpoint: performance.now(),
    dirty: false,
    rescued: false,
  };
  const length = fstatSync(fd).size;
  let best: ReturnType<typeof decodeSlot>;
  if (length === req.size + TRAILER_BYTES) {
    for (let slot = 0; slot < 2; slot++) {
      const bytes = new Uint8Array(SLOT_BYTES);
      readSync(fd, bytes, 0, SLOT_BYTES, req.size + slot * SLOT_BYTES);
      const state = decodeSlot(bytes, req.size, req.pieceBytes, p.sha256);
      if (state && (!best || state.generation > best.generation)) best = state;
    }
  }
  if (best) {
    p.verified = best.verified;
    p.generation = best.generation;
  } else {
    // No trustworthy record (an older part, a crash before the first checkpoint, a hand-made file):
    // keep whichever whole pieces of what is there hash right, and start the record afresh.
    // One read per piece: while the good pieces are contiguous from the start, the whole-file hash
    // takes the same bytes (a sparse 4 GiB part costs one pass, not two).
    const have = Math.min(length, req.size);
    let whole: Bun.CryptoHasher | undefined = new Bun.CryptoHasher("sha256");
    for (let i = 0; i < count && i * req.pieceBytes + pieceLength(p, i) <= have; i++) {
      const hasher = new Bun.CryptoHasher("sha256");
      const wholeBefore: Bun.CryptoHasher | undefined = whole?.copy();
      hashRange(fd, i * req.pieceBytes, pieceLength(p, i), hasher, whole);
      const good = pieceMatches(p, i, hasher.digest() as Uint8Array);
      setBit(p.verified, i, good);
      if (whole && good) p.frontier = i + 1;
      else if (whole) {
        p.whole = wholeBefore!; // this piece is not part of the file yet: take it back out
        whole = undefined;
      }
    }
    if (whole) p.whole = whole;
    ftruncateSync(fd, req.size + TRAILER_BYTES);
    p.rescued = length > 0;
    // Until the first checkpoint there is no slot, and a crash leads back here: nothing is lost.
    p.dirty = p.verified.some((b) => b !== 0);
    checkpoint(p);
  }
  advanceFrontier(p);
  return p;
}

function advanceFrontier(p: OpenPart): void {
  while (p.frontier < p.count && hasBit(p.verified, p.frontier)) {
    hashRange(p.fd, p.frontier * p.pieceBytes, pieceLength(p, p.frontier), p.whole);
    p.frontier++;
  }
}

/** Make the data durable, then record what it holds: never the other way round. */
function checkpoint(p: OpenPart): void {
  if (!p.dirty) return;
  fdatasyncSync(p.fd);
  p.generation++;
  const slot = encodeSlot({ generation: p.generation, size: p.size, pieceBytes: p.pieceBytes, sha256: p.sha256, verified: p.verified });
  writeSync(p.fd, slot, 0, SLOT_BYTES, p.size + (p.generation % 2) * SLOT_BYTES);
  p.dirty = false;
  p.lastCheckpoint = performance.now();
}

function write(p: OpenPart, offset: number, data: Uint8Array, verified: number[], failed: number[]): void {
  if (offset + data.byteLength > p.size) throw new Error(`write past the end of the file (${offset}+${data.byteLength} > ${p.size})`);
  for (let off = 0; off < data.byteLength; ) off += writeSync(p.fd, data, off, data.byteLength - off, offset + off);
  for (let at = 0; at < data.byteLength; ) {
    const i = Math.floor((offset + at) / p.pieceBytes);
    const within = offset + at - i * p.pieceBytes;
    const length = pieceLength(p, i);
    const n = Math.min(data.byteLength - at, length - within);
    const chunk = data.subarray(at, at + n);
    at += n;
    if (hasBit(p.verified, i)) continue;
    let partial = p.partial.get(i);
    if (within === 0) {
      partial = { hasher: new Bun.CryptoHasher("sha256"), filled: 0 };
      p.partial.set(i, partial);
    } else if (!partial || partial.filled !== within) {
      p.partial.delete(i); // not contiguous with what we hashed: this piece starts over when it is sent again
      continue;
    }
    partial.hasher.update(chunk);
    partial.filled += n;
    if (partial.filled === length) {
      p.partial.delete(i);
      if (pieceMatches(p, i, partial.hasher.digest() as Uint8Array)) {
        setBit(p.verified, i, true);
        p.dirty = true;
        verified.push(i);
      } else failed.push(i);
    }
  }
  if (verified.length > 0) {
    advanceFrontier(p);
    if (performance.now() - p.lastCheckpoint >= CHECKPOINT_EVERY_MS) checkpoint(p);
  }
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
        return reply({ op: "opened", id: req.id, verified: p.verified.slice(), rescued: p.rescued });
      }
      case "write": {
        const p = parts.get(req.id)!;
        const verified: number[] = [];
        const failed: number[] = [];
        write(p, req.offset, new Uint8Array(req.buffer, 0, req.length), verified, failed);
        return reply({ op: "written", id: req.id, buffer: req.buffer, verified, failed }, [req.buffer]);
      }
      case "commit": {
        const p = parts.get(req.id)!;
        advanceFrontier(p);
        if (p.frontier !== p.count) throw new Error(`only ${p.frontier} of ${p.count} pieces are verified`);
        const sha256 = p.whole.digest("hex");
        ftruncateSync(p.fd, p.size); // the trailer goes; the data stays
        fsyncSync(p.fd);
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
    reply({ op: "error", id: req.id, request: req.op, message: (err as Error).message, buffer: req.op === "write" ? req.buffer : undefined });
  }
};
