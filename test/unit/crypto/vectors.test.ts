import { describe, expect, test } from "bun:test";
import { createCipheriv } from "node:crypto";
import { crc32 } from "node:zlib";
import { aes256gcm, aes256gcmInPlace } from "../../../src/crypto/aes-gcm.ts";
import { bestInPlaceAead } from "../../../src/crypto/aes-gcm-native.ts";
import { FrameOpener, FrameSealer } from "../../../src/crypto/core/frame-seal.ts";
import { hkdfExpand, hkdfExtract } from "../../../src/crypto/core/hkdf.ts";
import { deriveChannelKeys } from "../../../src/crypto/core/key-schedule.ts";
import { encodeMessage } from "../../../src/index/core/codec.ts";
import { MsgType } from "../../../src/index/core/messages.ts";
import { DatagramOpener, DatagramSealer, PN_BYTES } from "../../../src/transfer/core/datagram-aead.ts";
import { encodeData, HEADER_AT, HEADER_BYTES, openBody, PacketType, readHeader } from "../../../src/transfer/core/wire.ts";
import { documentedVectors, hexOf } from "../../support/protocol-vectors.ts";

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const IV = Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i);
const PING = encodeMessage({ type: MsgType.Ping, seq: 1 });
const HELLO = new TextEncoder().encode("hello");
const vectors = documentedVectors("4.");

/** AES-256-GCM straight from node:crypto, to check our sealers against something that is not them. */
function reference(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const c = createCipheriv("aes-256-gcm", KEY, nonce);
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

function ivXor(n: number): Uint8Array {
  const out = IV.slice();
  out[11]! ^= n;
  return out;
}

describe("encryption test vectors (docs/PROTOCOL.md §4)", () => {
  test("the document holds exactly these vectors", () => {
    expect([...vectors.keys()]).toEqual(["INDEX_FRAME_0", "INDEX_FRAME_1", "DATAGRAM_PN_1", "KEY_SCHEDULE"]);
  });

  test("index frames: the sealer writes them, node:crypto agrees, the opener reads them back in order only", () => {
    const sealer = new FrameSealer(aes256gcm(KEY), IV);
    const f0 = sealer.seal(PING);
    const f1 = sealer.seal(PING);
    expect(hexOf(f0)).toBe(hexOf(vectors.get("INDEX_FRAME_0")!));
    expect(hexOf(f1)).toBe(hexOf(vectors.get("INDEX_FRAME_1")!));
    expect(hexOf(f0.subarray(4))).toBe(hexOf(reference(IV, f0.subarray(0, 4), PING.subarray(4))));
    expect(hexOf(f1.subarray(4))).toBe(hexOf(reference(ivXor(1), f1.subarray(0, 4), PING.subarray(4))));
    const opener = new FrameOpener(aes256gcm(KEY), IV);
    expect(hexOf(opener.open(f0.subarray(4)))).toBe(hexOf(PING.subarray(4)));
    expect(hexOf(opener.open(f1.subarray(4)))).toBe(hexOf(PING.subarray(4)));
    // Reordered (f0 again, where the third frame is due): refused.
    expect(() => opener.open(f0.subarray(4))).toThrow("failed authentication");
    expect(opener.refused).toBe(1);
  });

  test("a datagram: the sealer writes it in place, node:crypto agrees (aad = the header with crc 0, pn after the body), the opener reads it", () => {
    const d = encodeData(0x01020304, 1, 0, HELLO, 0x0a0b0c0d, new DatagramSealer(aes256gcmInPlace(KEY), IV, 1)); // pn 1
    expect(hexOf(d)).toBe(hexOf(vectors.get("DATAGRAM_PN_1")!));
    const bodyEnd = HEADER_BYTES + HELLO.byteLength;
    const aad = d.slice(0, HEADER_BYTES);
    aad.fill(0, HEADER_AT.crc, HEADER_AT.end);
    const ciphertextAndTag = Buffer.concat([d.subarray(HEADER_BYTES, bodyEnd), d.subarray(bodyEnd + PN_BYTES)]);
    expect(hexOf(ciphertextAndTag)).toBe(hexOf(reference(ivXor(1), aad, HELLO)));
    expect(hexOf(d.subarray(bodyEnd, bodyEnd + PN_BYTES))).toBe("0000000000000001");
    // The checksum is over the sealed datagram, its own field zero.
    const zeroed = d.slice();
    zeroed.fill(0, HEADER_AT.crc, HEADER_AT.end);
    expect(new DataView(d.buffer).getUint32(HEADER_AT.crc)).toBe(crc32(zeroed));
    expect(readHeader(d)).toEqual({ type: PacketType.Data, flags: 0, sessionId: 0x01020304, seq: 1, timestampUs: 0x0a0b0c0d });
    for (const aead of [aes256gcmInPlace, bestInPlaceAead().factory]) {
      const copy = d.slice();
      expect(openBody(copy, HEADER_BYTES, new DatagramOpener(aead(KEY), IV))).toBe(bodyEnd);
      expect(new TextDecoder().decode(copy.subarray(HEADER_BYTES, bodyEnd))).toBe("hello");
    }
  });

  test("the key schedule", () => {
    const k = deriveChannelKeys("ftx index v3", new Uint8Array(32).fill(7), new TextEncoder().encode("transcript"));
    const all = Buffer.concat([k.c2sKey, k.c2sIv, k.s2cKey, k.s2cIv, k.clientConfirm, k.serverConfirm]);
    expect(hexOf(all)).toBe(hexOf(vectors.get("KEY_SCHEDULE")!));
  });

  test("HKDF-SHA256 is RFC 5869's (test case 1)", () => {
    const ikm = new Uint8Array(22).fill(0x0b);
    const salt = Uint8Array.from({ length: 13 }, (_, i) => i);
    const info = Uint8Array.from({ length: 10 }, (_, i) => 0xf0 + i);
    expect(hexOf(hkdfExtract(salt, ikm))).toBe("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
    expect(hexOf(hkdfExpand(hkdfExtract(salt, ikm), info, 42))).toBe("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
  });
});
