import { describe, expect, test } from "bun:test";
import { ADDRESS_TOKEN_LIFETIME_MS, AddressTokens } from "../../../src/transfer/core/address-token.ts";
import { KX_BURST, KX_PER_SECOND, MAX_UNVALIDATED_PER_ADDRESS, ServerEndpoint, type ServerEndpointConfig } from "../../../src/transfer/core/server-endpoint.ts";
import {
  decodeAccept,
  decodeError,
  decodeRequestHello,
  decodeRetry,
  decodeUpgradeError,
  HEADER_AT,
  MIN_REQUEST_BYTES,
  PacketType,
  readHeader,
  RETRY_BYTES,
  seal,
  TransferErrorCode,
  WIRE_VERSION,
  type Greeting,
} from "../../../src/transfer/core/wire.ts";
import { Download } from "../../../src/transfer/download.ts";
import { downloadSpec } from "../../support/download-spec.ts";
import { Rng } from "../../support/random.ts";
import { SessionPeer, splice, type PeerRequest, type Seen } from "../../support/session-peer.ts";
import { MemoryFiles, simFile, type SimFile } from "../../support/sim-endpoints.ts";
import { testCrypto } from "../../support/transfer-crypto.ts";

/**
 * The file server's endpoint against hostile peers (issue #16): forged source addresses, sniffed and
 * replayed REQUESTs, floods, old clients. Simulated time throughout. Wire v4 (#17): REQUESTs are
 * sealed under a key exchange against the server's greeting (test/support/session-peer.ts plays the
 * client); with a token the exchange is CPace, so only a client that knows the token gets a session.
 */
const LEGIT = "10.0.0.1";
const SNIFFER = "10.6.6.6";
const FORGED = Array.from({ length: 10 }, (_, i) => `10.9.0.${i + 1}`);
const SECRET = new Uint8Array(32).fill(7);
const TOKENS = new AddressTokens(SECRET);
const rng = new Rng(16);
const FILE = simFile(rng, "big.bin", 64 * 1024, 4);

type Endpoint = ServerEndpoint<SimFile, number>;

/** An endpoint and the client side that talks to it; `token`: both sides' (CPace). */
function setup(config: Partial<ServerEndpointConfig<SimFile, number>> = {}, token?: string) {
  const storage = new MemoryFiles([FILE]);
  let cookie = 1000;
  const ep = new ServerEndpoint<SimFile, number>({ files: storage, randomU32: () => cookie++, tokenSecret: SECRET, crypto: testCrypto({ token, seed: 1 }), ...config });
  const peer = new SessionPeer(ep, testCrypto({ token, seed: 2 }));
  return { ep, storage, peer };
}

/**
 * A REQUEST for FILE: bare without `token` (none yet), else sealed against the endpoint's greeting at
 * `at` with that address token in it (a greeting, from a RETRY: answered as it is).
 */
function request(peer: SessionPeer, sessionId: number, token: Uint8Array | Greeting | undefined, o: PeerRequest = {}): Uint8Array {
  if (token === undefined) return peer.request(FILE, sessionId, { ...o, bare: true });
  if (token instanceof Uint8Array) return peer.request(FILE, sessionId, { ...o, token });
  return peer.request(FILE, sessionId, { ...o, greeting: token });
}

function drain(ep: Endpoint, peer: SessionPeer, now: number): Seen[] {
  return peer.drain(ep, now);
}

const of = (sent: Seen[], type: PacketType) => sent.filter((s) => s.header.type === type);

/** Asks like a real client: a REQUEST without a token, then again answering the RETRY's greeting. Returns the ACCEPT's cookie. */
function fetchLegit(ep: Endpoint, peer: SessionPeer, sessionId: number, address: string, port: number, now: number): number {
  ep.handle(request(peer, sessionId, undefined, { at: now }), address, port, now);
  const retry = of(drain(ep, peer, now), PacketType.Retry).find((s) => s.address === address && s.port === port);
  if (!retry) throw new Error("no RETRY");
  ep.handle(request(peer, sessionId, decodeRetry(retry.raw), { at: now }), address, port, now);
  const accept = of(drain(ep, peer, now), PacketType.Accept).find((s) => s.address === address && s.port === port && s.header.sessionId === sessionId);
  if (!accept) throw new Error("no ACCEPT");
  return decodeAccept(accept.bytes).cookie;
}

describe("address validation (RETRY)", () => {
  test("a REQUEST without an address token gets a RETRY no larger than itself and leaves no state; answering the RETRY's greeting it is served", () => {
    const { ep, storage, peer } = setup();
    const first = request(peer, 1, undefined);
    expect(first.byteLength).toBe(MIN_REQUEST_BYTES);
    ep.handle(first, LEGIT, 5000, 0);
    const sent = drain(ep, peer, 0);
    expect(sent.map((s) => s.header.type)).toEqual([PacketType.Retry]);
    expect(sent[0]!.raw.byteLength).toBe(RETRY_BYTES);
    expect(sent[0]!.raw.byteLength).toBeLessThanOrEqual(first.byteLength);
    expect([ep.sessionCount, storage.openHandles, ep.pollTimeout(), ep.counters.retries]).toEqual([0, 0, undefined, 1]);
    const greeting = decodeRetry(sent[0]!.raw);
    expect(TOKENS.check(greeting.token, LEGIT, 0)).toBe(true);
    ep.handle(request(peer, 1, greeting), LEGIT, 5000, 1);
    expect(of(drain(ep, peer, 1), PacketType.Accept).length).toBe(1);
    expect(ep.sessionCount).toBe(1);
  });

  test("the token serves every port of its address (each download has its own socket) but no other address, and only while fresh", () => {
    const { ep, peer } = setup();
    const token = TOKENS.issue(LEGIT, 0);
    ep.handle(request(peer, 1, token, { at: 1000 }), LEGIT, 5001, 1000);
    ep.handle(request(peer, 2, token, { at: ADDRESS_TOKEN_LIFETIME_MS - 1 }), LEGIT, 5002, ADDRESS_TOKEN_LIFETIME_MS - 1);
    ep.handle(request(peer, 3, token, { at: 1000 }), SNIFFER, 5003, 1000);
    ep.handle(request(peer, 4, token, { at: ADDRESS_TOKEN_LIFETIME_MS + 1000 }), LEGIT, 5004, ADDRESS_TOKEN_LIFETIME_MS + 1000);
    ep.handle(request(peer, 5, TOKENS.issue(LEGIT, 5000), { at: 4999 }), LEGIT, 5005, 4999); // issued "in the future"
    const sent = drain(ep, peer, ADDRESS_TOKEN_LIFETIME_MS + 1000);
    expect(of(sent, PacketType.Accept).map((s) => s.header.sessionId)).toEqual([1, 2]);
    expect(of(sent, PacketType.Retry).map((s) => [s.header.sessionId, s.address])).toEqual([
      [3, SNIFFER],
      [4, LEGIT],
      [5, LEGIT],
    ]);
    // Another server (another secret) made it: refused.
    const other = new AddressTokens(new Uint8Array(32).fill(8)).issue(LEGIT, 0);
    ep.handle(request(peer, 6, other), LEGIT, 5006, 0);
    expect(drain(ep, peer, 0).map((s) => s.header.type)).toEqual([PacketType.Retry]);
  });

  test("a fresh token with the key share of an epoch the server has forgotten: a RETRY with the current one, which is then served", () => {
    const { ep, peer } = setup();
    const old = ep.greeting(LEGIT, 0);
    const now = 61_000; // two epochs later
    ep.handle(request(peer, 1, { ...old, token: TOKENS.issue(LEGIT, now) }), LEGIT, 5000, now);
    const sent = drain(ep, peer, now);
    expect(sent.map((s) => s.header.type)).toEqual([PacketType.Retry]);
    const greeting = decodeRetry(sent[0]!.raw);
    expect(Buffer.from(greeting.epochId).equals(Buffer.from(old.epochId))).toBe(false);
    expect(ep.sessionCount).toBe(0);
    ep.handle(request(peer, 1, greeting), LEGIT, 5000, now);
    expect(of(drain(ep, peer, now), PacketType.Accept).length).toBe(1);
  });
});

describe("a sniffed REQUEST (with --token)", () => {
  const TOKEN = "s3cret";
  const withToken = () => setup({}, TOKEN);

  test("replayed from another address: a RETRY to that address, no session; spliced with that RETRY's token: ERROR forbidden", () => {
    const { ep, peer } = withToken();
    const sniffed = request(peer, 7, TOKENS.issue(LEGIT, 0));
    ep.handle(sniffed.slice(), LEGIT, 5000, 0); // (copies: the endpoint opens what it is given in place)
    expect(of(drain(ep, peer, 0), PacketType.Accept).length).toBe(1);
    ep.handle(sniffed.slice(), SNIFFER, 6000, 100);
    const retry = drain(ep, peer, 100);
    expect(retry.map((s) => [s.header.type, s.address])).toEqual([[PacketType.Retry, SNIFFER]]);
    expect(ep.sessionCount).toBe(1);
    // The replayer puts its own fresh token in the sniffed REQUEST: the token is in the sealed body's aad, which no longer opens.
    ep.handle(splice(sniffed, decodeRetry(retry[0]!.raw).token), SNIFFER, 6000, 200);
    const refused = drain(ep, peer, 200);
    expect(refused.map((s) => s.header.type)).toEqual([PacketType.Error]);
    expect(decodeError(refused[0]!.raw).code).toBe(TransferErrorCode.Forbidden);
    expect(ep.sessionCount).toBe(1);
  });

  test("replayed 60 s later, even from the same address and port: a RETRY, no session", () => {
    const { ep, peer } = withToken();
    const sniffed = request(peer, 7, TOKENS.issue(LEGIT, 0));
    ep.handle(sniffed.slice(), LEGIT, 5000, 0);
    const cookie = decodeAccept(of(drain(ep, peer, 0), PacketType.Accept)[0]!.bytes).cookie;
    ep.handle(peer.ack(LEGIT, 5000, 7, 0, cookie, 1), LEGIT, 5000, 1);
    ep.closeAll(); // that fetch is over
    ep.handle(sniffed.slice(), LEGIT, 5000, 60_000);
    expect(drain(ep, peer, 60_000).map((s) => s.header.type)).toEqual([PacketType.Retry]);
    // Even with a fresh token of that address spliced in: its epoch's key is forgotten.
    ep.handle(splice(sniffed, TOKENS.issue(LEGIT, 60_000)), LEGIT, 5000, 60_000);
    expect(drain(ep, peer, 60_000).map((s) => s.header.type)).toEqual([PacketType.Retry]);
    expect(ep.sessionCount).toBe(0);
  });

  test("a legit client asking again with the new RETRY's greeting is served: one round trip more", () => {
    const { ep, peer } = withToken();
    expect(fetchLegit(ep, peer, 9, LEGIT, 5000, 60_000)).toBe(1000);
  });

  test("a client that does not know the token gets no session from a fresh greeting of its own address: ERROR forbidden", () => {
    const { ep } = withToken();
    for (const [i, crypto] of [testCrypto({ token: "guess", seed: 5 }), testCrypto({ seed: 6 })].entries()) {
      const stranger = new SessionPeer(ep, crypto);
      ep.handle(stranger.request(FILE, 20 + i, { address: SNIFFER }), SNIFFER, 6000, 0);
      const sent = drain(ep, stranger, 0);
      expect(sent.map((s) => [s.header.type, decodeError(s.raw).code])).toEqual([[PacketType.Error, TransferErrorCode.Forbidden]]);
    }
    expect(ep.sessionCount).toBe(0);
  });
});

describe("floods", () => {
  test("forged REQUESTs from 10 addresses at 800/s for 15 s (a sniffed one among them) leave the table empty: a legit fetch is served at once", () => {
    const { ep, storage, peer } = setup({}, "s3cret");
    const sniffed = request(peer, 42, TOKENS.issue(LEGIT, 0));
    // Forgers with tokens of other addresses: one sealed REQUEST, its token and session id spliced in
    // for each (the server looks at nothing past the token, as a CPace exchange per forgery would cost it).
    const template = request(peer, 1, TOKENS.issue(LEGIT, 0));
    let retries = 0;
    let now = 0;
    for (let i = 0; i < 800 * 15; i++) {
      now = i * (1000 / 800);
      const forged =
        i % 3 === 0 ? sniffed.slice() : i % 3 === 1 ? splice(template, TOKENS.issue(FORGED[(i + 1) % 10]!, now), i + 1) : request(peer, i + 1, undefined, { at: now });
      const size = forged.byteLength;
      ep.handle(forged, FORGED[i % 10]!, 40000 + (i % 1000), now);
      for (const s of drain(ep, peer, now)) {
        expect(s.header.type).toBe(PacketType.Retry); // the only answer, and smaller than what came
        expect(s.raw.byteLength).toBeLessThan(size);
        retries++;
      }
    }
    expect(retries).toBe(800 * 15);
    expect([ep.sessionCount, storage.openHandles, ep.counters.sessions]).toEqual([0, 0, 0]);
    expect(fetchLegit(ep, peer, 1, LEGIT, 5000, now)).toBeGreaterThan(0);
  });

  test("a valid token replayed from its own address toward other ports holds at most 32 unacknowledged slots; the address's acknowledged session stays", () => {
    const { ep, peer } = setup();
    const cookie = fetchLegit(ep, peer, 1, LEGIT, 5000, 0);
    ep.handle(peer.ack(LEGIT, 5000, 1, 0, cookie, 0), LEGIT, 5000, 0);
    const token = TOKENS.issue(LEGIT, 0);
    for (let i = 0; i < 800; i++) {
      ep.handle(request(peer, 100 + i, token, { at: i }), LEGIT, 20000 + i, i);
      drain(ep, peer, i);
    }
    expect(ep.sessionCount).toBe(1 + MAX_UNVALIDATED_PER_ADDRESS);
    // 1,000 REQUESTs a second: past the burst only KX_PER_SECOND get a key exchange; the rest are dropped.
    const exchanged = 800 - ep.counters.throttled;
    expect(exchanged).toBeLessThanOrEqual(KX_BURST - 1 + Math.ceil(0.8 * KX_PER_SECOND) + 1);
    expect(ep.counters.evicted).toBe(exchanged - MAX_UNVALIDATED_PER_ADDRESS);
    // The acknowledged session is still there: its ACK is taken (the server answers with DATA).
    ep.handle(peer.ack(LEGIT, 5000, 1, 0, cookie, 900), LEGIT, 5000, 900);
    expect(of(drain(ep, peer, 900), PacketType.Data).every((s) => s.port === 5000)).toBe(true);
    // And a new session of the legit client opens (pushing out the oldest replay), within budget each.
    expect(fetchLegit(ep, peer, 2, LEGIT, 5001, 901)).toBeGreaterThan(0);
  });

  test("key exchanges per address are budgeted: a burst of KX_BURST, then KX_PER_SECOND; the rest dropped, other addresses unaffected", () => {
    const { ep, peer } = setup({ maxSessionsPerAddress: 1000, maxSessions: 1000 });
    const token = TOKENS.issue(LEGIT, 0);
    for (let i = 0; i < 3 * KX_BURST; i++) ep.handle(request(peer, 100 + i, token, { at: 0 }), LEGIT, 20000 + i, 0);
    drain(ep, peer, 0);
    expect(ep.counters.throttled).toBe(2 * KX_BURST);
    expect(ep.counters.sessions).toBe(KX_BURST);
    // Another address has its own budget.
    expect(fetchLegit(ep, peer, 7, "10.0.0.2", 5000, 0)).toBeGreaterThan(0);
    // A second later the address has KX_PER_SECOND more (capped at the burst).
    const before = ep.counters.sessions;
    for (let i = 0; i < 3 * KX_BURST; i++) ep.handle(request(peer, 1000 + i, TOKENS.issue(LEGIT, 1000), { at: 1000 }), LEGIT, 30000 + i, 1000);
    drain(ep, peer, 1000);
    expect(ep.counters.sessions - before).toBe(Math.min(KX_BURST, KX_PER_SECOND));
  });

  test("a full table is shared per address: a new address pushes out the oldest session of the address holding the most, down to equal shares", () => {
    const { ep, peer } = setup({ maxSessions: 4, maxSessionsPerAddress: 4 });
    const heavy = "10.0.0.5";
    for (let id = 1; id <= 4; id++) ep.handle(peer.ack(heavy, 6000 + id, id, 0, fetchLegit(ep, peer, id, heavy, 6000 + id, id), id), heavy, 6000 + id, id);
    drain(ep, peer, 10);
    const outcomes: string[] = [];
    for (let id = 11; id <= 13; id++) {
      ep.handle(request(peer, id, TOKENS.issue(LEGIT, 20), { at: 20 }), LEGIT, 5000 + id, 20);
      const sent = drain(ep, peer, 20);
      const pushed = of(sent, PacketType.Error).filter((s) => s.address === heavy);
      const mine = sent.find((s) => s.address === LEGIT)!;
      outcomes.push(`${PacketType[mine.header.type]}${mine.header.type === PacketType.Error ? `(${decodeError(mine.bytes).code})` : ""} pushed ${pushed.map((s) => s.header.sessionId).join(",")}`);
      if (mine.header.type === PacketType.Accept) ep.handle(peer.ack(LEGIT, 5000 + id, id, 0, decodeAccept(mine.bytes).cookie, 20), LEGIT, 5000 + id, 20);
    }
    // 4 + 0 → 3 + 1 → 2 + 2, then equal shares: busy.
    expect(outcomes).toEqual(["Accept pushed 1", "Accept pushed 2", `Error(${TransferErrorCode.Busy}) pushed `]);
    expect(ep.sessionCount).toBe(4);
  });
});

describe("old clients", () => {
  test("a version-2 REQUEST (padded to 1200 bytes) gets an ERROR in version 2's layout saying to upgrade, smaller than it", () => {
    const { ep, peer } = setup();
    const bare = request(peer, 77, undefined);
    const v2 = new Uint8Array(1200);
    v2.set(bare);
    v2[HEADER_AT.version] = 2;
    seal(v2, new DataView(v2.buffer), v2.byteLength);
    ep.handle(v2, LEGIT, 5000, 0);
    const sent = drain(ep, peer, 0);
    expect(sent.length).toBe(1);
    expect(sent[0]!.raw.byteLength).toBeLessThan(v2.byteLength);
    const e = decodeUpgradeError(sent[0]!.raw);
    expect(e.version).toBe(2);
    expect(e.sessionId).toBe(77);
    expect(e.body.code).toBe(TransferErrorCode.BadRequest);
    expect(e.body.text).toBe(`this file server speaks ftx wire version ${WIRE_VERSION}, not 2: upgrade ftx`);
    expect(WIRE_VERSION).toBe(4);
    // A version-1 datagram, a small one, or one with a bad checksum: nothing.
    const v1 = v2.slice();
    v1[HEADER_AT.version] = 1;
    seal(v1, new DataView(v1.buffer), v1.byteLength);
    const bad = v2.slice();
    bad[100]! ^= 1;
    for (const d of [v1, bad, v2.subarray(0, 40)]) ep.handle(d, LEGIT, 5000, 1);
    expect(drain(ep, peer, 1)).toEqual([]);
    expect(ep.sessionCount).toBe(0);
  });

  test("a version-3 REQUEST (its MAC era) is told to upgrade too", () => {
    const { ep, peer } = setup();
    const v3 = request(peer, 78, undefined);
    v3[HEADER_AT.version] = 3;
    seal(v3, new DataView(v3.buffer), v3.byteLength);
    ep.handle(v3, LEGIT, 5000, 0);
    const sent = drain(ep, peer, 0);
    expect(sent.map((s) => decodeUpgradeError(s.raw).version)).toEqual([3]);
  });
});

describe("the client's side of RETRY", () => {
  test("a RETRY makes the Download ask again at once answering its greeting (a sealed REQUEST the server opens, with the right token), and keeps the greeting for later sessions", () => {
    const sent: Uint8Array[] = [];
    const kept: Greeting[] = [];
    const slot = { get: () => undefined, set: (g: Greeting) => void kept.push(g) };
    const spec = downloadSpec({ name: FILE.name, size: FILE.size, length: FILE.size, sha256: FILE.sha256, segmentBytes: 1000, crypto: testCrypto({ token: "s3cret", seed: 3 }), addressTokens: slot });
    const d = new Download(spec, { append() {}, backlogBytes: 0 }, (b) => void sent.push(b.slice()), 0, () => {}, { now: () => 0, sessionId: 5 });
    d.finished.catch(() => {});
    expect(sent.length).toBe(1);
    expect(sent[0]!.byteLength).toBe(MIN_REQUEST_BYTES);
    expect(decodeRequestHello(sent[0]!)).toBeUndefined(); // bare: no token, names nothing
    const { ep, peer } = setup({}, "s3cret");
    ep.handle(sent[0]!, LEGIT, 5000, 0); // a real RETRY, for the bytes
    const retry = drain(ep, peer, 0)[0]!.raw;
    const greeting = decodeRetry(retry);
    d.handle(readHeader(retry), retry, 3);
    expect(sent.length).toBe(2);
    const again = decodeRequestHello(sent[1]!)!;
    expect(again.token).toEqual(greeting.token);
    expect(again.epochId).toEqual(greeting.epochId);
    expect(kept).toEqual([greeting]);
    // The server completes the exchange (same token) and opens it: an ACCEPT, which the Download opens.
    ep.handle(sent[1]!, LEGIT, 5000, 3);
    const accept = ep.pollTransmit(3)!.bytes.slice();
    expect([readHeader(accept).type, readHeader(accept).sessionId]).toEqual([PacketType.Accept, 5]);
    expect(d.receive(accept, 4)).toBe(0);
    expect(d.cipherName).toBe("AES-256-GCM");
  });

  test("a server that answers RETRY to every REQUEST fails the session after 3, not forever", () => {
    const d = new Download(downloadSpec({ crypto: testCrypto({ seed: 3 }) }), { append() {}, backlogBytes: 0 }, () => {}, 0, () => {}, { now: () => 0, sessionId: 5 });
    d.finished.catch(() => {});
    const { ep, peer } = setup();
    ep.handle(request(peer, 5, undefined), LEGIT, 5000, 0);
    const retry = drain(ep, peer, 0)[0]!.raw;
    for (let i = 0; i < 4; i++) d.handle(readHeader(retry), retry, i);
    expect(d.state).toBe("failed");
    expect(d.failure?.code).toBe("E_PROTOCOL");
    expect(d.failure?.message).toBe("file server s keeps refusing the address token it gave");
  });
});
