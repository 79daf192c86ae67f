import { describe, expect, test } from "bun:test";
import { Rng } from "../../support/random.ts";
import { pathProfiles, type PathClass } from "../../support/sim-paths.ts";
import { simulateFlows, type FlowResult, type TcpFlowResult } from "../../support/sim-transfer.ts";
import { TCP_PAYLOAD_BYTES } from "../../support/sim-tcp-bbr.ts";

/**
 * ftx beside TCP on one bottleneck, in simulated time: the TCP flow is a model of Linux's BBR v1
 * (test/support/sim-tcp-bbr.ts), the congestion control a real path here defaults to. The rival is
 * checked first (alone it fills the link, two of them share it), then what ftx gets beside it. The
 * floors sit under what the code measured (docs/PROTOCOL.md §2 has the figures).
 */
const SEGMENT = 1374;
const FLOW = { segmentBytes: SEGMENT, receiverWindow: 20_000, ackEvery: 16, maxWindow: 32_768, fecBlock: 64 };
const PATH: PathClass = { name: "100 Mbit/s × 50 ms", mbit: 100, rttMs: 50, loss: 0 };

type Flow = FlowResult | TcpFlowResult;
/** Payload bytes a flow moved between two moments (from its 100 ms progress samples). */
function movedBetween(f: Flow, from: number, until: number): number {
  const at = (t: number) => f.progress.filter(([s]) => s <= t).at(-1)?.[1] ?? 0;
  return at(until) - at(from);
}

describe("beside TCP BBR (simulated)", () => {
  const linkBytesPerMs = PATH.mbit * 125;

  test("the rival model: alone it fills the link; two of them share it evenly", () => {
    const { forward, backward } = pathProfiles(PATH);
    const alone = simulateFlows(new Rng(1), forward, backward, [{ tcpBbr: true as const, bytes: 30e6 }]);
    expect(alone.flows[0]!.event).toEqual({ type: "completed" });
    const use = ((30e6 / alone.flows[0]!.finishedAt!) * (1500 / TCP_PAYLOAD_BYTES)) / linkBytesPerMs;
    expect(use).toBeGreaterThan(0.85); // start-up included
    const two = simulateFlows(new Rng(2), forward, backward, [{ tcpBbr: true as const, bytes: 60e6 }, { tcpBbr: true as const, bytes: 60e6 }], 10_000);
    const got = two.flows.map((f) => movedBetween(f, 2000, 10_000));
    for (const g of got) expect(g / (got[0]! + got[1]!)).toBeGreaterThan(0.4);
  }, 30_000);

  test("ftx joining a running TCP download gets a share of the path, and the two fill it", () => {
    const { forward, backward } = pathProfiles(PATH);
    const r = simulateFlows(new Rng(9), forward, backward, [{ tcpBbr: true as const, bytes: 200e6 }, { ...FLOW, data: new Rng(5).bytes(150e6), startAtMs: 2000 }], 10_000);
    const [tcp, ftx] = r.flows.map((f) => movedBetween(f, 4000, 10_000));
    const share = ftx! / (ftx! + tcp!);
    expect(share).toBeGreaterThanOrEqual(0.25);
    expect(share).toBeLessThanOrEqual(0.75);
    expect((ftx! + tcp!) / 6000 / linkBytesPerMs).toBeGreaterThan(0.8);
  }, 30_000);

  test("when the TCP download ends, ftx takes the whole path within seconds (a long, shallow-queued path)", () => {
    // 20 Mbit/s × 200 ms with a queue of a quarter BDP: BBR v1 beside it loses ~10 % at the queue.
    const path = { ...PATH, mbit: 20, rttMs: 200 };
    const link = path.mbit * 125;
    const { forward, backward } = pathProfiles(path);
    const r = simulateFlows(new Rng(3), forward, backward, [{ tcpBbr: true as const, bytes: link * 4000 }, { ...FLOW, data: new Rng(5).bytes(link * 12_000), startAtMs: 1000 }], 60_000);
    const [tcp, ftx] = r.flows;
    for (const f of r.flows) expect(f.event).toEqual({ type: "completed" });
    const ftxFlow = ftx as FlowResult;
    expect(Buffer.from(ftxFlow.output).equals(Buffer.from(new Rng(5).bytes(link * 12_000)))).toBe(true);
    // The first half-second after TCP's end in which ftx moved 80 % of the link's payload rate.
    const tcpEnd = tcp!.finishedAt!;
    let after: number | undefined;
    for (let t = tcpEnd; t < r.simMs && after === undefined; t += 100) if (movedBetween(ftx!, t, t + 500) / 500 > 0.8 * link * (SEGMENT / 1400)) after = t - tcpEnd;
    expect(after).toBeDefined();
    expect(after!).toBeLessThan(5000);
  }, 30_000);
});
