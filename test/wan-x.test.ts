import { test } from "bun:test";
import { Rng } from "./support/random.ts";
import { simulateTransfer } from "./support/sim-transfer.ts";
import { pathProfiles } from "./support/sim-paths.ts";
test("x", () => {
  for (const loss of [0.01, 0.05]) {
    const p = { name: "x", mbit: 1000, rttMs: 0.2, loss };
    const data = new Rng(1).bytes(32e6);
    const { forward, backward } = pathProfiles(p);
    const r = simulateTransfer(new Rng(2), { data, segmentBytes: 1374, forward, backward, receiverWindow: 600, ackEvery: 16, maxWindow: 32768, maxSimMs: 600_000, fecBlock: 64 });
    const st = r.sender.stats();
    console.log(loss, r.event?.type, (r.simMs).toFixed(0), "ms", (32e6 / r.simMs / 1000).toFixed(1), "MB/s", "fr", st.fastRetransmits, "to", st.timeouts, "probes", st.probes, "resent", st.retransmitted, "rep", st.repairs, "p", st.lossRate.toFixed(3), "cwnd", st.cwnd.toFixed(0), st.state, "bw", (st.bandwidth * 1.374).toFixed(1), "MB/ms", "rto", st.rtoMs.toFixed(1), JSON.stringify(r.receiver.counters));
  }
}, 600000);
