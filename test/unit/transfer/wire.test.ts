import { describe, expect, test } from "bun:test";
import { ProtocolError } from "../../../src/errors.ts";
import {
  ACK_BYTES,
  decodeAccept,
  decodeAck,
  decodeError,
  decodeProbeAck,
  decodeRequest,
  decodeRetry,
  decodeUpgradeError,
  encodeAccept,
  encodeError,
  encodeFin,
  encodeProbe,
  encodeProbeAck,
  encodeRequest,
  encodeRetry,
  encodeUpgradeError,
  HEADER_BYTES,
  MIN_REQUEST_BYTES,
  PacketType,
  RETRY_BYTES,
  VersionError,
  readHeader,
  TransferErrorCode,
  writeAck,
} from "../../../src/transfer/core/wire.ts";
import { mutate, Rng } from "../../support/random.ts";

const sha = new Uint8Array(32).fill(0xab);
const addressToken = Uint8Array.from({ length: 20 }, (_, i) => i + 1);

function ack(): Uint8Array {
  const buf = new Uint8Array(ACK_BYTES);
  writeAck(buf, new DataView(buf.buffer), 9, 2 ** 40 + 5, { windowSegments: 64, echoTimestampUs: 123, ackDelayUs: 7, received: 77 }, 0xdeadbeef, 99);
  return buf;
}

const samples = () => [
  encodeRequest(1, { offset: 2 ** 33, length: 0, segmentBytes: 32768, windowSegments: 5, sha256: sha, name: "docs/ä.txt", mac: new Uint8Array(32).fill(1), token: addressToken }, 5),
  encodeAccept(1, { fileSize: 2 ** 40, offset: 2 ** 33, length: 2 ** 40 - 2 ** 33, segmentBytes: 32768, cookie: 42, sha256: sha, fecBlock: 64 }, 6),
  encodeError(1, { code: TransferErrorCode.Changed, text: "changed" }, 7),
  encodeFin(1, 8),
  ack(),
  encodeProbe(3, 1400, 9),
  encodeProbeAck(3, { datagramBytes: 1400, token: addressToken }, 10),
  encodeRetry(4, addressToken, 11),
];

describe("transfer wire format", () => {
  test("every packet round-trips, with 64-bit offsets and sequence numbers", () => {
    const [req, acc, err, fin, a, probe, probeAck, retry] = samples();
    const rh = readHeader(req!);
    expect(rh).toMatchObject({ type: PacketType.Request, sessionId: 1, timestampUs: 5 });
    expect(req!.byteLength).toBe(MIN_REQUEST_BYTES + 11 + 32); // not padded: the name and the MAC, nothing after
    expect(decodeRequest(req!, rh)).toMatchObject({ offset: 2 ** 33, length: 0, segmentBytes: 32768, windowSegments: 5, name: "docs/ä.txt", token: addressToken });
    expect(decodeAccept(acc!)).toMatchObject({ fileSize: 2 ** 40, offset: 2 ** 33, cookie: 42, fecBlock: 64 });
    expect(decodeError(err!)).toEqual({ code: TransferErrorCode.Changed, text: "changed" });
    expect(readHeader(fin!).type).toBe(PacketType.Fin);
    expect(readHeader(a!).seq).toBe(2 ** 40 + 5);
    expect(decodeAck(a!)).toEqual({ windowSegments: 64, echoTimestampUs: 123, ackDelayUs: 7, received: 77, cookie: 0xdeadbeef, gap: false });
    expect(readHeader(probe!).type).toBe(PacketType.Probe);
    expect(probe!.byteLength).toBe(1400);
    expect(decodeProbeAck(probeAck!)).toEqual({ datagramBytes: 1400, token: addressToken });
    expect(readHeader(retry!)).toMatchObject({ type: PacketType.Retry, sessionId: 4 });
    expect(decodeRetry(retry!)).toEqual(addressToken);
  });

  test("a REQUEST is never smaller than a RETRY, so the answer to an unvalidated address never amplifies", () => {
    expect(MIN_REQUEST_BYTES).toBeGreaterThan(RETRY_BYTES);
    const smallest = encodeRequest(1, { offset: 0, length: 0, segmentBytes: 0, windowSegments: 0, sha256: sha, name: "", mac: undefined }, 0);
    expect(smallest.byteLength).toBe(MIN_REQUEST_BYTES);
    expect(decodeRequest(smallest, readHeader(smallest)).token).toBeUndefined();
  });

  test("a REQUEST with bytes after its name (or MAC) is refused: v3 has no padding", () => {
    const req = encodeRequest(1, { offset: 0, length: 0, segmentBytes: 1000, windowSegments: 1, sha256: sha, name: "a", mac: undefined }, 0);
    const longer = new Uint8Array(req.byteLength + 1);
    longer.set(req);
    const view = new DataView(longer.buffer);
    view.setUint32(22, 0);
    view.setUint32(22, Bun.hash.crc32(longer) as number);
    expect(() => decodeRequest(longer, readHeader(longer))).toThrow("REQUEST of the wrong length for its name and mac");
  });

  test("another version's datagram is a VersionError naming it; an old client's ERROR says to upgrade in its own layout", () => {
    const old = encodeUpgradeError(2, 77, "upgrade ftx", 0);
    let thrown: unknown;
    try {
      readHeader(old);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(VersionError);
    expect((thrown as VersionError).version).toBe(2);
    expect(decodeUpgradeError(old)).toEqual({ version: 2, sessionId: 77, body: { code: TransferErrorCode.BadRequest, text: "upgrade ftx" } });
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
        else if (h.type === PacketType.Retry) decodeRetry(d);
        accepted++;
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw new Error(`seed ${seed} datagram ${i}: ${err}`);
      }
    }
    expect(accepted).toBeGreaterThan(500);
  });
});
