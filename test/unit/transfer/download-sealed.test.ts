import { describe, expect, test } from "bun:test";
import { downloadSpec } from "../../support/download-spec.ts";
import { SessionServer } from "../../support/session-server.ts";
import { testCrypto } from "../../support/transfer-crypto.ts";
import { Download, type DownloadSpec } from "../../../src/transfer/download.ts";
import { encodeRetry, MIN_REQUEST_BYTES, PacketType, readHeader } from "../../../src/transfer/core/wire.ts";

const NAME = "secret-plans/quarterly-report.pdf";

function start(spec: DownloadSpec) {
  const requests: Uint8Array[] = [];
  const d = new Download(
    spec,
    { append() {}, backlogBytes: 0 },
    (b) => {
      if (readHeader(b).type === PacketType.Request) requests.push(b.slice());
    },
    0,
    () => {},
    { now: () => 0, sessionId: 9 },
  );
  d.finished.catch(() => {});
  return { d, requests };
}

function has(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay).indexOf(Buffer.from(needle)) >= 0;
}

describe("a Download's sealed REQUEST", () => {
  test("without a greeting it is bare (names nothing) and draws one; with it, the name, hash and range are sealed", () => {
    const server = new SessionServer();
    const spec = downloadSpec({ name: NAME, sha256: "5a".repeat(32), addressTokens: { get: () => undefined, set() {} } });
    const { d, requests } = start(spec);
    expect(requests.length).toBe(1);
    expect(requests[0]!.byteLength).toBe(MIN_REQUEST_BYTES);
    expect([...requests[0]!.subarray(26)].every((b) => b === 0)).toBe(true);
    expect(d.receive(encodeRetry(9, server.greeting(), 0), 1)).toBe(0);
    expect(requests.length).toBe(2);
    const sealed = requests[1]!;
    expect(has(sealed, new TextEncoder().encode(NAME))).toBe(false);
    expect(has(sealed, Buffer.from("5a".repeat(32), "hex"))).toBe(false);
    expect(has(sealed, new TextEncoder().encode("quarterly"))).toBe(false);
    // The server's side opens it to what was asked.
    const body = server.openRequest(sealed);
    expect(body.name).toBe(NAME);
    expect(Buffer.from(body.sha256).toString("hex")).toBe("5a".repeat(32));
    expect(body.length).toBe(spec.length);
  });

  test("a RETRY that crossed our REQUEST: the ACCEPT the server made for the earlier REQUEST still opens", () => {
    // The client's first REQUEST went bare; its retransmission drew a second RETRY. It answered each
    // with a sealed REQUEST of a fresh share; the server opened the first, and repeats that ACCEPT to
    // the second (same session). Holding only the newest REQUEST's keys deadlocked the session.
    const server = new SessionServer();
    const spec = downloadSpec({ addressTokens: { get: () => undefined, set() {} } });
    const { d, requests } = start(spec);
    d.receive(encodeRetry(9, server.greeting(), 0), 1);
    d.receive(encodeRetry(9, server.greeting(), 0), 2);
    expect(requests.length).toBe(3);
    server.openRequest(requests[1]!);
    const accept = server.accept(9, { fileSize: spec.size, offset: 0, length: spec.length, segmentBytes: spec.segmentBytes, cookie: 1, sha256: Buffer.from(spec.sha256, "hex"), fecBlock: 0 });
    expect(d.receive(accept, 3)).toBe(0);
    expect(d.state).toBe("receiving");
    expect(d.cipherName).toBe("AES-256-GCM");
  });

  test("a token on one side only fails at once with E_AUTH, naming which side lacks it", () => {
    const withToken = new SessionServer("server-token-0123456789");
    const a = start(downloadSpec({ addressTokens: withToken.slot() })).d;
    expect(a.state).toBe("failed");
    expect(a.failure!.code).toBe("E_AUTH");
    expect(a.failure!.message).toBe("file server s needs a token (--token or FTX_TOKEN)");
    const noToken = new SessionServer();
    const b = start(downloadSpec({ crypto: testCrypto({ token: "client-token-0123456789" }), addressTokens: noToken.slot() })).d;
    expect(b.state).toBe("failed");
    expect(b.failure!.code).toBe("E_AUTH");
    expect(b.failure!.message).toBe("file server s has no token: it cannot prove it knows ours");
  });

  test("with the same token on both sides (CPace) the session opens; with another token the server cannot open the REQUEST", () => {
    const server = new SessionServer("same-token-0123456789abc");
    const spec = downloadSpec({ crypto: testCrypto({ token: "same-token-0123456789abc" }), addressTokens: server.slot() });
    const { d, requests } = start(spec);
    server.openRequest(requests[0]!);
    expect(d.receive(server.accept(9, { fileSize: spec.size, offset: 0, length: spec.length, segmentBytes: spec.segmentBytes, cookie: 1, sha256: Buffer.from(spec.sha256, "hex"), fecBlock: 0 }), 1)).toBe(0);
    expect(d.state).toBe("receiving");
    const other = new SessionServer("another-token-0123456789");
    const wrong = start(downloadSpec({ crypto: testCrypto({ token: "same-token-0123456789abc" }), addressTokens: other.slot() }));
    expect(() => other.openRequest(wrong.requests[0]!)).toThrow("REQUEST keys: invalid");
  });
});
