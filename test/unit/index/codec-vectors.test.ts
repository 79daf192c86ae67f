import { describe, expect, test } from "bun:test";
import { decodeBody, encodeMessage, FrameDecoder } from "../../../src/index/core/codec.ts";
import { IndexErrorCode, KxKind, MsgType, Role, type IndexMessage } from "../../../src/index/core/messages.ts";
import { documentedVectors, hexOf, parseVectors } from "../../support/protocol-vectors.ts";

/** The same text as docs/PROTOCOL.md §1 "Test vectors" (a test below holds them equal). */
const VECTORS = `
# Every vector is one whole frame; its first line is length · type.
# HELLO: version 4, role 1 (file server), key exchange 0 (X25519), flags 0, nonce 00 01 … 0f, share 32 × 0x44
HELLO
  00000039 01
  46545849 04 01 00 00
  000102030405060708090a0b0c0d0e0f
  4444444444444444444444444444444444444444444444444444444444444444
# CHALLENGE: version 4, key exchange 1 (CPace), flags 1 (plaintext), nonce f0 f1 … ff, share 32 × 0x55, confirm 32 × 0x66
CHALLENGE
  00000054 02
  04 01 01
  f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff
  5555555555555555555555555555555555555555555555555555555555555555
  6666666666666666666666666666666666666666666666666666666666666666
# AUTH: key confirmation 32 × 0x33
AUTH
  00000021 03
  3333333333333333333333333333333333333333333333333333333333333333
# WELCOME: peer id 7, heartbeat interval 2000 ms, timeout 6000 ms
WELCOME
  0000000d 04
  00000007 000007d0 00001770
# ERROR: code 1 (authentication failed), text "authentication failed"
ERROR
  00000019 05
  01 0015 61757468656e7469636174696f6e206661696c6564
PING
  00000005 06
  00000001
PONG
  00000005 07
  00000001
# ANNOUNCE: host "::1", udp_port 40123
ANNOUNCE
  00000007 10
  03 3a3a31 9cbb
# FILES_ADD: one FileRecord: name "a/b.txt", size 2^32 + 5, sha256 32 × 0x11, pieces_root 32 × 0x22
FILES_ADD
  00000056 11
  00000001
  0007 612f622e747874 0000000100000005
  1111111111111111111111111111111111111111111111111111111111111111
  2222222222222222222222222222222222222222222222222222222222222222
# FILES_REMOVE: "a", "b/c"
FILES_REMOVE
  0000000d 12
  00000002
  0001 61
  0003 622f63
# FILE_REJECTED: name "../x", reason "'..' segment in name"
FILE_REJECTED
  0000001d 13
  0004 2e2e2f78
  0014 272e2e27207365676d656e7420696e206e616d65
# LIST: request id 7, pattern "*.txt"
LIST
  0000000c 20
  00000007 0005 2a2e747874
# LIST_ENTRIES: request id 7, one entry: name "a/b.txt", size 1000, sha256 32 × 0x11, no pieces root,
# servers "127.0.0.1:40123" and "[::1]:40123"
LIST_ENTRIES
  00000078 21
  00000007 00000001
  0007 612f622e747874 00000000000003e8
  1111111111111111111111111111111111111111111111111111111111111111
  0000000000000000000000000000000000000000000000000000000000000000
  0002
  0f 3132372e302e302e313a3430313233
  0b 5b3a3a315d3a3430313233
# LIST_END: request id 7, total 1, flags 1 (stale)
LIST_END
  0000000a 22
  00000007 00000001 01
# STATUS: request id 7
STATUS
  00000005 23
  00000007
# STATUS_SERVERS: request id 7, one server: "127.0.0.1:40123", 3 files, 1000 bytes, connected since
# 1700000000000 ms, last heard 1700000002000 ms, registered through master "a1b2c3d4e5f6"
STATUS_SERVERS
  00000040 24
  00000007 0001
  0f 3132372e302e302e313a3430313233
  00000003 00000000000003e8
  0000018bcfe56800 0000018bcfe56fd0
  0c 613162326333643465356636
# STATUS_END: request id 7, format 1, master "a1b2c3d4e5f6", started at 1700000000000 ms,
# counters connections = 2, lists_total = 5
STATUS_END
  00000044 25
  00000007 01
  0c 613162326333643465356636
  0000018bcfe56800
  02
  0b 636f6e6e656374696f6e73 0000000000000002
  0b 6c697374735f746f74616c 0000000000000005
`;

const SHA = "11".repeat(32);
const MESSAGES: Record<string, IndexMessage> = {
  HELLO: { type: MsgType.Hello, version: 4, role: Role.FileServer, kx: KxKind.X25519, plaintext: false, nonce: Uint8Array.from({ length: 16 }, (_, i) => i), share: new Uint8Array(32).fill(0x44) },
  CHALLENGE: {
    type: MsgType.Challenge,
    version: 4,
    kx: KxKind.CPace,
    plaintext: true,
    nonce: Uint8Array.from({ length: 16 }, (_, i) => 0xf0 + i),
    share: new Uint8Array(32).fill(0x55),
    confirm: new Uint8Array(32).fill(0x66),
  },
  AUTH: { type: MsgType.Auth, mac: new Uint8Array(32).fill(0x33) },
  WELCOME: { type: MsgType.Welcome, peerId: 7, heartbeatIntervalMs: 2000, heartbeatTimeoutMs: 6000 },
  ERROR: { type: MsgType.Error, code: IndexErrorCode.AuthFailed, message: "authentication failed" },
  PING: { type: MsgType.Ping, seq: 1 },
  PONG: { type: MsgType.Pong, seq: 1 },
  ANNOUNCE: { type: MsgType.Announce, host: "::1", port: 40123 },
  FILES_ADD: { type: MsgType.FilesAdd, files: [{ name: "a/b.txt", size: 2 ** 32 + 5, sha256: SHA, piecesRoot: "22".repeat(32) }] },
  FILES_REMOVE: { type: MsgType.FilesRemove, names: ["a", "b/c"] },
  FILE_REJECTED: { type: MsgType.FileRejected, name: "../x", reason: "'..' segment in name" },
  LIST: { type: MsgType.List, requestId: 7, pattern: "*.txt" },
  LIST_ENTRIES: { type: MsgType.ListEntries, requestId: 7, entries: [{ name: "a/b.txt", size: 1000, sha256: SHA, servers: ["127.0.0.1:40123", "[::1]:40123"] }] },
  LIST_END: { type: MsgType.ListEnd, requestId: 7, total: 1, stale: true },
  STATUS: { type: MsgType.Status, requestId: 7 },
  STATUS_SERVERS: {
    type: MsgType.StatusServers,
    requestId: 7,
    servers: [{ address: "127.0.0.1:40123", files: 3, bytes: 1000, connectedSinceMs: 1700000000000, lastHeartbeatMs: 1700000002000, master: "a1b2c3d4e5f6" }],
  },
  STATUS_END: {
    type: MsgType.StatusEnd,
    requestId: 7,
    format: 1,
    masterId: "a1b2c3d4e5f6",
    startedAtMs: 1700000000000,
    counters: [
      { name: "connections", value: 2 },
      { name: "lists_total", value: 5 },
    ],
  },
};

const vectors = parseVectors(VECTORS);

describe("index protocol test vectors", () => {
  test("one vector for every message type", () => {
    expect([...vectors.keys()].sort()).toEqual(Object.keys(MESSAGES).sort());
    const types = new Set(Object.values(MESSAGES).map((m) => m.type));
    for (const t of Object.values(MsgType)) if (typeof t === "number") expect(types.has(t)).toBe(true);
  });

  for (const [name, msg] of Object.entries(MESSAGES)) {
    test(`${name}: the encoder writes exactly this frame, and the decoder reads this message from it`, () => {
      const frame = vectors.get(name)!;
      expect(hexOf(encodeMessage(msg))).toBe(hexOf(frame));
      expect(decodeBody(frame.subarray(4))).toEqual(msg);
      const d = new FrameDecoder();
      d.push(frame);
      expect(d.next()).toEqual(msg);
      expect(d.next()).toBeUndefined();
    });
  }

  test("docs/PROTOCOL.md §1 carries these same vectors", () => {
    const documented = documentedVectors("1.");
    expect([...documented.keys()]).toEqual([...vectors.keys()]);
    for (const [name, bytes] of vectors) expect({ name, hex: hexOf(documented.get(name)!) }).toEqual({ name, hex: hexOf(bytes) });
  });

  test("a fixed-size field of the wrong size is refused by the encoder, as the decoder would refuse it", () => {
    expect(() => encodeMessage({ type: MsgType.Auth, mac: new Uint8Array(31) })).toThrow(RangeError);
    expect(() => encodeMessage({ type: MsgType.Hello, version: 3, role: Role.Client, kx: KxKind.X25519, plaintext: false, nonce: new Uint8Array(17), share: new Uint8Array(32) })).toThrow(RangeError);
    expect(() => encodeMessage({ type: MsgType.Hello, version: 3, role: Role.Client, kx: KxKind.X25519, plaintext: false, nonce: new Uint8Array(16), share: new Uint8Array(31) })).toThrow(RangeError);
  });
});
