import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FtxError } from "../../src/errors.ts";
import { FileFetch } from "../../src/fetch/file-fetch.ts";
import { pieceBytesFor, piecesRootOf } from "../../src/files/core/pieces.ts";
import { silentLogger, type Logger } from "../../src/log.ts";
import { createConsola } from "consola";
import type { Download, DownloadSpec } from "../../src/transfer/download.ts";
import type { DownloadSink } from "../../src/transfer/part-file.ts";
import type { TransferClient } from "../../src/transfer/transfer-client.ts";
import { tempDir } from "../support/ftx-process.ts";
import { Rng } from "../support/random.ts";

/**
 * The order of a file's sessions, with a stand-in transfer client that serves from memory: a fresh
 * download asks for its first range beside the piece-hash list (a round trip sooner), a resumed one
 * after it (what is on disk is checked against the list first).
 */
const dirs: { cleanup(): void }[] = [];
afterAll(() => dirs.forEach((d) => d.cleanup()));

const SIZE = 3 * (1 << 20) + 12345;
const PIECE = pieceBytesFor(SIZE);

function content(seed: number) {
  const bytes = new Uint8Array(SIZE);
  const rng = new Rng(seed);
  for (let i = 0; i < SIZE; i++) bytes[i] = rng.next() * 256;
  const hashes = new Uint8Array(32 * Math.ceil(SIZE / PIECE));
  for (let i = 0; i * PIECE < SIZE; i++) hashes.set(new Bun.CryptoHasher("sha256").update(bytes.subarray(i * PIECE, Math.min(SIZE, (i + 1) * PIECE))).digest() as Uint8Array, 32 * i);
  return { bytes, hashes, sha256: new Bun.CryptoHasher("sha256").update(bytes).digest("hex"), piecesRoot: piecesRootOf(hashes) };
}

type Spec = Omit<DownloadSpec, "windowSegments" | "crypto">;

/** Serves the file and its hash list from memory; the hash list waits until `releaseHashes`. */
class StandInClient {
  readonly events: string[] = [];
  private release: () => void = () => {};
  private readonly hashesGate = new Promise<void>((r) => (this.release = r));
  constructor(
    private readonly bytes: Uint8Array,
    private readonly hashes: Uint8Array,
    /** Servers that never answer a piece-hash REQUEST (the session fails after a while, as an unanswered one does). */
    private readonly silentForHashes = new Set<string>(),
    /** Servers whose piece-hash list is wrong (one byte off): it does not match the index's root. */
    private readonly badHashes = new Set<string>(),
  ) {}

  releaseHashes(): void {
    this.release();
  }

  async start(spec: Spec, sink: DownloadSink): Promise<Download> {
    const what = `${spec.pieceHashes ? "hashes" : `range ${spec.offset}`}${this.silentForHashes.size + this.badHashes.size > 0 ? ` from ${spec.display}` : ""}`;
    this.events.push(`${what} asked`);
    let length = spec.length;
    let failure: FtxError | undefined;
    const progress = { received: 0 };
    const download = {
      state: "receiving",
      get received() {
        return progress.received;
      },
      shorten: (n: number) => (length = Math.min(length, n)),
      cancel: (reason: string) => (failure ??= new FtxError("E_CLOSED", reason)),
      fail: (err: FtxError) => (failure ??= err),
      stats: () => ({}),
      finished: (async () => {
        if (spec.pieceHashes) {
          if (this.silentForHashes.has(spec.display)) {
            await Bun.sleep(100);
            throw new FtxError("E_UNREACHABLE", `file server ${spec.display} does not answer`);
          }
          await this.hashesGate;
          const list = this.badHashes.has(spec.display) ? this.hashes.map((b, i) => (i === 5 ? b ^ 1 : b)) : this.hashes;
          sink.append(list, 0, list.byteLength);
          this.events.push("hashes in");
          return;
        }
        for (let at = 0; at < length; ) {
          if (failure) throw failure;
          const n = Math.min(64 * 1024, length - at);
          sink.append(this.bytes, spec.offset + at, spec.offset + at + n);
          at += n;
          progress.received = at;
          if (at === length) this.events.push(`range ${spec.offset} in`);
          await Bun.sleep(0);
        }
      })(),
    };
    return download as unknown as Download;
  }
}

function fileFetch(client: StandInClient, dest: string, entry: ReturnType<typeof content>, servers = ["127.0.0.1:1"], logger: Logger = silentLogger): FileFetch {
  return new FileFetch(
    {
      client: client as unknown as TransferClient,
      logger,
      idleTimeoutMs: 5000,
      retryForMs: 5000,
      pathFor: async () => ({ segmentBytes: 1350, rttMs: 1 }),
      lookup: async () => [],
    },
    "f.bin",
    { name: "f.bin", size: SIZE, sha256: entry.sha256, piecesRoot: entry.piecesRoot, servers },
    servers,
    dest,
  );
}

describe("a file's first range and its piece hashes", () => {
  test("a fresh download asks for its first range beside the hash list, and its bytes arrive before the list does", async () => {
    const d = tempDir();
    dirs.push(d);
    const entry = content(3);
    const client = new StandInClient(entry.bytes, entry.hashes);
    const dest = join(d.path, "f.bin");
    const running = fileFetch(client, dest, entry).run();
    // The whole range arrives while the list is held back; the fetch still waits for the list to commit.
    for (let i = 0; i < 200 && !client.events.includes(`range 0 in`); i++) await Bun.sleep(5);
    expect([...client.events].sort()).toEqual(["hashes asked", "range 0 asked", "range 0 in"]);
    expect(existsSync(dest)).toBe(false);
    client.releaseHashes();
    const result = await running;
    expect(result.sha256).toBe(entry.sha256);
    expect(client.events.at(-1)).toBe("hashes in");
    expect(new Bun.CryptoHasher("sha256").update(readFileSync(dest)).digest("hex")).toBe(entry.sha256);
  });

  test("a resumed download checks its part against the hash list before it asks for any range", async () => {
    const d = tempDir();
    dirs.push(d);
    const entry = content(4);
    const dest = join(d.path, "f.bin");
    writeFileSync(dest + ".ftx-part", entry.bytes.subarray(0, PIECE)); // an older part holding the first piece
    const client = new StandInClient(entry.bytes, entry.hashes);
    client.releaseHashes();
    const result = await fileFetch(client, dest, entry).run();
    expect(result.sha256).toBe(entry.sha256);
    expect(client.events.slice(0, 3)).toEqual(["hashes asked", "hashes in", `range ${PIECE} asked`]);
  });

  test("a server that never answers for the list is not asked again while another one is sending the file", async () => {
    const d = tempDir();
    dirs.push(d);
    const entry = content(5);
    const client = new StandInClient(entry.bytes, entry.hashes, new Set(["127.0.0.1:1"]));
    client.releaseHashes();
    const result = await fileFetch(client, join(d.path, "f.bin"), entry, ["127.0.0.1:1", "127.0.0.1:2"]).run();
    expect(result.sha256).toBe(entry.sha256);
    const asked = client.events.filter((e) => e.startsWith("hashes from") && e.endsWith("asked"));
    expect(asked).toEqual(["hashes from 127.0.0.1:1 asked", "hashes from 127.0.0.1:2 asked"]);
  });

  test("a server whose list does not match the index is not used for the file; the list and the bytes come from another", async () => {
    const d = tempDir();
    dirs.push(d);
    const entry = content(6);
    const client = new StandInClient(entry.bytes, entry.hashes, new Set(), new Set(["127.0.0.1:1"]));
    client.releaseHashes();
    const warnings: string[] = [];
    const logger = createConsola({ reporters: [{ log: (o) => void (o.type === "warn" && warnings.push(o.args.join(" "))) }] });
    const result = await fileFetch(client, join(d.path, "f.bin"), entry, ["127.0.0.1:1", "127.0.0.1:2"], logger).run();
    expect(result.sha256).toBe(entry.sha256);
    expect(client.events.filter((e) => e.startsWith("hashes from") && e.endsWith("asked"))).toEqual(["hashes from 127.0.0.1:1 asked", "hashes from 127.0.0.1:2 asked"]);
    expect(warnings.some((w) => w.includes("127.0.0.1:1") && w.includes("do not match the index"))).toBe(true);
  });
});
