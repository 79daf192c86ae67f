import { createReadStream } from "node:fs";
import { PieceHasher } from "./core/pieces.ts";

const READ_CHUNK_BYTES = 1 << 20;

export interface FileHashes {
  sha256: string;
  piecesRoot: string;
  pieceHashes: Uint8Array;
}

/** SHA-256 of a file and of each of its pieces, streamed in 1 MiB reads: constant memory whatever the size. */
export async function hashFile(path: string, size: number): Promise<FileHashes> {
  const hasher = new PieceHasher(size);
  const stream = createReadStream(path, { highWaterMark: READ_CHUNK_BYTES });
  for await (const chunk of stream) hasher.update(chunk as Buffer);
  return { ...hasher.finish(), pieceHashes: hasher.pieceHashes };
}
