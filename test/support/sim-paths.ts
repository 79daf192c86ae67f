import type { LinkProfile } from "./sim-link.ts";

/** Path classes for the simulator, as the bench's emulated paths are: rate, one-way delay, queue, loss. */
export interface PathClass {
  name: string;
  mbit: number;
  rttMs: number;
  loss: number;
  burstLength?: number;
  /** Drop-tail queue in ms of the rate (default 50). */
  queueMs?: number;
}

/** The two directions of a path: data one way, ACKs the other; both lose at the same rate. */
export function pathProfiles(p: PathClass): { forward: LinkProfile; backward: LinkProfile } {
  const rateBytesPerMs = (p.mbit * 1e6) / 8 / 1000;
  const link: LinkProfile = {
    loss: p.loss,
    burstLength: p.burstLength,
    duplicate: 0,
    reorder: 0,
    corrupt: 0,
    delayMs: p.rttMs / 2,
    jitterMs: 0,
    mtu: 1500,
    rateBytesPerMs,
    queueBytes: Math.max(3000, (p.queueMs ?? 50) * rateBytesPerMs),
  };
  return { forward: link, backward: { ...link } };
}
