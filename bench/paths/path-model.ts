/**
 * One direction of an emulated network path, as a pure model: no I/O, no clock, no global
 * randomness. The emulator (emulator.ts) feeds it packets with the time they arrived and asks it
 * which ones are due; tests drive it in simulated time.
 *
 *   offer ──► drop-tail queue ──► serializer at the bottleneck rate ──► propagation delay ──► release
 *                 │ full: "dropped"          │ loss on the wire: "lost"
 *
 * - The bottleneck serializes one packet at a time at `rateBitsPerSec`; packets wait for it in a
 *   drop-tail queue holding at most `queueBytes` (the packet being serialized included). A packet that
 *   does not fit is dropped on arrival and does not change the queue.
 * - Loss happens on the wire behind the bottleneck: a lost packet has used its share of the rate, as on
 *   a real lossy link, so the most a transport can deliver is rate × (1 − loss). Loss is Bernoulli with
 *   probability `lossRate`, or, with `burstLen` > 1, a two-state Gilbert–Elliott chain (a good state
 *   that loses nothing, a bad state that loses everything) whose stationary loss rate is `lossRate` and
 *   whose mean loss burst is `burstLen` packets.
 * - Every packet then takes `delayMs` more to reach the far end. Packets leave in the order they came:
 *   the serializer is FIFO and the delay is the same for all.
 *
 * Packets are identified by a number the caller gives (the emulator uses its buffer slot), so the
 * model keeps no packet bytes and allocates nothing per packet.
 */

export interface PathDirectionConfig {
  /** Bottleneck rate in bits per second; 0 or Infinity: no bottleneck (and no queue). */
  rateBitsPerSec: number;
  /** Drop-tail queue in bytes. Give this or `queueMs`; default 50 ms of the rate. */
  queueBytes?: number;
  /** Drop-tail queue in milliseconds of the rate (ignored when `queueBytes` is given). */
  queueMs?: number;
  /** One-way propagation delay, added after the bottleneck. */
  delayMs: number;
  /** Long-run fraction of packets lost on the wire, 0 ≤ lossRate < 1. */
  lossRate: number;
  /** Mean length of a loss burst in packets; ≤ 1 (or absent): independent (Bernoulli) loss. */
  burstLen?: number;
}

export type OfferVerdict = "queued" | "dropped" | "lost";

/** Uniform numbers in [0, 1). */
export type Random = () => number;

/**
 * A small seeded generator (sfc32, seeded through splitmix32): the same seed replays the same losses.
 * Period ~2^127, passes PractRand far past what a benchmark draws.
 */
export function seededRandom(seed: number): Random {
  let s = seed >>> 0;
  const splitmix = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = 1;
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/** The default queue: 50 ms of the rate, a common buffer on access links. */
export const DEFAULT_QUEUE_MS = 50;

export interface PathDirectionCounters {
  offered: number;
  queued: number;
  /** Dropped on arrival at a full queue. */
  dropped: number;
  /** Lost on the wire (random or burst loss). */
  lost: number;
  released: number;
  releasedBytes: number;
}

export class PathDirection {
  private readonly bytesPerMs: number;
  readonly queueBytes: number;
  private readonly delayMs: number;
  private readonly lossRate: number;
  /** Gilbert–Elliott transition probabilities per packet; undefined for Bernoulli loss. */
  private readonly goodToBad: number | undefined;
  private readonly badToGood: number;
  private bad = false;
  /** When the serializer has finished every packet accepted so far (ms). */
  private busyUntilMs = -Infinity;
  // A FIFO of packets in flight (serializing or propagating): their tags and when each is due.
  private tags: Int32Array;
  private dueAtMs: Float64Array;
  private head = 0;
  private count = 0;
  private sizes: Int32Array;
  readonly counters: PathDirectionCounters = { offered: 0, queued: 0, dropped: 0, lost: 0, released: 0, releasedBytes: 0 };

  constructor(
    private readonly random: Random,
    config: PathDirectionConfig,
    initialCapacity = 1024,
  ) {
    const { rateBitsPerSec, delayMs, lossRate } = config;
    if (!(rateBitsPerSec >= 0)) throw new RangeError(`rateBitsPerSec must be ≥ 0, got ${rateBitsPerSec}`);
    if (!(delayMs >= 0)) throw new RangeError(`delayMs must be ≥ 0, got ${delayMs}`);
    if (!(lossRate >= 0 && lossRate < 1)) throw new RangeError(`lossRate must be in [0, 1), got ${lossRate}`);
    this.bytesPerMs = rateBitsPerSec > 0 && Number.isFinite(rateBitsPerSec) ? rateBitsPerSec / 8000 : Infinity;
    this.queueBytes = config.queueBytes ?? (config.queueMs ?? DEFAULT_QUEUE_MS) * this.bytesPerMs;
    this.delayMs = delayMs;
    this.lossRate = lossRate;
    const burstLen = config.burstLen ?? 1;
    if (burstLen > 1 && lossRate > 0) {
      // Stationary loss π_bad = g / (g + b) = lossRate with b = 1 / burstLen (a geometric burst).
      this.badToGood = 1 / burstLen;
      this.goodToBad = (lossRate * this.badToGood) / (1 - lossRate);
    } else {
      this.badToGood = 1;
      this.goodToBad = undefined;
    }
    this.tags = new Int32Array(initialCapacity);
    this.dueAtMs = new Float64Array(initialCapacity);
    this.sizes = new Int32Array(initialCapacity);
  }

  /** Bytes waiting for or in the serializer at `nowMs`. */
  backlogBytes(nowMs: number): number {
    if (this.bytesPerMs === Infinity) return 0;
    return Math.max(0, this.busyUntilMs - nowMs) * this.bytesPerMs;
  }

  /** Packets accepted and not yet released (serializing, queued or propagating). */
  get inFlight(): number {
    return this.count;
  }

  /**
   * A packet of `sizeBytes` arrives at `nowMs` (times must not go backwards). "queued": it will be
   * released later under `tag`; "dropped": the queue was full; "lost": it used the bottleneck but
   * will never arrive. Tags are integers ≥ 0.
   */
  offer(sizeBytes: number, nowMs: number, tag = 0): OfferVerdict {
    const c = this.counters;
    c.offered++;
    let departMs = nowMs;
    if (this.bytesPerMs !== Infinity) {
      const startMs = Math.max(this.busyUntilMs, nowMs);
      if ((startMs - nowMs) * this.bytesPerMs + sizeBytes > this.queueBytes) {
        c.dropped++;
        return "dropped";
      }
      departMs = startMs + sizeBytes / this.bytesPerMs;
      this.busyUntilMs = departMs;
    }
    if (this.loses()) {
      c.lost++;
      return "lost";
    }
    if (this.count === this.tags.length) this.grow();
    const at = (this.head + this.count) % this.tags.length;
    this.tags[at] = tag;
    this.sizes[at] = sizeBytes;
    this.dueAtMs[at] = departMs + this.delayMs;
    this.count++;
    c.queued++;
    return "queued";
  }

  /** When the next packet is due at the far end, or undefined when none is in flight. */
  nextReleaseAt(): number | undefined {
    return this.count ? this.dueAtMs[this.head] : undefined;
  }

  /** The tag of the next packet due by `nowMs`, removing it; -1 when none is due yet. */
  pollRelease(nowMs: number): number {
    if (!this.count || this.dueAtMs[this.head]! > nowMs) return -1;
    const tag = this.tags[this.head]!;
    this.counters.released++;
    this.counters.releasedBytes += this.sizes[this.head]!;
    this.head = (this.head + 1) % this.tags.length;
    this.count--;
    return tag;
  }

  /** Every packet due by `nowMs`, oldest first (allocates: for tests and tools, not the packet loop). */
  release(nowMs: number): number[] {
    const out: number[] = [];
    for (let tag = this.pollRelease(nowMs); tag !== -1; tag = this.pollRelease(nowMs)) out.push(tag);
    return out;
  }

  private loses(): boolean {
    if (this.lossRate === 0) return false;
    if (this.goodToBad === undefined) return this.random() < this.lossRate;
    // The state this packet crosses in, then the chain steps on.
    const lost = this.bad;
    this.bad = this.bad ? this.random() >= this.badToGood : this.random() < this.goodToBad;
    return lost;
  }

  private grow(): void {
    const n = this.tags.length;
    const tags = new Int32Array(n * 2);
    const due = new Float64Array(n * 2);
    const sizes = new Int32Array(n * 2);
    for (let i = 0; i < this.count; i++) {
      const from = (this.head + i) % n;
      tags[i] = this.tags[from]!;
      due[i] = this.dueAtMs[from]!;
      sizes[i] = this.sizes[from]!;
    }
    this.tags = tags;
    this.dueAtMs = due;
    this.sizes = sizes;
    this.head = 0;
  }
}
