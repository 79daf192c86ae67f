import { describe, expect, test } from "bun:test";
import { ADDRESS_TOKEN_LIFETIME_MS, AddressTokens } from "../../../src/transfer/core/address-token.ts";
import { MAX_UNVALIDATED_PER_ADDRESS, ServerEndpoint, type ServerEndpointConfig } from "../../../src/transfer/core/server-endpoint.ts";
import {
  ACK_BYTES,
  decodeAccept,
  decodeError,
  decodeRequest,
  decodeRetry,
  decodeUpgradeError,
  encodeRequest,
  HEADER_AT,
  PacketType,
  readHeader,
  RETRY_BYTES,
  seal,
  timestampUs,
  TransferErrorCode,
  writeAck,
  type Header,
  type RequestBody,
} from "../../../src/transfer/core/wire.ts";
import { Download } from "../../../src/transfer/download.ts";
import { requestMac, verifyRequestMac } from "../../../src/transfer/request-mac.ts";
import { downloadSpec } from "../../support/download-spec.ts";
import { Rng } from "../../support/random.ts";
import { MemoryFiles, simFile, type SimFile } from "../../support/sim-endpoints.ts";

/**
 * The file server's endpoint against hostile peers (issue #16): forged source addresses, sniffed and
 * replayed REQUESTs, floods, old clients. Simulated time throughout.
 */
const LEGIT = "10.0.0.1";
const SNIFFER = "10.6.6.6";
const FORGED = Array.from({ length: 10 }, (_, i) => `10.9.0.${i + 1}`);
const SECRET = new Uint8Array(32).fill(7);
const TOKENS = new AddressTokens(SECRET);
const rng = new Rng(16);
const FILE = simFile(rng, "big.bin", 64 * 1024, 4);

interface Sent {
  bytes: Uint8Array;
  header: Header;
  address: string;
  port: number;
}

function setup(config: Partial<ServerEndpointConfig<SimFile, number>> = {}) {
  const storage = new MemoryFiles([FILE]);
  let cookie = 1000;
  const ep = new ServerEndpoint<SimFile, number>({ files: storage, randomU32: () => cookie++, tokenSecret: SECRET, ...config });
  return { ep, storage };
}

function request(sessionId: number, addressToken: Uint8Array | undefined, secret?: string): Uint8Array {
  const body: RequestBody = { offset: 0, length: FILE.size, segmentBytes: 1000, windowSegments: 64, sha256: Buffer.from(FILE.sha256, "hex"), name: FILE.name, mac: undefined, token: addressToken };
  if (secret !== undefined) body.mac = requestMac(secret, sessionId, body);
  return encodeRequest(sessionId, body, 0);
}

function ack(sessionId: number, cookie: number, now: number): Uint8Array {
  const buf = new Uint8Array(ACK_BYTES);
  writeAck(buf, new DataView(buf.buffer), sessionId, 0, { windowSegments: 64, echoTimestampUs: timestampUs(now), ackDelayUs: 0, received: 0 }, cookie, timestampUs(now));
  return buf;
}

function drain(ep: ServerEndpoint<SimFile, number>, now: number): Sent[] {
  const out: Sent[] = [];
  for (let t = ep.pollTransmit(now); t; t = ep.pollTransmit(now)) {
    const bytes = t.bytes.slice();
    let header: Header;
    try {
      header = readHeader(bytes);
    } catch {
      header = { type: bytes[HEADER_AT.type]!, flags: 0, sessionId: 0, seq: 0, timestampUs: 0 };
    }
    out.push({ bytes, header, address: t.address, port: t.port });
  }
  return out;
}

const of = (sent: Sent[], type: PacketType) => sent.filter((s) => s.header.type === type);

/** Asks like a real client: a REQUEST without a token, then again with the RETRY's. Returns the ACCEPT's cookie. */
function fetchLegit(ep: ServerEndpoint<SimFile, number>, sessionId: number, address: string, port: number, now: number, secret?: string): number {
  ep.handle(request(sessionId, undefined, secret), address, port, now);
  const retry = of(drain(ep, now), PacketType.Retry).find((s) => s.address === address && s.port === port);
  if (!retry) throw new Error("no RETRY");
  ep.handle(request(sessionId, decodeRetry(retry.bytes), secret), address, port, now);
  const accept = of(drain(ep, now), PacketType.Accept).find((s) => s.address === address && s.port === port && s.header.sessionId === sessionId);
  if (!accept) throw new Error("no ACCEPT");
  return decodeAccept(accept.bytes).cookie;
}

describe("address validation (RETRY)", () => {
  test("a REQUEST without an address token gets a RETRY no larger than itself and leaves no state; with the RETRY's token it is served", () => {
    const { ep, storage } = setup();
    const first = request(1, undefined);
    ep.handle(first, LEGIT, 5000, 0);
    const sent = drain(ep, 0);
    expect(sent.map((s) => s.header.type)).toEqual([PacketType.Retry]);
    expect(sent[0]!.bytes.byteLength).toBe(RETRY_BYTES);
    expect(sent[0]!.bytes.byteLength).toBeLessThanOrEqual(first.byteLength);
    expect([ep.sessionCount, storage.openHandles, ep.pollTimeout(), ep.counters.retries]).toEqual([0, 0, undefined, 1]);
    ep.handle(request(1, decodeRetry(sent[0]!.bytes)), LEGIT, 5000, 1);
    expect(of(drain(ep, 1), PacketType.Accept).length).toBe(1);
    expect(ep.sessionCount).toBe(1);
  });

  test("the token serves every port of its address (each download has its own socket) but no other address, and only while fresh", () => {
    const { ep } = setup();
    const token = TOKENS.issue(LEGIT, 0);
    ep.handle(request(1, token), LEGIT, 5001, 1000);
    ep.handle(request(2, token), LEGIT, 5002, ADDRESS_TOKEN_LIFETIME_MS - 1);
    ep.handle(request(3, token), SNIFFER, 5003, 1000);
    ep.handle(request(4, token), LEGIT, 5004, ADDRESS_TOKEN_LIFETIME_MS + 1000);
    ep.handle(request(5, TOKENS.issue(LEGIT, 5000)), LEGIT, 5005, 4999); // issued "in the future"
    const sent = drain(ep, ADDRESS_TOKEN_LIFETIME_MS + 1000);
    expect(of(sent, PacketType.Accept).map((s) => s.header.sessionId)).toEqual([1, 2]);
    expect(of(sent, PacketType.Retry).map((s) => [s.header.sessionId, s.address])).toEqual([
      [3, SNIFFER],
      [4, LEGIT],
      [5, LEGIT],
    ]);
    // Another server (another secret) made it: refused.
    const other = new AddressTokens(new Uint8Array(32).fill(8)).issue(LEGIT, 0);
    ep.handle(request(6, other), LEGIT, 5006, 0);
    expect(drain(ep, 0).map((s) => s.header.type)).toEqual([PacketType.Retry]);
  });
});

describe("a sniffed REQUEST (with --token)", () => {
  const SECRET_TOKEN = "s3cret";
  const withToken = () => setup({ verifyMac: (id, r) => verifyRequestMac(SECRET_TOKEN, id, r) });

  test("replayed from another address: a RETRY to that address, no session; spliced with that RETRY's token: ERROR forbidden", () => {
    const { ep } = withToken();
    const token = TOKENS.issue(LEGIT, 0);
    const sniffed = request(7, token, SECRET_TOKEN);
    ep.handle(sniffed, LEGIT, 5000, 0);
    expect(of(drain(ep, 0), PacketType.Accept).length).toBe(1);
    ep.handle(sniffed, SNIFFER, 6000, 100);
    const retry = drain(ep, 100);
    expect(retry.map((s) => [s.header.type, s.address])).toEqual([[PacketType.Retry, SNIFFER]]);
    expect(ep.sessionCount).toBe(1);
    // The replayer puts its own fresh token in the sniffed REQUEST: the MAC no longer matches.
    const spliced = decodeRequest(sniffed, readHeader(sniffed));
    ep.handle(encodeRequest(7, { ...spliced, token: decodeRetry(retry[0]!.bytes) }, 0), SNIFFER, 6000, 200);
    const refused = drain(ep, 200);
    expect(refused.map((s) => s.header.type)).toEqual([PacketType.Error]);
    expect(decodeError(refused[0]!.bytes).code).toBe(TransferErrorCode.Forbidden);
    expect(ep.sessionCount).toBe(1);
  });

  test("replayed 60 s later, even from the same address and port: a RETRY, no session", () => {
    const { ep } = withToken();
    const sniffed = request(7, TOKENS.issue(LEGIT, 0), SECRET_TOKEN);
    ep.handle(sniffed, LEGIT, 5000, 0);
    const cookie = decodeAccept(of(drain(ep, 0), PacketType.Accept)[0]!.bytes).cookie;
    ep.handle(ack(7, cookie, 1), LEGIT, 5000, 1);
    ep.closeAll(); // that fetch is over
    ep.handle(sniffed, LEGIT, 5000, 60_000);
    expect(drain(ep, 60_000).map((s) => s.header.type)).toEqual([PacketType.Retry]);
    expect(ep.sessionCount).toBe(0);
  });

  test("a legit client asking again with the new RETRY's token is served: one round trip more", () => {
    const { ep } = withToken();
    expect(fetchLegit(ep, 9, LEGIT, 5000, 60_000, SECRET_TOKEN)).toBe(1000);
  });
});

describe("floods", () => {
  test("forged REQUESTs from 10 addresses at 800/s for 15 s (a sniffed one among them) leave the table empty: a legit fetch is served at once", () => {
    const { ep, storage } = setup({ verifyMac: (id, r) => verifyRequestMac("s3cret", id, r) });
    const sniffed = request(42, TOKENS.issue(LEGIT, 0), "s3cret");
    let retries = 0;
    let now = 0;
    for (let i = 0; i < 800 * 15; i++) {
      now = i * (1000 / 800);
      const forged = i % 3 === 0 ? sniffed : request(i + 1, i % 3 === 1 ? TOKENS.issue(FORGED[(i + 1) % 10]!, now) : undefined, "s3cret");
      ep.handle(forged, FORGED[i % 10]!, 40000 + (i % 1000), now);
      for (const s of drain(ep, now)) {
        expect(s.header.type).toBe(PacketType.Retry); // the only answer, and smaller than what came
        expect(s.bytes.byteLength).toBeLessThan(forged.byteLength);
        retries++;
      }
    }
    expect(retries).toBe(800 * 15);
    expect([ep.sessionCount, storage.openHandles, ep.counters.sessions]).toEqual([0, 0, 0]);
    expect(fetchLegit(ep, 1, LEGIT, 5000, now, "s3cret")).toBeGreaterThan(0);
  });

  test("a valid token replayed from its own address toward other ports holds at most 32 unacknowledged slots; the address's acknowledged session stays", () => {
    const { ep } = setup();
    const cookie = fetchLegit(ep, 1, LEGIT, 5000, 0);
    ep.handle(ack(1, cookie, 0), LEGIT, 5000, 0);
    const token = TOKENS.issue(LEGIT, 0);
    for (let i = 0; i < 800; i++) {
      ep.handle(request(100 + i, token), LEGIT, 20000 + i, i);
      drain(ep, i);
    }
    expect(ep.sessionCount).toBe(1 + MAX_UNVALIDATED_PER_ADDRESS);
    expect(ep.counters.evicted).toBe(800 - MAX_UNVALIDATED_PER_ADDRESS);
    // The acknowledged session is still there: its ACK is taken (the server answers with DATA).
    ep.handle(ack(1, cookie, 900), LEGIT, 5000, 900);
    expect(of(drain(ep, 900), PacketType.Data).every((s) => s.port === 5000)).toBe(true);
    // And a new session of the legit client opens (pushing out the oldest replay), within budget each.
    expect(fetchLegit(ep, 2, LEGIT, 5001, 901)).toBeGreaterThan(0);
  });

  test("a full table is shared per address: a new address pushes out the oldest session of the address holding the most, down to equal shares", () => {
    const { ep } = setup({ maxSessions: 4, maxSessionsPerAddress: 4 });
    const heavy = "10.0.0.5";
    for (let id = 1; id <= 4; id++) ep.handle(ack(id, fetchLegit(ep, id, heavy, 6000 + id, id), id), heavy, 6000 + id, id);
    drain(ep, 10);
    const outcomes: string[] = [];
    for (let id = 11; id <= 13; id++) {
      ep.handle(request(id, TOKENS.issue(LEGIT, 20)), LEGIT, 5000 + id, 20);
      const sent = drain(ep, 20);
      const pushed = of(sent, PacketType.Error).filter((s) => s.address === heavy);
      const mine = sent.find((s) => s.address === LEGIT)!;
      outcomes.push(`${PacketType[mine.header.type]}${mine.header.type === PacketType.Error ? `(${decodeError(mine.bytes).code})` : ""} pushed ${pushed.map((s) => s.header.sessionId).join(",")}`);
      if (mine.header.type === PacketType.Accept) ep.handle(ack(id, decodeAccept(mine.bytes).cookie, 20), LEGIT, 5000 + id, 20);
    }
    // 4 + 0 → 3 + 1 → 2 + 2, then equal shares: busy.
    expect(outcomes).toEqual(["Accept pushed 1", "Accept pushed 2", `Error(${TransferErrorCode.Busy}) pushed `]);
    expect(ep.sessionCount).toBe(4);
  });
});

describe("old clients", () => {
  test("a version-2 REQUEST (padded to 1200 bytes) gets an ERROR in version 2's layout saying to upgrade, smaller than it", () => {
    const { ep } = setup();
    const v3 = request(77, undefined);
    const v2 = new Uint8Array(1200);
    v2.set(v3);
    v2[HEADER_AT.version] = 2;
    seal(v2, new DataView(v2.buffer), v2.byteLength);
    ep.handle(v2, LEGIT, 5000, 0);
    const sent = drain(ep, 0);
    expect(sent.length).toBe(1);
    expect(sent[0]!.bytes.byteLength).toBeLessThan(v2.byteLength);
    const e = decodeUpgradeError(sent[0]!.bytes);
    expect(e.version).toBe(2);
    expect(e.sessionId).toBe(77);
    expect(e.body.code).toBe(TransferErrorCode.BadRequest);
    expect(e.body.text).toBe("this file server speaks ftx wire version 3, not 2: upgrade ftx");
    // A version-1 datagram, a small one, or one with a bad checksum: nothing.
    const v1 = v2.slice();
    v1[HEADER_AT.version] = 1;
    seal(v1, new DataView(v1.buffer), v1.byteLength);
    const bad = v2.slice();
    bad[100]! ^= 1;
    for (const d of [v1, bad, v2.subarray(0, 40)]) ep.handle(d, LEGIT, 5000, 1);
    expect(drain(ep, 1)).toEqual([]);
    expect(ep.sessionCount).toBe(0);
  });
});

describe("the client's side of RETRY", () => {
  test("a RETRY makes the Download ask again at once with that token (and its MAC over it), and keeps the token for later sessions", () => {
    const sent: Uint8Array[] = [];
    const kept: Uint8Array[] = [];
    const slot = { get: () => undefined, set: (t: Uint8Array) => void kept.push(t) };
    const d = new Download(downloadSpec({ token: "s3cret", addressTokens: slot }), { append() {}, backlogBytes: 0 }, (b) => void sent.push(b.slice()), 0, () => {}, { now: () => 0, sessionId: 5 });
    d.finished.catch(() => {});
    expect(sent.length).toBe(1);
    expect(decodeRequest(sent[0]!, readHeader(sent[0]!)).token).toBeUndefined();
    const { ep } = setup();
    ep.handle(request(5, undefined), LEGIT, 5000, 0); // a real RETRY, for the bytes
    const retry = drain(ep, 0)[0]!.bytes;
    d.handle(readHeader(retry), retry, 3);
    expect(sent.length).toBe(2);
    const again = decodeRequest(sent[1]!, readHeader(sent[1]!));
    expect(again.token).toEqual(decodeRetry(retry));
    expect(verifyRequestMac("s3cret", 5, again)).toBe(true);
    expect(kept).toEqual([decodeRetry(retry)]);
  });

  test("a server that answers RETRY to every REQUEST fails the session after 3, not forever", () => {
    const d = new Download(downloadSpec(), { append() {}, backlogBytes: 0 }, () => {}, 0, () => {}, { now: () => 0, sessionId: 5 });
    d.finished.catch(() => {});
    const { ep } = setup();
    ep.handle(request(5, undefined), LEGIT, 5000, 0);
    const retry = drain(ep, 0)[0]!.bytes;
    for (let i = 0; i < 4; i++) d.handle(readHeader(retry), retry, i);
    expect(d.state).toBe("failed");
    expect(d.failure?.code).toBe("E_PROTOCOL");
    expect(d.failure?.message).toBe("file server s keeps refusing the address token it gave");
  });
});
