import { createReadStream } from "node:fs";

const READ_CHUNK_BYTES = 1 << 20;

/** SHA-256 of a file, streamed in 1 MiB reads: constant memory whatever the size. */
export async function sha256File(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  const stream = createReadStream(path, { highWaterMark: READ_CHUNK_BYTES });
  for await (const chunk of stream) hasher.update(chunk as Buffer);
  return hasher.digest("hex");
}
