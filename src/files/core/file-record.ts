/**
 * What a file server says about one of its files. Defined here, below both the catalog (which makes
 * them) and the index protocol (which carries them), so neither folder has to import the other's.
 */
export interface FileRecord {
  name: string;
  size: number;
  sha256: string; // 64 lowercase hex
  /** SHA-256 of the file's piece hashes (src/files/core/pieces.ts), 64 hex; absent when the server did not say. */
  piecesRoot?: string;
}
