import type { Rng } from "./random.ts";

/**
 * A simulated one-way link for deterministic tests: seeded loss (random, or in bursts), duplication,
 * reordering (extra delay for some packets), delay + jitter, corruption (one flipped byte), an MTU,
 * and optionally a bottleneck: a drop-tail queue drained at a fixed rate in front of the propagation
 * delay, as a real path's slowest hop is. Time is whatever the driver says; nothing here reads a clock.
 */
export interface LinkProfile {
  loss: number;
  duplicate: number;
  reorder: number; // chance a packet is held back by up to 3× the delay
  corrupt: number;
  delayMs: number;
  jitterMs: number;
  mtu: number;
  /** Bottleneck rate in bytes per ms (1 Mbit/s = 125); absent or 0: no bottleneck. */
  rateBytesPerMs?: number;
  /** The bottleneck's drop-tail queue, in bytes (default: 50 ms of the rate). */
  queueBytes?: number;
  /** Gilbert–Elliott loss: losses come in bursts of this many packets on average (`loss` stays the mean rate). */
  burstLength?: number;
  /** The sending socket refuses a send (its buffer is full) with this probability (read by the drivers). */
  refuse?: number;
}

export const CLEAN: LinkProfile = { loss: 0, duplicate: 0, reorder: 0, corrupt: 0, delayMs: 1, jitterMs: 0, mtu: 65535 };

interface InFlight {
  at: number;
  order: number;
  bytes: Uint8Array;
}

/** Earliest delivery first; ties in send order. A binary heap keeps thousands of runs fast. */
function before(a: InFlight, b: InFlight): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

export class SimLink {
  private readonly heap: InFlight[] = [];
  private order = 0;
  readonly counters = { sent: 0, lost: 0, queueDrops: 0, duplicated: 0, corrupted: 0, tooBig: 0, delivered: 0, deliveredBytes: 0 };
  /** When the bottleneck finishes sending what it already holds. */
  private busyUntil = 0;
  /** Gilbert–Elliott: in the bad (losing) state. */
  private bad = false;

  constructor(
    private readonly rng: Rng,
    readonly profile: LinkProfile,
  ) {}

  /** Random loss, or Gilbert–Elliott: bad state loses all, good none; mean burst `burstLength`, mean rate `loss`. */
  private lost(): boolean {
    const p = this.profile.loss;
    const burst = this.profile.burstLength;
    if (!burst || burst <= 1 || p <= 0) return this.rng.chance(p);
    const leaveBad = 1 / burst;
    const enterBad = (p * leaveBad) / (1 - p);
    this.bad = this.bad ? !this.rng.chance(leaveBad) : this.rng.chance(enterBad);
    return this.bad;
  }

  send(bytes: Uint8Array, now: number): void {
    this.counters.sent++;
    if (bytes.byteLength > this.profile.mtu) {
      this.counters.tooBig++;
      return;
    }
    let departAt = now;
    const rate = this.profile.rateBytesPerMs;
    if (rate) {
      // Drop-tail: what is queued ahead of this packet is the backlog not yet serialised.
      const backlogBytes = Math.max(0, this.busyUntil - now) * rate;
      if (backlogBytes + bytes.byteLength > (this.profile.queueBytes ?? 50 * rate)) {
        this.counters.queueDrops++;
        return;
      }
      this.busyUntil = Math.max(now, this.busyUntil) + bytes.byteLength / rate;
      departAt = this.busyUntil;
    }
    if (this.lost()) {
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
      this.push({ at: departAt + delay, order: this.order++, bytes: data });
    }
  }

  private push(item: InFlight): void {
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): InFlight {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  nextDeliveryAt(): number | undefined {
    return this.heap[0]?.at;
  }

  /** Everything due by `now`, in arrival order. */
  deliver(now: number): Uint8Array[] {
    const due: Uint8Array[] = [];
    while (this.heap.length > 0 && this.heap[0]!.at <= now) {
      const bytes = this.pop().bytes;
      due.push(bytes);
      this.counters.deliveredBytes += bytes.byteLength;
    }
    this.counters.delivered += due.length;
    return due;
  }
}
