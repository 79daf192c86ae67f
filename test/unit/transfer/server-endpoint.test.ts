import { describe, expect, test } from "bun:test";
import { INITIAL_CWND_SEGMENTS } from "../../../src/transfer/core/bbr.ts";
import { AddressTokens } from "../../../src/transfer/core/address-token.ts";
import { KxKind } from "../../../src/transfer/core/session-keys.ts";
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
  ACCEPT_AT,
  ACCEPT_BYTES,
  acceptNonce,
  ACK_BYTES,
  DATAGRAM_OVERHEAD_BYTES,
  decodeAccept,
  decodeError,
  decodeProbeAck,
  encodeError,
  encodeProbe,
  FLAG_SEALED,
  GREETING_BYTES,
  HEADER_BYTES,
  PacketType,
  PROBE_ACK_BYTES,
  readHeader,
  REQUEST_AT,
  seal,
  timestampUs,
  TransferErrorCode,
  writeAck,
  writeHeader,
  type RequestBody,
  MAX_NAME_BYTES,
} from "../../../src/transfer/core/wire.ts";
import { mutate, Rng } from "../../support/random.ts";
import { SessionPeer, tamper, type Seen } from "../../support/session-peer.ts";
import { MemoryFiles, simFile, type SimFile } from "../../support/sim-endpoints.ts";
import { testCrypto } from "../../support/transfer-crypto.ts";

const A = "10.0.0.1";
const B = "10.0.0.2";

type Sent = Seen;
type Endpoint = ServerEndpoint<SimFile, number>;

/**
 * An endpoint serving `files`, and the client side that talks to it (test/support/session-peer.ts).
 * `token`: both sides' (CPace); `clientToken`: the client's alone, when it differs (undefined: none).
 */
function setup(files: SimFile[], config: Partial<ServerEndpointConfig<SimFile, number>> = {}, o: { token?: string; clientToken?: string } = {}) {
  const storage = new MemoryFiles(files);
  let cookie = 1000;
  const ep = new ServerEndpoint<SimFile, number>({ files: storage, randomU32: () => cookie++, tokenSecret: SECRET, crypto: testCrypto({ token: o.token, seed: 1 }), ...config });
  const peer = new SessionPeer(ep, testCrypto({ token: "clientToken" in o ? o.clientToken : o.token, seed: 2 }));
  return { ep, storage, peer };
}

const SECRET = new Uint8Array(32).fill(7);
/** The endpoint's address tokens, as its clients get them (in a RETRY or a PROBE_ACK). */
const TOKENS = new AddressTokens(SECRET);

/** Everything the endpoint has to send now, opened by the peer (`raw`: the wire bytes). */
function drain(ep: Endpoint, peer: SessionPeer, now: number, max = Infinity): Sent[] {
  return peer.drain(ep, now, max);
}

function events(ep: Endpoint): EndpointEvent[] {
  const out: EndpointEvent[] = [];
  for (let e = ep.pollEvent(); e; e = ep.pollEvent()) out.push(e);
  return out;
}

function only(sent: Sent[], type: PacketType): Sent[] {
  return sent.filter((s) => s.header.type === type);
}

const wireBytes = (sent: Sent[]) => sent.reduce((n, s) => n + s.raw.byteLength, 0);

/**
 * Opens a session and proves the client's address (an ACK echoing the cookie); returns the cookie and
 * what went out before the ACK (the ACCEPT and the DATA the budget allowed).
 */
function openValidated(ep: Endpoint, peer: SessionPeer, file: SimFile, sessionId: number, address: string, port: number, now: number, o: Partial<RequestBody> = {}) {
  ep.handle(peer.request(file, sessionId, { ...o, address, at: now }), address, port, now);
  const sent = drain(ep, peer, now);
  const accept = sent.find((s) => s.header.type === PacketType.Accept && s.header.sessionId === sessionId && s.address === address && s.port === port);
  if (!accept) throw new Error("no ACCEPT");
  const cookie = decodeAccept(accept.bytes).cookie;
  ep.handle(peer.ack(address, port, sessionId, 0, cookie, now), address, port, now);
  return { cookie, sent };
}

const rng = new Rng(42);
const FILE = simFile(rng, "a.bin", 200_000, 40); // 1,280 bytes of piece hashes: three 512-byte segments
const SMALL = simFile(rng, "small.bin", 5_000);
/** A session's first window over FILE in 1000-byte segments: the initial cwnd, or the FEC block if longer (the window never ends inside the base's block). */
const INITIAL_WINDOW = Math.max(INITIAL_CWND_SEGMENTS, Math.min(fecBlockFor(1000), Math.ceil(FILE.size / 1000)));

describe("admission", () => {
  type Tokens = { token?: string; clientToken?: string };
  const refusals: [string, Partial<ServerEndpointConfig<SimFile, number>>, Tokens, (s: MemoryFiles) => void, (p: SessionPeer) => Uint8Array, TransferErrorCode][] = [
    ["a wrong token (CPace)", {}, { token: "s3cret", clientToken: "wrong" }, () => {}, (p) => p.request(FILE, 1), TransferErrorCode.Forbidden],
    ["no token where the server has one", {}, { token: "s3cret", clientToken: undefined }, () => {}, (p) => p.request(FILE, 1), TransferErrorCode.Forbidden],
    ["a token where the server has none", {}, { clientToken: "s3cret" }, () => {}, (p) => p.request(FILE, 1), TransferErrorCode.Forbidden],
    ["a name not served", {}, {}, () => {}, (p) => p.request({ ...FILE, name: "missing.bin" }, 1), TransferErrorCode.NotFound],
    ["a name of the longest kind, not served", {}, {}, () => {}, (p) => p.request({ ...FILE, name: "n".repeat(MAX_NAME_BYTES) }, 1), TransferErrorCode.NotFound],
    ["content other than listed", {}, {}, () => {}, (p) => p.request(FILE, 1, { sha256: new Uint8Array(32) }), TransferErrorCode.Changed],
    ["an offset past the end", {}, {}, () => {}, (p) => p.request(FILE, 1, { offset: FILE.size + 1, length: 0 }), TransferErrorCode.BadRequest],
    ["a range past the end", {}, {}, () => {}, (p) => p.request(FILE, 1, { offset: 10, length: FILE.size }), TransferErrorCode.BadRequest],
    ["a file changed on disk since it was hashed", {}, {}, (s) => s.openFails.set(FILE.name, TransferErrorCode.Changed), (p) => p.request(FILE, 1), TransferErrorCode.Changed],
    ["a file gone from disk", {}, {}, (s) => s.openFails.set(FILE.name, TransferErrorCode.NotFound), (p) => p.request(FILE, 1), TransferErrorCode.NotFound],
    ["--insecure-plaintext the server does not allow", {}, {}, () => {}, (p) => p.request(FILE, 1, { plaintext: true }), TransferErrorCode.Forbidden],
  ];
  for (const [what, config, tokens, prepare, make, code] of refusals) {
    test(`${what} is refused with ERROR ${code} in clear, naming no file, and no session`, () => {
      const { ep, storage, peer } = setup([FILE], config, tokens);
      prepare(storage);
      const req = make(peer);
      ep.handle(req, A, 5000, 0);
      const sent = drain(ep, peer, 0);
      expect(sent.length).toBe(1);
      expect(sent[0]!.header.type).toBe(PacketType.Error);
      expect(sent[0]!.header.sessionId).toBe(1);
      expect(sent[0]!.header.flags & FLAG_SEALED).toBe(0); // no session, no session keys
      const error = decodeError(sent[0]!.raw);
      expect(error.code).toBe(code);
      for (const name of [FILE.name, "missing.bin", "nnnn"]) expect(error.text).not.toContain(name);
      expect(ep.sessionCount).toBe(0);
      expect(storage.openHandles).toBe(0);
      expect(events(ep)).toEqual([expect.objectContaining({ type: "refused", code, address: A, port: 5000, sessionId: 1 })]);
    });
  }

  test("the refused event names the file the wire's ERROR does not", () => {
    const { ep, peer } = setup([FILE]);
    ep.handle(peer.request({ ...FILE, name: "missing.bin" }, 1), A, 5000, 0);
    expect(decodeError(drain(ep, peer, 0)[0]!.raw).text).toBe("not served here");
    expect(events(ep)).toEqual([expect.objectContaining({ type: "refused", text: "missing.bin is not served here" })]);
  });

  test("a file that fails to open makes the catalog look again", () => {
    const { ep, storage, peer } = setup([FILE]);
    storage.openFails.set(FILE.name, TransferErrorCode.Changed);
    ep.handle(peer.request(FILE, 1), A, 5000, 0);
    expect(storage.scans).toBe(1);
  });

  test("with a token (CPace), a client with the same token is accepted; one with another token, or none, is refused forbidden", () => {
    const { ep, peer } = setup([FILE], {}, { token: "s3cret" });
    const wrong = new SessionPeer(ep, testCrypto({ token: "wrong", seed: 3 }));
    const none = new SessionPeer(ep, testCrypto({ seed: 4 }));
    expect(ep.greeting(A, 0).kx).toBe(KxKind.CPace);
    ep.handle(peer.request(FILE, 1), A, 5000, 0);
    ep.handle(wrong.request(FILE, 2), A, 5000, 0);
    ep.handle(none.request(FILE, 3), A, 5000, 0);
    const sent = drain(ep, peer, 0);
    expect(only(sent, PacketType.Accept).map((s) => s.header.sessionId)).toEqual([1]);
    expect(only(sent, PacketType.Error).map((s) => [s.header.sessionId, decodeError(s.raw).code, decodeError(s.raw).text])).toEqual([
      [2, TransferErrorCode.Forbidden, "authentication failed: wrong or missing token"],
      [3, TransferErrorCode.Forbidden, "authentication failed: this file server needs a token (--token)"],
    ]);
    expect(ep.sessionCount).toBe(1);
  });

  test("without a token (X25519), a client with one is refused forbidden", () => {
    const { ep, peer } = setup([FILE], {}, { clientToken: "s3cret" });
    expect(ep.greeting(A, 0).kx).toBe(KxKind.X25519);
    ep.handle(peer.request(FILE, 1), A, 5000, 0);
    const sent = drain(ep, peer, 0);
    expect(sent.map((s) => [s.header.type, decodeError(s.raw).text])).toEqual([[PacketType.Error, "authentication failed: this file server has no token"]]);
  });

  test("the ACCEPT names the range and the segment size clamped to at least 512", () => {
    const { ep, peer } = setup([FILE]);
    ep.handle(peer.request(FILE, 7, { offset: 1000, length: 5000, segmentBytes: 100 }), A, 5000, 0);
    const accept = decodeAccept(only(drain(ep, peer, 0), PacketType.Accept)[0]!.bytes);
    expect([accept.fileSize, accept.offset, accept.length, accept.segmentBytes, accept.cookie]).toEqual([FILE.size, 1000, 5000, 512, 1000]);
  });

  test("more sessions than maxSessions are refused busy", () => {
    const { ep, peer } = setup([FILE], { maxSessions: 2 });
    for (const id of [1, 2]) ep.handle(peer.request(FILE, id, { address: B }), B, 6000 + id, 0);
    drain(ep, peer, 0);
    for (const id of [1, 2]) ep.handle(peer.ack(B, 6000 + id, id, 0, 999 + id, 0), B, 6000 + id, 0); // validated: nothing to push out
    ep.handle(peer.request(FILE, 3, { address: B }), B, 6003, 0);
    const errors = only(drain(ep, peer, 0), PacketType.Error);
    expect(errors.map((s) => [s.header.sessionId, decodeError(s.bytes).code])).toEqual([[3, TransferErrorCode.Busy]]);
    expect(ep.sessionCount).toBe(2);
  });

  test("per address: past maxSessionsPerAddress busy, other addresses still served, a finished session frees its place", () => {
    const { ep, peer } = setup([FILE], { maxSessionsPerAddress: 2 });
    ep.handle(peer.request(FILE, 1), A, 5001, 0);
    ep.handle(peer.request(FILE, 2), A, 5002, 0);
    const early = drain(ep, peer, 0);
    for (const id of [1, 2]) ep.handle(peer.ack(A, 5000 + id, id, 0, 999 + id, 0), A, 5000 + id, 0); // validated: nothing to push out
    ep.handle(peer.request(FILE, 3), A, 5003, 0);
    ep.handle(peer.request(FILE, 4, { address: B }), B, 5001, 0);
    let sent = [...early, ...drain(ep, peer, 0)];
    expect(only(sent, PacketType.Accept).map((s) => s.header.sessionId)).toEqual([1, 2, 4]);
    const busy = only(sent, PacketType.Error);
    expect(busy.map((s) => [s.header.sessionId, s.address, decodeError(s.bytes).code])).toEqual([[3, A, TransferErrorCode.Busy]]);
    expect(decodeError(busy[0]!.bytes).text).toBe("server busy: more than 2 transfers from your address");
    ep.handle(peer.fin(A, 5001, 1, 0), A, 5001, 1);
    ep.handle(peer.request(FILE, 3, { at: 1 }), A, 5003, 1);
    sent = drain(ep, peer, 1);
    expect(only(sent, PacketType.Accept).map((s) => s.header.sessionId)).toEqual([3]);
    expect(ep.counters.completed).toBe(1);
  });

  test("a duplicate REQUEST draws the same ACCEPT again (same cookie, same bytes), not a second session", () => {
    const { ep, peer } = setup([FILE]);
    ep.handle(peer.request(FILE, 9), A, 5000, 0);
    const first = only(drain(ep, peer, 0), PacketType.Accept);
    ep.handle(peer.request(FILE, 9, { at: 30 }), A, 5000, 30);
    const second = only(drain(ep, peer, 30), PacketType.Accept);
    expect(first.length).toBe(1);
    expect(second.length).toBe(1);
    expect(Buffer.from(second[0]!.raw).equals(Buffer.from(first[0]!.raw))).toBe(true);
    expect(ep.counters.sessions).toBe(1);
    expect(ep.sessionCount).toBe(1);
  });

  test("the same session id from two clients makes two sessions; each client's FIN ends only its own", () => {
    const { ep, storage, peer } = setup([FILE]);
    ep.handle(peer.request(FILE, 5), A, 5000, 0);
    ep.handle(peer.request(FILE, 5, { address: B }), B, 5000, 0);
    ep.handle(peer.request(FILE, 5), A, 5001, 0);
    expect(only(drain(ep, peer, 0), PacketType.Accept).map((s) => `${s.address}:${s.port}`)).toEqual([`${A}:5000`, `${B}:5000`, `${A}:5001`]);
    ep.handle(peer.fin(B, 5000, 5, 0), B, 5000, 1);
    expect(ep.sessionCount).toBe(2);
    ep.handle(peer.fin(A, 5000, 5, 0), A, 5000, 1);
    ep.handle(peer.fin(A, 5000, 5, 0), A, 5000, 1); // a repeated FIN finds nothing
    expect(ep.sessionCount).toBe(1);
    ep.handle(peer.fin(A, 5001, 5, 0), A, 5001, 1);
    expect(ep.sessionCount).toBe(0);
    expect(storage.openHandles).toBe(0);
    expect(ep.counters.completed).toBe(3);
  });

  test("an empty range is accepted and complete at once", () => {
    const { ep, storage, peer } = setup([FILE]);
    ep.handle(peer.request(FILE, 1, { offset: FILE.size, length: 0 }), A, 5000, 0);
    const sent = drain(ep, peer, 0);
    expect(sent.map((s) => s.header.type)).toEqual([PacketType.Accept]);
    expect(decodeAccept(sent[0]!.bytes).length).toBe(0);
    expect(ep.sessionCount).toBe(0);
    expect(storage.openHandles).toBe(0);
    expect(events(ep).map((e) => e.type)).toEqual(["opened", "completed"]);
  });
});

describe("stopping", () => {
  test("closeAll ends every session, same-id ones included, and closes every file", () => {
    const { ep, storage, peer } = setup([FILE]);
    for (const [address, port] of [[A, 1], [B, 1], [A, 2]] as const) ep.handle(peer.request(FILE, 5, { segmentBytes: 512, address }), address, port, 0);
    ep.handle(peer.request(FILE, 6), A, 1, 0);
    drain(ep, peer, 0);
    expect(storage.openHandles).toBe(4);
    ep.closeAll();
    expect(ep.sessionCount).toBe(0);
    expect(storage.openHandles).toBe(0);
    expect(ep.pollTimeout()).toBeUndefined();
    expect(drain(ep, peer, 1)).toEqual([]);
  });
});

describe("anti-amplification", () => {
  test("a client that never proves its port gets at most 3× what it sent (its token counts as 1200 bytes), then the session is dropped at the idle timeout", () => {
    const { ep, storage, peer } = setup([FILE]);
    const req = peer.request(FILE, 1, { segmentBytes: 512 });
    let received = Math.max(req.byteLength, VALIDATED_REQUEST_CREDIT_BYTES);
    let sent = 0;
    ep.handle(req, A, 5000, 0);
    let now = 0;
    for (let step = 0; step < 1000 && ep.sessionCount > 0; step++) {
      sent += wireBytes(drain(ep, peer, now));
      // Its ACKs carry the wrong cookie: they count as bytes received, never as proof.
      if (step < 5) {
        const a = peer.ack(A, 5000, 1, 0, 12345, now);
        received += a.byteLength;
        ep.handle(a, A, 5000, now);
        sent += wireBytes(drain(ep, peer, now));
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
    const { ep, peer } = setup([FILE]);
    ep.handle(peer.request(FILE, 1, { segmentBytes: 512 }), A, 5000, 0);
    const first = drain(ep, peer, 0);
    const cookie = decodeAccept(only(first, PacketType.Accept)[0]!.bytes).cookie;
    const firstData = only(first, PacketType.Data).length;
    expect(wireBytes(first)).toBeLessThanOrEqual(3 * VALIDATED_REQUEST_CREDIT_BYTES);
    const again = peer.request(FILE, 1, { segmentBytes: 512, at: 1 });
    ep.handle(again, A, 5000, 1);
    const second = drain(ep, peer, 1);
    expect(second[0]!.header.type).toBe(PacketType.Accept);
    const total = wireBytes([...first, ...second]);
    expect(total).toBeLessThanOrEqual(3 * (VALIDATED_REQUEST_CREDIT_BYTES + again.byteLength));
    ep.handle(peer.ack(A, 5000, 1, 0, cookie, 2), A, 5000, 2);
    const after = only(drain(ep, peer, 2), PacketType.Data);
    // Now the initial window, not the budget, limits it.
    expect(firstData + only(second, PacketType.Data).length + after.length).toBe(INITIAL_WINDOW);
  });
});

describe("probes", () => {
  test("a PROBE is answered with a 99-byte PROBE_ACK naming its size, with a greeting (an address token and this epoch's key share), and no session", () => {
    const { ep, peer } = setup([FILE]);
    ep.handle(encodeProbe(77, 1400, 0), A, 5000, 0);
    const sent = drain(ep, peer, 0);
    expect(sent.length).toBe(1);
    expect(sent[0]!.header.type).toBe(PacketType.ProbeAck);
    expect(sent[0]!.header.sessionId).toBe(77);
    expect(sent[0]!.raw.byteLength).toBe(PROBE_ACK_BYTES);
    expect(PROBE_ACK_BYTES).toBe(HEADER_BYTES + 4 + GREETING_BYTES);
    expect(PROBE_ACK_BYTES).toBe(99);
    const answer = decodeProbeAck(sent[0]!.raw);
    expect(answer.datagramBytes).toBe(1400);
    expect(TOKENS.check(answer.greeting.token, A, 0)).toBe(true);
    expect(TOKENS.check(answer.greeting.token, B, 0)).toBe(false);
    const now = ep.greeting(A, 0);
    expect([answer.greeting.kx, answer.greeting.epochId, answer.greeting.share]).toEqual([KxKind.X25519, now.epochId, now.share]);
    expect(ep.sessionCount).toBe(0);
    expect(ep.pollTimeout()).toBeUndefined();
  });

  test("a PROBE smaller than its answer is not answered", () => {
    const { ep, peer } = setup([FILE]);
    const small = new Uint8Array(PROBE_ACK_BYTES - 1);
    const view = new DataView(small.buffer);
    writeHeader(small, view, PacketType.Probe, 0, 78, 0, 0);
    seal(small, view, small.byteLength);
    ep.handle(small, A, 5000, 0);
    expect(drain(ep, peer, 0)).toEqual([]);
  });
});

describe("sending", () => {
  test("a piece-hash session carries the piece-hash list, not the file", () => {
    const { ep, peer } = setup([FILE]);
    const { cookie, sent } = openValidated(ep, peer, FILE, 1, A, 5000, 0, { pieceHashes: true, offset: 32, length: FILE.pieceHashes.byteLength - 32, segmentBytes: 512 });
    expect(cookie).toBe(1000);
    // (The first ACK, cumulative 0, may draw an early retransmit of what went before it: count each segment once.)
    const bySeq = new Map(only([...sent, ...drain(ep, peer, 0)], PacketType.Data).map((s) => [s.header.seq, s.bytes.subarray(HEADER_BYTES)]));
    const got = Buffer.concat([...bySeq.keys()].sort((a, b) => a - b).map((seq) => bySeq.get(seq)!));
    expect(got.equals(Buffer.from(FILE.pieceHashes.subarray(32)))).toBe(true);
  });

  test("two sessions ready at once are served in turn, one datagram each", () => {
    const { ep, peer } = setup([FILE]);
    ep.handle(peer.request(FILE, 1), A, 5000, 0);
    ep.handle(peer.request(FILE, 2, { address: B }), B, 5000, 0);
    const before = drain(ep, peer, 0);
    // Within the address-validation budget already: ACCEPT, ACCEPT, then DATA in turn.
    expect(before.map((s) => s.header.sessionId)).toEqual([1, 2, 1, 2, 1, 2, 1, 2]);
    const cookies = only(before, PacketType.Accept).map((s) => decodeAccept(s.bytes).cookie);
    ep.handle(peer.ack(A, 5000, 1, 0, cookies[0]!, 0), A, 5000, 0);
    ep.handle(peer.ack(B, 5000, 2, 0, cookies[1]!, 0), B, 5000, 0);
    const data = only(drain(ep, peer, 0), PacketType.Data);
    // Each may send the rest of its initial window (less the 3 before), alternating.
    const more = 2 * (INITIAL_WINDOW - 3);
    expect(data.map((s) => s.header.sessionId)).toEqual(Array.from({ length: more }, (_, i) => 1 + (i % 2)));
  });

  test("unsend takes back the newest transmits, newest first: nothing goes until the drain, then the same segments", () => {
    const { ep, peer } = setup([FILE]);
    const { sent } = openValidated(ep, peer, FILE, 1, A, 5000, 0);
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
    const again = drain(ep, peer, 0.05).map((s) => s.header.seq);
    expect(again.slice(0, 2)).toEqual([4, 5]);
    // Each DATA: header, 1000 bytes, pn and tag.
    expect(ep.counters.bytesSent).toBe((sentBefore + 1 + again.length) * (HEADER_BYTES + 1000 + DATAGRAM_OVERHEAD_BYTES));
  });

  test("a refused ACCEPT goes out first once the socket drains", () => {
    const { ep, peer } = setup([FILE]);
    ep.handle(peer.request(FILE, 1), A, 5000, 0);
    expect(readHeader(ep.pollTransmit(0)!.bytes).type).toBe(PacketType.Accept);
    ep.unsend();
    expect(ep.pollTransmit(0)).toBeUndefined();
    ep.handleDrain(1);
    expect(readHeader(ep.pollTransmit(1)!.bytes).type).toBe(PacketType.Accept);
  });

  test(`a file that changes on disk stops the transfer with ERROR 4 (sealed) at the next check (every ${CHANGE_CHECK_EVERY} segments)`, () => {
    const { ep, storage, peer } = setup([FILE]);
    storage.changing.add(FILE.name);
    const { cookie, sent: first } = openValidated(ep, peer, FILE, 1, A, 5000, 0, { segmentBytes: 512 });
    let now = 0;
    let dataSent = only(first, PacketType.Data).length;
    let error: Sent | undefined;
    for (let step = 0; step < 10_000 && !error; step++) {
      const sent = drain(ep, peer, now);
      const data = only(sent, PacketType.Data);
      dataSent += data.length;
      error = only(sent, PacketType.Error)[0];
      const top = data.at(-1)?.header.seq;
      now += 1;
      if (top !== undefined) ep.handle(peer.ack(A, 5000, 1, top + 1, cookie, now, { windowSegments: 4096 }), A, 5000, now);
    }
    expect(error).toBeDefined();
    expect(error!.header.flags & FLAG_SEALED).toBe(FLAG_SEALED); // a session's ERROR may name its file: it is sealed
    expect(decodeError(error!.bytes)).toEqual({ code: TransferErrorCode.Changed, text: `${FILE.name} changed during the transfer` });
    expect(dataSent).toBe(CHANGE_CHECK_EVERY - 1);
    expect(ep.sessionCount).toBe(0);
    expect(storage.openHandles).toBe(0);
    expect(events(ep).at(-1)).toEqual(expect.objectContaining({ type: "failed", code: TransferErrorCode.Changed }));
  });

  test("a file that reads short stops the transfer with ERROR 4", () => {
    const { ep, storage, peer } = setup([SMALL]);
    storage.shrunk.add(SMALL.name);
    const { sent: first } = openValidated(ep, peer, SMALL, 1, A, 5000, 0);
    const sent = [...first, ...drain(ep, peer, 0)];
    const error = only(sent, PacketType.Error)[0]!;
    expect(decodeError(error.bytes).code).toBe(TransferErrorCode.Changed);
    expect(only(sent, PacketType.Data).length).toBe(4); // the fifth, the last, came up short
    expect(storage.openHandles).toBe(0);
  });

  test("a client's ERROR under the session's keys cancels its session; one in clear is dropped", () => {
    const { ep, storage, peer } = setup([FILE]);
    openValidated(ep, peer, FILE, 1, A, 5000, 0);
    events(ep);
    const body = { code: TransferErrorCode.Cancelled, text: "stop" };
    const dropped = ep.counters.dropped;
    ep.handle(encodeError(1, body, 0), A, 5000, 1); // anyone who knows the session id could send this one
    expect([ep.counters.dropped - dropped, ep.sessionCount]).toEqual([1, 1]);
    ep.handle(peer.error(A, 5000, 1, body, 1), A, 5000, 1);
    expect(ep.sessionCount).toBe(0);
    expect(storage.openHandles).toBe(0);
    expect(events(ep).map((e) => e.type)).toEqual(["dropped", "cancelled"]);
  });
});

describe("runs (UDP GSO)", () => {
  /** Every transmit cut into its datagrams as the kernel would, each checked and opened: one session, one length but the last. */
  function drainRuns(ep: Endpoint, peer: SessionPeer, now: number): { runs: Sent[][]; sizes: number[][] } {
    const runs: Sent[][] = [];
    const sizes: number[][] = [];
    for (let t = ep.pollTransmit(now); t; t = ep.pollTransmit(now)) {
      const run: Sent[] = [];
      const lengths: number[] = [];
      for (let i = 0; i < t.count; i++) {
        const bytes = t.bytes.slice(i * t.datagramBytes, Math.min((i + 1) * t.datagramBytes, t.bytes.byteLength));
        run.push(peer.see(bytes, t.address, t.port));
        lengths.push(bytes.byteLength);
      }
      expect(lengths.reduce((a, b) => a + b, 0)).toBe(t.bytes.byteLength);
      runs.push(run);
      sizes.push(lengths);
    }
    return { runs, sizes };
  }

  test("a session's window leaves as runs of up to 64 datagrams of one length, in order; the file's short last segment ends the last run", () => {
    const { ep, peer } = setup([SMALL, FILE], { maxRunDatagrams: 64 });
    const { cookie, sent } = openValidated(ep, peer, SMALL, 1, A, 5000, 0, { segmentBytes: 512 });
    let cumulative = 0;
    const seqs: number[] = only(sent, PacketType.Data).map((d) => d.header.seq);
    let multi = 0;
    for (let now = 1; now < 2000 && cumulative < Math.ceil(SMALL.size / 512); now += 10) {
      const { runs, sizes } = drainRuns(ep, peer, now);
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
      ep.handle(peer.ack(A, 5000, 1, cumulative, cookie, now), A, 5000, now);
    }
    expect(multi).toBeGreaterThan(0);
    // 5,000 bytes in 512-byte segments: 10 segments, the last 392 bytes, each sent once, in order.
    expect([...new Set(seqs)].sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  test("unsend takes a whole run back: after the drain the same segments go again, as a run", () => {
    const { ep, peer } = setup([FILE], { maxRunDatagrams: 64 });
    openValidated(ep, peer, FILE, 1, A, 5000, 0);
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
    const { ep, peer } = setup([FILE], { maxRunDatagrams: 64 });
    ep.handle(peer.request(FILE, 1), A, 5000, 0);
    ep.handle(peer.request(FILE, 2, { address: B }), B, 5000, 0);
    const [c1, c2] = only(drain(ep, peer, 0), PacketType.Accept).map((a) => decodeAccept(a.bytes).cookie);
    ep.handle(peer.ack(A, 5000, 1, 0, c1!, 0), A, 5000, 0);
    ep.handle(peer.ack(B, 5000, 2, 0, c2!, 0), B, 5000, 0);
    const { runs } = drainRuns(ep, peer, 0);
    const order = runs.map((r) => r[0]!.header.sessionId);
    expect(runs.every((r) => r.length > 1)).toBe(true);
    expect(order).toEqual(Array.from({ length: order.length }, (_, i) => order[0]! + (i % 2 === 0 ? 0 : order[0] === 1 ? 1 : -1)));
    expect(order.length).toBeGreaterThanOrEqual(2);
  });

  test("a run never takes an unproven client past 3× what it sent", () => {
    const { ep, peer } = setup([FILE], { maxRunDatagrams: 64 });
    const req = peer.request(FILE, 1);
    ep.handle(req, A, 5000, 0);
    const { runs } = drainRuns(ep, peer, 0);
    const bytes = wireBytes(runs.flat());
    expect(bytes).toBeLessThanOrEqual(AMPLIFICATION_FACTOR * Math.max(req.byteLength, VALIDATED_REQUEST_CREDIT_BYTES));
    expect(only(runs.flat(), PacketType.Data).length).toBeGreaterThan(0);
  });
});

describe("the one timer table", () => {
  test("pollTimeout is the earliest deadline of all sessions; handleTimeout acts on the expired ones only", () => {
    const { ep, peer } = setup([FILE], { maxSessionsPerAddress: 100 });
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
      ep.handle(peer.request(FILE, ids[k]!, { segmentBytes: 512, address, at: createdAt[k]! }), address, 7000 + id, createdAt[k]!);
      drain(ep, peer, createdAt[k]!);
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
      drain(ep, peer, at);
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
    const { ep, peer } = setup([FILE]);
    openValidated(ep, peer, FILE, 1, A, 5000, 0);
    openValidated(ep, peer, FILE, 2, A, 5001, 50);
    const first = only(drain(ep, peer, 50), PacketType.Data);
    expect(first.length).toBeGreaterThan(0);
    const at = ep.pollTimeout()!;
    expect(at).toBeGreaterThan(50);
    ep.handleTimeout(at - 0.001);
    expect(drain(ep, peer, at - 0.001)).toEqual([]);
    ep.handleTimeout(at);
    const resent = only(drain(ep, peer, at), PacketType.Data);
    expect(resent.length).toBeGreaterThan(0);
    expect(resent[0]!.header.sessionId).toBe(1); // the older session's timer fired first
    expect(ep.pollTimeout()!).toBeGreaterThan(at);
  });
});

describe("garbage", () => {
  test("mutated datagrams are dropped and counted; the endpoint never throws", () => {
    const { ep, peer } = setup([FILE]);
    const { cookie } = openValidated(ep, peer, FILE, 1, A, 5000, 0);
    const r = new Rng(3);
    const seeds = [peer.request(FILE, 1), peer.ack(A, 5000, 1, 1, cookie, 1), peer.fin(A, 5000, 1, 0), encodeProbe(1, 1200, 0)];
    for (let i = 0; i < 5000; i++) {
      const d = mutate(r, r.pick(seeds));
      ep.handle(d, r.chance(0.5) ? A : B, 5000, i / 10);
      drain(ep, peer, i / 10);
      ep.handleTimeout(i / 10);
    }
    expect(ep.counters.dropped).toBeGreaterThan(1000);
    const dropped = events(ep).filter((e) => e.type === "dropped");
    expect(dropped.length).toBeGreaterThan(0);
    for (let d = 0; d < 3; d++) ep.handle(new Uint8Array(d * 10), A, 5000, 600);
    expect(events(ep).map((e) => e.type)).toEqual(["dropped", "dropped", "dropped"]);
  });
});

describe("sealing (wire v4)", () => {
  /** An open session's sender as the operators' view shows it. */
  const stats = (ep: Endpoint) => ep.activeSessions()[0]!.stats;
  const droppedReasons = (ep: Endpoint) => events(ep).flatMap((e) => (e.type === "dropped" ? [e.reason] : []));

  test("a tampered ACK (a bit flipped in its sealed body or its tag, checksum made right) is dropped: the sender does not advance", () => {
    const { ep, peer } = setup([FILE]);
    const { cookie } = openValidated(ep, peer, FILE, 1, A, 5000, 0);
    drain(ep, peer, 0); // the rest of the initial window: now only an ACK lets it send more
    events(ep);
    const before = stats(ep);
    // At 50 ms the pacer has room: only the missing ACK holds the sender back.
    const genuine = peer.ack(A, 5000, 1, before.sent, cookie, 50); // all of the window arrived
    for (const at of [HEADER_BYTES + 2, genuine.byteLength - 1]) {
      const dropped = ep.counters.dropped;
      ep.handle(tamper(genuine, at), A, 5000, 50);
      expect(ep.counters.dropped).toBe(dropped + 1);
      expect(drain(ep, peer, 50)).toEqual([]);
      expect([stats(ep).acked, stats(ep).sent]).toEqual([before.acked, before.sent]);
    }
    expect(droppedReasons(ep)).toEqual(["datagram refused by the AEAD (tampered)", "datagram refused by the AEAD (tampered)"]);
    // The genuine ACK, whose packet number the forgeries did not use up: the window moves.
    ep.handle(genuine, A, 5000, 50);
    expect(stats(ep).acked).toBe(before.sent);
    expect(only(drain(ep, peer, 50), PacketType.Data).length).toBeGreaterThan(0);
  });

  test("a replayed ACK (the same bytes again) advances nothing the second time; in a plaintext session it would", () => {
    for (const plaintext of [false, true]) {
      const { ep, peer } = setup([FILE], { allowPlaintext: true });
      const { cookie } = openValidated(ep, peer, FILE, 1, A, 5000, 0, { plaintext });
      drain(ep, peer, 0);
      // An ACK, then a zero window: the first ACK again, taken, would open the window again.
      // (The endpoint opens a datagram in place, as it does the socket's buffer: each hand-over gets a copy.)
      const open = peer.ack(A, 5000, 1, 3, cookie, 0);
      ep.handle(open.slice(), A, 5000, 0);
      drain(ep, peer, 0);
      ep.handle(peer.ack(A, 5000, 1, 3, cookie, 0, { windowSegments: 0 }), A, 5000, 0);
      drain(ep, peer, 0);
      events(ep);
      const before = stats(ep);
      expect(before.peerWindow).toBe(0);
      const dropped = ep.counters.dropped;
      ep.handle(open.slice(), A, 5000, 0);
      if (plaintext) {
        expect(stats(ep).peerWindow).toBe(64);
        continue;
      }
      expect(ep.counters.dropped).toBe(dropped + 1);
      expect(droppedReasons(ep)).toEqual(["datagram refused by the AEAD (replayed)"]);
      expect(stats(ep)).toEqual(before);
      expect(drain(ep, peer, 0)).toEqual([]);
    }
  });

  test("DATA on the wire holds no 16-byte run of the file (random content), though it opens to the whole file", () => {
    const RANDOM = simFile(new Rng(99), "random.bin", 60_000);
    const { ep, peer } = setup([RANDOM]);
    const { cookie, sent } = openValidated(ep, peer, RANDOM, 1, A, 5000, 0);
    const segments = Math.ceil(RANDOM.size / 1000);
    const wire: Sent[] = [...sent];
    const got = new Map<number, Uint8Array>();
    for (let now = 1; now < 5000 && got.size < segments; now += 5) {
      const out = drain(ep, peer, now);
      wire.push(...out);
      for (const d of only([...wire], PacketType.Data)) got.set(d.header.seq, d.bytes.subarray(HEADER_BYTES));
      let cumulative = 0;
      while (got.has(cumulative)) cumulative++;
      ep.handle(peer.ack(A, 5000, 1, cumulative, cookie, now, { windowSegments: 4096 }), A, 5000, now);
    }
    const clear = Buffer.concat(Array.from({ length: segments }, (_, i) => got.get(i)!));
    expect(clear.equals(Buffer.from(RANDOM.data))).toBe(true);
    const runs = new Set<string>();
    for (let i = 0; i + 16 <= RANDOM.size; i++) runs.add(Buffer.from(RANDOM.data.subarray(i, i + 16)).toString("hex"));
    let windows = 0;
    let found = 0;
    for (const d of wire.filter((s) => s.header.type === PacketType.Data || s.header.type === PacketType.Repair)) {
      const hex = Buffer.from(d.raw).toString("hex");
      for (let i = 0; i + 16 <= d.raw.byteLength; i++, windows++) if (runs.has(hex.slice(2 * i, 2 * i + 32))) found++;
    }
    expect(windows).toBeGreaterThan(RANDOM.size); // every segment looked at, once at least
    expect(found).toBe(0);
  });

  test("a REQUEST whose sealed body was altered (a bit of the name's ciphertext, checksum made right) is refused forbidden and opens no session", () => {
    const { ep, storage, peer } = setup([FILE]);
    const req = peer.request(FILE, 1);
    ep.handle(tamper(req, REQUEST_AT.name), A, 5000, 0);
    const sent = drain(ep, peer, 0);
    expect(sent.map((s) => [s.header.type, decodeError(s.raw).code])).toEqual([[PacketType.Error, TransferErrorCode.Forbidden]]);
    expect(decodeError(sent[0]!.raw).text).toBe("authentication failed: the REQUEST does not open");
    expect([ep.sessionCount, storage.openHandles, ep.counters.sessions]).toEqual([0, 0, 0]);
    // As it was sent, it opens.
    ep.handle(req, A, 5000, 1);
    expect(only(drain(ep, peer, 1), PacketType.Accept).length).toBe(1);
  });

  test("a REQUEST replayed from another port after its session closed: a session under new keys (another server nonce), other bytes for the same segment", () => {
    const { ep, peer } = setup([FILE]);
    const req = peer.request(FILE, 1);
    ep.handle(req.slice(), A, 5000, 0); // (a copy: the endpoint opens it in place)
    const first = drain(ep, peer, 0);
    ep.handle(peer.fin(A, 5000, 1, 0), A, 5000, 0);
    expect(ep.sessionCount).toBe(0);
    ep.handle(req.slice(), A, 5001, 1);
    const second = drain(ep, peer, 1);
    expect(ep.sessionCount).toBe(1);
    const [a1, a2] = [first, second].map((s) => only(s, PacketType.Accept)[0]!);
    expect(Buffer.from(acceptNonce(a1!.raw)).equals(Buffer.from(acceptNonce(a2!.raw)))).toBe(false);
    expect(a1!.raw.byteLength).toBe(ACCEPT_BYTES);
    const [d1, d2] = [first, second].map((s) => only(s, PacketType.Data).find((d) => d.header.seq === 0)!);
    const pn = (d: Sent) => Buffer.from(d.raw.subarray(d.raw.byteLength - DATAGRAM_OVERHEAD_BYTES, d.raw.byteLength - 16)).toString("hex");
    expect(pn(d1!)).toBe(pn(d2!)); // the same packet number...
    expect(Buffer.from(d1!.bytes.subarray(HEADER_BYTES)).equals(Buffer.from(d2!.bytes.subarray(HEADER_BYTES)))).toBe(true); // ...the same segment...
    expect(Buffer.from(d1!.raw.subarray(HEADER_BYTES)).equals(Buffer.from(d2!.raw.subarray(HEADER_BYTES)))).toBe(false); // ...other bytes: another key
  });

  test("FLAG_PLAINTEXT where the server allows it: the ACCEPT sealed, then DATA in clear (the file's bytes), and only a clear ACK counts", () => {
    const { ep, peer } = setup([FILE], { allowPlaintext: true });
    ep.handle(peer.request(FILE, 1, { plaintext: true }), A, 5000, 0);
    const sent = drain(ep, peer, 0);
    const accept = only(sent, PacketType.Accept)[0]!;
    expect(accept.raw.byteLength).toBe(ACCEPT_BYTES);
    expect(Buffer.from(accept.raw.subarray(ACCEPT_AT.body, ACCEPT_AT.end)).equals(Buffer.from(accept.bytes.subarray(ACCEPT_AT.body)))).toBe(false); // sealed anyway
    const cookie = decodeAccept(accept.bytes).cookie;
    const data = only(sent, PacketType.Data);
    expect(data.length).toBe(3);
    for (const d of data) {
      expect(d.raw.byteLength).toBe(HEADER_BYTES + 1000);
      expect(Buffer.from(d.raw.subarray(HEADER_BYTES)).equals(Buffer.from(FILE.data.subarray(d.header.seq * 1000, d.header.seq * 1000 + 1000)))).toBe(true);
    }
    // An ACK sealed under the session's keys is not what this session takes: dropped, no proof.
    const sealed = new Uint8Array(ACK_BYTES + DATAGRAM_OVERHEAD_BYTES);
    const body = { windowSegments: 64, echoTimestampUs: 0, ackDelayUs: 0, received: 3 };
    writeAck(sealed, new DataView(sealed.buffer), 1, 3, body, cookie, timestampUs(0), peer.session(A, 5000, 1)!.cipher.sealer);
    const dropped = ep.counters.dropped;
    ep.handle(sealed, A, 5000, 0);
    expect(ep.counters.dropped).toBe(dropped + 1);
    expect(stats(ep).acked).toBe(0);
    expect(only(drain(ep, peer, 0), PacketType.Data)).toEqual([]);
    const clear = peer.ack(A, 5000, 1, 3, cookie, 0);
    expect(clear.byteLength).toBe(ACK_BYTES);
    ep.handle(clear, A, 5000, 0);
    expect(stats(ep).acked).toBe(3);
    expect(only(drain(ep, peer, 0), PacketType.Data).length).toBeGreaterThan(0);
  });
});
