import { describe, expect, test } from "bun:test";
import { Download } from "../../../src/transfer/download.ts";
import type { DownloadSink } from "../../../src/transfer/part-file.ts";
import {
  ACCEPT_BYTES,
  DATAGRAM_OVERHEAD_BYTES,
  encodeData,
  encodeError,
  encodeRetry,
  firstDatagramBytes,
  HEADER_BYTES,
  PacketType,
  readHeader,
  TransferErrorCode,
} from "../../../src/transfer/core/wire.ts";
import { SessionServer } from "../../support/session-server.ts";
import { testCrypto } from "../../support/transfer-crypto.ts";

const SEGMENT = 1000;
const SIZE = 10 * SEGMENT + 300; // 11 segments, the last 300 bytes
const SHA = "cd".repeat(32);
const CONTENT = Uint8Array.from({ length: SIZE }, (_, i) => (i * 7) & 0xff);

function payload(seq: number): Uint8Array {
  return CONTENT.subarray(seq * SEGMENT, Math.min(SIZE, (seq + 1) * SEGMENT));
}

/** Clear DATA (as an --insecure-plaintext session's), for the split arithmetic. */
function data(sessionId: number, seq: number): Uint8Array {
  return encodeData(sessionId, seq, 0, payload(seq), seq);
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

/** A Download whose sealed session the server accepted; `data` seals segments under its keys. */
function accepted() {
  const server = new SessionServer();
  const received: number[] = [];
  const acks: number[] = [];
  let request: Uint8Array | undefined;
  const sink: DownloadSink = {
    backlogBytes: 0,
    append(bytes, start, end) {
      received.push(...bytes.subarray(start, end));
    },
  };
  const send = (bytes: Uint8Array) => {
    const h = readHeader(bytes);
    if (h.type === PacketType.Ack) acks.push(h.seq);
    if (h.type === PacketType.Request) request = bytes.slice();
  };
  const spec = { name: "f", size: SIZE, offset: 0, length: SIZE, sha256: SHA, ip: "127.0.0.1", port: 9, display: "s", segmentBytes: SEGMENT, windowSegments: 64, ackEvery: 2, idleTimeoutMs: 10_000, crypto: testCrypto(), addressTokens: server.slot() };
  const d = new Download(spec, sink, send, 0, () => {});
  server.openRequest(request!);
  const accept = server.accept(d.sessionId, { fileSize: SIZE, offset: 0, length: SIZE, segmentBytes: SEGMENT, cookie: 7, sha256: Buffer.from(SHA, "hex"), fecBlock: 0 });
  expect(d.receive(accept, 1)).toBe(0);
  acks.length = 0;
  const sealed = (seq: number, sessionId = d.sessionId) => server.data(sessionId, seq, 0, payload(seq), seq);
  return { d, received, acks, sealed, server };
}

describe("datagrams the kernel coalesced (UDP GRO)", () => {
  test("the first datagram's length comes from its header: DATA (full or the range's short last), ACCEPT, RETRY, ERROR", () => {
    const run = concat([data(5, 0), data(5, 1)]);
    expect(firstDatagramBytes(run, SEGMENT, SIZE)).toBe(HEADER_BYTES + SEGMENT);
    expect(firstDatagramBytes(concat([data(5, 10), data(5, 10)]), SEGMENT, SIZE)).toBe(HEADER_BYTES + 300);
    expect(firstDatagramBytes(run, 0, 0)).toBe(run.byteLength); // before the ACCEPT: no segment size known
    // Sealed DATA: pn and tag after each payload.
    const { sealed, server, d } = accepted();
    expect(firstDatagramBytes(concat([sealed(0), sealed(1)]), SEGMENT, SIZE, DATAGRAM_OVERHEAD_BYTES)).toBe(HEADER_BYTES + SEGMENT + DATAGRAM_OVERHEAD_BYTES);
    expect(firstDatagramBytes(concat([sealed(10), sealed(10)]), SEGMENT, SIZE, DATAGRAM_OVERHEAD_BYTES)).toBe(HEADER_BYTES + 300 + DATAGRAM_OVERHEAD_BYTES);
    const accept = server.accept(d.sessionId, { fileSize: 1, offset: 0, length: 1, segmentBytes: 1, cookie: 1, sha256: new Uint8Array(32), fecBlock: 0 });
    expect(firstDatagramBytes(concat([accept, accept]), 0, 0)).toBe(ACCEPT_BYTES);
    const retry = encodeRetry(5, server.greeting(), 0);
    expect(firstDatagramBytes(concat([retry, retry]), 0, 0)).toBe(retry.byteLength);
    const error = encodeError(5, { code: TransferErrorCode.Busy, text: "busy" }, 0);
    expect(firstDatagramBytes(concat([error, error]), 0, 0)).toBe(error.byteLength);
    // A sealed ERROR's length is sealed too: it is taken whole (it can only end a run, or come alone).
    const sealedError = server.error(5, { code: TransferErrorCode.Busy, text: "busy" });
    expect(firstDatagramBytes(concat([sealedError, sealedError]), SEGMENT, SIZE, DATAGRAM_OVERHEAD_BYTES)).toBe(2 * sealedError.byteLength);
    // A header claiming more than arrived, or a sequence number past 2^53: the whole buffer (its checksum then fails).
    expect(firstDatagramBytes(data(5, 1).subarray(0, 500), SEGMENT, SIZE)).toBe(500);
    const wild = data(5, 1);
    wild[10] = 0xff;
    expect(firstDatagramBytes(wild, SEGMENT, SIZE)).toBe(wild.byteLength);
  });

  test("a coalesced run is split, every datagram checked and delivered in order, and acknowledged once after its last", () => {
    const { d, received, acks, sealed } = accepted();
    const run = concat(Array.from({ length: 11 }, (_, seq) => sealed(seq)));
    expect(d.receive(run, 2)).toBe(0);
    expect(Uint8Array.from(received)).toEqual(CONTENT);
    expect(acks).toEqual([11]); // one ACK for the run (ackEvery 2 would have sent 5 or more)
    expect(d.state).toBe("done");
  });

  test("a damaged datagram or another session's inside a run is dropped and counted; the rest get through", () => {
    const { d, received, acks, sealed } = accepted();
    const damaged = sealed(1);
    damaged[HEADER_BYTES + 5]! ^= 1;
    const run = concat([sealed(0), damaged, sealed(2, d.sessionId + 1), sealed(1)]);
    expect(d.receive(run, 2)).toBe(2);
    expect(Uint8Array.from(received)).toEqual(CONTENT.subarray(0, 2 * SEGMENT));
    d.onTimer(d.pollTimeout()!); // the delayed ACK (2 in order, fewer than ackEvery)
    expect(acks).toEqual([2]);
  });
});
