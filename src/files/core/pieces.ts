/**
 * A file's pieces: fixed-size runs of bytes (the last may be short) that are verified on their own as
 * they arrive, so that one server's bad bytes are caught at the piece and fetched again elsewhere.
 *
 * The piece size is a function of the file size alone (at least 1 MiB, a power of two, at most
 * MAX_PIECES pieces), so every server holding the same content computes the same pieces. The list of
 * piece SHA-256s is served by file servers; its own SHA-256, the pieces root, is in the index next to
 * the file's SHA-256, which is what makes a list from any one server trustworthy.
 */
export const MIN_PIECE_BYTES = 1 << 20;
export const MAX_PIECES = 1024;
export const PIECE_HASH_BYTES = 32;

export function pieceBytesFor(size: number): number {
  let piece = MIN_PIECE_BYTES;
  while (piece * MAX_PIECES < size) piece *= 2;
  return piece;
}

export function pieceCountFor(size: number): number {
  return Math.ceil(size / pieceBytesFor(size));
}

/** The SHA-256 of the concatenated piece hashes, as 64 lowercase hex: what the index carries. */
export function piecesRootOf(pieceHashes: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(pieceHashes).digest("hex");
}

/**
 * SHA-256 of a whole stream and of each of its pieces, in one pass over the bytes: fed in order, any
 * chunking. A file of one piece is hashed once: its piece hash is its own SHA-256.
 */
export class PieceHasher {
  private readonly whole = new Bun.CryptoHasher("sha256");
  private piece: Bun.CryptoHasher | undefined;
  private inPiece = 0;
  private index = 0;
  readonly pieceBytes: number;
  readonly pieceHashes: Uint8Array;
  private readonly count: number;

  constructor(readonly size: number) {
    this.pieceBytes = pieceBytesFor(size);
    this.count = pieceCountFor(size);
    this.pieceHashes = new Uint8Array(this.count * PIECE_HASH_BYTES);
    if (this.count > 1) this.piece = new Bun.CryptoHasher("sha256");
  }

  update(bytes: Uint8Array): void {
    this.whole.update(bytes);
    if (!this.piece) {
      this.inPiece += bytes.byteLength;
      return;
    }
    for (let at = 0; at < bytes.byteLength; ) {
      const n = Math.min(bytes.byteLength - at, this.pieceBytes - this.inPiece);
      this.piece.update(bytes.subarray(at, at + n));
      this.inPiece += n;
      at += n;
      if (this.inPiece === this.pieceBytes) this.endPiece();
    }
  }

  private endPiece(): void {
    if (this.index < this.count) this.pieceHashes.set(this.piece!.digest() as Uint8Array, this.index * PIECE_HASH_BYTES);
    this.index++;
    this.piece = new Bun.CryptoHasher("sha256");
    this.inPiece = 0;
  }

  /** The file's SHA-256 and its pieces root; throws if the bytes fed were not `size` long. */
  finish(): { sha256: string; piecesRoot: string } {
    const whole = this.whole.digest() as Uint8Array;
    if (this.count <= 1) {
      if (this.inPiece !== this.size) throw new Error(`expected ${this.size} bytes, hashed ${this.inPiece}`);
      this.pieceHashes.set(whole.subarray(0, this.pieceHashes.byteLength));
    } else {
      if (this.inPiece > 0) this.endPiece();
      if (this.index !== this.count) throw new Error(`expected ${this.size} bytes, hashed a different amount`);
    }
    return { sha256: Buffer.from(whole).toString("hex"), piecesRoot: piecesRootOf(this.pieceHashes) };
  }
}
