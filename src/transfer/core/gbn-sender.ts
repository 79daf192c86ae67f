import { BbrController, type DeliverySample } from "./bbr.ts";
import { repairsFor } from "./fec/fec-policy.ts";
import { MAX_RTO_MS, RttEstimator } from "./rtt-estimator.ts";
import { elapsedUs, timestampUs } from "./wire.ts";

/**
 * The Go-Back-N sender, sans-IO. It decides which segment goes out next and when; the shell reads the
 * bytes and sends the datagram. Inputs: `handleAck`, `handleTimeout`; outputs: `pollTransmit` (call
 * until undefined), `pollTimeout` (the one deadline), `pollEvent` (completed / failed). Time is `now`
 * in ms, passed in; nothing here throws on peer behaviour — it fails the session as an event.
 */
export interface SenderConfig {
  totalSegments: number;
  /** Upper bound on the congestion window, and so on memory the shell keeps per session. */
  maxWindowSegments: number;
  /** The segment size: the controller's initial window and ACK allowance are in bytes. */
  segmentBytes?: number;
  /** Fail when nothing at all has been acknowledged for this long. */
  idleTimeoutMs: number;
  dupAckThreshold?: number;
  /** Data segments per FEC block, 0 for no repair at all (ACCEPT tells the receiver the same number). */
  fecBlock?: number;
}

export type SenderEvent = { type: "completed" } | { type: "failed"; reason: string };

export interface SenderStats {
  srttMs: number;
  rttvarMs: number;
  minRttMs: number;
  rtoMs: number;
  cwnd: number;
  /** The rate controller's state and its bottleneck-bandwidth estimate (segments per ms). */
  state: string;
  bandwidth: number;
  peerWindow: number;
  sent: number;
  retransmitted: number;
  timeouts: number;
  fastRetransmits: number;
  probes: number;
  acked: number;
  /** REPAIR datagrams sent, and the raw loss rate (before repair) the receiver's counts show. */
  repairs: number;
  lossRate: number;
}

/** Timers fire no finer than ~1 ms in practice: let a burst cover that much sending. */
const PACING_BURST_MS = 1.5;
/**
 * A pacing wake-up that came late is owed what it missed, up to this much: on the 2-core bench
 * machine, 40 % of the wake-ups came 1–4 ms late, and a bucket that kept only PACING_BURST_MS of
 * tokens sent a fetch at 61 % of its pacing rate for seconds (20 Mbit/s × 200 ms, 2 % loss).
 */
const MAX_LATE_CREDIT_MS = 4;
const MIN_BURST_SEGMENTS = 4;
/**
 * …but never more than this many bytes at once beyond the pacing: 4 of loopback's 64 KiB segments
 * (256 KiB) overflowed the 200 KiB a 4 MB/s link queues in 50 ms, on every burst.
 */
const MAX_MIN_BURST_BYTES = 16 * 1024;
/** Tokens are fractional: compare with a little slack so float rounding cannot stall the pacer. */
const TOKEN_EPSILON = 1e-6;
/**
 * Tail-loss probe (RFC 8985 §7, QUIC's PTO in RFC 9002 §6.2): when the sender can send nothing more
 * and no ACK has come for about two round trips (at least 2 ms: a busy receiver's event loop is often
 * that late), it resends its last segment asking for an immediate ACK, rather than waiting for the RTO
 * (at least MIN_RTO_MS, and a Go-Back-N timeout resends the whole window and collapses the congestion
 * window). If only the ACK was lost, the probe's ACK moves the window on; if data was lost, the probe's
 * ACK shows it and the sender goes back at once. At 5 % loss on loopback, most timeouts were of this
 * kind: a lost ACK for a window-full of data.
 */
const PTO_MIN_MS = 2;
/** A timestamp echo older than this is garbage, not an RTT. */
const MAX_PLAUSIBLE_RTT_MS = 60_000;

/** What the newest pollTransmit handed out, for the shell: it builds DATA or REPAIR accordingly. */
export const enum SendKind {
  /** DATA, the first time this segment leaves. */
  First,
  Resend,
  Probe,
  /** REPAIR `repairIndex` of the FEC block whose first segment is the returned number. */
  Repair,
}

/**
 * The loss estimate follows about this many datagrams: long enough to see 1 % loss as more than
 * noise, short enough to follow a path that changes within a few seconds.
 */
const LOSS_MEMORY_DATAGRAMS = 2000;
const BURST_WINDOW_BLOCKS = 32;
const BURST_UP_FAILURES = 0.02;
const BURST_DOWN_FAILURES = 0.005;
const MAX_BURST_LENGTH = 8;

/** A bounded stack of what recent pollTransmit calls did (numbers only: no allocation per datagram). */
class UndoStack {
  /**
   * A shell's whole batch: SEND_BATCH transmits of up to 64 datagrams each (server-endpoint.ts). Older
   * entries are forgotten (their segments then count as lost).
   */
  private static readonly DEPTH = 512;
  private readonly seqs = new Float64Array(UndoStack.DEPTH);
  private readonly kinds = new Uint8Array(UndoStack.DEPTH);
  private readonly probeSeqs = new Float64Array(UndoStack.DEPTH);
  private readonly probeStamps = new Float64Array(UndoStack.DEPTH); // -1: none
  private length = 0;
  poppedProbeSeq = 0;
  poppedProbeStampUs: number | undefined;

  push(seq: number, kind: SendKind, probeSeq: number, probeStampUs: number | undefined): void {
    if (this.length === UndoStack.DEPTH) this.length = 0;
    const i = this.length++;
    this.seqs[i] = seq;
    this.kinds[i] = kind;
    this.probeSeqs[i] = probeSeq;
    this.probeStamps[i] = probeStampUs ?? -1;
  }

  /** The kind of the newest entry if it is for `seq` (and removes it); undefined otherwise. */
  pop(seq: number): SendKind | undefined {
    if (this.length === 0 || this.seqs[this.length - 1] !== seq) return undefined;
    const i = --this.length;
    this.poppedProbeSeq = this.probeSeqs[i]!;
    this.poppedProbeStampUs = this.probeStamps[i]! < 0 ? undefined : this.probeStamps[i];
    return this.kinds[i] as SendKind;
  }

  clear(): void {
    this.length = 0;
  }
}

/**
 * How many datagrams had left by a given send timestamp, checkpointed every few datagrams in a ring
 * (48 KiB a session; it covers 32,768 datagrams in flight, a 1 Gbit/s × 250 ms path at 1500 bytes).
 */
class SendLog {
  private static readonly SIZE = 4096;
  private static readonly EVERY = 8;
  private readonly stamps = new Uint32Array(SendLog.SIZE);
  private readonly counts = new Float64Array(SendLog.SIZE);
  private head = 0; // next slot
  private length = 0;

  /** Datagram number `count` left at `stampUs`. */
  sent(count: number, stampUs: number): void {
    if (count % SendLog.EVERY !== 0) return;
    this.stamps[this.head] = stampUs;
    this.counts[this.head] = count;
    this.head = (this.head + 1) % SendLog.SIZE;
    if (this.length < SendLog.SIZE) this.length++;
  }

  /** A send was taken back: a checkpoint beyond what left is forgotten. */
  unsent(count: number): void {
    if (this.length === 0) return;
    const last = (this.head + SendLog.SIZE - 1) % SendLog.SIZE;
    if (this.counts[last]! > count) {
      this.head = last;
      this.length--;
    }
  }

  /**
   * Datagrams that had surely left before one stamped `stampUs` (to within a checkpoint; never more,
   * as datagrams of one burst share a stamp), or undefined if that is older than the log.
   */
  sentBy(stampUs: number): number | undefined {
    if (this.length === 0) return undefined;
    const oldest = (this.head + SendLog.SIZE - this.length) % SendLog.SIZE;
    const origin = this.stamps[oldest]!;
    const target = elapsedUs(origin, stampUs);
    if (target === 0 || target >= 0x80000000) return undefined;
    // Binary search for the newest checkpoint strictly before the stamp (stamps rise along the ring).
    let lo = 0;
    let hi = this.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (elapsedUs(origin, this.stamps[(oldest + mid) % SendLog.SIZE]!) < target) lo = mid;
      else hi = mid - 1;
    }
    return this.counts[(oldest + lo) % SendLog.SIZE];
  }
}

/** Per-segment send state for delivery-rate sampling, in typed arrays indexed by seq modulo a power of two. */
class SendRecords {
  readonly seqs: Float64Array;
  readonly sentAt: Float64Array;
  readonly deliveredAt: Float64Array;
  readonly sentCount: Float64Array;
  readonly deliveredTimeAt: Float64Array;
  readonly firstSentAt: Float64Array;
  readonly appLimited: Uint8Array;
  private readonly mask: number;

  constructor(readonly capacity: number) {
    this.mask = capacity - 1;
    this.seqs = new Float64Array(capacity).fill(-1);
    this.sentAt = new Float64Array(capacity);
    this.deliveredAt = new Float64Array(capacity);
    this.sentCount = new Float64Array(capacity);
    this.deliveredTimeAt = new Float64Array(capacity);
    this.firstSentAt = new Float64Array(capacity);
    this.appLimited = new Uint8Array(capacity);
  }

  /** A larger table for a window of `needed` segments (the entries in flight are dropped: a few samples lost). */
  grown(needed: number): SendRecords {
    let capacity = this.capacity * 2;
    while (capacity < needed) capacity *= 2;
    return new SendRecords(capacity);
  }

  index(seq: number): number {
    return seq & this.mask;
  }

  has(seq: number): boolean {
    return seq >= 0 && this.seqs[seq & this.mask] === seq;
  }

  set(seq: number, sentAt: number, delivered: number, sentCount: number, deliveredTime: number, firstSent: number, appLimited: boolean): void {
    const i = seq & this.mask;
    this.seqs[i] = seq;
    this.sentAt[i] = sentAt;
    this.deliveredAt[i] = delivered;
    this.sentCount[i] = sentCount;
    this.deliveredTimeAt[i] = deliveredTime;
    this.firstSentAt[i] = firstSent;
    this.appLimited[i] = appLimited ? 1 : 0;
  }

  forget(seq: number): void {
    this.seqs[seq & this.mask] = -1;
  }
}

export class GbnSender {
  readonly rtt = new RttEstimator();
  readonly cc: BbrController;
  /** Per segment in flight, what delivery-rate sampling needs (indexed by seq & mask; grows with the window). */
  private rec = new SendRecords(1024);
  /** Segments delivered (the cumulative ACK), when the last ACK came, and when the sampled segment left. */
  private deliveredTimeMs: number;
  private firstSentTimeMs: number;
  /** Losses from here on belong to the loss already reacted to: one go-back per window of data. */
  private lossEpochUntilSeq = -1;
  /** Oldest unacknowledged segment. */
  base = 0;
  /** Next segment to transmit; goes back to `base` on loss. */
  nextSeq = 0;
  /** One past the highest segment ever sent (so a resend can be told from a first send). */
  private highestSent = 0;
  private peerWindow: number;
  private dupAcks = 0;
  /** Timestamp stamped on segments at the last go-back; duplicates caused by later segments are fresh evidence. */
  private goBackStampUs: number | undefined;
  private freshDupAcks = 0;
  private rtoDeadline: number | undefined;
  /** When to send a tail-loss probe, armed while the sender waits for an ACK with nothing to send. */
  private ptoDeadline: number | undefined;
  /** The probe to send at the next pollTransmit. */
  private probePending = false;
  /** The timestamp on the last probe: an ACK echoing it (or later) reports on everything sent up to it. */
  private probeStampUs: number | undefined;
  /** The segment the last probe carried. */
  private probeSeq = 0;
  /**
   * What each pollTransmit since the last other input did, newest last, so `unsend` can undo exactly
   * that send: a first send (it raised highestSent), a resend, or a probe (with the probe state it
   * replaced). Any other input clears it: after an ACK or a timeout there is nothing left to undo.
   */
  private readonly undo = new UndoStack();
  private lastAckAt: number;
  private readonly createdAt: number;
  private readonly events: SenderEvent[] = [];
  private finished = false;
  private tokens = 0;
  /** When the next pacing token was due, as pollTimeout last said: a later refill is owed the lateness. */
  private pacingDueAt: number | undefined;
  private lastRefillAt: number;
  private readonly dupAckThreshold: number;
  readonly counters = { sent: 0, retransmitted: 0, timeouts: 0, fastRetransmits: 0, probes: 0, repairs: 0 };
  /** What the newest pollTransmit handed out (and the repair's index within its block). */
  transmitKind: SendKind = SendKind.First;
  repairIndex = 0;
  private readonly fecBlock: number;
  /** The smallest burst pacing allows, in segments (fewer for large segments). */
  private readonly minBurst: number;
  /** Repairs due: for the block starting at `repairBlock`, indices `repairNext` … `repairCount` − 1. */
  private repairBlock = -1;
  private repairNext = 0;
  private repairCount = 0;
  /** Repairs chosen for the block now being sent, and that block's first segment. */
  private blockRepairs = 0;
  private blockRepairsStart = -1;
  /** The burst length repairs are sized for, and the block failures it is judged by. */
  private burstLength = 1;
  private blocksEnded = 0;
  private goBacksInWindow = 0;
  /** DATA and REPAIR datagrams that left, and how many the receiver says arrived (never more than left). */
  private datagramsSent = 0;
  private peerReceived = 0;
  /** The receiver reports its datagram count (every ACK of this protocol does; some tests do not). */
  private countsFromPeer = false;
  /** Raw loss rate (before repair), and what it was last computed from. */
  lossRate = 0;
  private lossMarkSent = 0;
  private lossMarkLost = 0;
  /** Datagrams the loss estimate has been fed so far. */
  private lossSeen = 0;
  /** How many datagrams had left by when: what an ACK's echoed timestamp says has arrived or been lost. */
  private readonly sendLog = new SendLog();
  /** Datagrams known to have arrived or been lost (everything sent before the newest echo). */
  private passed = 0;
  /**
   * After a go-back for congestion, the datagrams that had left by then: that old flight still fills
   * the queue, and until the echoes pass it, it counts against the window as if still in flight. A
   * go-back rewinds nextSeq to the base, so without this the resends would join a queue that is still
   * overflowing and be lost in turn (a second go-back, measured at 20 Mbit/s × 200 ms).
   */
  private oldFlightUntil = 0;
  private oldFlightExpiresAt = 0;

  constructor(
    private readonly config: SenderConfig,
    now: number,
    initialPeerWindow: number,
  ) {
    this.cc = new BbrController(config.maxWindowSegments, now, config.segmentBytes);
    this.deliveredTimeMs = now;
    this.firstSentTimeMs = now;
    this.peerWindow = Math.max(0, initialPeerWindow);
    this.lastAckAt = now;
    this.createdAt = now;
    this.fecBlock = config.fecBlock ?? 0;
    this.minBurst = Math.max(1, Math.min(MIN_BURST_SEGMENTS, Math.ceil(MAX_MIN_BURST_BYTES / (config.segmentBytes ?? 1374))));
    this.lastRefillAt = now;
    this.dupAckThreshold = config.dupAckThreshold ?? 3;
    if (config.totalSegments === 0) this.finish({ type: "completed" });
  }

  get done(): boolean {
    return this.finished;
  }

  get inFlight(): number {
    return this.nextSeq - this.base;
  }

  /** What counts against the window: the segments out, or the old flight of a congestion go-back while it drains. */
  private get flight(): number {
    const out = this.nextSeq - this.base;
    return this.passed >= this.oldFlightUntil ? out : Math.max(out, this.oldFlightUntil - this.passed);
  }

  /** The old flight has surely passed one round trip after the go-back: what no echo covered was lost. */
  private expireOldFlight(now: number): void {
    if (this.passed < this.oldFlightUntil && now >= this.oldFlightExpiresAt) this.passed = this.oldFlightUntil;
  }

  /**
   * Nothing more may go out until an ACK arrives: the window is full or everything has been sent. The
   * segment just sent should then ask for an immediate ACK (FLAG_ACK_NOW).
   */
  get awaitingAck(): boolean {
    return this.nextSeq - this.base >= this.window || this.nextSeq >= this.config.totalSegments;
  }

  /**
   * The usable window: min(congestion window, receiver window); 0 while the receiver says stop. With
   * FEC the congestion window never ends inside the base's block: a receiver holding a gap in a block
   * acknowledges nothing until the block's repairs (after its last segment) or the next block come,
   * so a window smaller than a block (a LAN's BDP is a few segments) would stall every loss until the
   * probe timer. On a 1500-byte LAN at 5 % loss that stall was 1,459 timeouts in a 64 MiB fetch.
   */
  get window(): number {
    let cwnd = Math.max(1, Math.floor(this.cc.cwnd));
    const k = this.fecBlock;
    if (k > 0) cwnd = Math.max(cwnd, Math.min(this.base - (this.base % k) + k, this.config.totalSegments) - this.base);
    return Math.min(cwnd, this.peerWindow);
  }

  private finish(event: SenderEvent): void {
    if (this.finished) return;
    this.finished = true;
    this.rtoDeadline = undefined;
    this.dropProbe();
    this.events.push(event);
  }

  /** The peer ran out of patience or misbehaved: the shell tells us and we fail cleanly. */
  abort(reason: string): void {
    this.finish({ type: "failed", reason });
  }

  private pacingRatePerMs(): number {
    if (!this.rtt.hasSample) return Infinity;
    return this.cc.pacingRate(this.rtt.srttMs);
  }

  private refill(now: number): void {
    const rate = this.pacingRatePerMs();
    const late = this.pacingDueAt === undefined ? 0 : Math.min(MAX_LATE_CREDIT_MS, Math.max(0, now - this.pacingDueAt));
    this.pacingDueAt = undefined;
    const cap = Math.max(this.minBurst, Math.min(this.window, rate * (PACING_BURST_MS + late)));
    if (rate === Infinity) this.tokens = cap;
    else this.tokens = Math.min(cap, this.tokens + (now - this.lastRefillAt) * rate);
    this.lastRefillAt = now;
  }

  /** The next segment to put on the wire now, or undefined (window full, paced, or nothing left). */
  pollTransmit(now: number): number | undefined {
    if (this.finished) return undefined;
    if (this.repairNext < this.repairCount) {
      // Repairs go before new data (the receiver is holding its block for them), paced like data.
      if (this.tokens < 1 - TOKEN_EPSILON) {
        this.refill(now);
        if (this.tokens < 1 - TOKEN_EPSILON) return undefined;
      }
      this.tokens -= 1;
      this.transmitKind = SendKind.Repair;
      this.repairIndex = this.repairNext++;
      this.counters.repairs++;
      this.datagramsSent++;
      this.sendLog.sent(this.datagramsSent, timestampUs(now));
      this.undo.push(this.repairBlock, SendKind.Repair, 0, undefined);
      return this.repairBlock;
    }
    if (this.probePending) {
      this.transmitKind = SendKind.Probe;
      this.datagramsSent++;
      this.sendLog.sent(this.datagramsSent, timestampUs(now));
      this.probePending = false;
      const seq = this.nextSeq - 1;
      this.counters.sent++;
      this.counters.retransmitted++;
      this.counters.probes++;
      this.undo.push(seq, SendKind.Probe, this.probeSeq, this.probeStampUs);
      this.probeStampUs = timestampUs(now);
      this.probeSeq = seq;
      return seq;
    }
    if (this.nextSeq >= this.config.totalSegments) return undefined;
    this.expireOldFlight(now);
    if (this.flight >= this.window) return undefined;
    if (this.tokens < 1 - TOKEN_EPSILON) {
      this.refill(now);
      if (this.tokens < 1 - TOKEN_EPSILON) return undefined;
    }
    this.tokens -= 1;
    const seq = this.nextSeq++;
    this.counters.sent++;
    this.datagramsSent++;
    this.sendLog.sent(this.datagramsSent, timestampUs(now));
    this.record(seq, now);
    if (seq < this.highestSent) {
      this.counters.retransmitted++;
      this.transmitKind = SendKind.Resend;
      this.undo.push(seq, SendKind.Resend, 0, undefined);
    } else {
      this.highestSent = seq + 1;
      this.transmitKind = SendKind.First;
      this.undo.push(seq, SendKind.First, 0, undefined);
    }
    if (this.fecBlock > 0) this.onBlockSend(seq);
    if (this.rtoDeadline === undefined) this.rtoDeadline = now + this.rtoMs();
    this.armProbe(now);
    return seq;
  }

  /**
   * FEC: the first segment of a block to leave (its first, or where a go-back resumed) decides how many
   * repairs the block gets; its last one queues them (they go before any new data). Resent blocks get
   * repairs again: the receiver still holds what it had of them.
   */
  private onBlockSend(seq: number): void {
    const k = this.fecBlock;
    const index = seq % k;
    const start = seq - index;
    if (start !== this.blockRepairsStart) {
      this.blockRepairsStart = start;
      this.blockRepairs = repairsFor(Math.min(k, this.config.totalSegments - start), this.lossRate, this.nextSeq - this.base + this.cc.cwnd, this.burstLength);
    }
    if (index === k - 1 || seq === this.config.totalSegments - 1) this.blockEnded();
    if ((index === k - 1 || seq === this.config.totalSegments - 1) && this.blockRepairs > 0) {
      this.repairBlock = start;
      this.repairNext = 0;
      this.repairCount = this.blockRepairs;
    }
  }

  /**
   * Loss in bursts defeats repairs sized for independent loss: a burst of 4 in a block that has 3 is
   * a go-back. The sender sees it as blocks failing more often than the binomial says, and doubles the
   * burst length it sizes repairs for (1 → 8) when more than 2 % of a window of 32 blocks failed,
   * halving it again when under 0.5 % did.
   */
  private blockEnded(): void {
    if (++this.blocksEnded < BURST_WINDOW_BLOCKS) return;
    const failed = this.goBacksInWindow / this.blocksEnded;
    if (failed > BURST_UP_FAILURES) this.burstLength = Math.min(MAX_BURST_LENGTH, this.burstLength * 2);
    else if (failed < BURST_DOWN_FAILURES) this.burstLength = Math.max(1, this.burstLength / 2);
    this.blocksEnded = 0;
    this.goBacksInWindow = 0;
  }

  /** The shell has no repair to give for the queued block (its encoder lost the block): forget them. */
  dropRepairs(): void {
    this.repairCount = this.repairNext;
  }

  /** How many repairs the block now being sent gets (the shell's encoder needs it at the block's first segment). */
  get currentBlockRepairs(): number {
    return this.blockRepairs;
  }

  /** What delivery-rate sampling needs to know about a segment leaving now. */
  private record(seq: number, now: number): void {
    if (this.nextSeq - 1 === this.base) {
      // Nothing else in flight: intervals start afresh (the draft's reset when the pipe is empty).
      this.firstSentTimeMs = now;
      this.deliveredTimeMs = now;
    }
    if (this.nextSeq - this.base > this.rec.capacity) this.rec = this.rec.grown(this.nextSeq - this.base);
    this.rec.set(seq, now, this.delivered, this.datagramsSent, this.deliveredTimeMs, this.firstSentTimeMs, this.peerWindow < this.cc.cwnd);
  }

  /** The retransmission timer: RFC 6298's, but never before a tail-loss probe could have done the job. */
  private rtoMs(): number {
    if (!this.rtt.hasSample) return this.rtt.rtoMs();
    return Math.min(MAX_RTO_MS, Math.max(this.rtt.rtoMs(), (this.ptoMs() + this.rtt.srttMs) * this.rtt.backoffFactor));
  }

  private ptoMs(): number {
    return Math.max(PTO_MIN_MS, 2 * this.rtt.srttMs, this.rtt.srttMs + 4 * this.rtt.rttvarMs);
  }

  /** Once nothing more may go out, a probe is due if no ACK comes within about two round trips. */
  private armProbe(now: number): void {
    if (!this.awaitingAck || this.nextSeq <= this.base || !this.rtt.hasSample) {
      this.ptoDeadline = undefined;
      return;
    }
    this.ptoDeadline = now + this.ptoMs();
  }

  /**
   * The shell could not send segment `seq` (the socket's send buffer is full, or it refused): take it
   * back, so it goes out next time instead of being treated as lost. Undoes the newest pollTransmit
   * not yet undone; a shell that refuses several of a batch calls this for them last first. A call
   * that matches nothing to undo (another input came between) changes nothing: the segment then
   * simply counts as lost, which is always safe.
   */
  unsend(seq: number): void {
    const top = this.undo.pop(seq);
    if (top === undefined) return;
    this.datagramsSent--;
    this.sendLog.unsent(this.datagramsSent);
    if (top === SendKind.Repair) {
      // A repair of an earlier block (a later block's repairs were queued since) is not sent again:
      // the state of those repairs is gone, and the block is lost as any lost datagram is.
      if (seq === this.repairBlock && this.repairNext > 0) this.repairNext--;
      this.counters.repairs--;
      this.tokens += 1;
      return;
    }
    this.counters.sent--;
    if (top === SendKind.Probe) {
      this.counters.retransmitted--;
      this.counters.probes--;
      this.probePending = true;
      this.probeSeq = this.undo.poppedProbeSeq;
      this.probeStampUs = this.undo.poppedProbeStampUs;
      return;
    }
    this.nextSeq--;
    this.tokens += 1;
    if (top === SendKind.Resend) this.counters.retransmitted--;
    else {
      this.highestSent = seq;
      // The block's last segment did not leave: neither may its repairs (none of them has: LIFO).
      if (this.repairBlock >= 0 && seq >= this.repairBlock && seq < this.repairBlock + this.fecBlock && this.repairNext === 0) this.repairCount = 0;
    }
  }

  /** The timestamp to stamp on a datagram sent at `now` (echoed back in ACKs for RTT). */
  stamp(now: number): number {
    return timestampUs(now);
  }

  /**
   * An ACK: `cumulative` is the next segment the receiver expects; `received`, how many DATA and REPAIR
   * datagrams it has had in this session (mod 2^32; undefined from a test that does not care).
   */
  handleAck(cumulative: number, peerWindow: number, echoTimestampUs: number, ackDelayUs: number, now: number, received?: number, gap = true): void {
    if (this.finished) return;
    this.undo.clear();
    if (cumulative > this.highestSent) {
      this.finish({ type: "failed", reason: `peer acknowledged segment ${cumulative} that was never sent` });
      return;
    }
    this.lastAckAt = now;
    // An echo older than this session is not an RTT: a peer that echoes nothing (or garbage) must not
    // be able to inflate SRTT, which would stall pacing.
    const rawRttMs = elapsedUs(echoTimestampUs, timestampUs(now)) / 1000;
    const plausible = rawRttMs <= MAX_PLAUSIBLE_RTT_MS && rawRttMs <= now - this.createdAt + 1;
    if (plausible) this.rtt.onSample(rawRttMs, ackDelayUs / 1000);
    // The rate control is told what the path took: the echo less the time the receiver held the ACK
    // (the estimator's RFC 9002 §5.3 adjustment). A receiver holding a gap for repairs repeats its ACK
    // with the newest echo 100 ms later; taken whole, a 50 ms path read 213 ms, start-up's go-back
    // took that for an overflowing queue, and start-up ended at a fifth of the path for seconds.
    const rttMs = this.rtt.latestAdjustedMs;
    if (received !== undefined) {
      this.noteReceived(received);
      // Everything sent before the datagram this ACK echoes has arrived or is lost (the path keeps order).
      const through = this.sendLog.sentBy(echoTimestampUs);
      if (through !== undefined) {
        if (through > this.passed) this.passed = through;
        this.updateLoss(through, plausible ? rttMs : undefined);
      }
    }
    // 0: the receiver's disk is behind; nothing new goes out until an ACK opens the window again.
    this.peerWindow = Math.max(0, peerWindow);
    if (plausible) this.cc.onRtt(rttMs, now);

    // The ACK of a probe reports on everything up to the probe's segment, all sent before it: what it
    // does not cover is lost (segments travel in order here, and a reordered one costs only a needless
    // resend). Segments sent after the probe may simply not have arrived yet.
    const answersProbe = this.probeStampUs !== undefined && elapsedUs(this.probeStampUs, echoTimestampUs) < 0x80000000;
    if (answersProbe) this.probeStampUs = undefined;
    if (answersProbe && cumulative <= this.probeSeq) {
      if (cumulative > this.base) this.acknowledge(cumulative, echoTimestampUs, now);
      if (this.finished) return;
      this.onLoss(now);
      this.goBack(now);
      return;
    }
    if (cumulative > this.base) {
      this.acknowledge(cumulative, echoTimestampUs, now);
      return;
    }
    // No new data acknowledged, but the flight may have drained (a go-back's old flight passing).
    this.cc.onAck(0, this.delivered, this.flight, undefined, now);
    // The probe's own duplicate delivery explains this ACK: it is no evidence of a gap.
    if (answersProbe) return;
    if (cumulative === this.base && this.base < this.highestSent && gap) {
      this.dupAcks++;
      // Early retransmit (RFC 5827): with fewer than 4 segments in flight, 3 duplicates can never come.
      const threshold = Math.max(1, Math.min(this.dupAckThreshold, this.highestSent - this.base - 1));
      if (this.dupAcks === threshold && this.base >= this.lossEpochUntilSeq) {
        this.onLoss(now);
        // Fast retransmit, Go-Back-N style: everything from the base goes again, without waiting for the timer.
        this.goBack(now);
        return;
      }
      // Within a loss epoch, duplicates caused by segments sent *after* our go-back mean the resent base
      // was lost again (NewReno's partial-ACK case): go back again now instead of waiting for the RTO.
      // Duplicates from the old flight, still draining, are told apart by the timestamp they echo.
      if (this.goBackStampUs !== undefined && elapsedUs(this.goBackStampUs, echoTimestampUs) < 0x80000000) {
        this.freshDupAcks++;
        if (this.freshDupAcks === threshold) this.goBack(now);
      }
    }
  }

  /** New data acknowledged up to `cumulative`. */
  private acknowledge(cumulative: number, echoTimestampUs: number, now: number): void {
    const newlyAcked = cumulative - this.base;
    this.base = cumulative;
    if (this.nextSeq < this.base) this.nextSeq = this.base;
    this.dupAcks = 0;
    this.freshDupAcks = 0;
    this.cc.onAck(newlyAcked, this.delivered, this.flight, this.sample(cumulative - 1, echoTimestampUs, now), now);
    if (this.base >= this.config.totalSegments) {
      this.finish({ type: "completed" });
      return;
    }
    // RFC 6298 §5.3: restart the timer when new data is acknowledged. (An old flight holding the
    // window needs no timer of its own: it expires one SRTT after its go-back, and pollTimeout wakes then.)
    this.rtoDeadline = this.base < this.nextSeq ? now + this.rtoMs() : undefined;
    this.armProbe(now);
  }

  private goBack(now: number): void {
    this.counters.fastRetransmits++;
    this.nextSeq = this.base;
    this.dupAcks = 0;
    this.freshDupAcks = 0;
    this.goBackStampUs = timestampUs(now);
    this.rtoDeadline = now + this.rtoMs();
    this.dropProbe();
  }

  /**
   * What has been delivered, for the rate model: datagrams the receiver counted (repairs and resent
   * copies crossed the bottleneck too), or acknowledged segments where it counts nothing.
   */
  private get delivered(): number {
    return this.countsFromPeer ? this.peerReceived : this.base;
  }

  /** The receiver's count of datagrams: never back, never beyond what left (a peer cannot inflate the model). */
  private noteReceived(received: number): void {
    this.countsFromPeer = true;
    // Unwrap the 32-bit count against what we know (a session sends far fewer than 2^32 between ACKs).
    const delta = (received - this.peerReceived) >>> 0;
    if (delta < 0x80000000) this.peerReceived = Math.min(this.datagramsSent, this.peerReceived + delta);
  }

  /**
   * Raw loss (before repair) from the receiver's count: everything sent up to the newest segment this
   * ACK covers has arrived or is lost (the path keeps order), so the difference is what was lost.
   */
  private updateLoss(sentThrough: number, rttMs: number | undefined): void {
    const lost = Math.max(0, sentThrough - this.peerReceived);
    const sent = sentThrough - this.lossMarkSent;
    if (sent <= 0) return;
    const newlyLost = Math.max(0, lost - this.lossMarkLost);
    const queued = rttMs !== undefined && this.cc.congested(rttMs, newlyLost, sent);
    this.lossMarkSent = sentThrough;
    this.lossMarkLost = Math.max(this.lossMarkLost, lost);
    // Repairs are sized for the loss the path has without a queue: a queue overflowing (a queue in
    // the RTT, and a round losing far more than random loss does) is congestion, which the rate
    // control answers, and repairs sized for it would only add to it.
    // Until the memory has filled, the plain average of what was seen (an average that starts at 0
    // would take 2,000 datagrams to believe 2 % loss, and start-up's go-backs cost a round each).
    if (!queued) this.lossSeen += sent;
    const weight = queued ? 0 : Math.min(1, sent / Math.min(LOSS_MEMORY_DATAGRAMS, this.lossSeen));
    this.lossRate += weight * (Math.min(1, newlyLost / sent) - this.lossRate);
    if (newlyLost > 0) this.cc.onLoss(newlyLost);
    this.cc.onSent(sent);
  }

  /** A loss the sender goes back for: later losses of what is already sent are part of it. */
  private onLoss(now: number): void {
    this.lossEpochUntilSeq = this.nextSeq;
    // A block the repairs could not rebuild, unless a queue overflowed (congestion, not burstiness).
    if (!this.cc.onGoBack(this.rtt.latestAdjustedMs, this.nextSeq - this.base)) this.goBacksInWindow++;
    else {
      this.oldFlightUntil = this.datagramsSent;
      this.oldFlightExpiresAt = now + this.rtt.srttMs;
    }
  }

  /** The delivery-rate sample an ACK covering segment `seq` gives (draft-cheng-iccrg-delivery-rate-estimation §3.3). */
  private readonly deliverySample: DeliverySample = { delivered: 0, intervalMs: 0, appLimited: false, priorDelivered: 0 };
  private sample(seq: number, echoTimestampUs: number, now: number): DeliverySample | undefined {
    const r = this.rec;
    if (!r.has(seq)) return undefined;
    const i = r.index(seq);
    const sentAt = r.sentAt[i]!;
    // The ACK left the receiver before this (re)transmission of the segment could have arrived: it
    // reports on an earlier copy, and the record would mis-time it (Karn's ambiguity, for rates).
    if (elapsedUs(timestampUs(sentAt), echoTimestampUs) >= 0x80000000) return undefined;
    const sendElapsed = sentAt - r.firstSentAt[i]!;
    const ackElapsed = now - r.deliveredTimeAt[i]!;
    const out = this.deliverySample;
    out.priorDelivered = r.deliveredAt[i]!;
    out.delivered = this.delivered - out.priorDelivered;
    out.appLimited = r.appLimited[i] === 1;
    const interval = Math.max(sendElapsed, ackElapsed);
    // Shorter than the minimum RTT: the ACKs were compressed, the rate would be a fantasy.
    out.intervalMs = interval < this.rtt.minRttMs * 0.9 ? 0 : interval;
    this.firstSentTimeMs = sentAt;
    this.deliveredTimeMs = now;
    r.forget(seq);
    return out;
  }

  /** No probe armed or due, and no probe's ACK awaited: the sender is going back anyway. */
  private dropProbe(): void {
    this.ptoDeadline = undefined;
    this.probePending = false;
    this.probeStampUs = undefined;
  }

  handleTimeout(now: number): void {
    if (this.finished) return;
    this.undo.clear();
    if (now - this.lastAckAt >= this.config.idleTimeoutMs) {
      this.finish({ type: "failed", reason: `no acknowledgement for ${(this.config.idleTimeoutMs / 1000).toFixed(0)}s` });
      return;
    }
    if (this.ptoDeadline !== undefined && now >= this.ptoDeadline && (this.rtoDeadline === undefined || now < this.rtoDeadline)) {
      // One probe per wait: if it goes unanswered too, the RTO decides.
      this.ptoDeadline = undefined;
      if (this.nextSeq > this.base) this.probePending = true;
      return;
    }
    if (this.rtoDeadline === undefined || now < this.rtoDeadline) return;
    if (this.base >= this.nextSeq && this.base >= this.highestSent) {
      this.rtoDeadline = undefined;
      return;
    }
    this.counters.timeouts++;
    this.passed = this.oldFlightUntil = this.datagramsSent;
    this.dropProbe();
    this.rtt.onTimeout();
    this.cc.onTimeout();
    this.lossEpochUntilSeq = this.nextSeq;
    this.nextSeq = this.base;
    this.dupAcks = 0;
    this.freshDupAcks = 0;
    this.goBackStampUs = timestampUs(now);
    this.tokens = Math.max(this.tokens, 1);
    this.rtoDeadline = now + this.rtoMs();
  }

  /** The earliest moment the shell must call back: RTO, idle limit, or the next pacing token. */
  pollTimeout(now: number): number | undefined {
    if (this.finished) return undefined;
    // Repairs due go first, paced: a probe waits behind them (pollTransmit gives nothing until a token).
    const repairsDue = this.repairNext < this.repairCount;
    this.expireOldFlight(now);
    if (this.probePending && (!repairsDue || this.tokens >= 1 - TOKEN_EPSILON)) return now;
    let deadline = this.lastAckAt + this.config.idleTimeoutMs;
    if (this.rtoDeadline !== undefined && this.rtoDeadline < deadline) deadline = this.rtoDeadline;
    if (this.ptoDeadline !== undefined && this.ptoDeadline < deadline) deadline = this.ptoDeadline;
    // An old flight holding the window expires at a known time: wake then.
    if (this.passed < this.oldFlightUntil && this.oldFlightExpiresAt < deadline) deadline = this.oldFlightExpiresAt;
    if ((repairsDue || (this.nextSeq < this.config.totalSegments && this.flight < this.window)) && this.tokens < 1 - TOKEN_EPSILON) {
      const rate = this.pacingRatePerMs();
      const ready = rate === Infinity ? now : Math.max(now, this.lastRefillAt + (1 - this.tokens) / rate);
      if (ready < deadline) deadline = ready;
      this.pacingDueAt = ready;
    }
    return deadline;
  }

  pollEvent(): SenderEvent | undefined {
    return this.events.shift();
  }

  stats(): SenderStats {
    return {
      srttMs: this.rtt.srttMs,
      rttvarMs: this.rtt.rttvarMs,
      minRttMs: this.rtt.minRttMs,
      rtoMs: this.rtoMs(),
      cwnd: this.cc.cwnd,
      state: this.cc.state,
      bandwidth: this.cc.bandwidth,
      peerWindow: this.peerWindow,
      acked: this.base,
      lossRate: this.lossRate,
      ...this.counters,
    };
  }
}
