import { describe, expect, test } from "bun:test";
import { DATAGRAM_OVERHEAD_BYTES, DatagramOpener, DatagramSealer } from "../../../src/transfer/core/datagram-aead.ts";
import {
  kxKind,
  clientRequestKeys,
  EPOCH_ID_BYTES,
  EPOCH_MS,
  KxKind,
  requestKeys,
  requestTranscript,
  SERVER_NONCE_BYTES,
  ServerShares,
  sessionCipher,
  type RequestKeys,
  type TransferCrypto,
} from "../../../src/transfer/core/session-keys.ts";
import {
  ACK_BYTES,
  decodeAck,
  decodeData,
  decodeRequestBody,
  decodeRequestHello,
  encodeData,
  encodeRequest,
  HEADER_BYTES,
  openBody,
  readHeader,
  REQUEST_AT,
  WIRE_VERSION,
  writeAck,
} from "../../../src/transfer/core/wire.ts";
import { testCrypto } from "../../support/transfer-crypto.ts";

const SESSION = 0x01020304;
const TOKEN = "correct horse battery staple";

/** A server and a client of one kind (X25519 without a token, CPace with one); their random sources differ. */
function sides(token?: string) {
  return { server: new ServerShares(testCrypto({ token, seed: 1 })), client: testCrypto({ token, seed: 2 }) };
}

/** The client's side against the server's epoch at `now`: its share and keys. */
function ask(server: ServerShares, client: TransferCrypto, now: number, sessionId = SESSION) {
  const e = server.epoch(now);
  const c = clientRequestKeys(client, WIRE_VERSION, sessionId, e.id, e.share);
  if (!c) throw new Error("the client's exchange did not complete");
  return { epochId: e.id, ...c };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function keysOf(k: RequestKeys) {
  return { shared: hex(k.shared), transcript: hex(k.transcript), key: hex(k.key), iv: hex(k.iv), confirm: hex(k.confirm) };
}

/** A DATA datagram sealed by `sealer`, opened (on a copy) by `opener`: its payload as text, or undefined. */
function through(sealer: DatagramSealer, opener: DatagramOpener, text: string): string | undefined {
  const d = encodeData(SESSION, 0, 0, new TextEncoder().encode(text), 0, sealer).slice();
  const end = openBody(d, HEADER_BYTES, opener);
  return end < 0 ? undefined : new TextDecoder().decode(decodeData(d.subarray(0, end), 0, 1000, text.length));
}

describe("session keys (docs/PROTOCOL.md §4 \"Datagrams\")", () => {
  for (const [kind, token] of [
    ["X25519", undefined],
    ["CPace", TOKEN],
  ] as const) {
    test(`${kind}: the server completes the client's share to the same REQUEST keys; the confirmation checks`, () => {
      const { server, client } = sides(token);
      expect(server.kxKind).toBe(token === undefined ? KxKind.X25519 : KxKind.CPace);
      const c = ask(server, client, 1000);
      const keys = server.complete(WIRE_VERSION, SESSION, c.epochId, c.share, c.keys.confirm, 1000);
      if (typeof keys === "string") throw new Error(`server: ${keys}`);
      expect(keysOf(keys)).toEqual(keysOf(c.keys));
      expect(c.keys.key.byteLength).toBe(32);
      expect(c.keys.iv.byteLength).toBe(12);
      expect(c.keys.confirm.byteLength).toBe(16);
      expect(hex(c.keys.transcript)).toBe(hex(requestTranscript(WIRE_VERSION, server.kxKind, SESSION, c.epochId, server.epoch(1000).share, c.share)));
    });

    test(`${kind}: a REQUEST the client seals under its REQUEST key opens under the server's`, () => {
      const { server, client } = sides(token);
      const c = ask(server, client, 0);
      const e = server.epoch(0);
      const hello = { token: new Uint8Array(20).fill(1), kx: kxKind(client.kx), epochId: e.id, share: c.share, confirm: c.keys.confirm };
      const body = { offset: 0, length: 0, segmentBytes: 1374, windowSegments: 64, sha256: new Uint8Array(32), name: "a/b.txt" };
      const req = encodeRequest(SESSION, body, hello, new DatagramSealer(client.aead(c.keys.key), c.keys.iv), 0);
      // The server reads the clear part, completes the exchange, opens the body.
      const header = readHeader(req);
      const got = decodeRequestHello(req)!;
      const keys = server.complete(WIRE_VERSION, header.sessionId, got.epochId, got.share, got.confirm, 0);
      if (typeof keys === "string") throw new Error(`server: ${keys}`);
      const end = openBody(req, REQUEST_AT.body, new DatagramOpener(client.aead(keys.key), keys.iv));
      expect(end).toBe(REQUEST_AT.name + 7);
      expect(decodeRequestBody(req.subarray(0, end), header)).toMatchObject({ name: "a/b.txt", segmentBytes: 1374 });
    });
  }

  test("CPace: a client with another token (or none) is refused as invalid, not stale", () => {
    const server = new ServerShares(testCrypto({ token: TOKEN, seed: 1 }));
    const wrong = ask(server, testCrypto({ token: "wrong token", seed: 2 }), 0);
    expect(server.complete(WIRE_VERSION, SESSION, wrong.epochId, wrong.share, wrong.keys.confirm, 0)).toBe("invalid");
    // A client without a token makes an X25519 share: CPace does not complete to its keys.
    const none = ask(server, testCrypto({ seed: 3 }), 0);
    expect(server.complete(WIRE_VERSION, SESSION, none.epochId, none.share, none.keys.confirm, 0)).toBe("invalid");
    // The right token still works: nothing was spent.
    const right = ask(server, testCrypto({ token: TOKEN, seed: 4 }), 0);
    expect(typeof server.complete(WIRE_VERSION, SESSION, right.epochId, right.share, right.keys.confirm, 0)).toBe("object");
  });

  test("an unknown epoch is stale (answer with a RETRY carrying the current one)", () => {
    const { server, client } = sides(TOKEN);
    const c = ask(server, client, 0);
    expect(server.complete(WIRE_VERSION, SESSION, new Uint8Array(EPOCH_ID_BYTES).fill(0xee), c.share, c.keys.confirm, 0)).toBe("stale");
  });

  test(`an epoch is handed out for ${EPOCH_MS} ms, and accepted until it is 2 epochs old (the previous one); then stale`, () => {
    const { server, client } = sides(TOKEN);
    const first = server.epoch(0);
    expect(hex(server.epoch(EPOCH_MS - 1).id)).toBe(hex(first.id));
    const c = ask(server, client, 0);
    const complete = (now: number) => server.complete(WIRE_VERSION, SESSION, c.epochId, c.share, c.keys.confirm, now);
    // A new epoch at EPOCH_MS: the first is the previous one, still accepted.
    const second = server.epoch(EPOCH_MS);
    expect(hex(second.id)).not.toBe(hex(first.id));
    expect(typeof complete(EPOCH_MS)).toBe("object");
    expect(typeof complete(2 * EPOCH_MS - 1)).toBe("object");
    // At 2 · EPOCH_MS a third epoch starts: the first is forgotten.
    expect(complete(2 * EPOCH_MS)).toBe("stale");
    expect(hex(server.epoch(2 * EPOCH_MS).id)).not.toBe(hex(second.id));
  });

  test("the previous epoch is refused once 2 epochs old even when no rotation happened in between", () => {
    const { server, client } = sides();
    const c = ask(server, client, 0);
    const complete = (now: number) => server.complete(WIRE_VERSION, SESSION, c.epochId, c.share, c.keys.confirm, now);
    // Nobody asked for a greeting until 1.5 epochs: the rotation then makes the first the previous one.
    expect(typeof complete(1.5 * EPOCH_MS)).toBe("object");
    expect(typeof complete(2 * EPOCH_MS - 1)).toBe("object");
    // 2 epochs after it started it is refused, though the current epoch (from 1.5 epochs) has not rotated yet.
    expect(complete(2 * EPOCH_MS)).toBe("stale");
  });

  test("a clock that goes backwards starts a new epoch (the old one's age cannot be trusted)", () => {
    const { server } = sides();
    const a = server.epoch(10 * EPOCH_MS);
    expect(hex(server.epoch(10 * EPOCH_MS - 1).id)).not.toBe(hex(a.id));
  });

  test("a tampered confirmation, client share, session id or version is invalid", () => {
    for (const token of [undefined, TOKEN]) {
      const { server, client } = sides(token);
      const c = ask(server, client, 0);
      const badConfirm = c.keys.confirm.slice();
      badConfirm[0]! ^= 1;
      expect(server.complete(WIRE_VERSION, SESSION, c.epochId, c.share, badConfirm, 0)).toBe("invalid");
      expect(server.complete(WIRE_VERSION, SESSION, c.epochId, c.share, c.keys.confirm.subarray(1), 0)).toBe("invalid");
      const badShare = c.share.slice();
      badShare[5]! ^= 1;
      expect(server.complete(WIRE_VERSION, SESSION, c.epochId, badShare, c.keys.confirm, 0)).toBe("invalid");
      expect(server.complete(WIRE_VERSION, SESSION, c.epochId, new Uint8Array(32), c.keys.confirm, 0)).toBe("invalid"); // not a valid share
      expect(server.complete(WIRE_VERSION, SESSION + 1, c.epochId, c.share, c.keys.confirm, 0)).toBe("invalid");
      expect(server.complete(WIRE_VERSION - 1, SESSION, c.epochId, c.share, c.keys.confirm, 0)).toBe("invalid");
      // Untouched, it still completes.
      expect(typeof server.complete(WIRE_VERSION, SESSION, c.epochId, c.share, c.keys.confirm, 0)).toBe("object");
    }
  });

  test("a client given an invalid server share gets no keys", () => {
    const { client } = sides();
    expect(clientRequestKeys(client, WIRE_VERSION, SESSION, new Uint8Array(EPOCH_ID_BYTES), new Uint8Array(32))).toBeUndefined();
  });

  test("the transcript binds the session id: another id gives other keys", () => {
    const { server, client } = sides(TOKEN);
    const a = ask(server, client, 0, SESSION);
    const e = server.epoch(0);
    const t1 = requestTranscript(WIRE_VERSION, KxKind.CPace, SESSION, e.id, e.share, a.share);
    const t2 = requestTranscript(WIRE_VERSION, KxKind.CPace, SESSION + 1, e.id, e.share, a.share);
    expect(hex(t1)).not.toBe(hex(t2));
    const k1 = requestKeys(a.keys.shared, t1);
    const k2 = requestKeys(a.keys.shared, t2);
    expect(hex(k1.key)).not.toBe(hex(k2.key));
    expect(hex(k1.iv)).not.toBe(hex(k2.iv));
    expect(hex(k1.confirm)).not.toBe(hex(k2.confirm));
    // And the session's keys with it: a datagram of one does not open in the other.
    const nonce = new Uint8Array(SERVER_NONCE_BYTES).fill(7);
    const one = sessionCipher(client.aead, k1, nonce, "client");
    const other = sessionCipher(client.aead, k2, nonce, "server");
    expect(through(one.sealer, other.opener, "x")).toBeUndefined();
    one.dispose();
    other.dispose();
  });

  test("sessionCipher: client and server pair up (client seals → server opens, and back); each direction its own keys", () => {
    for (const token of [undefined, TOKEN]) {
      const { server, client } = sides(token);
      const c = ask(server, client, 0);
      const keys = server.complete(WIRE_VERSION, SESSION, c.epochId, c.share, c.keys.confirm, 0);
      if (typeof keys === "string") throw new Error(`server: ${keys}`);
      const nonce = new Uint8Array(SERVER_NONCE_BYTES).fill(0x88);
      const cc = sessionCipher(client.aead, c.keys, nonce, "client");
      const sc = sessionCipher(client.aead, keys, nonce, "server");
      expect(hex(cc.serverNonce)).toBe(hex(nonce));
      expect(through(sc.sealer, cc.opener, "server to client")).toBe("server to client");
      expect(through(cc.sealer, sc.opener, "client to server")).toBe("client to server");
      // An ACK through the real writer, too.
      const ack = new Uint8Array(ACK_BYTES + DATAGRAM_OVERHEAD_BYTES);
      writeAck(ack, new DataView(ack.buffer), SESSION, 5, { windowSegments: 64, echoTimestampUs: 1, ackDelayUs: 2, received: 3 }, 0xcafe, 0, cc.sealer);
      const end = openBody(ack, HEADER_BYTES, sc.opener);
      expect(decodeAck(ack.subarray(0, end))).toMatchObject({ windowSegments: 64, received: 3, cookie: 0xcafe });
      // Not the same keys both ways: a side cannot open its own datagrams (no reflection).
      expect(through(cc.sealer, cc.opener, "reflected")).toBeUndefined();
      expect(through(sc.sealer, sc.opener, "reflected")).toBeUndefined();
      // Nor are the session's keys the REQUEST's.
      expect(through(cc.sealer, new DatagramOpener(client.aead(c.keys.key), c.keys.iv), "request key")).toBeUndefined();
      cc.dispose();
      sc.dispose();
    }
  });

  test("two server nonces give two sessions' keys: a datagram sealed under one does not open under the other", () => {
    const { server, client } = sides(TOKEN);
    const c = ask(server, client, 0);
    const keys = server.complete(WIRE_VERSION, SESSION, c.epochId, c.share, c.keys.confirm, 0);
    if (typeof keys === "string") throw new Error(`server: ${keys}`);
    const a = sessionCipher(client.aead, keys, new Uint8Array(SERVER_NONCE_BYTES).fill(1), "server");
    const b = sessionCipher(client.aead, keys, new Uint8Array(SERVER_NONCE_BYTES).fill(2), "server");
    const clientA = sessionCipher(client.aead, c.keys, new Uint8Array(SERVER_NONCE_BYTES).fill(1), "client");
    expect(through(a.sealer, clientA.opener, "for A")).toBe("for A");
    expect(through(b.sealer, clientA.opener, "for B")).toBeUndefined();
    // (pn 0 again for clientA's window: a fresh opener of the same keys shows it is the tag that fails.)
    const freshA = sessionCipher(client.aead, c.keys, new Uint8Array(SERVER_NONCE_BYTES).fill(1), "client");
    expect(through(b.sealer, freshA.opener, "for B")).toBeUndefined();
    expect(freshA.opener.lastRefusal).toBe("tampered");
    // A replayed REQUEST (same keys) answered with a fresh nonce: none of the first session's datagrams open in it.
    const clientB = sessionCipher(client.aead, c.keys, new Uint8Array(SERVER_NONCE_BYTES).fill(2), "client");
    expect(through(a.sealer, clientB.opener, "old session")).toBeUndefined();
    expect(through(b.sealer, clientB.opener, "new session")).toBe("new session");
    for (const s of [a, b, clientA, freshA, clientB]) s.dispose();
  });
});
