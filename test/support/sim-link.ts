import type { Rng } from "./random.ts";

/**
 * A simulated one-way link for deterministic tests: seeded loss, duplication, reordering (extra delay
 * for some packets), delay + jitter, corruption (one flipped byte) and an MTU. Time is whatever the
 * driver says; nothing here reads a clock.
 */
export interface LinkProfile {
  loss: number;
  duplicate: number;
  reorder: number; // chance a packet is held back by up to 3× the delay
  corrupt: number;
  delayMs: number;
  jitterMs: number;
  mtu: number;
}

export const CLEAN: LinkProfile = { loss: 0, duplicate: 0, reorder: 0, corrupt: 0, delayMs: 1, jitterMs: 0, mtu: 65535 };

interface InFlight {
  at: number;
  order: number;
  bytes: Uint8Array;
}

export class SimLink {
  private queue: InFlight[] = [];
  private order = 0;
  readonly counters = { sent: 0, lost: 0, duplicated: 0, corrupted: 0, tooBig: 0, delivered: 0 };

  constructor(
    private readonly rng: Rng,
    private readonly profile: LinkProfile,
  ) {}

  send(bytes: Uint8Array, now: number): void {
    this.counters.sent++;
    if (bytes.byteLength > this.profile.mtu) {
      this.counters.tooBig++;
      return;
    }
    if (this.rng.chance(this.profile.loss)) {
      this.counters.lost++;
      return;
    }
    const copies = this.rng.chance(this.profile.duplicate) ? 2 : 1;
    if (copies === 2) this.counters.duplicated++;
    for (let i = 0; i < copies; i++) {
      let data = bytes.slice(); // the sender may reuse its buffer
      if (this.rng.chance(this.profile.corrupt)) {
        this.counters.corrupted++;
        data[this.rng.int(data.length)]! ^= 1 + this.rng.int(255);
      }
      let delay = this.profile.delayMs + this.rng.next() * this.profile.jitterMs;
      if (this.rng.chance(this.profile.reorder)) delay += this.rng.next() * 3 * this.profile.delayMs;
      this.queue.push({ at: now + delay, order: this.order++, bytes: data });
    }
  }

  nextDeliveryAt(): number | undefined {
    let min: number | undefined;
    for (const p of this.queue) if (min === undefined || p.at < min) min = p.at;
    return min;
  }

  /** Everything due by `now`, in arrival order. */
  deliver(now: number): Uint8Array[] {
    const due = this.queue.filter((p) => p.at <= now).sort((a, b) => a.at - b.at || a.order - b.order);
    this.queue = this.queue.filter((p) => p.at > now);
    this.counters.delivered += due.length;
    return due.map((p) => p.bytes);
  }
}
