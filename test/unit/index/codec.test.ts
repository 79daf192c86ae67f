import { describe, expect, test } from "bun:test";
import { ProtocolError } from "../../../src/errors.ts";
import { decodeBody, encodeMessage, FrameDecoder } from "../../../src/index/core/codec.ts";
import { INDEX_VERSION, IndexErrorCode, KxKind, MAX_FRAME_BYTES, MsgType, Role, type IndexMessage } from "../../../src/index/core/messages.ts";
import { mutate, Rng } from "../../support/random.ts";

const sha = "ab".repeat(32);
const samples: IndexMessage[] = [
  { type: MsgType.Hello, version: INDEX_VERSION, role: Role.FileServer, kx: KxKind.CPace, plaintext: false, nonce: new Uint8Array(16).fill(7), share: new Uint8Array(32).fill(8) },
  { type: MsgType.Challenge, version: INDEX_VERSION, kx: KxKind.X25519, plaintext: true, nonce: new Uint8Array(16).fill(9), share: new Uint8Array(32).fill(1), confirm: new Uint8Array(32).fill(2) },
  { type: MsgType.Auth, mac: new Uint8Array(32).fill(3) },
  { type: MsgType.Welcome, peerId: 42, heartbeatIntervalMs: 2000, heartbeatTimeoutMs: 6000 },
  { type: MsgType.Error, code: IndexErrorCode.AuthFailed, message: "authentication failed" },
  { type: MsgType.Ping, seq: 0xffffffff },
  { type: MsgType.Pong, seq: 1 },
  { type: MsgType.Announce, host: "::1", port: 40123 },
  { type: MsgType.Announce, host: "", port: 1 },
  { type: MsgType.FilesAdd, files: [{ name: "docs/a.txt", size: 1234, sha256: sha }, { name: "ünïcødé/☃", size: 2 ** 40, sha256: sha }] },
  { type: MsgType.FilesAdd, files: [] },
  { type: MsgType.FilesRemove, names: ["a", "b/c"] },
  { type: MsgType.FileRejected, name: "../x", reason: "'..' segment in name" },
  { type: MsgType.List, requestId: 7, pattern: "**/*.txt" },
  { type: MsgType.ListEntries, requestId: 7, entries: [{ name: "a", size: 0, sha256: sha, servers: ["127.0.0.1:1", "[::1]:2"] }] },
  { type: MsgType.ListEnd, requestId: 7, total: 1, stale: true },
];

function decodeAll(bytes: Uint8Array, chunk: number): IndexMessage[] {
  const d = new FrameDecoder();
  const out: IndexMessage[] = [];
  for (let i = 0; i < bytes.length; i += chunk) {
    d.push(bytes.subarray(i, i + chunk));
    for (let m = d.next(); m; m = d.next()) out.push(m);
  }
  return out;
}

describe("index codec", () => {
  test("every message round-trips", () => {
    for (const msg of samples) {
      const frame = encodeMessage(msg);
      expect(new DataView(frame.buffer).getUint32(0)).toBe(frame.length - 4);
      expect(decodeBody(frame.subarray(4))).toEqual(msg);
    }
  });

  test("a stream of frames decodes the same whole, byte by byte, and in odd chunks", () => {
    const stream = Buffer.concat(samples.map(encodeMessage));
    expect(decodeAll(stream, stream.length)).toEqual(samples);
    expect(decodeAll(stream, 1)).toEqual(samples);
    expect(decodeAll(stream, 7)).toEqual(samples);
  });

  test("an incomplete frame is not an error: next() waits", () => {
    const frame = encodeMessage(samples[3]!);
    const d = new FrameDecoder();
    d.push(frame.subarray(0, frame.length - 1));
    expect(d.next()).toBeUndefined();
    d.push(frame.subarray(frame.length - 1));
    expect(d.next()).toEqual(samples[3]!);
  });

  test("an oversized length is refused as soon as the prefix arrives, before buffering", () => {
    const d = new FrameDecoder();
    const prefix = new Uint8Array(4);
    new DataView(prefix.buffer).setUint32(0, MAX_FRAME_BYTES + 1);
    expect(() => d.push(prefix)).toThrow(ProtocolError);
    expect(() => new FrameDecoder().push(new Uint8Array(4))).toThrow(/empty frame/);
  });

  test("bad magic, unknown type, trailing bytes, counts that cannot fit, bad UTF-8 are typed errors", () => {
    const hello = encodeMessage(samples[0]!).slice(4);
    hello[1] = 0;
    expect(() => decodeBody(hello)).toThrow(/bad magic/);
    expect(() => decodeBody(Uint8Array.of(0x7e))).toThrow(/unknown message type/);
    const ping = encodeMessage(samples[5]!).slice(4);
    expect(() => decodeBody(Buffer.concat([ping, Uint8Array.of(0)]))).toThrow(/trailing/);
    const add = Uint8Array.of(MsgType.FilesAdd, 0xff, 0xff, 0xff, 0xff);
    expect(() => decodeBody(add)).toThrow(/does not fit/);
    const badUtf8 = Uint8Array.of(MsgType.List, 0, 0, 0, 1, 0, 2, 0xc3, 0x28);
    expect(() => decodeBody(badUtf8)).toThrow(/UTF-8/);
  });

  test("fuzz: 20,000 random and mutated frames yield messages or ProtocolError, nothing else", () => {
    const seed = Number(process.env.FUZZ_SEED ?? 1234);
    const rng = new Rng(seed);
    const valid = samples.map(encodeMessage);
    let decoded = 0;
    let rejected = 0;
    for (let i = 0; i < 20_000; i++) {
      const input = rng.chance(0.3) ? rng.bytes(rng.int(64)) : mutate(rng, rng.pick(valid));
      const d = new FrameDecoder();
      try {
        // Feed in random chunks, like TCP would.
        let at = 0;
        while (at < input.length) {
          const n = 1 + rng.int(input.length - at);
          d.push(input.subarray(at, at + n));
          at += n;
          while (d.next()) decoded++;
        }
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw new Error(`seed ${seed} iteration ${i}: ${err}`);
        rejected++;
      }
      expect(d.bufferedBytes).toBeLessThanOrEqual(input.length);
    }
    expect(decoded).toBeGreaterThan(1000);
    expect(rejected).toBeGreaterThan(1000);
  });
});
