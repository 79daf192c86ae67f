/**
 * The part-file writer thread: writes received blocks at their offsets and hashes them in order, so
 * the receiving thread spends its time draining sockets. Messages are handled strictly in the order
 * they were posted, which is what keeps the incremental SHA-256 correct.
 */
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
import type { WriterReply, WriterRequest } from "./part-writer-protocol.ts";

declare const self: Worker;

interface OpenPart {
  fd: number;
  hasher: Bun.CryptoHasher;
  written: number;
}

const parts = new Map<number, OpenPart>();
const scratch = new Uint8Array(1 << 20);

function reply(msg: WriterReply, transfer: ArrayBuffer[] = []): void {
  self.postMessage(msg, transfer);
}

self.onmessage = (event: MessageEvent<WriterRequest>) => {
  const req = event.data;
  try {
    switch (req.op) {
      case "open": {
        const fd = openSync(req.path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
        let existing = fstatSync(fd).size;
        if (existing > req.expectedSize) {
          ftruncateSync(fd, 0);
          existing = 0;
        }
        const hasher = new Bun.CryptoHasher("sha256");
        for (let at = 0; at < existing; ) {
          const n = readSync(fd, scratch, 0, Math.min(scratch.byteLength, existing - at), at);
          if (n <= 0) break;
          hasher.update(scratch.subarray(0, n));
          at += n;
        }
        parts.set(req.id, { fd, hasher, written: existing });
        return reply({ op: "opened", id: req.id, existing });
      }
      case "write": {
        const part = parts.get(req.id)!;
        const data = new Uint8Array(req.buffer, 0, req.length);
        for (let off = 0; off < data.byteLength; ) off += writeSync(part.fd, data, off, data.byteLength - off, part.written + off);
        part.hasher.update(data);
        part.written += data.byteLength;
        return reply({ op: "written", id: req.id, buffer: req.buffer }, [req.buffer]);
      }
      case "commit": {
        const part = parts.get(req.id)!;
        fsyncSync(part.fd);
        closeSync(part.fd);
        parts.delete(req.id);
        return reply({ op: "committed", id: req.id, sha256: part.hasher.digest("hex") });
      }
      case "close": {
        const part = parts.get(req.id);
        if (part) closeSync(part.fd);
        parts.delete(req.id);
        return reply({ op: "closed", id: req.id });
      }
    }
  } catch (err) {
    const part = parts.get(req.id);
    if (part && req.op !== "write") {
      try {
        closeSync(part.fd);
      } catch {}
      parts.delete(req.id);
    }
    reply({ op: "error", id: req.id, request: req.op, message: (err as Error).message, buffer: req.op === "write" ? req.buffer : undefined });
  }
};
