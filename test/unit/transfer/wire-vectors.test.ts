import { describe, expect, test } from "bun:test";
import { createCipheriv } from "node:crypto";
import { crc32 } from "node:zlib";
import { bestInPlaceAead } from "../../../src/crypto/aes-gcm-native.ts";
import { counterNonce } from "../../../src/crypto/core/aead.ts";
import { DATAGRAM_OVERHEAD_BYTES, DatagramOpener, DatagramSealer, PN_BYTES } from "../../../src/transfer/core/datagram-aead.ts";
import {
  ACCEPT_AT,
  ACK_BYTES,
  acceptNonce,
  dataPayloadBytes,
  datagramCrc,
  decodeAccept,
  decodeAck,
  decodeData,
  decodeError,
  decodeFin,
  decodeProbe,
  decodeProbeAck,
  decodeRepair,
  decodeRequestBody,
  decodeRequestHello,
  decodeRetry,
  decodeUpgradeError,
  encodeAccept,
  encodeBareRequest,
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
  FLAG_PIECE_HASHES,
  FLAG_PLAINTEXT,
  FLAG_SEALED,
  finishRepair,
  HEADER_AT,
  HEADER_BYTES,
  MAX_SEGMENT_BYTES,
  openBody,
  PacketType,
  readHeader,
  REPAIR_AT,
  REQUEST_AT,
  TransferErrorCode,
  writeAck,
} from "../../../src/transfer/core/wire.ts";
import { documentedVectors, hexOf, parseVectors } from "../../support/protocol-vectors.ts";

/** The same text as docs/PROTOCOL.md §2 "Test vectors" (a test below holds them equal). */
const VECTORS = `
# Every vector: session id 0x01020304, timestamp 0x0a0b0c0d. The first line is the header:
# magic · version · type · flags · reserved · session id · seq · timestamp · crc.
# A greeting (RETRY, PROBE_ACK) is token ‖ kx ‖ epoch id ‖ share; every vector's is the same: address token
# (issued_s 3600, tag 16 × 0x33), kx 1 (CPace), epoch id 16 × 0x44, server share 32 × 0x55.
# A sealed datagram is aad (every byte before its body, crc taken as 0) ‖ AES-256-GCM ciphertext of its body
# ‖ pn ‖ tag, nonce = iv XOR pn; its crc is over the sealed bytes. A sealed body's lines are ciphertext,
# grouped as its clear fields. The session's keys: server → client key 32 × 0x91, iv 12 × 0x92 (ACCEPT pn 0,
# DATA pn 1, REPAIR pn 2, ERROR pn 3); client → server key 32 × 0x81, iv 12 × 0x82 (ACK pn 0, FIN pn 1).
# PROBE of 99 bytes, the smallest (as long as its PROBE_ACK; session id = probe id)
PROBE
  4658 04 07 00 00 01020304 0000000000000000 0a0b0c0d 5c2b1b0c
  (zeros to 99 bytes)
# PROBE_ACK: datagram_bytes 99, the greeting
PROBE_ACK
  4658 04 08 00 00 01020304 0000000000000000 0a0b0c0d fd4a17df
  00000063
  00000e10 33333333333333333333333333333333
  01 44444444444444444444444444444444
  5555555555555555555555555555555555555555555555555555555555555555
# A bare REQUEST (no greeting yet): all zero after the header, 128 bytes; it draws a RETRY
REQUEST_BARE
  4658 04 01 00 00 01020304 0000000000000000 0a0b0c0d 8c873cb4
  (zeros to 128 bytes)
# RETRY: the greeting
RETRY
  4658 04 0a 00 00 01020304 0000000000000000 0a0b0c0d 68e6b76f
  00000e10 33333333333333333333333333333333
  01 44444444444444444444444444444444
  5555555555555555555555555555555555555555555555555555555555555555
# REQUEST, sealed under the REQUEST key 32 × 0x71, iv 12 × 0x72, pn 0. Clear: the greeting's token, kx 1 and
# epoch id, client share 32 × 0x66, confirm 16 × 0x77; sealed: offset 2^32, length 1000, segment_bytes 1374,
# window 64, sha256 32 × 0x11, name "a/b.txt"; then pn ‖ tag
REQUEST
  4658 04 01 00 00 01020304 0000000000000000 0a0b0c0d 00514cb0
  00000e10 33333333333333333333333333333333
  01 44444444444444444444444444444444
  6666666666666666666666666666666666666666666666666666666666666666
  77777777777777777777777777777777
  6808b65efa1bb183 b3879eccf1b234c1 542d 819b8aae
  8eecf538e8ef8fcff96c9401bda7d759d2b97753a1e9410d80de9e8522b8914f
  13ff a4fa0e916b91fa
  0000000000000000 e5f657d7cf64d8f145a49c4f20364d29
# REQUEST, flags PLAINTEXT + PIECE_HASHES, sealed under the REQUEST key 32 × 0x73, iv 12 × 0x74, pn 0: the
# same clear fields; sealed: offset 0, length 0 (to the end), segment_bytes 65457 (the largest), window 64,
# sha256 32 × 0x11, name "a/b.txt"
REQUEST_PLAINTEXT
  4658 04 01 03 00 01020304 0000000000000000 0a0b0c0d 273ed8fc
  00000e10 33333333333333333333333333333333
  01 44444444444444444444444444444444
  6666666666666666666666666666666666666666666666666666666666666666
  77777777777777777777777777777777
  0fb521b31cd10e1a 8ff7180e77c813b6 4fcc 90b908a7
  91c118af7a6ffe1432d3e52b5ed079d4b41a08457995ef047d1ab403cdb8ab04
  d5ee 56c27372127221
  0000000000000000 b3ba1f39b572a23500588ced7e672ebb
# ACCEPT (server → client, pn 0): server nonce 16 × 0x88 in clear; sealed: file_size 2^40, offset 2^32,
# length 1000, segment_bytes 1374, cookie 0xcafef00d, sha256 32 × 0x11, fec_block 64
ACCEPT
  4658 04 02 00 00 01020304 0000000000000000 0a0b0c0d 3033452b
  88888888888888888888888888888888
  a250c92ba5923741 1c91971130126cf2 d73b42799e8854ff a07d c1eea979
  656f6f462ae2c6efa9827b7b2137928199f50b994da420430ace0bf71404dcb9
  5e
  0000000000000000 0fd157e9c183b798b745e13b651aa7cc
# DATA (server → client, pn 1): seq 2^32 + 2, flags ACK_NOW; sealed payload "hello"
DATA
  4658 04 04 04 00 01020304 0000000100000002 0a0b0c0d 95b840a7
  7947515b78
  0000000000000001 31385547b06dcf7550c509b3907b05c5
# REPAIR (server → client, pn 2): repair 1 (flags) of the block whose first segment is 2^32 (seq); sealed
# payload "hello"
REPAIR
  4658 04 09 01 00 01020304 0000000100000000 0a0b0c0d 020eeea3
  d0963f548d
  0000000000000002 252cea9f6e7813afa729c127b9b6056d
# ACK (client → server, pn 0): seq (cumulative) 2^32 + 3, flags GAP; sealed: window 64, echo_timestamp
# 0x0a0b0c0d, ack_delay_us 250, received 77, cookie 0xcafef00d
ACK
  4658 04 05 08 00 01020304 0000000100000003 0a0b0c0d 82359e3c
  34d5c93f 8bd4bcb8 ad54a387 ab688d70 d02563d9
  0000000000000000 52485235bed83927c977709507d5403d
# FIN (client → server, pn 1): no body, only pn ‖ tag
FIN
  4658 04 06 00 00 01020304 0000000000000000 0a0b0c0d b546578e
  0000000000000001 bdebfd721c33be73e4fe998edb519f36
# ERROR (server → client, pn 3), flags SEALED; sealed: code 4 (changed), text "a/b.txt changed"
ERROR
  4658 04 03 01 00 01020304 0000000000000000 0a0b0c0d fc1d86ea
  8a 7cf3 812e8973efacc387dc52294d0cba78
  0000000000000003 e164b7d04cd2858e5023d452ec73b2f8
# DATA of a --insecure-plaintext session (clear after the ACCEPT): seq 2^32 + 2, flags ACK_NOW, payload "hello"
DATA_CLEAR
  4658 04 04 04 00 01020304 0000000100000002 0a0b0c0d 3c31c18a
  68656c6c6f
# ERROR in clear (flags 0), as a --insecure-plaintext session sends it: code 4 (changed), text "a/b.txt changed"
ERROR_CLEAR
  4658 04 03 00 00 01020304 0000000000000000 0a0b0c0d bccb243b
  04 000f 612f622e747874206368616e676564
# The ERROR a version-3 client's REQUEST draws, in clear: version 3, code 5 (bad request), text "upgrade ftx"
# (the server's says more: which versions)
UPGRADE_ERROR
  4658 03 03 00 00 01020304 0000000000000000 0a0b0c0d f0395249
  05 000b 7570677261646520667478
`;

const SESSION = 0x01020304;
const TS = 0x0a0b0c0d;
const fill = (bytes: number, value: number) => new Uint8Array(bytes).fill(value);
const SHA = fill(32, 0x11);
const HELLO = new TextEncoder().encode("hello");
const TOKEN = fill(20, 0x33);
new DataView(TOKEN.buffer).setUint32(0, 3600);
const GREETING = { token: TOKEN, kx: 1, epochId: fill(16, 0x44), share: fill(32, 0x55) };
const REQUEST_HELLO = { token: TOKEN, kx: 1, epochId: fill(16, 0x44), share: fill(32, 0x66), confirm: fill(16, 0x77) };
const SERVER_NONCE = fill(16, 0x88);

/** A fixed key and iv, and the pn a vector is sealed with. */
interface Keys {
  key: Uint8Array;
  iv: Uint8Array;
  pn: number;
}
const requestKey = (key: number, iv: number): Keys => ({ key: fill(32, key), iv: fill(12, iv), pn: 0 });
const s2c = (pn: number): Keys => ({ key: fill(32, 0x91), iv: fill(12, 0x92), pn });
const c2s = (pn: number): Keys => ({ key: fill(32, 0x81), iv: fill(12, 0x82), pn });

/** The AEAD the transfers use (libcrypto where it loads): the vectors are its output; node:crypto checks them below. */
const { factory: aead } = bestInPlaceAead();
const sealerOf = (k: Keys) => new DatagramSealer(aead(k.key), k.iv, k.pn);

/** A sealed vector opened with its keys (on a copy): the clear datagram, as its sender built it. */
function opened(bytes: Uint8Array, bodyAt: number, k: Keys): Uint8Array {
  const copy = bytes.slice();
  const end = openBody(copy, bodyAt, new DatagramOpener(aead(k.key), k.iv));
  if (end < 0) throw new Error("the vector does not open with its keys");
  return copy.subarray(0, end);
}

function ack(sealer: DatagramSealer): Uint8Array {
  const buf = new Uint8Array(ACK_BYTES + DATAGRAM_OVERHEAD_BYTES);
  writeAck(buf, new DataView(buf.buffer), SESSION, 2 ** 32 + 3, { windowSegments: 64, echoTimestampUs: 0x0a0b0c0d, ackDelayUs: 250, received: 77, gap: true }, 0xcafef00d, TS, sealer);
  return buf;
}

function repair(sealer: DatagramSealer): Uint8Array {
  const buf = new Uint8Array(REPAIR_AT.payload + HELLO.byteLength + DATAGRAM_OVERHEAD_BYTES);
  buf.set(HELLO, REPAIR_AT.payload);
  finishRepair(buf, new DataView(buf.buffer), 1, SESSION, 2 ** 32, TS, sealer);
  return buf;
}

/**
 * Per vector: the header and body it stands for, how to build it, how to read it back, and for a
 * sealed one its keys and where its body starts.
 */
interface Case {
  seq: number;
  type: PacketType;
  flags: number;
  body: unknown;
  encode: () => Uint8Array;
  decode: (b: Uint8Array) => unknown;
  sealed?: { keys: Keys; bodyAt: number };
}

const REQUEST_BODY = { offset: 2 ** 32, length: 1000, segmentBytes: 1374, windowSegments: 64, sha256: SHA, name: "a/b.txt" };
const REQUEST_PLAINTEXT_BODY = { offset: 0, length: 0, segmentBytes: MAX_SEGMENT_BYTES, windowSegments: 64, sha256: SHA, name: "a/b.txt", plaintext: true, pieceHashes: true };
const ACCEPT_BODY = { fileSize: 2 ** 40, offset: 2 ** 32, length: 1000, segmentBytes: 1374, cookie: 0xcafef00d, sha256: SHA, fecBlock: 64 };
const ACK_BODY = { windowSegments: 64, echoTimestampUs: 0x0a0b0c0d, ackDelayUs: 250, received: 77, cookie: 0xcafef00d, gap: true };
const CHANGED = { code: TransferErrorCode.Changed, text: "a/b.txt changed" };
/** DATA 2^32 + 2 is the last segment of a range of (2^32 + 2) · 1374 + 5 bytes: its 5 bytes. */
const decodeDataVector = (b: Uint8Array) => decodeData(b, 2 ** 32 + 2, 1374, (2 ** 32 + 2) * 1374 + 5);
const requestCase = (flags: number, body: typeof REQUEST_PLAINTEXT_BODY | typeof REQUEST_BODY, keys: Keys): Case => ({
  type: PacketType.Request,
  flags,
  seq: 0,
  body: { hello: REQUEST_HELLO, body: { pieceHashes: false, plaintext: false, ...body } },
  encode: () => encodeRequest(SESSION, body, REQUEST_HELLO, sealerOf(keys), TS),
  decode: (b) => ({ hello: decodeRequestHello(b), body: decodeRequestBody(opened(b, REQUEST_AT.body, keys), readHeader(b)) }),
  sealed: { keys, bodyAt: REQUEST_AT.body },
});

const CASES: Record<string, Case> = {
  PROBE: { type: PacketType.Probe, flags: 0, seq: 0, body: 99, encode: () => encodeProbe(SESSION, 99, TS), decode: decodeProbe },
  PROBE_ACK: {
    type: PacketType.ProbeAck,
    flags: 0,
    seq: 0,
    body: { datagramBytes: 99, greeting: GREETING },
    encode: () => encodeProbeAck(SESSION, { datagramBytes: 99, greeting: GREETING }, TS),
    decode: decodeProbeAck,
  },
  REQUEST_BARE: { type: PacketType.Request, flags: 0, seq: 0, body: undefined, encode: () => encodeBareRequest(SESSION, 0, TS), decode: decodeRequestHello },
  RETRY: { type: PacketType.Retry, flags: 0, seq: 0, body: GREETING, encode: () => encodeRetry(SESSION, GREETING, TS), decode: decodeRetry },
  REQUEST: requestCase(0, REQUEST_BODY, requestKey(0x71, 0x72)),
  REQUEST_PLAINTEXT: requestCase(FLAG_PLAINTEXT | FLAG_PIECE_HASHES, REQUEST_PLAINTEXT_BODY, requestKey(0x73, 0x74)),
  ACCEPT: {
    type: PacketType.Accept,
    flags: 0,
    seq: 0,
    body: { nonce: SERVER_NONCE, body: ACCEPT_BODY },
    encode: () => encodeAccept(SESSION, ACCEPT_BODY, SERVER_NONCE, sealerOf(s2c(0)), TS),
    decode: (b) => ({ nonce: acceptNonce(b).slice(), body: decodeAccept(opened(b, ACCEPT_AT.body, s2c(0))) }),
    sealed: { keys: s2c(0), bodyAt: ACCEPT_AT.body },
  },
  DATA: {
    type: PacketType.Data,
    flags: FLAG_ACK_NOW,
    seq: 2 ** 32 + 2,
    body: HELLO,
    encode: () => encodeData(SESSION, 2 ** 32 + 2, FLAG_ACK_NOW, HELLO, TS, sealerOf(s2c(1))),
    decode: (b) => decodeDataVector(opened(b, HEADER_BYTES, s2c(1))),
    sealed: { keys: s2c(1), bodyAt: HEADER_BYTES },
  },
  REPAIR: {
    type: PacketType.Repair,
    flags: 1,
    seq: 2 ** 32,
    body: HELLO,
    encode: () => repair(sealerOf(s2c(2))),
    decode: (b) => decodeRepair(opened(b, HEADER_BYTES, s2c(2)), 1374),
    sealed: { keys: s2c(2), bodyAt: HEADER_BYTES },
  },
  ACK: {
    type: PacketType.Ack,
    flags: FLAG_GAP,
    seq: 2 ** 32 + 3,
    body: ACK_BODY,
    encode: () => ack(sealerOf(c2s(0))),
    decode: (b) => decodeAck(opened(b, HEADER_BYTES, c2s(0))),
    sealed: { keys: c2s(0), bodyAt: HEADER_BYTES },
  },
  FIN: {
    type: PacketType.Fin,
    flags: 0,
    seq: 0,
    body: undefined,
    encode: () => encodeFin(SESSION, TS, sealerOf(c2s(1))),
    decode: (b) => decodeFin(opened(b, HEADER_BYTES, c2s(1))),
    sealed: { keys: c2s(1), bodyAt: HEADER_BYTES },
  },
  ERROR: {
    type: PacketType.Error,
    flags: FLAG_SEALED,
    seq: 0,
    body: CHANGED,
    encode: () => encodeError(SESSION, CHANGED, TS, sealerOf(s2c(3))),
    decode: (b) => decodeError(opened(b, HEADER_BYTES, s2c(3))),
    sealed: { keys: s2c(3), bodyAt: HEADER_BYTES },
  },
  DATA_CLEAR: { type: PacketType.Data, flags: FLAG_ACK_NOW, seq: 2 ** 32 + 2, body: HELLO, encode: () => encodeData(SESSION, 2 ** 32 + 2, FLAG_ACK_NOW, HELLO, TS), decode: decodeDataVector },
  ERROR_CLEAR: { type: PacketType.Error, flags: 0, seq: 0, body: CHANGED, encode: () => encodeError(SESSION, CHANGED, TS), decode: decodeError },
};

const vectors = parseVectors(VECTORS);

/** Bytes for a version-3 client, which this version's readHeader refuses: checked with their own reader. */
const UPGRADE_ERROR = { version: 3, sessionId: SESSION, body: { code: TransferErrorCode.BadRequest, text: "upgrade ftx" } };

describe("transfer protocol test vectors", () => {
  test("one vector for every packet type, and a case for every vector", () => {
    expect([...vectors.keys()].sort()).toEqual([...Object.keys(CASES), "UPGRADE_ERROR"].sort());
    const types = new Set(Object.values(CASES).map((c) => c.type));
    for (const t of Object.values(PacketType)) if (typeof t === "number") expect(types.has(t)).toBe(true);
  });

  for (const [name, c] of Object.entries(CASES)) {
    test(`${name}: the encoder writes exactly these bytes, and the decoder reads these fields from them${c.sealed ? " (opened with its keys)" : ""}`, () => {
      const bytes = vectors.get(name)!;
      expect(hexOf(c.encode())).toBe(hexOf(bytes));
      expect(readHeader(bytes)).toEqual({ type: c.type, flags: c.flags, sessionId: SESSION, seq: c.seq, timestampUs: TS });
      expect(c.decode(bytes)).toEqual(c.body);
    });
  }

  test("UPGRADE_ERROR: encodeUpgradeError writes exactly these bytes, and an old client's reader finds its version, code and text", () => {
    const bytes = vectors.get("UPGRADE_ERROR")!;
    expect(hexOf(encodeUpgradeError(3, SESSION, "upgrade ftx", TS))).toBe(hexOf(bytes));
    expect(decodeUpgradeError(bytes)).toEqual(UPGRADE_ERROR);
  });

  test("each vector's crc is zlib's CRC-32 of the datagram (sealed, when it is) with the crc field zeroed", () => {
    for (const [name, bytes] of vectors) {
      const zeroed = bytes.slice();
      zeroed.fill(0, HEADER_AT.crc, HEADER_AT.end);
      const field = new DataView(bytes.buffer, bytes.byteOffset).getUint32(HEADER_AT.crc);
      expect({ name, crc: field }).toEqual({ name, crc: crc32(zeroed) });
    }
  });

  test("each sealed vector is node:crypto's AES-256-GCM: aad = the bytes before its body (crc 0), nonce = iv XOR pn, pn after the body", () => {
    const sealedCases = Object.entries(CASES).filter(([, c]) => c.sealed);
    expect(sealedCases.map(([name]) => name).sort()).toEqual(["ACCEPT", "ACK", "DATA", "ERROR", "FIN", "REPAIR", "REQUEST", "REQUEST_PLAINTEXT"]);
    for (const [name, c] of sealedCases) {
      const { keys, bodyAt } = c.sealed!;
      const bytes = vectors.get(name)!;
      const bodyEnd = bytes.byteLength - DATAGRAM_OVERHEAD_BYTES;
      const clearBody = opened(bytes, bodyAt, keys).subarray(bodyAt);
      const aad = bytes.slice(0, bodyAt);
      aad.fill(0, HEADER_AT.crc, HEADER_AT.end);
      const cipher = createCipheriv("aes-256-gcm", keys.key, counterNonce(keys.iv, keys.pn));
      cipher.setAAD(aad);
      const reference = Buffer.concat([cipher.update(clearBody), cipher.final(), cipher.getAuthTag()]);
      const pn = new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(bodyEnd);
      expect({ name, pn, sealed: hexOf(Buffer.concat([bytes.subarray(bodyAt, bodyEnd), bytes.subarray(bodyEnd + PN_BYTES)])) }).toEqual({
        name,
        pn: BigInt(keys.pn),
        sealed: hexOf(reference),
      });
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
    expect(dataPayloadBytes(2 ** 32, MAX_SEGMENT_BYTES, 2 ** 32 * MAX_SEGMENT_BYTES + 1)).toBe(1);
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
