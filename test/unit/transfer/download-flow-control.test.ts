import { describe, expect, test } from "bun:test";
import { Download } from "../../../src/transfer/download.ts";
import type { DownloadSink } from "../../../src/transfer/part-file.ts";
import { decodeAck, PacketType, readHeader, timestampUs } from "../../../src/transfer/core/wire.ts";
import { SessionServer } from "../../support/session-server.ts";
import { testCrypto } from "../../support/transfer-crypto.ts";

const SEGMENT = 60_000;
const SHA = "ab".repeat(32);

/** A sink whose backlog the test sets, standing in for a part file whose disk is behind. */
class SlowDisk implements DownloadSink {
  backlogBytes = 0;
  private waiter: { below: number; callback: () => void } | undefined;
  append(_bytes: Uint8Array, start: number, end: number): void {
    this.backlogBytes += end - start;
  }
  whenBacklogBelow(below: number, callback: () => void): void {
    this.waiter = { below, callback };
  }
  drain(): void {
    this.backlogBytes = 0;
    const w = this.waiter;
    this.waiter = undefined;
    w?.callback();
  }
}

const ZEROS = new Uint8Array(SEGMENT);

describe("Download flow control against the disk", () => {
  test("closes the window (0) while the disk is behind, reopens it with an ACK, and repeats that ACK soon if nothing follows", () => {
    const sink = new SlowDisk();
    const acks: { cumulative: number; window: number }[] = [];
    const deadlines: number[] = [];
    const server = new SessionServer();
    const send = (bytes: Uint8Array) => {
      const h = readHeader(bytes);
      if (h.type === PacketType.Request) server.openRequest(bytes);
      if (h.type === PacketType.Ack) acks.push({ cumulative: h.seq, window: decodeAck(server.open(bytes)!).windowSegments });
    };
    const spec = { name: "f", size: 100 * SEGMENT, offset: 0, length: 100 * SEGMENT, sha256: SHA, ip: "127.0.0.1", port: 9, display: "s", segmentBytes: SEGMENT, windowSegments: 8, ackEvery: 2, idleTimeoutMs: 10_000, crypto: testCrypto(), addressTokens: server.slot() };
    // The reopening happens outside any call that passes `now`, on performance.now(): so does the test.
    const t0 = performance.now();
    const d = new Download(spec, sink, send, t0, (at) => deadlines.push(at));
    const accept = server.accept(d.sessionId, { fileSize: spec.size, offset: 0, length: spec.length, segmentBytes: SEGMENT, cookie: 7, sha256: Buffer.from(SHA, "hex"), fecBlock: 0 });
    expect(d.receive(accept, t0 + 1)).toBe(0);
    expect(acks.at(-1)).toEqual({ cumulative: 0, window: 8 });
    for (let seq = 0; seq < 70; seq++) {
      expect(d.receive(server.data(d.sessionId, seq, 0, ZEROS, timestampUs(seq)), t0 + 2 + seq / 100)).toBe(0);
    }
    // 4.2 MB waiting for the disk: more than 4 MiB, so the window is closed.
    expect(acks.at(-1)).toEqual({ cumulative: 70, window: 0 });
    d.onTimer(t0 + 20_000); // a silence longer than the idle limit, asked for: not the server going silent
    expect(d.state).toBe("receiving");
    const before = acks.length;
    sink.drain();
    expect(acks.length).toBe(before + 1);
    expect(acks.at(-1)).toEqual({ cumulative: 70, window: 8 });
    // Should that ACK be lost, it goes again within a few milliseconds, not after the backed-off probe timer.
    const repeatAt = deadlines.at(-1)!;
    expect(repeatAt - performance.now()).toBeLessThanOrEqual(5);
    expect(d.pollTimeout()).toBe(repeatAt);
  });
});
