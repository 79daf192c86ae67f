import { describe, expect, test } from "bun:test";
import { BbrController } from "../../../src/transfer/core/bbr.ts";
import { GbnSender } from "../../../src/transfer/core/gbn-sender.ts";
import { timestampUs } from "../../../src/transfer/core/wire.ts";

/** A controller in start-up with a bandwidth estimate, a 50 ms minimum RTT, and `sent` datagrams of the round out. */
function inStartup(sent: number): BbrController {
  const cc = new BbrController(10_000, 0, 1374);
  cc.onRtt(50, 0);
  cc.onAck(10, 10, 20, { delivered: 10, intervalMs: 50, appLimited: false, priorDelivered: 0 }, 50);
  cc.onSent(sent);
  return cc;
}

describe("start-up and a go-back", () => {
  test("one loss with the RTT above the minimum does not end start-up: a round must lose ≥ 3 %", () => {
    const cc = inStartup(64);
    cc.onLoss(1); // 1 of 64: random loss
    expect(cc.onGoBack(75, 60)).toBe(false); // 25 ms above a 50 ms minimum, but one loss is no overflow
    expect(cc.state).toBe("startup");
  });

  test("a round losing ≥ 3 % with the RTT above the minimum is an overflow: start-up ends", () => {
    const cc = inStartup(64);
    cc.onLoss(4);
    expect(cc.onGoBack(75, 60)).toBe(true);
    cc.onAck(0, 10, 60, undefined, 60);
    expect(cc.state).toBe("drain");
  });
});

describe("the RTT the rate control is given", () => {
  // Every segment is acknowledged 50 ms after it left, but from 200 ms on the receiver holds each ACK
  // 40 ms (and says so), so those echoes come back 90 ms after they left.
  function run(reportDelay: boolean): string {
    const s = new GbnSender({ totalSegments: 100_000, maxWindowSegments: 10_000, idleTimeoutMs: 60_000, segmentBytes: 1374 }, 0, 10_000);
    const sent: { seq: number; at: number }[] = [];
    for (let t = 0; t < 700; t += 2) {
      const held = t >= 200 ? 40 : 0;
      let through = -1;
      let stamp = 0;
      while (sent.length > 0 && sent[0]!.at <= t - 50 - held) {
        const x = sent.shift()!;
        through = x.seq;
        stamp = x.at;
      }
      if (through >= 0) s.handleAck(through + 1, 10_000, timestampUs(stamp), reportDelay ? held * 1000 : 0, t, undefined, false);
      for (let seq = s.pollTransmit(t); seq !== undefined; seq = s.pollTransmit(t)) sent.push({ seq, at: t });
    }
    return s.stats().state;
  }

  test("is the echo less the receiver's ACK delay: ACKs held 40 ms do not look like a queue, and start-up goes on", () => {
    expect(run(true)).toBe("startup");
    // The same echoes without the delay reported: a queue of 40 ms, and start-up ends on it.
    expect(run(false)).not.toBe("startup");
  });
});

describe("ACKs that come in bunches", () => {
  // A path of 10 segments per ms and a 1 ms minimum RTT (a BDP of 10), whose receiver reads and
  // acknowledges 200 segments at a time every 20 ms, as a busy client's GRO reads do on a LAN.
  function windowAfterBunches(bunch: number): BbrController {
    const cc = new BbrController(10_000, 0, 1374);
    let delivered = 0;
    const ack = (t: number, n: number, intervalMs: number) => {
      cc.onRtt(1, t);
      cc.onAck(n, delivered + n, 0, { delivered: n, intervalMs, appLimited: false, priorDelivered: delivered }, t);
      delivered += n;
    };
    for (let t = 1; t <= 40; t++) ack(t, 10, 1); // start-up finds 10 per ms and stops growing
    expect(cc.state).toBe("probe_bw");
    for (let t = 60; t <= 1000; t += 20) ack(t, bunch, 20); // the same rate, in bunches
    return cc;
  }

  test("widen the window by the bunch (the measured aggregation): 2 BDPs and 48 KiB would hold 52 segments where a bunch is 200", () => {
    const cc = windowAfterBunches(200);
    expect(cc.bandwidth).toBeCloseTo(10, 5);
    expect(cc.cwnd).toBeGreaterThanOrEqual(200);
    expect(cc.cwnd).toBeLessThanOrEqual(2 * 10 + 200 + 1);
  });

  test("do not widen it where the ACKs come at the rate", () => {
    const steady = new BbrController(10_000, 0, 1374);
    let delivered = 0;
    for (let t = 1; t <= 1000; t++) {
      steady.onRtt(1, t);
      steady.onAck(10, delivered + 10, 0, { delivered: 10, intervalMs: 1, appLimited: false, priorDelivered: delivered }, t);
      delivered += 10;
    }
    expect(steady.cwnd).toBeLessThanOrEqual(2 * 10 + 32); // 2 BDPs and the fixed 32 segments
  });
});
