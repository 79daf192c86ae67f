import { describe, expect, test } from "bun:test";
import { bestInPlaceAead } from "../../../src/crypto/aes-gcm-native.ts";
import { ProtocolError } from "../../../src/errors.ts";
import { DATAGRAM_OVERHEAD_BYTES, DatagramOpener, DatagramSealer } from "../../../src/transfer/core/datagram-aead.ts";
import {
  ACCEPT_AT,
  ACCEPT_BYTES,
  ACK_BYTES,
  acceptNonce,
  bodyAtOf,
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
  ERROR_AT,
  finishRepair,
  firstDatagramBytes,
  FLAG_PIECE_HASHES,
  FLAG_PLAINTEXT,
  FLAG_SEALED,
  GREETING_BYTES,
  HEADER_AT,
  HEADER_BYTES,
  type Header,
  MAX_DATAGRAM_BYTES,
  MAX_NAME_BYTES,
  MAX_SEGMENT_BYTES,
  MIN_PROBE_BYTES,
  MIN_REQUEST_BYTES,
  openBody,
  PacketType,
  PROBE_ACK_BYTES,
  readHeader,
  REPAIR_AT,
  REQUEST_AT,
  requestBytes,
  RETRY_BYTES,
  TransferErrorCode,
  VersionError,
  WIRE_VERSION,
  writeAck,
} from "../../../src/transfer/core/wire.ts";
import { mutate, Rng } from "../../support/random.ts";

const { factory: aead } = bestInPlaceAead();
const sha = new Uint8Array(32).fill(0xab);
const addressToken = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
const greeting = { token: addressToken, kx: 1, epochId: new Uint8Array(16).fill(0x44), share: new Uint8Array(32).fill(0x55) };
const hello = { token: addressToken, kx: 1, epochId: new Uint8Array(16).fill(0x44), share: new Uint8Array(32).fill(0x66), confirm: new Uint8Array(16).fill(0x77) };
const serverNonce = new Uint8Array(16).fill(0x88);
const requestBody = { offset: 2 ** 33, length: 0, segmentBytes: 32768, windowSegments: 5, sha256: sha, name: "docs/ä.txt" };
const acceptBody = { fileSize: 2 ** 40, offset: 2 ** 33, length: 2 ** 40 - 2 ** 33, segmentBytes: 32768, cookie: 42, sha256: sha, fecBlock: 64 };

/** A key and iv per direction (REQUEST key, client → server, server → client): a sealer for one side, openers for the other. */
function direction(fill: number) {
  const key = new Uint8Array(32).fill(fill);
  const iv = new Uint8Array(12).fill(fill + 1);
  return { sealer: () => new DatagramSealer(aead(key), iv), opener: () => new DatagramOpener(aead(key), iv) };
}
const REQ = direction(0x71);
const C2S = direction(0x81);
const S2C = direction(0x91);

function ack(sealer?: DatagramSealer, gap = false): Uint8Array {
  const buf = new Uint8Array(ACK_BYTES + (sealer ? DATAGRAM_OVERHEAD_BYTES : 0));
  writeAck(buf, new DataView(buf.buffer), 9, 2 ** 40 + 5, { windowSegments: 64, echoTimestampUs: 123, ackDelayUs: 7, received: 77, gap }, 0xdeadbeef, 99, sealer);
  return buf;
}

function repair(payload: Uint8Array, sealer?: DatagramSealer): Uint8Array {
  const buf = new Uint8Array(REPAIR_AT.payload + payload.byteLength + (sealer ? DATAGRAM_OVERHEAD_BYTES : 0));
  buf.set(payload, REPAIR_AT.payload);
  finishRepair(buf, new DataView(buf.buffer), 3, 1, 2 ** 34, 12, sealer);
  return buf;
}

/** Opens a copy of a sealed datagram: the clear datagram, or undefined when it does not open. */
function opened(datagram: Uint8Array, opener: DatagramOpener): Uint8Array | undefined {
  const copy = datagram.slice();
  const end = openBody(copy, bodyAtOf(readHeader(copy).type), opener);
  return end < 0 ? undefined : copy.subarray(0, end);
}

/** Recompute the checksum, so a changed datagram passes readHeader and reaches what is after it. */
function recrc(d: Uint8Array): Uint8Array {
  const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
  view.setUint32(HEADER_AT.crc, 0);
  view.setUint32(HEADER_AT.crc, Bun.hash.crc32(d) as number);
  return d;
}

function protocolError(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (err instanceof ProtocolError) return err.message;
    throw err;
  }
  throw new Error("no ProtocolError");
}

describe("transfer wire format v4", () => {
  test("every packet round-trips, sealed and clear, with 64-bit offsets and sequence numbers", () => {
    // REQUEST: clear hello, sealed body.
    const req = encodeRequest(1, { ...requestBody, pieceHashes: true, plaintext: true }, hello, REQ.sealer(), 5);
    const rh = readHeader(req);
    expect(rh).toMatchObject({ type: PacketType.Request, flags: FLAG_PLAINTEXT | FLAG_PIECE_HASHES, sessionId: 1, timestampUs: 5 });
    expect(req.byteLength).toBe(requestBytes(11)); // "docs/ä.txt" is 11 bytes: no padding, then pn and tag
    expect(decodeRequestHello(req)).toEqual(hello);
    expect(decodeRequestBody(opened(req, REQ.opener())!, rh)).toEqual({ ...requestBody, pieceHashes: true, plaintext: true });
    // Nothing of the body is in clear: not the name, not the sha256.
    expect(Buffer.from(req).includes(Buffer.from("docs/"))).toBe(false);
    expect(Buffer.from(req).includes(Buffer.from(sha))).toBe(false);
    const plain = encodeRequest(1, requestBody, hello, REQ.sealer(), 5);
    expect(decodeRequestBody(opened(plain, REQ.opener())!, readHeader(plain))).toMatchObject({ pieceHashes: false, plaintext: false });

    const bare = encodeBareRequest(2, FLAG_PIECE_HASHES, 5);
    expect(readHeader(bare)).toMatchObject({ type: PacketType.Request, flags: FLAG_PIECE_HASHES, sessionId: 2 });
    expect(bare.byteLength).toBe(MIN_REQUEST_BYTES);
    expect(decodeRequestHello(bare)).toBeUndefined();

    const retry = encodeRetry(4, greeting, 11);
    expect(readHeader(retry)).toMatchObject({ type: PacketType.Retry, sessionId: 4 });
    expect(decodeRetry(retry)).toEqual(greeting);
    const probe = encodeProbe(3, 1400, 9);
    expect(readHeader(probe).type).toBe(PacketType.Probe);
    expect(decodeProbe(probe)).toBe(1400);
    const probeAck = encodeProbeAck(3, { datagramBytes: 1400, greeting }, 10);
    expect(decodeProbeAck(probeAck)).toEqual({ datagramBytes: 1400, greeting });

    const acc = encodeAccept(1, acceptBody, serverNonce, S2C.sealer(), 6);
    expect(acc.byteLength).toBe(ACCEPT_BYTES);
    expect(acceptNonce(acc)).toEqual(serverNonce);
    expect(decodeAccept(opened(acc, S2C.opener())!)).toEqual(acceptBody);

    const s2c = S2C.sealer();
    const s2cOpener = S2C.opener();
    const err = encodeError(1, { code: TransferErrorCode.Changed, text: "changed" }, 7, s2c);
    expect(readHeader(err).flags).toBe(FLAG_SEALED);
    expect(decodeError(opened(err, s2cOpener)!)).toEqual({ code: TransferErrorCode.Changed, text: "changed" });
    const clearErr = encodeError(1, { code: TransferErrorCode.Forbidden, text: "no" }, 7);
    expect(readHeader(clearErr).flags).toBe(0);
    expect(decodeError(clearErr)).toEqual({ code: TransferErrorCode.Forbidden, text: "no" });

    const payload = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
    const data = encodeData(1, 2 ** 40, 0, payload, 8, s2c);
    expect(readHeader(data).seq).toBe(2 ** 40);
    expect(data.byteLength).toBe(HEADER_BYTES + 1000 + DATAGRAM_OVERHEAD_BYTES);
    expect(decodeData(opened(data, s2cOpener)!, 2 ** 40, 1000, (2 ** 40 + 1) * 1000)).toEqual(payload);
    expect(decodeData(encodeData(1, 2 ** 40, 0, payload, 8), 2 ** 40, 1000, (2 ** 40 + 1) * 1000)).toEqual(payload);
    const rep = repair(payload.subarray(0, 700), s2c);
    expect(readHeader(rep)).toMatchObject({ type: PacketType.Repair, flags: 3, seq: 2 ** 34 });
    expect(decodeRepair(opened(rep, s2cOpener)!, 1000)).toEqual(payload.subarray(0, 700));
    expect(decodeRepair(repair(payload.subarray(0, 700)), 1000)).toEqual(payload.subarray(0, 700));

    const c2s = C2S.sealer();
    const c2sOpener = C2S.opener();
    const a = ack(c2s, true);
    expect(readHeader(a)).toMatchObject({ type: PacketType.Ack, seq: 2 ** 40 + 5 });
    expect(decodeAck(opened(a, c2sOpener)!)).toEqual({ windowSegments: 64, echoTimestampUs: 123, ackDelayUs: 7, received: 77, cookie: 0xdeadbeef, gap: true });
    expect(decodeAck(ack())).toEqual({ windowSegments: 64, echoTimestampUs: 123, ackDelayUs: 7, received: 77, cookie: 0xdeadbeef, gap: false });
    const fin = encodeFin(1, 8, c2s);
    expect(fin.byteLength).toBe(HEADER_BYTES + DATAGRAM_OVERHEAD_BYTES);
    expect(decodeFin(opened(fin, c2sOpener)!)).toBeUndefined();
    expect(decodeFin(encodeFin(1, 8))).toBeUndefined();
    // One pn per datagram in each direction.
    expect([s2c.nextPn, c2s.nextPn]).toEqual([3, 2]);
  });

  test("sizes: greeting 69 B, RETRY 95 B < bare REQUEST 128 B ≤ any sealed REQUEST; PROBE_ACK 99 B, the smallest PROBE; ACCEPT 129 B; the largest segment sealed fills the largest datagram", () => {
    expect(GREETING_BYTES).toBe(20 + 1 + 16 + 32);
    expect(RETRY_BYTES).toBe(HEADER_BYTES + GREETING_BYTES);
    expect(MIN_REQUEST_BYTES).toBeGreaterThan(RETRY_BYTES);
    expect(requestBytes(0)).toBeGreaterThanOrEqual(MIN_REQUEST_BYTES);
    const smallest = encodeRequest(1, { offset: 0, length: 0, segmentBytes: 0, windowSegments: 0, sha256: sha, name: "" }, hello, REQ.sealer(), 0);
    expect(smallest.byteLength).toBe(requestBytes(0));
    expect(PROBE_ACK_BYTES).toBe(HEADER_BYTES + 4 + GREETING_BYTES);
    expect(MIN_PROBE_BYTES).toBe(PROBE_ACK_BYTES);
    expect(ACCEPT_BYTES).toBe(129);
    expect(ACCEPT_BYTES).toBe(ACCEPT_AT.end + DATAGRAM_OVERHEAD_BYTES);
    expect(MAX_SEGMENT_BYTES).toBe(65457);
    const largest = encodeData(1, 0, 0, new Uint8Array(MAX_SEGMENT_BYTES), 0, S2C.sealer());
    expect(largest.byteLength).toBe(MAX_DATAGRAM_BYTES);
    expect(bodyAtOf(PacketType.Request)).toBe(REQUEST_AT.body);
    expect(bodyAtOf(PacketType.Accept)).toBe(ACCEPT_AT.body);
    expect(bodyAtOf(PacketType.Data)).toBe(HEADER_BYTES);
  });

  test("REQUEST bounds: shorter than a bare one, or a hello without room for its body, pn and tag: truncated", () => {
    expect(protocolError(() => decodeRequestHello(encodeBareRequest(1, 0, 0).subarray(0, MIN_REQUEST_BYTES - 1)))).toBe("truncated REQUEST");
    const withToken = encodeBareRequest(1, 0, 0);
    withToken[REQUEST_AT.token + 19] = 1;
    expect(protocolError(() => decodeRequestHello(withToken))).toBe("truncated REQUEST");
    const req = encodeRequest(1, { ...requestBody, name: "" }, hello, REQ.sealer(), 0);
    expect(decodeRequestHello(req)).toEqual(hello);
    expect(protocolError(() => decodeRequestHello(req.subarray(0, req.byteLength - 1)))).toBe("truncated REQUEST");
  });

  test("an opened REQUEST body: its length must be its name's exactly (no padding), the name at most MAX_NAME_BYTES and UTF-8, offsets < 2^53", () => {
    const req = encodeRequest(1, { ...requestBody, name: "a" }, hello, REQ.sealer(), 0);
    const header = readHeader(req);
    const clear = opened(req, REQ.opener())!;
    expect(decodeRequestBody(clear, header).name).toBe("a");
    const longer = new Uint8Array(clear.byteLength + 1);
    longer.set(clear);
    expect(protocolError(() => decodeRequestBody(longer, header))).toBe("REQUEST of the wrong length for its name");
    expect(protocolError(() => decodeRequestBody(clear.subarray(0, REQUEST_AT.name - 1), header))).toBe("truncated REQUEST");
    const edit = (f: (b: Uint8Array, v: DataView) => void) => {
      const b = clear.slice();
      f(b, new DataView(b.buffer));
      return protocolError(() => decodeRequestBody(b, header));
    };
    expect(edit((_, v) => v.setUint16(REQUEST_AT.nameLength, MAX_NAME_BYTES + 1))).toBe("name too long");
    expect(edit((b) => (b[REQUEST_AT.name] = 0xff))).toBe("name is not valid UTF-8");
    expect(edit((_, v) => v.setUint32(REQUEST_AT.offset, 0x200000))).toBe("offset out of range");
    expect(edit((_, v) => v.setUint32(REQUEST_AT.length, 0x200000))).toBe("length out of range");
    // A sealed REQUEST with a byte after its tag does not open: the pn and tag are read from its end.
    const padded = new Uint8Array(req.byteLength + 1);
    padded.set(req);
    expect(openBody(recrc(padded), REQUEST_AT.body, REQ.opener())).toBe(-1);
  });

  test("fixed-length packets refuse any other length; a sealed datagram not yet opened is refused by its body decoder", () => {
    const retry = encodeRetry(4, greeting, 0);
    expect(protocolError(() => decodeRetry(retry.subarray(0, RETRY_BYTES - 1)))).toBe("RETRY of the wrong length");
    const probeAck = encodeProbeAck(3, { datagramBytes: 1400, greeting }, 0);
    expect(protocolError(() => decodeProbeAck(probeAck.subarray(0, PROBE_ACK_BYTES - 1)))).toBe("PROBE_ACK of the wrong length");
    expect(protocolError(() => decodeProbe(new Uint8Array(MIN_PROBE_BYTES - 1)))).toBe("PROBE smaller than the minimum");
    const acc = encodeAccept(1, acceptBody, serverNonce, S2C.sealer(), 0);
    expect(protocolError(() => acceptNonce(acc.subarray(0, ACCEPT_BYTES - 1)))).toBe("ACCEPT of the wrong length");
    expect(protocolError(() => decodeAccept(acc))).toBe("ACCEPT of the wrong length");
    const clearAccept = opened(acc, S2C.opener())!;
    const huge = clearAccept.slice();
    huge[ACCEPT_AT.fileSize] = 0xff;
    expect(protocolError(() => decodeAccept(huge))).toBe("file size out of range");
    expect(protocolError(() => decodeAck(ack(C2S.sealer())))).toBe("ACK of the wrong length");
    expect(protocolError(() => decodeFin(encodeFin(1, 0, C2S.sealer())))).toBe("FIN of the wrong length");
    // A sealed ERROR's text length is ciphertext, and pn and tag follow its text: it must be opened first.
    expect(() => decodeError(encodeError(1, { code: 1, text: "x" }, 0, S2C.sealer()))).toThrow(ProtocolError);
    const twoBytes = encodeError(1, { code: 1, text: "xy" }, 0);
    expect(protocolError(() => decodeError(twoBytes.subarray(0, twoBytes.byteLength - 1)))).toBe("ERROR of the wrong length for its text");
    expect(protocolError(() => decodeError(new Uint8Array(ERROR_AT.text - 1)))).toBe("truncated ERROR");
    const long = encodeError(1, { code: 1, text: "x" }, 0);
    new DataView(long.buffer).setUint16(ERROR_AT.textLength, 513);
    expect(protocolError(() => decodeError(long))).toBe("error text too long");
    const notUtf8 = encodeError(1, { code: 1, text: "x" }, 0);
    notUtf8[ERROR_AT.text] = 0xff;
    expect(protocolError(() => decodeError(notUtf8))).toBe("error text is not valid UTF-8");
    // A REPAIR's payload: neither empty nor longer than a segment.
    expect(decodeRepair(repair(new Uint8Array(0)), 1000)).toBeUndefined();
    expect(decodeRepair(repair(new Uint8Array(1001)), 1000)).toBeUndefined();
  });

  test("encoders refuse fields of the wrong length (the caller's bug): RangeError, nothing sent", () => {
    expect(() => encodeRequest(1, { ...requestBody, name: "x".repeat(MAX_NAME_BYTES + 1) }, hello, REQ.sealer(), 0)).toThrow(RangeError);
    for (const field of ["token", "epochId", "share", "confirm"] as const) expect(() => encodeRequest(1, requestBody, { ...hello, [field]: hello[field].subarray(1) }, REQ.sealer(), 0)).toThrow(RangeError);
    for (const field of ["token", "epochId", "share"] as const) {
      const bad = { ...greeting, [field]: greeting[field].subarray(1) };
      expect(() => encodeRetry(1, bad, 0)).toThrow(RangeError);
      expect(() => encodeProbeAck(1, { datagramBytes: 1400, greeting: bad }, 0)).toThrow(RangeError);
    }
    expect(() => encodeAccept(1, acceptBody, serverNonce.subarray(1), S2C.sealer(), 0)).toThrow(RangeError);
    expect(() => encodeProbe(1, MIN_PROBE_BYTES - 1, 0)).toThrow(RangeError);
    expect(() => encodeProbe(1, MAX_DATAGRAM_BYTES + 1, 0)).toThrow(RangeError);
    expect(encodeProbe(1, MIN_PROBE_BYTES, 0).byteLength).toBe(MIN_PROBE_BYTES);
  });

  test("openBody: the header and clear fields are authenticated, the checksum field is not (checked first, by readHeader); it is put back either way", () => {
    const acc = encodeAccept(1, acceptBody, serverNonce, S2C.sealer(), 0);
    const crcBytes = acc.slice(HEADER_AT.crc, HEADER_AT.end);
    // Opened in place: the first ACCEPT_AT.end bytes are the clear ACCEPT, the checksum field as received.
    const copy = acc.slice();
    expect(openBody(copy, ACCEPT_AT.body, S2C.opener())).toBe(ACCEPT_AT.end);
    expect(copy.slice(HEADER_AT.crc, HEADER_AT.end)).toEqual(crcBytes);
    expect(copy.slice(0, ACCEPT_AT.body)).toEqual(acc.slice(0, ACCEPT_AT.body));
    // Any header byte or the server's nonce changed (checksum recomputed, so readHeader lets it by): refused by the AEAD.
    for (const at of [HEADER_AT.type, HEADER_AT.flags, HEADER_AT.sessionId + 3, HEADER_AT.seq + 7, HEADER_AT.timestampUs, ACCEPT_AT.nonce + 15]) {
      const bad = acc.slice();
      bad[at]! ^= 1;
      recrc(bad);
      const itsCrc = bad.slice(HEADER_AT.crc, HEADER_AT.end);
      const opener = S2C.opener();
      expect({ at, end: openBody(bad, ACCEPT_AT.body, opener), why: opener.lastRefusal }).toEqual({ at, end: -1, why: "tampered" });
      expect(bad.slice(HEADER_AT.crc, HEADER_AT.end)).toEqual(itsCrc); // its own checksum, put back
    }
    // The checksum field alone changed: readHeader refuses it; the AEAD would not have noticed.
    const crcOnly = acc.slice();
    crcOnly[HEADER_AT.crc]! ^= 1;
    expect(() => readHeader(crcOnly)).toThrow("checksum mismatch");
    expect(openBody(crcOnly.slice(), ACCEPT_AT.body, S2C.opener())).toBe(ACCEPT_AT.end);
    // The other direction's keys, or the clear fields taken as body: refused.
    expect(openBody(acc.slice(), ACCEPT_AT.body, C2S.opener())).toBe(-1);
    expect(openBody(acc.slice(), HEADER_BYTES, S2C.opener())).toBe(-1);
    // Seen before: refused as a replay.
    const opener = S2C.opener();
    expect(openBody(acc.slice(), ACCEPT_AT.body, opener)).toBe(ACCEPT_AT.end);
    expect(openBody(acc.slice(), ACCEPT_AT.body, opener)).toBe(-1);
    expect(opener.lastRefusal).toBe("replayed");
  });

  test("a coalesced run of sealed DATA splits at header + segment + 24; a sealed ERROR is taken whole (its length is sealed)", () => {
    const sealer = S2C.sealer();
    const one = encodeData(1, 0, 0, new Uint8Array(1000).fill(1), 0, sealer);
    const two = encodeData(1, 1, 0, new Uint8Array(1000).fill(2), 0, sealer);
    const run = new Uint8Array(one.byteLength * 2);
    run.set(one);
    run.set(two, one.byteLength);
    expect(firstDatagramBytes(run, 1000, 5000, DATAGRAM_OVERHEAD_BYTES)).toBe(HEADER_BYTES + 1000 + DATAGRAM_OVERHEAD_BYTES);
    const err = encodeError(1, { code: 1, text: "x" }, 0, sealer);
    expect(firstDatagramBytes(err, 1000, 5000, DATAGRAM_OVERHEAD_BYTES)).toBe(err.byteLength);
  });

  test("another version's datagram is a VersionError naming it; an old client's ERROR says to upgrade in its own layout", () => {
    for (const version of [2, 3]) {
      const old = encodeUpgradeError(version, 77, "upgrade ftx", 0);
      let thrown: unknown;
      try {
        readHeader(old);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(VersionError);
      expect((thrown as VersionError).version).toBe(version);
      expect(decodeUpgradeError(old)).toEqual({ version, sessionId: 77, body: { code: TransferErrorCode.BadRequest, text: "upgrade ftx" } });
    }
    expect(WIRE_VERSION).toBe(4);
  });

  test("any flipped bit is caught by the checksum, sealed or clear", () => {
    for (const fin of [encodeFin(77, 1), encodeFin(77, 1, C2S.sealer())]) {
      for (let bit = 0; bit < fin.byteLength * 8; bit++) {
        const bad = fin.slice();
        bad[bit >> 3]! ^= 1 << (bit & 7);
        expect(() => readHeader(bad)).toThrow(ProtocolError);
      }
    }
  });

  test("an error text cut to fit stays valid UTF-8, sealed or clear", () => {
    const e = encodeError(1, { code: TransferErrorCode.Internal, text: "é".repeat(400) }, 0);
    expect(decodeError(e).text).toBe("é".repeat(256));
    const sealed = encodeError(1, { code: TransferErrorCode.Internal, text: "é".repeat(400) }, 0, S2C.sealer());
    expect(decodeError(opened(sealed, S2C.opener())!).text).toBe("é".repeat(256));
  });

  test("fuzz: 20,000 random and mutated datagrams reach every decoder's every branch; only a packet or a ProtocolError comes out, and only originals open", () => {
    const seed = Number(process.env.FUZZ_SEED ?? 4242);
    const rng = new Rng(seed);
    const reqOpener = REQ.opener();
    const s2cOpener = S2C.opener();
    const c2sOpener = C2S.opener();
    const s2c = S2C.sealer();
    const c2s = C2S.sealer();
    // Names and texts mostly of multi-byte characters, so a changed byte often breaks their UTF-8.
    const name = "dös/ä/ü.txt";
    const text = "geändert: ä ö ü";
    const sealedSeeds = [
      encodeRequest(1, { ...requestBody, name }, hello, REQ.sealer(), 5),
      encodeAccept(1, acceptBody, serverNonce, s2c, 6),
      encodeError(1, { code: TransferErrorCode.Changed, text }, 7, s2c),
      encodeData(1, 2, 0, new Uint8Array(100).fill(7), 8, s2c),
      repair(new Uint8Array(100).fill(9), s2c),
      ack(c2s),
      encodeFin(1, 8, c2s),
    ];
    const openerOf = (type: PacketType) => (type === PacketType.Request ? reqOpener : type === PacketType.Ack || type === PacketType.Fin ? c2sOpener : s2cOpener);
    // The clear forms too (what openBody yields, and what a --insecure-plaintext session sends), so the body decoders see mutants of them.
    const clearSeeds = sealedSeeds.map((d) => {
      const type = readHeader(d).type;
      return recrc(opened(d, (type === PacketType.Request ? REQ : type === PacketType.Ack || type === PacketType.Fin ? C2S : S2C).opener())!.slice());
    });
    const seeds = [
      ...sealedSeeds,
      ...clearSeeds,
      encodeBareRequest(1, 0, 5),
      encodeRetry(4, greeting, 11),
      encodeProbe(3, MIN_PROBE_BYTES, 9),
      encodeProbeAck(3, { datagramBytes: 1400, greeting }, 10),
      encodeUpgradeError(3, 1, text, 7),
    ];
    const originals = new Set(sealedSeeds.map((d) => Buffer.from(d.subarray(HEADER_AT.end)).toString("hex")));
    const reached = new Set<string>();
    const attempt = (what: string, f: () => unknown, i: number) => {
      try {
        const out = f();
        reached.add(`${what}: ${out === undefined ? "undefined" : "ok"}`);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw new Error(`seed ${seed} datagram ${i}, ${what}: ${err}`);
        reached.add(`${what}: ${err.message.replace(/\d+/g, "N")}`);
      }
    };
    /** Every body decoder on any bytes at all: each checks its bounds itself, so only a ProtocolError may come out. */
    const anyBytes = (d: Uint8Array, flags: number, i: number) => {
      const header: Header = { type: PacketType.Request, flags, sessionId: 1, seq: 0, timestampUs: 0 };
      attempt("decodeRequestHello", () => decodeRequestHello(d), i);
      attempt("decodeRequestBody", () => decodeRequestBody(d, header), i);
      attempt("decodeRetry", () => decodeRetry(d), i);
      attempt("decodeProbe", () => decodeProbe(d), i);
      attempt("decodeProbeAck", () => decodeProbeAck(d), i);
      attempt("acceptNonce", () => acceptNonce(d), i);
      attempt("decodeAccept", () => decodeAccept(d), i);
      attempt("decodeError", () => decodeError(d), i);
      attempt("decodeAck", () => decodeAck(d), i);
      attempt("decodeFin", () => decodeFin(d), i);
      attempt("decodeData", () => decodeData(d, 2, 100, 1000), i);
      attempt("decodeRepair", () => decodeRepair(d, 100), i);
      attempt("decodeUpgradeError", () => decodeUpgradeError(d), i);
    };
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      // Mostly mutants; some random bytes; some intact sealed originals (each opens once, then is a replay).
      const r = rng.next();
      const d = r < 0.15 ? rng.bytes(rng.int(HEADER_BYTES * 6)) : r < 0.2 ? rng.pick(sealedSeeds).slice() : mutate(rng, rng.pick(seeds));
      // Half the mutants get a recomputed checksum, so the decoders after readHeader see them too.
      if (d.byteLength >= HEADER_BYTES && rng.chance(0.5)) recrc(d);
      anyBytes(d, d[HEADER_AT.flags] ?? 0, i);
      // Then as a receiver takes it: the header, the AEAD for a sealed packet, then its body decoder on the clear datagram.
      let h: Header;
      try {
        h = readHeader(d);
        reached.add("readHeader: ok");
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw new Error(`seed ${seed} datagram ${i}: ${err}`);
        reached.add(`readHeader: ${err.message.replace(/\d+/g, "N")}`);
        continue;
      }
      accepted++;
      const unseal = () => {
        const before = Buffer.from(d.subarray(HEADER_AT.end)).toString("hex");
        const opener = openerOf(h.type);
        const end = openBody(d, bodyAtOf(h.type), opener);
        reached.add(`openBody: ${end < 0 ? opener.lastRefusal : "opened"}`);
        if (end < 0) return undefined;
        expect(originals.has(before)).toBe(true); // only an unmutated original opens (the bytes after the checksum)
        return d.subarray(0, end);
      };
      const ifOpened = (what: string, f: (clear: Uint8Array) => unknown) => {
        const clear = unseal();
        if (clear) attempt(`${what} (opened)`, () => f(clear), i);
      };
      switch (h.type) {
        case PacketType.Request:
          attempt("decodeRequestHello (received)", () => {
            const hi = decodeRequestHello(d);
            if (hi) ifOpened("decodeRequestBody", (clear) => decodeRequestBody(clear, h));
            return hi;
          }, i);
          break;
        case PacketType.Accept:
          attempt("acceptNonce (received)", () => acceptNonce(d), i);
          if (d.byteLength === ACCEPT_BYTES) ifOpened("decodeAccept", decodeAccept);
          break;
        case PacketType.Error:
          if ((h.flags & FLAG_SEALED) !== 0) ifOpened("decodeError", decodeError);
          break;
        case PacketType.Data:
          ifOpened("decodeData", (clear) => decodeData(clear, h.seq, 100, 1000));
          break;
        case PacketType.Repair:
          ifOpened("decodeRepair", (clear) => decodeRepair(clear, 100));
          break;
        case PacketType.Ack:
          ifOpened("decodeAck", decodeAck);
          break;
        case PacketType.Fin:
          ifOpened("decodeFin", decodeFin);
          break;
      }
    }
    expect(accepted).toBeGreaterThan(500);
    const expected = [
      "readHeader: ok",
      "readHeader: datagram of N bytes is shorter than the header",
      "readHeader: bad magic",
      "readHeader: unsupported version N",
      "readHeader: checksum mismatch",
      "readHeader: unknown packet type N",
      "readHeader: reserved byte is not zero",
      "readHeader: sequence number out of range",
      "openBody: opened",
      "openBody: tampered",
      "openBody: replayed",
      "openBody: malformed",
      "decodeRequestHello (received): ok",
      "decodeRequestHello (received): undefined",
      "decodeRequestHello (received): truncated REQUEST",
      "decodeRequestBody (opened): ok",
      "acceptNonce (received): ok",
      "acceptNonce (received): ACCEPT of the wrong length",
      "decodeAccept (opened): ok",
      "decodeError (opened): ok",
      "decodeData (opened): ok",
      "decodeRepair (opened): ok",
      "decodeAck (opened): ok",
      "decodeFin (opened): undefined",
      "decodeUpgradeError: ok",
      "decodeUpgradeError: truncated ERROR",
      "decodeUpgradeError: bad magic",
      "decodeUpgradeError: checksum mismatch",
      "decodeUpgradeError: not an ERROR",
      "decodeUpgradeError: ERROR of the wrong length for its text",
      "decodeRequestHello: ok",
      "decodeRequestHello: undefined",
      "decodeRequestHello: truncated REQUEST",
      "decodeRequestBody: ok",
      "decodeRequestBody: truncated REQUEST",
      "decodeRequestBody: name too long",
      "decodeRequestBody: REQUEST of the wrong length for its name",
      "decodeRequestBody: name is not valid UTF-N",
      "decodeRequestBody: offset out of range",
      "decodeRequestBody: length out of range",
      "acceptNonce: ok",
      "acceptNonce: ACCEPT of the wrong length",
      "decodeAccept: ok",
      "decodeAccept: ACCEPT of the wrong length",
      "decodeAccept: file size out of range",
      "decodeAccept: offset out of range",
      "decodeAccept: length out of range",
      "decodeError: ok",
      "decodeError: truncated ERROR",
      "decodeError: error text too long",
      "decodeError: ERROR of the wrong length for its text",
      "decodeError: error text is not valid UTF-N",
      "decodeData: ok",
      "decodeData: undefined",
      "decodeRepair: ok",
      "decodeRepair: undefined",
      "decodeAck: ok",
      "decodeAck: ACK of the wrong length",
      "decodeFin: undefined",
      "decodeFin: FIN of the wrong length",
      "decodeProbe: ok",
      "decodeProbe: PROBE smaller than the minimum",
      "decodeProbeAck: ok",
      "decodeProbeAck: PROBE_ACK of the wrong length",
      "decodeRetry: ok",
      "decodeRetry: RETRY of the wrong length",
    ];
    expect(expected.filter((branch) => !reached.has(branch))).toEqual([]);
  });
});
