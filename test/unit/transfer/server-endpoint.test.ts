import { describe, expect, test } from "bun:test";
import { INITIAL_CWND_SEGMENTS } from "../../../src/transfer/core/bbr.ts";
import { requestMac } from "../../../src/transfer/request-mac.ts";
import { AddressTokens } from "../../../src/transfer/core/address-token.ts";
import {
  AMPLIFICATION_FACTOR,
  DEFAULT_IDLE_TIMEOUT_MS,
  VALIDATED_REQUEST_CREDIT_BYTES,
  CHANGE_CHECK_EVERY,
  fecBlockFor,
  ServerEndpoint,
  type EndpointEvent,
  type ServerEndpointConfig,
} from "../../../src/transfer/core/server-endpoint.ts";
import {
  ACK_BYTES,
  decodeAccept,
  decodeError,
  decodeProbeAck,
  encodeFin,
  encodeProbe,
  encodeRequest,
  HEADER_BYTES,
  PacketType,
  PROBE_ACK_BYTES,
  readHeader,
  seal,
  timestampUs,
  TransferErrorCode,
  writeAck,
  writeHeader,
  type Header,
  type RequestBody,
  MAX_NAME_BYTES,
} from "../../../src/transfer/core/wire.ts";
import { mutate, Rng } from "../../support/random.ts";
import { MemoryFiles, simFile, type SimFile } from "../../support/sim-endpoints.ts";

const A = "10.0.0.1";
const B = "10.0.0.2";

interface Sent {
  bytes: Uint8Array;
  header: Header;
  address: string;
  port: number;
}

function setup(files: SimFile[], config: Partial<ServerEndpointConfig<SimFile, number>> = {}) {
  const storage = new MemoryFiles(files);
  let cookie = 1000;
  const ep = new ServerEndpoint<SimFile, number>({ files: storage, randomU32: () => cookie++, tokenSecret: SECRET, ...config });
  return { ep, storage };
}

const SECRET = new Uint8Array(32).fill(7);
/** The endpoint's address tokens, as its clients get them (in a RETRY or a PROBE_ACK). */
const TOKENS = new AddressTokens(SECRET);

/**
 * A REQUEST from `address` (default A) with the address token the server gave it at `issuedAt` (default
 * 0; `addressToken: undefined` for none), and with `secret`, the MAC over it.
 */
function request(
  file: SimFile,
  sessionId: number,
  o: Omit<Partial<RequestBody>, "token"> & { secret?: string; address?: string; issuedAt?: number; addressToken?: Uint8Array | undefined } = {},
): Uint8Array {
  const sha256 = o.sha256 ?? Buffer.from(file.sha256, "hex");
  const { secret, address, issuedAt, addressToken, ...fields } = o;
  const body: RequestBody = {
    offset: 0,
    length: file.size,
    segmentBytes: 1000,
    windowSegments: 64,
    name: file.name,
    mac: undefined,
    ...fields,
    token: "addressToken" in o ? addressToken : TOKENS.issue(address ?? A, issuedAt ?? 0),
    sha256,
  };
  if (secret !== undefined) body.mac = requestMac(secret, sessionId, body);
  return encodeRequest(sessionId, body, 0);
}

function ack(sessionId: number, cumulative: number, cookie: number, now: number, windowSegments = 64): Uint8Array {
  const buf = new Uint8Array(ACK_BYTES);
  writeAck(buf, new DataView(buf.buffer), sessionId, cumulative, { windowSegments, echoTimestampUs: timestampUs(now), ackDelayUs: 0, received: cumulative }, cookie, timestampUs(now));
  return buf;
}

/** Everything the endpoint has to send now (copied: the endpoint reuses its buffers). */
function drain(ep: ServerEndpoint<SimFile, number>, now: number, max = Infinity): Sent[] {
  const out: Sent[] = [];
  for (let t = out.length < max ? ep.pollTransmit(now) : undefined; t; t = out.length < max ? ep.pollTransmit(now) : undefined) {
    for (let i = 0; i < t.count; i++) {
      const bytes = t.bytes.slice(i * t.datagramBytes, Math.min((i + 1) * t.datagramBytes, t.bytes.byteLength));
      out.push({ bytes, header: readHeader(bytes), address: t.address, port: t.port });
    }
  }
  return out;
}

function events(ep: ServerEndpoint<SimFile, number>): EndpointEvent[] {
  const out: EndpointEvent[] = [];
  for (let e = ep.pollEvent(); e; e = ep.pollEvent()) out.push(e);
  return out;
}

function only(sent: Sent[], type: PacketType): Sent[] {
  return sent.filter((s) => s.header.type === type);
}

/**
 * Opens a session and proves the client's address (an ACK echoing the cookie); returns the cookie and
 * what went out before the ACK (the ACCEPT and the DATA the budget allowed).
 */
function openValidated(ep: ServerEndpoint<SimFile, number>, file: SimFile, sessionId: number, address: string, port: number, now: number, o: Partial<RequestBody> = {}) {
  ep.handle(request(file, sessionId, o), address, port, now);
  const sent = drain(ep, now);
  const accept = sent.find((s) => s.header.type === PacketType.Accept && s.header.sessionId === sessionId && s.address === address && s.port === port);
  if (!accept) throw new Error("no ACCEPT");
  const cookie = decodeAccept(accept.bytes).cookie;
  ep.handle(ack(sessionId, 0, cookie, now), address, port, now);
  return { cookie, sent };
}

const rng = new Rng(42);
const FILE = simFile(rng, "a.bin", 200_000, 40); // 1,280 bytes of piece hashes: three 512-byte segments
const SMALL = simFile(rng, "small.bin", 5_000);
/** A session's first window over FILE in 1000-byte segments: the initial cwnd, or the FEC block if longer (the window never ends inside the base's block). */
const INITIAL_WINDOW = Math.max(INITIAL_CWND_SEGMENTS, Math.min(fecBlockFor(1000), Math.ceil(FILE.size / 1000)));

describe("admission", () => {
  const refusals: [string, Partial<ServerEndpointConfig<SimFile, number>>, (s: MemoryFiles) => void, () => Uint8Array, TransferErrorCode][] = [
    ["a wrong MAC", { verifyMac: () => false }, () => {}, () => request(FILE, 1, { secret: "wrong" }), TransferErrorCode.Forbidden],
    ["a name not served", {}, () => {}, () => request({ ...FILE, name: "missing.bin" }, 1), TransferErrorCode.NotFound],
    ["a name of the longest kind, not served", {}, () => {}, () => request({ ...FILE, name: "n".repeat(MAX_NAME_BYTES) }, 1), TransferErrorCode.NotFound],
    ["content other than listed", {}, () => {}, () => request(FILE, 1, { sha256: new Uint8Array(32) }), TransferErrorCode.Changed],
    ["an offset past the end", {}, () => {}, () => request(FILE, 1, { offset: FILE.size + 1, length: 0 }), TransferErrorCode.BadRequest],
    ["a range past the end", {}, () => {}, () => request(FILE, 1, { offset: 10, length: FILE.size }), TransferErrorCode.BadRequest],
    ["a file changed on disk since it was hashed", {}, (s) => s.openFails.set(FILE.name, TransferErrorCode.Changed), () => request(FILE, 1), TransferErrorCode.Changed],
    ["a file gone from disk", {}, (s) => s.openFails.set(FILE.name, TransferErrorCode.NotFound), () => request(FILE, 1), TransferErrorCode.NotFound],
  ];
  for (const [what, config, prepare, make, code] of refusals) {
    test(`${what} is refused with ERROR ${code}, and no session`, () => {
      const { ep, storage } = setup([FILE], config);
      prepare(storage);
      const req = make();
      ep.handle(req, A, 5000, 0);
      const sent = drain(ep, 0);
      expect(sent.length).toBe(1);
      expect(sent[0]!.header.type).toBe(PacketType.Error);
      expect(sent[0]!.header.sessionId).toBe(1);
      expect(decodeError(sent[0]!.bytes).code).toBe(code);
      expect(ep.sessionCount).toBe(0);
      expect(storage.openHandles).toBe(0);
      expect(events(ep)).toEqual([expect.objectContaining({ type: "refused", code, address: A, port: 5000, sessionId: 1 })]);
    });
  }

  test("a file that fails to open makes the catalog look again", () => {
    const { ep, storage } = setup([FILE]);
    storage.openFails.set(FILE.name, TransferErrorCode.Changed);
    ep.handle(request(FILE, 1), A, 5000, 0);
    expect(storage.scans).toBe(1);
  });

  test("with a token, a REQUEST with the right MAC is accepted and one without is not", () => {
    const token = "s3cret";
    const { ep } = setup([FILE], { verifyMac: (id, r) => r.mac !== undefined && Buffer.from(r.mac).equals(Buffer.from(requestMac(token, id, r))) });
    ep.handle(request(FILE, 1, { secret: token }), A, 5000, 0);
    ep.handle(request(FILE, 2), A, 5000, 0);
    const sent = drain(ep, 0);
    expect(only(sent, PacketType.Accept).map((s) => s.header.sessionId)).toEqual([1]);
    expect(only(sent, PacketType.Error).map((s) => [s.header.sessionId, decodeError(s.bytes).code])).toEqual([[2, TransferErrorCode.Forbidden]]);
  });

  test("the ACCEPT names the range and the segment size clamped to at least 512", () => {
    const { ep } = setup([FILE]);
    ep.handle(request(FILE, 7, { offset: 1000, length: 5000, segmentBytes: 100 }), A, 5000, 0);
    const accept = decodeAccept(only(drain(ep, 0), PacketType.Accept)[0]!.bytes);
    expect([accept.fileSize, accept.offset, accept.length, accept.segmentBytes, accept.cookie]).toEqual([FILE.size, 1000, 5000, 512, 1000]);
  });

  test("more sessions than maxSessions are refused busy", () => {
    const { ep } = setup([FILE], { maxSessions: 2 });
    for (const id of [1, 2]) ep.handle(request(FILE, id, { address: B }), B, 6000 + id, 0);
    for (const id of [1, 2]) ep.handle(ack(id, 0, 999 + id, 0), B, 6000 + id, 0); // validated: nothing to push out
    ep.handle(request(FILE, 3, { address: B }), B, 6003, 0);
    const errors = only(drain(ep, 0), PacketType.Error);
    expect(errors.map((s) => [s.header.sessionId, decodeError(s.bytes).code])).toEqual([[3, TransferErrorCode.Busy]]);
    expect(ep.sessionCount).toBe(2);
  });

  test("per address: past maxSessionsPerAddress busy, other addresses still served, a finished session frees its place", () => {
    const { ep } = setup([FILE], { maxSessionsPerAddress: 2 });
    ep.handle(request(FILE, 1), A, 5001, 0);
    ep.handle(request(FILE, 2), A, 5002, 0);
    for (const id of [1, 2]) ep.handle(ack(id, 0, 999 + id, 0), A, 5000 + id, 0); // validated: nothing to push out
    ep.handle(request(FILE, 3), A, 5003, 0);
    ep.handle(request(FILE, 4, { address: B }), B, 5001, 0);
    let sent = drain(ep, 0);
    expect(only(sent, PacketType.Accept).map((s) => s.header.sessionId)).toEqual([1, 2, 4]);
    const busy = only(sent, PacketType.Error);
    expect(busy.map((s) => [s.header.sessionId, s.address, decodeError(s.bytes).code])).toEqual([[3, A, TransferErrorCode.Busy]]);
    expect(decodeError(busy[0]!.bytes).text).toBe("server busy: more than 2 transfers from your address");
    ep.handle(encodeFin(1, 0), A, 5001, 1);
    ep.handle(request(FILE, 3), A, 5003, 1);
    sent = drain(ep, 1);
    expect(only(sent, PacketType.Accept).map((s) => s.header.sessionId)).toEqual([3]);
    expect(ep.counters.completed).toBe(1);
  });

  test("a duplicate REQUEST draws the same ACCEPT again (same cookie), not a second session", () => {
    const { ep } = setup([FILE]);
    ep.handle(request(FILE, 9), A, 5000, 0);
    const first = only(drain(ep, 0), PacketType.Accept);
    ep.handle(request(FILE, 9), A, 5000, 30);
    const second = only(drain(ep, 30), PacketType.Accept);
    expect(first.length).toBe(1);
    expect(second.length).toBe(1);
    expect(Buffer.from(second[0]!.bytes).equals(Buffer.from(first[0]!.bytes))).toBe(true);
    expect(ep.counters.sessions).toBe(1);
    expect(ep.sessionCount).toBe(1);
  });

  test("the same session id from two clients makes two sessions; each client's FIN ends only its own", () => {
    const { ep, storage } = setup([FILE]);
    ep.handle(request(FILE, 5), A, 5000, 0);
    ep.handle(request(FILE, 5, { address: B }), B, 5000, 0);
    ep.handle(request(FILE, 5), A, 5001, 0);
    expect(only(drain(ep, 0), PacketType.Accept).map((s) => `${s.address}:${s.port}`)).toEqual([`${A}:5000`, `${B}:5000`, `${A}:5001`]);
    ep.handle(encodeFin(5, 0), B, 5000, 1);
    expect(ep.sessionCount).toBe(2);
    ep.handle(encodeFin(5, 0), A, 5000, 1);
    ep.handle(encodeFin(5, 0), A, 5000, 1); // a repeated FIN finds nothing
    expect(ep.sessionCount).toBe(1);
    ep.handle(encodeFin(5, 0), A, 5001, 1);
    expect(ep.sessionCount).toBe(0);
    expect(storage.openHandles).toBe(0);
    expect(ep.counters.completed).toBe(3);
  });

  test("an empty range is accepted and complete at once", () => {
    const { ep, storage } = setup([FILE]);
    ep.handle(request(FILE, 1, { offset: FILE.size, length: 0 }), A, 5000, 0);
    const sent = drain(ep, 0);
    expect(sent.map((s) => s.header.type)).toEqual([PacketType.Accept]);
    expect(decodeAccept(sent[0]!.bytes).length).toBe(0);
    expect(ep.sessionCount).toBe(0);
    expect(storage.openHandles).toBe(0);
    expect(events(ep).map((e) => e.type)).toEqual(["opened", "completed"]);
  });
});

describe("stopping", () => {
  test("closeAll ends every session, same-id ones included, and closes every file", () => {
    const { ep, storage } = setup([FILE]);
    for (const [address, port] of [[A, 1], [B, 1], [A, 2]] as const) ep.handle(request(FILE, 5, { segmentBytes: 512, address }), address, port, 0);
    ep.handle(request(FILE, 6), A, 1, 0);
    drain(ep, 0);
    expect(storage.openHandles).toBe(4);
    ep.closeAll();
    expect(ep.sessionCount).toBe(0);
    expect(storage.openHandles).toBe(0);
    expect(ep.pollTimeout()).toBeUndefined();
    expect(drain(ep, 1)).toEqual([]);
  });
});

describe("anti-amplification", () => {
  test("a client that never proves its port gets at most 3× what it sent (its token counts as 1200 bytes), then the session is dropped at the idle timeout", () => {
    const { ep, storage } = setup([FILE]);
    const req = request(FILE, 1, { segmentBytes: 512 });
    let received = Math.max(req.byteLength, VALIDATED_REQUEST_CREDIT_BYTES);
    let sent = 0;
    ep.handle(req, A, 5000, 0);
    let now = 0;
    for (let step = 0; step < 1000 && ep.sessionCount > 0; step++) {
      for (const s of drain(ep, now)) sent += s.bytes.byteLength;
      // Its ACKs carry the wrong cookie: they count as bytes received, never as proof.
      if (step < 5) {
        const a = ack(1, 0, 12345, now);
        received += a.byteLength;
        ep.handle(a, A, 5000, now);
        for (const s of drain(ep, now)) sent += s.bytes.byteLength;
      }
      const at = ep.pollTimeout();
      if (at === undefined) break;
      expect(at).toBeGreaterThan(now);
      now = at;
      ep.handleTimeout(now);
    }
    expect(sent).toBeGreaterThan(2 * 512); // it did send within the budget...
    expect(sent).toBeLessThanOrEqual(AMPLIFICATION_FACTOR * received); // ...and never beyond it
    expect(ep.sessionCount).toBe(0);
    expect(now).toBe(DEFAULT_IDLE_TIMEOUT_MS);
    expect(storage.openHandles).toBe(0);
    expect(events(ep).at(-1)).toEqual(expect.objectContaining({ type: "failed", reason: "no acknowledgement for 10s" }));
  });

  test("a repeated REQUEST widens the budget, and the ACK with the cookie lifts it", () => {
    const { ep } = setup([FILE]);
    ep.handle(request(FILE, 1, { segmentBytes: 512 }), A, 5000, 0);
    const first = drain(ep, 0);
    const cookie = decodeAccept(only(first, PacketType.Accept)[0]!.bytes).cookie;
    const firstData = only(first, PacketType.Data).length;
    expect(first.reduce((n, s) => n + s.bytes.byteLength, 0)).toBeLessThanOrEqual(3 * VALIDATED_REQUEST_CREDIT_BYTES);
    const again = request(FILE, 1, { segmentBytes: 512 });
    ep.handle(again, A, 5000, 1);
    const second = drain(ep, 1);
    expect(second[0]!.header.type).toBe(PacketType.Accept);
    const total = [...first, ...second].reduce((n, s) => n + s.bytes.byteLength, 0);
    expect(total).toBeLessThanOrEqual(3 * (VALIDATED_REQUEST_CREDIT_BYTES + again.byteLength));
    ep.handle(ack(1, 0, cookie, 2), A, 5000, 2);
    const after = only(drain(ep, 2), PacketType.Data);
    // Now the initial window, not the budget, limits it.
    expect(firstData + only(second, PacketType.Data).length + after.length).toBe(INITIAL_WINDOW);
  });
});

describe("probes", () => {
  test("a PROBE is answered with a 50-byte PROBE_ACK naming its size, with an address token, and no session", () => {
    const { ep } = setup([FILE]);
    ep.handle(encodeProbe(77, 1400, 0), A, 5000, 0);
    const sent = drain(ep, 0);
    expect(sent.length).toBe(1);
    expect(sent[0]!.header.type).toBe(PacketType.ProbeAck);
    expect(sent[0]!.header.sessionId).toBe(77);
    expect(sent[0]!.bytes.byteLength).toBe(PROBE_ACK_BYTES);
    expect(PROBE_ACK_BYTES).toBe(50);
    const answer = decodeProbeAck(sent[0]!.bytes);
    expect(answer.datagramBytes).toBe(1400);
    expect(TOKENS.check(answer.token, A, 0)).toBe(true);
    expect(TOKENS.check(answer.token, B, 0)).toBe(false);
    expect(ep.sessionCount).toBe(0);
    expect(ep.pollTimeout()).toBeUndefined();
  });

  test("a PROBE smaller than its answer is not answered", () => {
    const { ep } = setup([FILE]);
    const small = new Uint8Array(PROBE_ACK_BYTES - 1);
    const view = new DataView(small.buffer);
    writeHeader(small, view, PacketType.Probe, 0, 78, 0, 0);
    seal(small, view, small.byteLength);
    ep.handle(small, A, 5000, 0);
    expect(drain(ep, 0)).toEqual([]);
  });
});

describe("sending", () => {
  test("a piece-hash session carries the piece-hash list, not the file", () => {
    const { ep } = setup([FILE]);
    const { cookie, sent } = openValidated(ep, FILE, 1, A, 5000, 0, { pieceHashes: true, offset: 32, length: FILE.pieceHashes.byteLength - 32, segmentBytes: 512 });
    expect(cookie).toBe(1000);
    // (The first ACK, cumulative 0, may draw an early retransmit of what went before it: count each segment once.)
    const bySeq = new Map(only([...sent, ...drain(ep, 0)], PacketType.Data).map((s) => [s.header.seq, s.bytes.subarray(HEADER_BYTES)]));
    const got = Buffer.concat([...bySeq.keys()].sort((a, b) => a - b).map((seq) => bySeq.get(seq)!));
    expect(got.equals(Buffer.from(FILE.pieceHashes.subarray(32)))).toBe(true);
  });

  test("two sessions ready at once are served in turn, one datagram each", () => {
    const { ep } = setup([FILE]);
    ep.handle(request(FILE, 1), A, 5000, 0);
    ep.handle(request(FILE, 2, { address: B }), B, 5000, 0);
    const before = drain(ep, 0);
    // Within the address-validation budget already: ACCEPT, ACCEPT, then DATA in turn.
    expect(before.map((s) => s.header.sessionId)).toEqual([1, 2, 1, 2, 1, 2, 1, 2]);
    const cookies = only(before, PacketType.Accept).map((s) => decodeAccept(s.bytes).cookie);
    ep.handle(ack(1, 0, cookies[0]!, 0), A, 5000, 0);
    ep.handle(ack(2, 0, cookies[1]!, 0), B, 5000, 0);
    const data = only(drain(ep, 0), PacketType.Data);
    // Each may send the rest of its initial window (less the 3 before), alternating.
    const more = 2 * (INITIAL_WINDOW - 3);
    expect(data.map((s) => s.header.sessionId)).toEqual(Array.from({ length: more }, (_, i) => 1 + (i % 2)));
  });

  test("unsend takes back the newest transmits, newest first: nothing goes until the drain, then the same segments", () => {
    const { ep } = setup([FILE]);
    const { sent } = openValidated(ep, FILE, 1, A, 5000, 0);
    const sentBefore = only(sent, PacketType.Data).length;
    expect(sentBefore).toBe(3);
    const batch = [ep.pollTransmit(0)!, ep.pollTransmit(0)!, ep.pollTransmit(0)!].map((t) => readHeader(t.bytes.slice()).seq);
    expect(batch).toEqual([3, 4, 5]);
    ep.unsend();
    ep.unsend();
    expect(ep.blocked).toBe(true);
    expect(ep.pollTransmit(0)).toBeUndefined();
    const at = ep.pollTimeout();
    expect(at === undefined || at > 0).toBe(true); // never "wake me now" while blocked
    ep.handleDrain(0.05);
    expect(ep.blocked).toBe(false);
    const again = drain(ep, 0.05).map((s) => s.header.seq);
    expect(again.slice(0, 2)).toEqual([4, 5]);
    expect(ep.counters.bytesSent).toBe((sentBefore + 1 + again.length) * (HEADER_BYTES + 1000));
  });

  test("a refused ACCEPT goes out first once the socket drains", () => {
    const { ep } = setup([FILE]);
    ep.handle(request(FILE, 1), A, 5000, 0);
    expect(readHeader(ep.pollTransmit(0)!.bytes).type).toBe(PacketType.Accept);
    ep.unsend();
    expect(ep.pollTransmit(0)).toBeUndefined();
    ep.handleDrain(1);
    expect(readHeader(ep.pollTransmit(1)!.bytes).type).toBe(PacketType.Accept);
  });

  test(`a file that changes on disk stops the transfer with ERROR 4 at the next check (every ${CHANGE_CHECK_EVERY} segments)`, () => {
    const { ep, storage } = setup([FILE]);
    storage.changing.add(FILE.name);
    const { cookie, sent: first } = openValidated(ep, FILE, 1, A, 5000, 0, { segmentBytes: 512 });
    let now = 0;
    let dataSent = only(first, PacketType.Data).length;
    let error: Sent | undefined;
    for (let step = 0; step < 10_000 && !error; step++) {
      const sent = drain(ep, now);
      const data = only(sent, PacketType.Data);
      dataSent += data.length;
      error = only(sent, PacketType.Error)[0];
      const top = data.at(-1)?.header.seq;
      now += 1;
      if (top !== undefined) ep.handle(ack(1, top + 1, cookie, now, 4096), A, 5000, now);
    }
    expect(error).toBeDefined();
    expect(decodeError(error!.bytes).code).toBe(TransferErrorCode.Changed);
    expect(dataSent).toBe(CHANGE_CHECK_EVERY - 1);
    expect(ep.sessionCount).toBe(0);
    expect(storage.openHandles).toBe(0);
    expect(events(ep).at(-1)).toEqual(expect.objectContaining({ type: "failed", code: TransferErrorCode.Changed }));
  });

  test("a file that reads short stops the transfer with ERROR 4", () => {
    const { ep, storage } = setup([SMALL]);
    storage.shrunk.add(SMALL.name);
    const { sent: first } = openValidated(ep, SMALL, 1, A, 5000, 0);
    const sent = [...first, ...drain(ep, 0)];
    const error = only(sent, PacketType.Error)[0]!;
    expect(decodeError(error.bytes).code).toBe(TransferErrorCode.Changed);
    expect(only(sent, PacketType.Data).length).toBe(4); // the fifth, the last, came up short
    expect(storage.openHandles).toBe(0);
  });
});

describe("runs (UDP GSO)", () => {
  /** Every transmit cut into its datagrams as the kernel would, each checked: one session, one length but the last. */
  function drainRuns(ep: ServerEndpoint<SimFile, number>, now: number): { runs: Sent[][]; sizes: number[][] } {
    const runs: Sent[][] = [];
    const sizes: number[][] = [];
    for (let t = ep.pollTransmit(now); t; t = ep.pollTransmit(now)) {
      const run: Sent[] = [];
      const lengths: number[] = [];
      for (let i = 0; i < t.count; i++) {
        const bytes = t.bytes.slice(i * t.datagramBytes, Math.min((i + 1) * t.datagramBytes, t.bytes.byteLength));
        run.push({ bytes, header: readHeader(bytes), address: t.address, port: t.port });
        lengths.push(bytes.byteLength);
      }
      expect(lengths.reduce((a, b) => a + b, 0)).toBe(t.bytes.byteLength);
      runs.push(run);
      sizes.push(lengths);
    }
    return { runs, sizes };
  }

  test("a session's window leaves as runs of up to 64 datagrams of one length, in order; the file's short last segment ends the last run", () => {
    const { ep } = setup([SMALL, FILE], { maxRunDatagrams: 64 });
    const { cookie, sent } = openValidated(ep, SMALL, 1, A, 5000, 0, { segmentBytes: 512 });
    let cumulative = 0;
    const seqs: number[] = only(sent, PacketType.Data).map((d) => d.header.seq);
    let multi = 0;
    for (let now = 1; now < 2000 && cumulative < Math.ceil(SMALL.size / 512); now += 10) {
      const { runs, sizes } = drainRuns(ep, now);
      for (const [i, run] of runs.entries()) {
        const data = run.filter((d) => d.header.type === PacketType.Data);
        if (run.length > 1) multi++;
        expect(run.length).toBeLessThanOrEqual(64);
        expect(new Set(run.map((d) => d.header.sessionId))).toEqual(new Set([1]));
        const lengths = sizes[i]!;
        for (let k = 0; k < lengths.length - 1; k++) expect(lengths[k]).toBe(lengths[0]!);
        expect(lengths[lengths.length - 1]!).toBeLessThanOrEqual(lengths[0]!);
        seqs.push(...data.map((d) => d.header.seq));
      }
      cumulative = Math.max(cumulative, ...seqs.map((q) => q + 1));
      ep.handle(ack(1, cumulative, cookie, now), A, 5000, now);
    }
    expect(multi).toBeGreaterThan(0);
    // 5,000 bytes in 512-byte segments: 10 segments, the last 392 bytes, each sent once, in order.
    expect([...new Set(seqs)].sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  test("unsend takes a whole run back: after the drain the same segments go again, as a run", () => {
    const { ep } = setup([FILE], { maxRunDatagrams: 64 });
    openValidated(ep, FILE, 1, A, 5000, 0);
    const first = ep.pollTransmit(0)!;
    expect(first.count).toBeGreaterThan(1);
    const seqs = Array.from({ length: first.count }, (_, i) => readHeader(first.bytes.slice(i * first.datagramBytes, (i + 1) * first.datagramBytes)).seq);
    const sentBefore = ep.counters.bytesSent;
    ep.unsend();
    expect(ep.counters.bytesSent).toBe(sentBefore - first.bytes.byteLength);
    expect(ep.pollTransmit(0)).toBeUndefined();
    ep.handleDrain(0.05);
    const again = ep.pollTransmit(0.05)!;
    expect(again.count).toBe(seqs.length);
    expect(Array.from({ length: again.count }, (_, i) => readHeader(again.bytes.slice(i * again.datagramBytes, (i + 1) * again.datagramBytes)).seq)).toEqual(seqs);
  });

  test("two sessions ready at once take turns run by run", () => {
    const { ep } = setup([FILE], { maxRunDatagrams: 64 });
    ep.handle(request(FILE, 1), A, 5000, 0);
    ep.handle(request(FILE, 2, { address: B }), B, 5000, 0);
    const [c1, c2] = only(drain(ep, 0), PacketType.Accept).map((a) => decodeAccept(a.bytes).cookie);
    ep.handle(ack(1, 0, c1!, 0), A, 5000, 0);
    ep.handle(ack(2, 0, c2!, 0), B, 5000, 0);
    const { runs } = drainRuns(ep, 0);
    const order = runs.map((r) => r[0]!.header.sessionId);
    expect(runs.every((r) => r.length > 1)).toBe(true);
    expect(order).toEqual(Array.from({ length: order.length }, (_, i) => order[0]! + (i % 2 === 0 ? 0 : order[0] === 1 ? 1 : -1)));
    expect(order.length).toBeGreaterThanOrEqual(2);
  });

  test("a run never takes an unproven client past 3× what it sent", () => {
    const { ep } = setup([FILE], { maxRunDatagrams: 64 });
    ep.handle(request(FILE, 1), A, 5000, 0);
    const { runs } = drainRuns(ep, 0);
    const bytes = runs.flat().reduce((n, d) => n + d.bytes.byteLength, 0);
    expect(bytes).toBeLessThanOrEqual(AMPLIFICATION_FACTOR * (request(FILE, 1).byteLength + VALIDATED_REQUEST_CREDIT_BYTES));
    expect(only(runs.flat(), PacketType.Data).length).toBeGreaterThan(0);
  });
});

describe("the one timer table", () => {
  test("pollTimeout is the earliest deadline of all sessions; handleTimeout acts on the expired ones only", () => {
    const { ep } = setup([FILE], { maxSessionsPerAddress: 100 });
    const order = new Rng(7);
    const createdAt = Array.from({ length: 100 }, (_, i) => i * 10);
    // Opened in a shuffled order, each at its own time: the earliest idle deadline is the earliest session's.
    const ids = createdAt.map((_, i) => i + 1);
    for (let i = ids.length - 1; i > 0; i--) {
      const j = order.int(i + 1);
      [ids[i], ids[j]] = [ids[j]!, ids[i]!];
    }
    const sorted = [...ids].sort((a, b) => a - b);
    for (const [k, id] of sorted.entries()) {
      // Each from an address of its own (one address may hold only 8 sessions not yet acknowledged).
      const address = `10.1.0.${id}`;
      ep.handle(request(FILE, ids[k]!, { segmentBytes: 512, address, issuedAt: createdAt[k]! }), address, 7000 + id, createdAt[k]!);
      drain(ep, createdAt[k]!);
    }
    events(ep);
    const createdById = new Map(sorted.map((_, k) => [ids[k]!, createdAt[k]!]));
    const failedOrder: number[] = [];
    while (ep.sessionCount > 0) {
      const at = ep.pollTimeout()!;
      const earliest = Math.min(...[...createdById.values()]) + DEFAULT_IDLE_TIMEOUT_MS;
      expect(at).toBe(earliest);
      ep.handleTimeout(at - 0.001); // not yet: nothing happens
      expect(events(ep)).toEqual([]);
      ep.handleTimeout(at);
      drain(ep, at);
      for (const e of events(ep)) {
        expect(e.type).toBe("failed");
        if (e.type === "failed") {
          failedOrder.push(e.sessionId);
          createdById.delete(e.sessionId);
        }
      }
    }
    expect(failedOrder).toEqual(ids);
    expect(ep.pollTimeout()).toBeUndefined();
  });

  test("a validated session's retransmission deadline: nothing before it, a resend at it", () => {
    const { ep } = setup([FILE]);
    openValidated(ep, FILE, 1, A, 5000, 0);
    openValidated(ep, FILE, 2, A, 5001, 50);
    const first = only(drain(ep, 50), PacketType.Data);
    expect(first.length).toBeGreaterThan(0);
    const at = ep.pollTimeout()!;
    expect(at).toBeGreaterThan(50);
    ep.handleTimeout(at - 0.001);
    expect(drain(ep, at - 0.001)).toEqual([]);
    ep.handleTimeout(at);
    const resent = only(drain(ep, at), PacketType.Data);
    expect(resent.length).toBeGreaterThan(0);
    expect(resent[0]!.header.sessionId).toBe(1); // the older session's timer fired first
    expect(ep.pollTimeout()!).toBeGreaterThan(at);
  });
});

describe("garbage", () => {
  test("mutated datagrams are dropped and counted; the endpoint never throws", () => {
    const { ep } = setup([FILE]);
    const { cookie } = openValidated(ep, FILE, 1, A, 5000, 0);
    const r = new Rng(3);
    const seeds = [request(FILE, 1), ack(1, 1, cookie, 1), encodeFin(1, 0), encodeProbe(1, 1200, 0)];
    for (let i = 0; i < 5000; i++) {
      const d = mutate(r, r.pick(seeds));
      ep.handle(d, r.chance(0.5) ? A : B, 5000, i / 10);
      drain(ep, i / 10);
      ep.handleTimeout(i / 10);
    }
    expect(ep.counters.dropped).toBeGreaterThan(1000);
    const dropped = events(ep).filter((e) => e.type === "dropped");
    expect(dropped.length).toBeGreaterThan(0);
    for (let d = 0; d < 3; d++) ep.handle(new Uint8Array(d * 10), A, 5000, 600);
    expect(events(ep).map((e) => e.type)).toEqual(["dropped", "dropped", "dropped"]);
  });
});
