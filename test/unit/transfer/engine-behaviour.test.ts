import { describe, expect, test } from "bun:test";
import { CongestionController, INITIAL_WINDOW_SEGMENTS } from "../../../src/transfer/core/congestion.ts";
import { GbnReceiver } from "../../../src/transfer/core/gbn-receiver.ts";
import { GbnSender } from "../../../src/transfer/core/gbn-sender.ts";
import { INITIAL_CWND_SEGMENTS } from "../../../src/transfer/core/bbr.ts";
import { MAX_RTO_MS, MIN_RTO_MS, RttEstimator } from "../../../src/transfer/core/rtt-estimator.ts";
import { timestampUs } from "../../../src/transfer/core/wire.ts";

function drain(s: GbnSender, now: number): number[] {
  const out: number[] = [];
  for (let seq = s.pollTransmit(now); seq !== undefined; seq = s.pollTransmit(now)) out.push(seq);
  return out;
}

describe("RTT estimator (RFC 6298 / RFC 9002)", () => {
  test("initial RTO is 999 ms: 333 + 4 × 166.5", () => {
    expect(new RttEstimator().rtoMs()).toBe(999);
  });

  test("first sample sets SRTT = R, RTTVAR = R/2; later ones smooth by 1/8 and 1/4", () => {
    const e = new RttEstimator();
    e.onSample(100);
    expect([e.srttMs, e.rttvarMs, e.rtoMs()]).toEqual([100, 50, 300]);
    e.onSample(200);
    expect(e.rttvarMs).toBeCloseTo(0.75 * 50 + 0.25 * 100);
    expect(e.srttMs).toBeCloseTo(0.875 * 100 + 0.125 * 200);
  });

  test("ack delay is subtracted only when it keeps the sample above min RTT", () => {
    const e = new RttEstimator();
    e.onSample(10, 0);
    e.onSample(30, 15);
    expect(e.srttMs).toBeCloseTo(0.875 * 10 + 0.125 * 15);
    const f = new RttEstimator();
    f.onSample(10, 0);
    f.onSample(12, 5); // 12 − 5 < min 10: not adjusted
    expect(f.srttMs).toBeCloseTo(0.875 * 10 + 0.125 * 12);
  });

  test("RTO has a LAN floor and a ceiling, and doubles on timeout until a new sample", () => {
    const e = new RttEstimator();
    e.onSample(0.1);
    expect(e.rtoMs()).toBe(MIN_RTO_MS);
    e.onTimeout();
    expect(e.rtoMs()).toBe(2 * MIN_RTO_MS);
    e.onTimeout();
    expect(e.rtoMs()).toBe(4 * MIN_RTO_MS);
    for (let i = 0; i < 20; i++) e.onTimeout();
    expect(e.rtoMs()).toBe(MAX_RTO_MS);
    e.onSample(0.1);
    expect(e.rtoMs()).toBe(MIN_RTO_MS);
  });
});

describe("congestion controller", () => {
  test("slow start grows by acked segments; a loss halves once per window; a timeout collapses", () => {
    const cc = new CongestionController(1000);
    expect(cc.cwnd).toBe(INITIAL_WINDOW_SEGMENTS);
    cc.onAck(10, 10);
    expect(cc.cwnd).toBe(20);
    expect(cc.onLoss(10, 30)).toBe(true);
    expect(cc.cwnd).toBe(10);
    expect(cc.ssthresh).toBe(10);
    expect(cc.onLoss(12, 30)).toBe(false); // same window: no second cut
    cc.onAck(5, 20); // still recovering: no growth
    expect(cc.cwnd).toBe(10);
    cc.onAck(10, 30); // congestion avoidance: +1 per window
    expect(cc.cwnd).toBeCloseTo(11);
    cc.onTimeout(50);
    expect(cc.cwnd).toBe(2);
    expect(cc.ssthresh).toBeCloseTo(5.5);
  });
});

describe("Go-Back-N sender", () => {
  test("the first timer fires at 999 ms, then the RTO doubles; a go-back resends from the base", () => {
    const s = new GbnSender({ totalSegments: 100, maxWindowSegments: 100, idleTimeoutMs: 60_000 }, 0, 100);
    expect(drain(s, 0)).toEqual(Array.from({ length: INITIAL_CWND_SEGMENTS }, (_, i) => i)); // the initial window
    expect(s.pollTimeout(0)).toBe(999);
    s.handleTimeout(998);
    expect(drain(s, 998)).toEqual([]);
    s.handleTimeout(999);
    expect(drain(s, 999)).toEqual([0, 1, 2, 3]); // the window collapsed to the minimum, from the base
    expect(s.pollTimeout(999)).toBe(999 + 1998);
    expect(s.stats().timeouts).toBe(1);
  });

  test("three duplicate ACKs trigger a go-back at once; a random loss does not shrink the window", () => {
    const s = new GbnSender({ totalSegments: 1000, maxWindowSegments: 1000, idleTimeoutMs: 60_000 }, 0, 1000);
    let now = 0;
    drain(s, now);
    // Ack the first 10 in one go: start-up grows the window by what was acknowledged.
    now = 10;
    s.handleAck(10, 1000, timestampUs(0), 0, now);
    expect(s.cc.cwnd).toBe(INITIAL_CWND_SEGMENTS + 10);
    const sent = drain(s, now); // paced: may be fewer at once
    expect(sent[0]).toBe(32);
    for (let i = 0; i < 3; i++) s.handleAck(10, 1000, timestampUs(now), 0, now);
    expect(s.cc.cwnd).toBe(INITIAL_CWND_SEGMENTS + 10);
    expect(s.nextSeq).toBe(10);
    expect(s.stats().fastRetransmits).toBe(1);
  });

  test("after a go-back, stale duplicates are ignored but fresh ones (the resent base lost again) go back at once", () => {
    const s = new GbnSender({ totalSegments: 1000, maxWindowSegments: 1000, idleTimeoutMs: 60_000 }, 0, 1000);
    drain(s, 0);
    s.handleAck(10, 1000, timestampUs(0), 0, 10);
    drain(s, 10);
    for (let i = 0; i < 3; i++) s.handleAck(10, 1000, timestampUs(10), 0, 11); // loss of 10: go back
    expect(s.stats().fastRetransmits).toBe(1);
    drain(s, 12); // resends from 10, stamped at 12 ms
    for (let i = 0; i < 5; i++) s.handleAck(10, 1000, timestampUs(10), 0, 12.5); // old flight draining
    expect(s.stats().fastRetransmits).toBe(1);
    for (let i = 0; i < 3; i++) s.handleAck(10, 1000, timestampUs(12), 0, 13); // caused by resent segments
    expect(s.stats().fastRetransmits).toBe(2);
    expect(s.nextSeq).toBe(10);
    expect(s.stats().timeouts).toBe(0);
  });

  test("the window is min(cwnd, receiver window) and never exceeded", () => {
    const s = new GbnSender({ totalSegments: 1000, maxWindowSegments: 1000, idleTimeoutMs: 60_000 }, 0, 3);
    expect(drain(s, 0)).toEqual([0, 1, 2]);
    s.handleAck(2, 5, timestampUs(0), 0, 1);
    expect(drain(s, 1 + 1000).length).toBeLessThanOrEqual(5);
    expect(s.inFlight).toBeLessThanOrEqual(5);
  });

  test("an echo older than the session gives no RTT sample (a stale echo once inflated SRTT to the server's uptime)", () => {
    const start = 30_000; // a server process 30 s old
    const s = new GbnSender({ totalSegments: 100, maxWindowSegments: 100, idleTimeoutMs: 60_000 }, start, 10);
    drain(s, start);
    s.handleAck(0, 10, 0, 0, start + 1); // echoes timestamp 0: nothing was sent then
    expect(s.rtt.hasSample).toBe(false);
    s.handleAck(1, 10, timestampUs(start), 0, start + 0.5);
    expect(s.rtt.srttMs).toBeCloseTo(0.5);
  });

  test("an ACK for data never sent fails the session instead of corrupting state", () => {
    const s = new GbnSender({ totalSegments: 10, maxWindowSegments: 10, idleTimeoutMs: 60_000 }, 0, 10);
    drain(s, 0);
    s.handleAck(11, 10, 0, 0, 1);
    expect(s.pollEvent()).toEqual({ type: "failed", reason: "peer acknowledged segment 11 that was never sent" });
  });

  test("with nothing left to send it asks for an immediate ACK, and probes before the RTO when that ACK is lost", () => {
    const s = new GbnSender({ totalSegments: 100, maxWindowSegments: 100, idleTimeoutMs: 60_000 }, 0, 4);
    expect(drain(s, 0)).toEqual([0, 1, 2, 3]);
    expect(s.awaitingAck).toBe(true);
    s.handleAck(4, 4, timestampUs(0), 0, 1); // RTT 1 ms: PTO = max(2·SRTT, SRTT + 4·RTTVAR) = 3 ms; RTO floor 5 ms
    expect(drain(s, 1)).toEqual([4, 5, 6, 7]);
    expect(s.pollTimeout(1)).toBe(4);
    s.handleTimeout(4); // the ACK for 4..7 was lost
    expect(drain(s, 4)).toEqual([7]); // one probe: the last segment again
    expect(s.stats().probes).toBe(1);
    s.handleAck(8, 4, timestampUs(4), 0, 4.5); // the probe's ACK: everything had arrived
    expect(s.base).toBe(8);
    expect(drain(s, 4.5)).toEqual([8, 9, 10, 11]);
    expect(s.stats()).toMatchObject({ timeouts: 0, fastRetransmits: 0, retransmitted: 1 });
  });

  test("a probe's ACK that stops short of the probe means loss: go back at once, no timeout", () => {
    const s = new GbnSender({ totalSegments: 100, maxWindowSegments: 100, idleTimeoutMs: 60_000 }, 0, 4);
    drain(s, 0);
    s.handleAck(4, 4, timestampUs(0), 0, 1);
    drain(s, 1); // 4..7; 5 is lost, and the duplicate ACKs for 6 and 7 as well
    s.handleTimeout(4);
    drain(s, 4);
    s.handleAck(5, 4, timestampUs(4), 0, 4.5);
    expect(s.base).toBe(5);
    expect(s.nextSeq).toBe(5);
    expect(drain(s, 4.5)[0]).toBe(5);
    expect(s.stats()).toMatchObject({ timeouts: 0, fastRetransmits: 1 });
  });

  test("segments sent after a probe are not counted lost when the probe's ACK does not cover them", () => {
    const s = new GbnSender({ totalSegments: 100, maxWindowSegments: 100, idleTimeoutMs: 60_000 }, 0, 4);
    drain(s, 0);
    s.handleAck(4, 4, timestampUs(0), 0, 1);
    drain(s, 1); // 4..7
    s.handleTimeout(4);
    expect(drain(s, 4)).toEqual([7]); // probe
    s.handleAck(6, 4, timestampUs(1), 0, 4.2); // a late ACK (for 4, 5) opens the window: 8, 9 go out
    expect(drain(s, 4.2)).toEqual([8, 9]);
    s.handleAck(8, 4, timestampUs(4), 0, 4.5); // the probe's ACK covers the probe (7), not 8 and 9: no loss
    expect(s.stats()).toMatchObject({ fastRetransmits: 0, timeouts: 0 });
    expect(s.nextSeq).toBe(10);
  });

  test("a receiver window of 0 stops new data, with no probe or go-back, until an ACK opens it again", () => {
    const s = new GbnSender({ totalSegments: 100, maxWindowSegments: 100, idleTimeoutMs: 60_000 }, 0, 8);
    expect(drain(s, 0)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    s.handleAck(8, 0, timestampUs(0), 0, 1); // all arrived, but the disk is behind: stop
    expect(drain(s, 1)).toEqual([]);
    expect(s.pollTimeout(1)).toBe(60_001); // nothing in flight: only the idle limit is pending
    s.handleTimeout(50);
    expect(drain(s, 50)).toEqual([]);
    s.handleAck(8, 8, timestampUs(0), 59_000, 60); // the window reopens (the echo was held 59 ms: not an RTT of 60)
    expect(drain(s, 60)).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    expect(s.stats()).toMatchObject({ retransmitted: 0, probes: 0, timeouts: 0 });
  });

  test("an empty transfer completes at once", () => {
    const s = new GbnSender({ totalSegments: 0, maxWindowSegments: 10, idleTimeoutMs: 1000 }, 0, 10);
    expect(s.pollEvent()).toEqual({ type: "completed" });
    expect(s.pollTransmit(0)).toBeUndefined();
  });
});

describe("Go-Back-N receiver", () => {
  test("accepts only the next segment; a gap draws an immediate duplicate ACK, a duplicate a delayed one", () => {
    const r = new GbnReceiver({ totalSegments: 10, windowSegments: 8, ackEvery: 2, ackDelayMs: 5 });
    expect(r.handleData(0, 100, 0)).toBe(true);
    expect(r.pollAck(0)).toBeUndefined(); // one segment: delayed
    expect(r.pollTimeout()).toBe(5);
    expect(r.handleData(2, 300, 1)).toBe(false);
    expect(r.pollAck(1)).toMatchObject({ cumulative: 1, windowSegments: 8, echoTimestampUs: 300, received: 2 });
    expect(r.handleData(1, 200, 2)).toBe(true);
    expect(r.pollAck(7)).toMatchObject({ cumulative: 2 }); // after the ACK delay
    // A resent copy of what is here: said soon, not at once (a go-back would draw a storm of them).
    expect(r.handleData(1, 200, 8)).toBe(false);
    expect(r.pollAck(8)).toBeUndefined();
    expect(r.pollAck(13)).toMatchObject({ cumulative: 2, received: 4 });
  });

  test("a segment the sender flags as awaiting its ACK is acknowledged at once", () => {
    const r = new GbnReceiver({ totalSegments: 10, windowSegments: 8, ackEvery: 8, ackDelayMs: 5 });
    r.handleData(0, 0, 0);
    expect(r.pollAck(0)).toBeUndefined();
    r.handleData(1, 0, 0, true);
    expect(r.pollAck(0)).toMatchObject({ cumulative: 2 });
  });

  test("ACKs every second in-order segment, or after the delay", () => {
    const r = new GbnReceiver({ totalSegments: 10, windowSegments: 8, ackEvery: 2, ackDelayMs: 5 });
    r.handleData(0, 0, 0);
    r.handleData(1, 0, 0);
    expect(r.pollAck(0)).toMatchObject({ cumulative: 2 });
    r.handleData(2, 0, 1);
    expect(r.pollAck(5)).toBeUndefined();
    expect(r.pollAck(6)).toMatchObject({ cumulative: 3, ackDelayUs: 5000 });
  });
});

describe("a send the socket refuses is taken back exactly", () => {
  test("a refused tail-loss probe, after the shell polled again, does not lower what counts as sent", () => {
    const s = new GbnSender({ totalSegments: 10, maxWindowSegments: 100, idleTimeoutMs: 60_000 }, 0, 100);
    expect(drain(s, 0)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    s.handleAck(5, 100, timestampUs(0), 0, 0.1); // RTT 0.1 ms; everything is sent, so a probe is armed
    const probeAt = s.pollTimeout(0.1)!;
    expect(probeAt).toBeCloseTo(2.1); // the probe (2 ms floor) comes before the RTO (5 ms floor)
    s.handleTimeout(probeAt);
    expect(s.pollTransmit(probeAt)).toBe(9); // the probe
    expect(s.pollTransmit(probeAt)).toBeUndefined(); // a batching shell asks for more
    s.unsend(9); // the kernel took none of the batch
    // The original segments all arrived: the receiver's valid ACK must complete the session.
    s.handleAck(10, 100, timestampUs(0), 0, probeAt + 1);
    expect(s.pollEvent()).toEqual({ type: "completed" });
  });

  test("a refused resend of the highest segment ever sent does not lower what counts as sent", () => {
    const s = new GbnSender({ totalSegments: 2, maxWindowSegments: 100, idleTimeoutMs: 60_000 }, 0, 100);
    expect(drain(s, 0)).toEqual([0, 1]);
    s.handleTimeout(999); // go back to 0
    expect(drain(s, 999)).toEqual([0, 1]);
    s.unsend(1);
    s.handleAck(2, 100, timestampUs(0), 0, 1000); // the first copies arrived after all
    expect(s.pollEvent()).toEqual({ type: "completed" });
  });

  test("a refused first send is sent again, and counts once", () => {
    const s = new GbnSender({ totalSegments: 3, maxWindowSegments: 100, idleTimeoutMs: 60_000 }, 0, 100);
    expect(drain(s, 0)).toEqual([0, 1, 2]);
    s.unsend(2);
    s.unsend(1);
    expect(drain(s, 0)).toEqual([1, 2]);
    expect(s.stats()).toMatchObject({ sent: 3, retransmitted: 0 });
    s.unsend(2);
    s.handleAck(2, 100, timestampUs(0), 0, 1);
    expect(s.pollEvent()).toBeUndefined(); // 2 never left: an ACK of 3 would be a lie
    s.handleAck(3, 100, timestampUs(0), 0, 2);
    expect(s.pollEvent()).toEqual({ type: "failed", reason: "peer acknowledged segment 3 that was never sent" });
  });
});

describe("a loss in a block that gets no repairs", () => {
  test("the first flight (one FEC block, no repairs yet) goes back one RTT after a loss, not at the retransmission timer", () => {
    const K = 64;
    const SEGMENT = 1374;
    const s = new GbnSender({ totalSegments: 1000, maxWindowSegments: 1000, idleTimeoutMs: 60_000, segmentBytes: SEGMENT, fecBlock: K }, 0, 1000);
    const r = new GbnReceiver({ totalSegments: 1000, windowSegments: 1000, ackEvery: 16, ackDelayMs: 2, fecBlock: K, segmentBytes: SEGMENT, lastSegmentBytes: SEGMENT });
    const flight = drain(s, 0);
    expect(flight).toEqual(Array.from({ length: K }, (_, i) => i)); // the window ends at the block
    expect(s.currentBlockRepairs).toBe(0);
    // 25 ms one way; segment 12 is lost. No repair will come for it, and nothing of the next block
    // either (the window ends here): what follows the gap must say so at once, not wait to be rebuilt.
    for (const seq of flight) {
      if (seq === 12) continue;
      r.handleData(seq, timestampUs(0), 25, seq === K - 1, new Uint8Array(SEGMENT));
      for (let a = r.pollAck(25); a; a = r.pollAck(25)) s.handleAck(a.cumulative, a.windowSegments, a.echoTimestampUs, a.ackDelayUs, 50, a.received, a.gap);
    }
    expect(r.counters.held).toBe(0);
    expect(s.stats()).toMatchObject({ fastRetransmits: 1, timeouts: 0 });
    expect(s.pollTransmit(50)).toBe(12);
  });

  test("with repairs flowing, what follows a gap in the block is held for them", () => {
    const K = 8;
    const SEGMENT = 100;
    const r = new GbnReceiver({ totalSegments: 100, windowSegments: 100, ackEvery: 16, ackDelayMs: 2, fecBlock: K, segmentBytes: SEGMENT, lastSegmentBytes: SEGMENT });
    for (let seq = 0; seq < K; seq++) r.handleData(seq, 0, 1, false, new Uint8Array(SEGMENT));
    r.handleRepair(0, 0, 0, 1, new Uint8Array(SEGMENT)); // block 0 had a repair: they are flowing
    r.handleData(K, 0, 2, false, new Uint8Array(SEGMENT));
    r.handleData(K + 2, 0, 2, false, new Uint8Array(SEGMENT)); // K + 1 lost
    expect(r.counters.held).toBe(1);
    expect(r.pollAck(10)?.gap).toBe(false);
  });
});
