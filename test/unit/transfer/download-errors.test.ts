import { describe, expect, test } from "bun:test";
import { downloadSpec } from "../../support/download-spec.ts";
import type { FtxError, FtxErrorCode } from "../../../src/errors.ts";
import { Download, serverError, type DownloadSpec } from "../../../src/transfer/download.ts";
import { encodeError, PacketType, readHeader, TransferErrorCode } from "../../../src/transfer/core/wire.ts";
import { SessionServer } from "../../support/session-server.ts";

const SPEC: DownloadSpec = downloadSpec({ display: "s:1" });

/** A Download (session 5) whose sealed REQUEST the test's server has opened. */
function requested(): { d: Download; server: SessionServer } {
  const server = new SessionServer();
  let request: Uint8Array | undefined;
  const send = (b: Uint8Array) => {
    if (readHeader(b).type === PacketType.Request) request = b.slice();
  };
  const d = new Download({ ...SPEC, addressTokens: server.slot() }, { append() {}, backlogBytes: 0 }, send, 0, () => {}, { now: () => 0, sessionId: 5 });
  d.finished.catch(() => {});
  server.openRequest(request!);
  return { d, server };
}

/** A Download that is sent `datagram` (built for its session id, by the server that opened its sealed REQUEST) right after its first REQUEST. */
function failWith(datagram: (sessionId: number, server: SessionServer) => Uint8Array): FtxError {
  const { d, server } = requested();
  expect(d.receive(datagram(d.sessionId, server), 1)).toBe(0);
  expect(d.state).toBe("failed");
  return d.failure!;
}

describe("a file server's ERROR becomes a typed FtxError", () => {
  const expected: [TransferErrorCode, FtxErrorCode][] = [
    [TransferErrorCode.NotFound, "E_NOT_FOUND"],
    [TransferErrorCode.Forbidden, "E_AUTH"],
    [TransferErrorCode.Busy, "E_LIMIT"],
    [TransferErrorCode.Changed, "E_CHANGED"],
    [TransferErrorCode.BadRequest, "E_PROTOCOL"],
    [TransferErrorCode.Internal, "E_IO"],
    [TransferErrorCode.Timeout, "E_TIMEOUT"],
    [TransferErrorCode.Cancelled, "E_CLOSED"],
  ];

  test("each code its own FtxError code, the server's text as the detail (a clear ERROR before the session; a sealed one in it)", () => {
    for (const [code, ftxCode] of expected) {
      const err = failWith((id) => encodeError(id, { code, text: `text for ${code}` }, 0));
      expect({ code, ftx: err.code }).toEqual({ code, ftx: ftxCode });
      expect(err.detail).toBe(`text for ${code}`);
      expect(err.message).toBe(`file server s:1: text for ${code}`);
    }
    expect(new Set(expected.map(([, c]) => c)).size).toBe(expected.length);
  });

  test("inside a sealed session: a sealed ERROR fails it with its code; a clear or forged one is dropped and counted", () => {
    const { d, server } = requested();
    expect(d.receive(server.accept(5, { fileSize: SPEC.size, offset: 0, length: SPEC.length, segmentBytes: 1400, cookie: 1, sha256: Buffer.from(SPEC.sha256, "hex"), fecBlock: 0 }), 1)).toBe(0);
    expect(d.state).toBe("receiving");
    // Anyone can write a clear ERROR with the session id: once the session is sealed it counts for nothing.
    expect(d.receive(encodeError(5, { code: TransferErrorCode.NotFound, text: "forged" }, 0), 2)).toBe(1);
    const forged = server.error(5, { code: TransferErrorCode.NotFound, text: "forged" });
    forged[forged.byteLength - 1]! ^= 1; // a wrong tag (its checksum is then wrong too: fix it up)
    const view = new DataView(forged.buffer);
    view.setUint32(22, 0);
    view.setUint32(22, Bun.hash.crc32(forged) as number);
    expect(d.receive(forged, 3)).toBe(1);
    expect(d.stats().unauthenticated).toBe(2);
    expect(d.state).toBe("receiving");
    expect(d.receive(server.error(5, { code: TransferErrorCode.Changed, text: "f changed during the transfer" }), 4)).toBe(0);
    expect(d.state).toBe("failed");
    expect(d.failure!.code).toBe("E_CHANGED");
    expect(d.failure!.detail).toBe("f changed during the transfer");
  });

  test("the code decides, not the text: a 'busy' text under another code is not E_LIMIT", () => {
    expect(serverError(TransferErrorCode.Changed, "server busy: too many transfers", "s:1").code).toBe("E_CHANGED");
    expect(serverError(TransferErrorCode.Busy, "file changed", "s:1").code).toBe("E_LIMIT");
  });

  test("a code this version does not know is the server's I/O failure; an empty text names the code", () => {
    const err = serverError(200, "", "s:1");
    expect(err.code).toBe("E_IO");
    expect(err.detail).toBe("error 200");
    expect(err.message).toBe("file server s:1: error 200");
  });

  test("the client's own verdicts on a session carry a detail that does not name the server", () => {
    const other = failWith((id, server) => server.accept(id, { fileSize: SPEC.size, offset: 0, length: SPEC.length, segmentBytes: 1400, cookie: 1, sha256: new Uint8Array(32), fecBlock: 0 }));
    expect(other.code).toBe("E_INTEGRITY");
    expect(other.detail).toBe("offers different content for f");
    expect(other.message).toBe("file server s:1 offers different content for f");
    const sha256 = Buffer.from(SPEC.sha256, "hex");
    const range = failWith((id, server) => server.accept(id, { fileSize: SPEC.size, offset: 0, length: 100, segmentBytes: 1400, cookie: 1, sha256, fecBlock: 0 }));
    expect(range.code).toBe("E_PROTOCOL");
    expect(range.detail).toBe("answered with a range or segment size we did not ask for");
  });
});
