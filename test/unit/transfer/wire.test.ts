import { describe, expect, test } from "bun:test";
import { ProtocolError } from "../../../src/errors.ts";
import {
  ACK_BYTES,
  decodeAccept,
  decodeAck,
  decodeError,
  decodeProbeAck,
  decodeRequest,
  encodeAccept,
  encodeError,
  encodeFin,
  encodeProbe,
  encodeProbeAck,
  encodeRequest,
  HEADER_BYTES,
  MIN_REQUEST_BYTES,
  PacketType,
  readHeader,
  TransferErrorCode,
  writeAck,
} from "../../../src/transfer/core/wire.ts";
import { mutate, Rng } from "../../support/random.ts";

const sha = new Uint8Array(32).fill(0xab);

function ack(): Uint8Array {
  const buf = new Uint8Array(ACK_BYTES);
  writeAck(buf, new DataView(buf.buffer), 9, 2 ** 40 + 5, { windowSegments: 64, echoTimestampUs: 123, ackDelayUs: 7, received: 77 }, 0xdeadbeef, 99);
  return buf;
}

const samples = () => [
  encodeRequest(1, { offset: 2 ** 33, length: 0, segmentBytes: 32768, windowSegments: 5, sha256: sha, name: "docs/ä.txt", mac: new Uint8Array(32).fill(1) }, 5),
  encodeAccept(1, { fileSize: 2 ** 40, offset: 2 ** 33, length: 2 ** 40 - 2 ** 33, segmentBytes: 32768, cookie: 42, sha256: sha, fecBlock: 64 }, 6),
  encodeError(1, { code: TransferErrorCode.Changed, text: "changed" }, 7),
  encodeFin(1, 8),
  ack(),
  encodeProbe(3, 1400, 9),
  encodeProbeAck(3, 1400, 10),
];

describe("transfer wire format", () => {
  test("every packet round-trips, with 64-bit offsets and sequence numbers", () => {
    const [req, acc, err, fin, a, probe, probeAck] = samples();
    const rh = readHeader(req!);
    expect(rh).toMatchObject({ type: PacketType.Request, sessionId: 1, timestampUs: 5 });
    expect(req!.byteLength).toBe(MIN_REQUEST_BYTES); // padded against amplification
    expect(decodeRequest(req!, rh)).toMatchObject({ offset: 2 ** 33, length: 0, segmentBytes: 32768, windowSegments: 5, name: "docs/ä.txt" });
    expect(decodeAccept(acc!)).toMatchObject({ fileSize: 2 ** 40, offset: 2 ** 33, cookie: 42, fecBlock: 64 });
    expect(decodeError(err!)).toEqual({ code: TransferErrorCode.Changed, text: "changed" });
    expect(readHeader(fin!).type).toBe(PacketType.Fin);
    expect(readHeader(a!).seq).toBe(2 ** 40 + 5);
    expect(decodeAck(a!)).toEqual({ windowSegments: 64, echoTimestampUs: 123, ackDelayUs: 7, received: 77, cookie: 0xdeadbeef, gap: false });
    expect(readHeader(probe!).type).toBe(PacketType.Probe);
    expect(probe!.byteLength).toBe(1400);
    expect(decodeProbeAck(probeAck!)).toBe(1400);
  });

  test("any flipped bit is caught by the checksum", () => {
    const fin = encodeFin(77, 1);
    for (let bit = 0; bit < fin.byteLength * 8; bit++) {
      const bad = fin.slice();
      bad[bit >> 3]! ^= 1 << (bit & 7);
      expect(() => readHeader(bad)).toThrow(ProtocolError);
    }
  });

  test("an error text cut to fit stays valid UTF-8", () => {
    const e = encodeError(1, { code: TransferErrorCode.Internal, text: "é".repeat(400) }, 0);
    expect(decodeError(e).text).toBe("é".repeat(256));
  });

  test("fuzz: 20,000 random and mutated datagrams give a packet or ProtocolError, nothing else", () => {
    const seed = Number(process.env.FUZZ_SEED ?? 4242);
    const rng = new Rng(seed);
    const seeds = samples();
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const d = rng.chance(0.2) ? rng.bytes(rng.int(HEADER_BYTES * 3)) : mutate(rng, rng.pick(seeds));
      // Half the mutants get a recomputed checksum, so the body decoders see them too.
      if (d.byteLength >= HEADER_BYTES && rng.chance(0.5)) {
        const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
        view.setUint32(22, 0);
        view.setUint32(22, Bun.hash.crc32(d) as number);
      }
      try {
        const h = readHeader(d);
        if (h.type === PacketType.Request) decodeRequest(d, h);
        else if (h.type === PacketType.Accept) decodeAccept(d);
        else if (h.type === PacketType.Error) decodeError(d);
        else if (h.type === PacketType.Ack) decodeAck(d);
        else if (h.type === PacketType.ProbeAck) decodeProbeAck(d);
        accepted++;
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw new Error(`seed ${seed} datagram ${i}: ${err}`);
      }
    }
    expect(accepted).toBeGreaterThan(500);
  });
});
