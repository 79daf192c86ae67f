import { expect, test } from "bun:test";
import { probePath } from "../../src/transfer/path-probe.ts";
import { decodeProbe, encodeProbeAck, PacketType, readHeader } from "../../src/transfer/core/wire.ts";

/**
 * The small first probe is repeated after 100 ms; on a longer path the answer to the first one comes
 * after the repeat left. Its round trip is timed from the probe it answers.
 */
test("a small probe answered after it was repeated is timed from the probe it answers, not the repeat", async () => {
  const greeting = { token: Uint8Array.from({ length: 20 }, (_, i) => i + 1), kx: 1, epochId: new Uint8Array(16).fill(2), share: new Uint8Array(32).fill(3) };
  const ONE_WAY_MS = 90; // a 180 ms round trip: the first probe's answer arrives after its 100 ms repeat left
  const pending = new Set<Timer>();
  const server = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    binaryType: "uint8array",
    socket: {
      data: (s, data, port, address) => {
        const h = readHeader(data);
        if (h.type !== PacketType.Probe) return;
        const answer = encodeProbeAck(h.sessionId, { datagramBytes: decodeProbe(data), greeting }, 0);
        const timer = setTimeout(() => {
          pending.delete(timer);
          s.send(answer, port, address);
        }, 2 * ONE_WAY_MS);
        pending.add(timer);
      },
    },
  });
  try {
    const probe = await probePath("127.0.0.1", server.port, "127.0.0.1");
    if ("silent" in probe) throw new Error("the probe went unanswered");
    expect(probe.rttMs).toBeGreaterThanOrEqual(2 * ONE_WAY_MS - 5);
    expect(probe.rttMs).toBeLessThan(2 * ONE_WAY_MS + 80);
  } finally {
    for (const timer of pending) clearTimeout(timer);
    server.close();
  }
});
