import { describe, expect, test } from "bun:test";
import { crc32 } from "node:zlib";
import {
  ACK_BYTES,
  dataPayloadBytes,
  datagramCrc,
  decodeAccept,
  decodeAck,
  decodeData,
  decodeError,
  decodeFin,
  decodeProbe,
  decodeProbeAck,
  decodeRequest,
  decodeRetry,
  decodeUpgradeError,
  encodeAccept,
  encodeData,
  encodeError,
  encodeFin,
  encodeProbe,
  encodeProbeAck,
  encodeRequest,
  encodeRetry,
  encodeUpgradeError,
  FLAG_ACK_NOW,
  FLAG_GAP,
  finishRepair,
  decodeRepair,
  REPAIR_AT,
  HEADER_AT,
  PacketType,
  readHeader,
  TransferErrorCode,
  writeAck,
} from "../../../src/transfer/core/wire.ts";
import { documentedVectors, hexOf, parseVectors } from "../../support/protocol-vectors.ts";

/** The same text as docs/PROTOCOL.md §2 "Test vectors" (a test below holds them equal). */
const VECTORS = `
# Every vector: session id 0x01020304, timestamp 0x0a0b0c0d. The first line is the header:
# magic · version · type · flags · reserved · session id · seq · timestamp · crc.
# REQUEST: offset 2^32, length 1000, segment_bytes 1374, window 64, no address token, sha256 32 × 0x11,
# name "a/b.txt", no MAC
REQUEST
  4658 03 01 00 00 01020304 0000000000000000 0a0b0c0d 52b4b4f8
  0000000100000000 00000000000003e8 055e 00000040
  0000000000000000000000000000000000000000
  1111111111111111111111111111111111111111111111111111111111111111
  0007 612f622e747874
# REQUEST, flags MAC + piece hashes: offset 0, length 0 (to the end), segment_bytes 65481, window 64,
# address token (issued_s 3600, tag 16 × 0x33), sha256 32 × 0x11, name "a/b.txt", mac 32 × 0x22
REQUEST_MAC
  4658 03 01 03 00 01020304 0000000000000000 0a0b0c0d 40836db9
  0000000000000000 0000000000000000 ffc9 00000040
  00000e10 33333333333333333333333333333333
  1111111111111111111111111111111111111111111111111111111111111111
  0007 612f622e747874
  2222222222222222222222222222222222222222222222222222222222222222
# ACCEPT: file_size 2^40, offset 2^32, length 1000, segment_bytes 1374, cookie 0xcafef00d, sha256 32 × 0x11,
# fec_block 64
ACCEPT
  4658 03 02 00 00 01020304 0000000000000000 0a0b0c0d bbb37a71
  0000010000000000 0000000100000000 00000000000003e8 055e cafef00d
  1111111111111111111111111111111111111111111111111111111111111111
  40
# ERROR: code 4 (changed), text "a/b.txt changed"
ERROR
  4658 03 03 00 00 01020304 0000000000000000 0a0b0c0d 6d85b633
  04 000f 612f622e747874206368616e676564
# DATA: seq 2^32 + 2, flags ACK_NOW, payload "hello"
DATA
  4658 03 04 04 00 01020304 0000000100000002 0a0b0c0d ce57c837
  68656c6c6f
# ACK: seq (cumulative) 2^32 + 3, flags GAP, window 64, echo_timestamp 0x0a0b0c0d, ack_delay_us 250,
# received 77, cookie 0xcafef00d
ACK
  4658 03 05 08 00 01020304 0000000100000003 0a0b0c0d 4009569d
  00000040 0a0b0c0d 000000fa 0000004d cafef00d
FIN
  4658 03 06 00 00 01020304 0000000000000000 0a0b0c0d bac57b30
# PROBE of 50 bytes, the smallest (session id = probe id)
PROBE
  4658 03 07 00 00 01020304 0000000000000000 0a0b0c0d da879ea9
  (zeros to 50 bytes)
# PROBE_ACK: datagram_bytes 50, address token (issued_s 3600, tag 16 × 0x33)
PROBE_ACK
  4658 03 08 00 00 01020304 0000000000000000 0a0b0c0d 83c0c092
  00000032
  00000e10 33333333333333333333333333333333
# REPAIR 1 (flags) of the block whose first segment is 2^32 (seq), payload "hello"
REPAIR
  4658 03 09 01 00 01020304 0000000100000000 0a0b0c0d 2a399d1f
  68656c6c6f
# RETRY: address token (issued_s 3600, tag 16 × 0x33)
RETRY
  4658 03 0a 00 00 01020304 0000000000000000 0a0b0c0d ad317b9d
  00000e10 33333333333333333333333333333333
# The ERROR a version-2 client's REQUEST draws: version 2, code 5 (bad request), text "upgrade ftx"
# (the server's says more: which versions)
UPGRADE_ERROR
  4658 02 03 00 00 01020304 0000000000000000 0a0b0c0d 7db1afab
  05 000b 7570677261646520667478
`;

const SESSION = 0x01020304;
const TS = 0x0a0b0c0d;
const SHA = new Uint8Array(32).fill(0x11);
const MAC = new Uint8Array(32).fill(0x22);
const HELLO = new TextEncoder().encode("hello");
const TOKEN = new Uint8Array(20).fill(0x33);
new DataView(TOKEN.buffer).setUint32(0, 3600);

function ack(): Uint8Array {
  const buf = new Uint8Array(ACK_BYTES);
  writeAck(buf, new DataView(buf.buffer), SESSION, 2 ** 32 + 3, { windowSegments: 64, echoTimestampUs: 0x0a0b0c0d, ackDelayUs: 250, received: 77, gap: true }, 0xcafef00d, TS);
  return buf;
}

/** Per vector: the header and body it stands for, how to build it, and how to read it back. */
const CASES: Record<string, { seq: number; type: PacketType; flags: number; body: unknown; encode: () => Uint8Array; decode: (b: Uint8Array) => unknown }> = {
  REQUEST: {
    type: PacketType.Request,
    flags: 0,
    seq: 0,
    body: { offset: 2 ** 32, length: 1000, segmentBytes: 1374, windowSegments: 64, sha256: SHA, name: "a/b.txt", mac: undefined, pieceHashes: false, token: undefined },
    encode: () => encodeRequest(SESSION, { offset: 2 ** 32, length: 1000, segmentBytes: 1374, windowSegments: 64, sha256: SHA, name: "a/b.txt", mac: undefined }, TS),
    decode: (b) => decodeRequest(b, readHeader(b)),
  },
  REQUEST_MAC: {
    type: PacketType.Request,
    flags: 0x03,
    seq: 0,
    body: { offset: 0, length: 0, segmentBytes: 65481, windowSegments: 64, sha256: SHA, name: "a/b.txt", mac: MAC, pieceHashes: true, token: TOKEN },
    encode: () => encodeRequest(SESSION, { offset: 0, length: 0, segmentBytes: 65481, windowSegments: 64, sha256: SHA, name: "a/b.txt", mac: MAC, pieceHashes: true, token: TOKEN }, TS),
    decode: (b) => decodeRequest(b, readHeader(b)),
  },
  ACCEPT: {
    type: PacketType.Accept,
    flags: 0,
    seq: 0,
    body: { fileSize: 2 ** 40, offset: 2 ** 32, length: 1000, segmentBytes: 1374, cookie: 0xcafef00d, sha256: SHA, fecBlock: 64 },
    encode: () => encodeAccept(SESSION, { fileSize: 2 ** 40, offset: 2 ** 32, length: 1000, segmentBytes: 1374, cookie: 0xcafef00d, sha256: SHA, fecBlock: 64 }, TS),
    decode: decodeAccept,
  },
  ERROR: {
    type: PacketType.Error,
    flags: 0,
    seq: 0,
    body: { code: TransferErrorCode.Changed, text: "a/b.txt changed" },
    encode: () => encodeError(SESSION, { code: TransferErrorCode.Changed, text: "a/b.txt changed" }, TS),
    decode: decodeError,
  },
  DATA: {
    type: PacketType.Data,
    flags: FLAG_ACK_NOW,
    seq: 2 ** 32 + 2,
    // The last segment of a range of (2^32 + 2) · 1374 + 5 bytes: its 5 bytes.
    body: HELLO,
    encode: () => encodeData(SESSION, 2 ** 32 + 2, FLAG_ACK_NOW, HELLO, TS),
    decode: (b) => decodeData(b, 2 ** 32 + 2, 1374, (2 ** 32 + 2) * 1374 + 5),
  },
  ACK: {
    type: PacketType.Ack,
    flags: FLAG_GAP,
    seq: 2 ** 32 + 3,
    body: { windowSegments: 64, echoTimestampUs: 0x0a0b0c0d, ackDelayUs: 250, received: 77, cookie: 0xcafef00d, gap: true },
    encode: ack,
    decode: decodeAck,
  },
  FIN: { type: PacketType.Fin, flags: 0, seq: 0, body: undefined, encode: () => encodeFin(SESSION, TS), decode: decodeFin },
  PROBE: { type: PacketType.Probe, flags: 0, seq: 0, body: 50, encode: () => encodeProbe(SESSION, 50, TS), decode: decodeProbe },
  PROBE_ACK: {
    type: PacketType.ProbeAck,
    flags: 0,
    seq: 0,
    body: { datagramBytes: 50, token: TOKEN },
    encode: () => encodeProbeAck(SESSION, { datagramBytes: 50, token: TOKEN }, TS),
    decode: decodeProbeAck,
  },
  RETRY: { type: PacketType.Retry, flags: 0, seq: 0, body: TOKEN, encode: () => encodeRetry(SESSION, TOKEN, TS), decode: decodeRetry },
  REPAIR: {
    type: PacketType.Repair,
    flags: 1,
    seq: 2 ** 32,
    body: HELLO,
    encode: () => {
      const buf = new Uint8Array(REPAIR_AT.payload + HELLO.byteLength);
      buf.set(HELLO, REPAIR_AT.payload);
      finishRepair(buf, new DataView(buf.buffer), 1, SESSION, 2 ** 32, TS);
      return buf;
    },
    decode: (b) => decodeRepair(b, 1374),
  },
};

const vectors = parseVectors(VECTORS);

/** Bytes for a version-2 client, which this version's readHeader refuses: checked with their own reader. */
const UPGRADE_ERROR = { version: 2, sessionId: SESSION, body: { code: TransferErrorCode.BadRequest, text: "upgrade ftx" } };

describe("transfer protocol test vectors", () => {
  test("one vector for every packet type, and a case for every vector", () => {
    expect([...vectors.keys()].sort()).toEqual([...Object.keys(CASES), "UPGRADE_ERROR"].sort());
    const types = new Set(Object.values(CASES).map((c) => c.type));
    for (const t of Object.values(PacketType)) if (typeof t === "number") expect(types.has(t)).toBe(true);
  });

  for (const [name, c] of Object.entries(CASES)) {
    test(`${name}: the encoder writes exactly these bytes, and the decoder reads these fields from them`, () => {
      const bytes = vectors.get(name)!;
      expect(hexOf(c.encode())).toBe(hexOf(bytes));
      expect(readHeader(bytes)).toEqual({ type: c.type, flags: c.flags, sessionId: SESSION, seq: c.seq, timestampUs: TS });
      expect(c.decode(bytes)).toEqual(c.body);
    });
  }

  test("UPGRADE_ERROR: encodeUpgradeError writes exactly these bytes, and an old client's reader finds its version, code and text", () => {
    const bytes = vectors.get("UPGRADE_ERROR")!;
    expect(hexOf(encodeUpgradeError(2, SESSION, "upgrade ftx", TS))).toBe(hexOf(bytes));
    expect(decodeUpgradeError(bytes)).toEqual(UPGRADE_ERROR);
  });

  test("each vector's crc is zlib's CRC-32 of the datagram with the crc field zeroed", () => {
    for (const [name, bytes] of vectors) {
      const zeroed = bytes.slice();
      zeroed.fill(0, HEADER_AT.crc, HEADER_AT.end);
      const field = new DataView(bytes.buffer, bytes.byteOffset).getUint32(HEADER_AT.crc);
      expect({ name, crc: field }).toEqual({ name, crc: crc32(zeroed) });
    }
  });

  test("docs/PROTOCOL.md §2 carries these same vectors", () => {
    const documented = documentedVectors("2.");
    expect([...documented.keys()]).toEqual([...vectors.keys()]);
    for (const [name, bytes] of vectors) expect({ name, hex: hexOf(documented.get(name)!) }).toEqual({ name, hex: hexOf(bytes) });
  });
});

describe("checksum", () => {
  test("continuing Bun's CRC-32 from a seed equals the one-shot CRC, so the check needs no zeroed copy", () => {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31 + 7) & 0xff);
    const oneShot = Bun.hash.crc32(bytes);
    const chained = Bun.hash.crc32(bytes.subarray(600), Bun.hash.crc32(bytes.subarray(0, 600)));
    expect(chained).toBe(oneShot);
    const zeroed = bytes.slice();
    zeroed.fill(0, HEADER_AT.crc, HEADER_AT.end);
    expect(datagramCrc(bytes)).toBe(Bun.hash.crc32(zeroed));
    expect(datagramCrc(bytes)).toBe(crc32(zeroed));
  });

  test("reading a header leaves the received bytes as they were", () => {
    for (const [name, bytes] of vectors) {
      if (name === "UPGRADE_ERROR") continue; // another version: readHeader refuses it
      const before = hexOf(bytes);
      readHeader(bytes);
      expect(hexOf(bytes)).toBe(before);
    }
    // A datagram that fails the check is left alone too.
    const bad = vectors.get("ACK")!.slice();
    bad[bad.byteLength - 1]! ^= 1;
    const before = hexOf(bad);
    expect(() => readHeader(bad)).toThrow("checksum mismatch");
    expect(hexOf(bad)).toBe(before);
  });
});

describe("the DATA length rule", () => {
  test("every segment is segment_bytes long but the last of the range, which is what is left; none past the range", () => {
    expect([0, 1, 2, 3].map((seq) => dataPayloadBytes(seq, 1000, 2500))).toEqual([1000, 1000, 500, 0]);
    expect([0, 1, 2].map((seq) => dataPayloadBytes(seq, 1000, 2000))).toEqual([1000, 1000, 0]);
    expect(dataPayloadBytes(0, 1000, 0)).toBe(0);
    expect(dataPayloadBytes(2 ** 32, 65481, 2 ** 32 * 65481 + 1)).toBe(1);
  });

  test("decodeData gives the payload only when its length follows the rule", () => {
    const full = encodeData(1, 0, 0, new Uint8Array(1000).fill(7), 0);
    const last = encodeData(1, 2, 0, new Uint8Array(500).fill(9), 0);
    expect(decodeData(full, 0, 1000, 2500)?.byteLength).toBe(1000);
    expect(decodeData(last, 2, 1000, 2500)?.[499]).toBe(9);
    expect(decodeData(full, 2, 1000, 2500)).toBeUndefined(); // too long for the last segment
    expect(decodeData(last, 1, 1000, 2500)).toBeUndefined(); // too short for a middle one
    expect(decodeData(last, 3, 1000, 2500)).toBeUndefined(); // past the range
  });
});
