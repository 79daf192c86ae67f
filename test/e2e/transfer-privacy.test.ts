/**
 * Issue #17, the transfer half: a capture of every datagram of `ls` and `fetch` (the relay in front of
 * the file server keeps a copy of each, both ways, from the first PROBE on) holds no byte sequence of
 * the file, no file name, no file hash and no token-derived value, with a token and without;
 * duplicated and reordered ciphertext is refused (counted), never delivered; and `--insecure-plaintext`
 * on both sides really is plaintext, so the check can see the content when it is there.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash, createHmac } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "../support/random.ts";
import { eventually, lsJson, runFtx, sha256Hex, startMaster, startServerBehindRelay, stopAll, tempDir } from "../support/ftx-process.ts";

afterAll(stopAll);

const TOKEN = "transfer-privacy-token-0123456789";
const NAME = "board-minutes-confidential.bin";
const SIZE = 3 << 20;

/** What must not appear: the name, the file's hash (as the index lists it), the token and its obvious derivations. */
function forbidden(sha: string): Buffer[] {
  return [
    Buffer.from(NAME),
    Buffer.from("confidential"),
    Buffer.from(sha, "hex"),
    Buffer.from(sha),
    Buffer.from(TOKEN),
    Buffer.from(TOKEN.slice(0, 12)),
    createHash("sha256").update(TOKEN).digest(),
    // v3's REQUEST MAC was HMAC-SHA256 keyed by the token: any 8 bytes of one would do.
    createHmac("sha256", TOKEN).update("ftx-transfer-v3").digest().subarray(0, 8),
  ];
}

/** `count` 16-byte runs of `content`: every segment boundary a 1,350-byte or 64 KiB segmentation has early on, and random ones. */
function samples(content: Buffer, count: number): Buffer[] {
  const rng = new Rng(99);
  const at = [0, 1350, 2700, 65457, 130914];
  while (at.length < count) at.push(rng.int(content.byteLength - 16));
  return at.map((i) => content.subarray(i, i + 16));
}

async function captureFetch(tokenArgs: string[], extra: string[], impair: Parameters<typeof startServerBehindRelay>[2] = {}, fetchArgs: string[] = []) {
  const share = tempDir();
  const out = tempDir();
  const content = Buffer.from(new Rng(7).bytes(SIZE));
  writeFileSync(join(share.path, NAME), content);
  const env = tokenArgs.length > 0 ? { FTX_TOKEN: TOKEN } : {};
  try {
    const { address } = await startMaster([...tokenArgs, ...extra]);
    const { relay } = await startServerBehindRelay(share.path, address, impair, [...tokenArgs, ...extra]);
    await eventually(async () => (await lsJson(address, undefined, env)).length === 1, 10_000, "listed");
    const chunks: Buffer[] = [];
    relay.tap = (d) => void chunks.push(Buffer.from(d));
    const r = await runFtx(["fetch", address, NAME, "-o", out.path, "-V", ...extra, ...fetchArgs], { env, timeoutMs: 60_000 });
    relay.tap = undefined;
    const fetched = readFileSync(join(out.path, NAME));
    return { r, content, fetched, capture: Buffer.concat(chunks), datagrams: chunks.length };
  } finally {
    share.cleanup();
    out.cleanup();
  }
}

describe("a capture of a fetch's datagrams", () => {
  for (const withToken of [true, false]) {
    test(`${withToken ? "with" : "without"} a token: no file bytes, name, hash${withToken ? " or token-derived value" : ""}; the file arrives intact`, async () => {
      const { r, content, fetched, capture, datagrams } = await captureFetch(withToken ? ["--token", TOKEN] : [], []);
      expect(r.exitCode).toBe(0);
      expect(sha256Hex(fetched)).toBe(sha256Hex(content));
      expect(capture.byteLength).toBeGreaterThan(SIZE); // the whole file crossed the relay
      expect(datagrams).toBeGreaterThan(10);
      const sha = sha256Hex(content);
      for (const needle of forbidden(sha)) expect({ needle: needle.toString("hex"), found: capture.includes(needle) }).toEqual({ needle: needle.toString("hex"), found: false });
      let found = 0;
      for (const s of samples(content, 400)) if (capture.includes(s)) found++;
      expect(found).toBe(0);
      // --verbose names the cipher, the exchange and whether the server was authenticated.
      expect(r.stderr).toMatch(withToken ? /transfers from [^:]+:\d+: AES-256-GCM[^,]*, CPace-ristretto255, the server proved it knows the token/ : /transfers from [^:]+:\d+: AES-256-GCM[^,]*, X25519, no token: the server is not authenticated/);
    }, 60_000);
  }

  test("duplicated and reordered ciphertext on the path: refused as replays and counted, the file intact", async () => {
    // 1,350-byte segments: ~2,300 DATA datagrams, ~115 of them duplicated (with 64 KiB ones, ~50 and
    // ~2.5: none at all 8 % of the time).
    const { r, content, fetched } = await captureFetch([], [], { both: { duplicate: 0.05, reorder: 0.05, delayMs: 1 } }, ["--segment-size", "1350"]);
    expect(r.exitCode).toBe(0);
    expect(sha256Hex(fetched)).toBe(sha256Hex(content));
    const replayed = [...r.stderr.matchAll(/"replayed":(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    expect(replayed).toBeGreaterThan(0);
  }, 60_000);

  test("the check sees content when it is there: with --insecure-plaintext on both sides the capture holds the file's bytes", async () => {
    const { r, content, fetched, capture } = await captureFetch([], ["--insecure-plaintext"]);
    expect(r.exitCode).toBe(0);
    expect(sha256Hex(fetched)).toBe(sha256Hex(content));
    let found = 0;
    for (const s of samples(content, 100)) if (capture.includes(s)) found++;
    expect(found).toBeGreaterThan(90);
    expect(r.stderr).toContain("unencrypted (--insecure-plaintext)");
    // The REQUEST and ACCEPT stay sealed: even then the name never crosses in clear.
    expect(capture.includes(Buffer.from(NAME))).toBe(false);
  }, 60_000);
});
