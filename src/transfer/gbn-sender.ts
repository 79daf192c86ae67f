import { CongestionController } from "./congestion.ts";
import { RttEstimator } from "./rtt-estimator.ts";
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
  /** Fail when nothing at all has been acknowledged for this long. */
  idleTimeoutMs: number;
  dupAckThreshold?: number;
}

export type SenderEvent = { type: "completed" } | { type: "failed"; reason: string };

export interface SenderStats {
  srttMs: number;
  rttvarMs: number;
  minRttMs: number;
  rtoMs: number;
  cwnd: number;
  ssthresh: number;
  peerWindow: number;
  sent: number;
  retransmitted: number;
  timeouts: number;
  fastRetransmits: number;
  probes: number;
  acked: number;
}

/** Pacing gain: 2× the window per RTT in slow start, 1.25× after (as Linux TCP pacing does). */
const PACING_GAIN_SLOW_START = 2;
const PACING_GAIN = 1.25;
/** Timers fire no finer than ~1 ms in practice: let a burst cover that much sending. */
const PACING_BURST_MS = 1.5;
const MIN_BURST_SEGMENTS = 4;
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

const enum SendKind {
  First,
  Resend,
  Probe,
}

/** A bounded stack of what recent pollTransmit calls did (numbers only: no allocation per datagram). */
class UndoStack {
  /** More than a shell's batch: older entries are forgotten (their segments then count as lost). */
  private static readonly DEPTH = 64;
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

export class GbnSender {
  readonly rtt = new RttEstimator();
  readonly cc: CongestionController;
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
  private lastRefillAt: number;
  private readonly dupAckThreshold: number;
  readonly counters = { sent: 0, retransmitted: 0, timeouts: 0, fastRetransmits: 0, probes: 0 };

  constructor(
    private readonly config: SenderConfig,
    now: number,
    initialPeerWindow: number,
  ) {
    this.cc = new CongestionController(config.maxWindowSegments);
    this.peerWindow = Math.max(0, initialPeerWindow);
    this.lastAckAt = now;
    this.createdAt = now;
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

  /**
   * Nothing more may go out until an ACK arrives: the window is full or everything has been sent. The
   * segment just sent should then ask for an immediate ACK (FLAG_ACK_NOW).
   */
  get awaitingAck(): boolean {
    return this.nextSeq - this.base >= this.window || this.nextSeq >= this.config.totalSegments;
  }

  /** The usable window: min(congestion window, receiver window); 0 while the receiver says stop. */
  get window(): number {
    return Math.min(Math.max(1, Math.floor(this.cc.cwnd)), this.peerWindow);
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
    const gain = this.cc.inSlowStart ? PACING_GAIN_SLOW_START : PACING_GAIN;
    return (gain * this.cc.cwnd) / Math.max(this.rtt.srttMs, 0.05);
  }

  private refill(now: number): void {
    const rate = this.pacingRatePerMs();
    const cap = Math.max(MIN_BURST_SEGMENTS, Math.min(this.window, rate * PACING_BURST_MS));
    if (rate === Infinity) this.tokens = cap;
    else this.tokens = Math.min(cap, this.tokens + (now - this.lastRefillAt) * rate);
    this.lastRefillAt = now;
  }

  /** The next segment to put on the wire now, or undefined (window full, paced, or nothing left). */
  pollTransmit(now: number): number | undefined {
    if (this.finished) return undefined;
    if (this.probePending) {
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
    if (this.nextSeq - this.base >= this.window) return undefined;
    if (this.tokens < 1 - TOKEN_EPSILON) {
      this.refill(now);
      if (this.tokens < 1 - TOKEN_EPSILON) return undefined;
    }
    this.tokens -= 1;
    const seq = this.nextSeq++;
    this.counters.sent++;
    if (seq < this.highestSent) {
      this.counters.retransmitted++;
      this.undo.push(seq, SendKind.Resend, 0, undefined);
    } else {
      this.highestSent = seq + 1;
      this.undo.push(seq, SendKind.First, 0, undefined);
    }
    if (this.rtoDeadline === undefined) this.rtoDeadline = now + this.rtt.rtoMs();
    this.armProbe(now);
    return seq;
  }

  /** Once nothing more may go out, a probe is due if no ACK comes within about two round trips. */
  private armProbe(now: number): void {
    if (!this.awaitingAck || this.nextSeq <= this.base || !this.rtt.hasSample) {
      this.ptoDeadline = undefined;
      return;
    }
    const pto = Math.max(PTO_MIN_MS, 2 * this.rtt.srttMs, this.rtt.srttMs + 4 * this.rtt.rttvarMs);
    this.ptoDeadline = now + pto;
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
    else this.highestSent = seq;
  }

  /** The timestamp to stamp on a datagram sent at `now` (echoed back in ACKs for RTT). */
  stamp(now: number): number {
    return timestampUs(now);
  }

  handleAck(cumulative: number, peerWindow: number, echoTimestampUs: number, ackDelayUs: number, now: number): void {
    if (this.finished) return;
    this.undo.clear();
    if (cumulative > this.highestSent) {
      this.finish({ type: "failed", reason: `peer acknowledged segment ${cumulative} that was never sent` });
      return;
    }
    this.lastAckAt = now;
    // 0: the receiver's disk is behind; nothing new goes out until an ACK opens the window again.
    this.peerWindow = Math.max(0, peerWindow);
    // An echo older than this session is not an RTT: a peer that echoes nothing (or garbage) must not
    // be able to inflate SRTT, which would stall pacing.
    const rttMs = elapsedUs(echoTimestampUs, timestampUs(now)) / 1000;
    if (rttMs <= MAX_PLAUSIBLE_RTT_MS && rttMs <= now - this.createdAt + 1) this.rtt.onSample(rttMs, ackDelayUs / 1000);

    // The ACK of a probe reports on everything up to the probe's segment, all sent before it: what it
    // does not cover is lost (segments travel in order here, and a reordered one costs only a needless
    // resend). Segments sent after the probe may simply not have arrived yet.
    const answersProbe = this.probeStampUs !== undefined && elapsedUs(this.probeStampUs, echoTimestampUs) < 0x80000000;
    if (answersProbe) this.probeStampUs = undefined;
    if (answersProbe && cumulative <= this.probeSeq) {
      if (cumulative > this.base) this.acknowledge(cumulative, now);
      if (this.finished) return;
      this.cc.onLoss(this.base, this.nextSeq);
      this.goBack(now);
      return;
    }
    if (cumulative > this.base) {
      this.acknowledge(cumulative, now);
      return;
    }
    // The probe's own duplicate delivery explains this ACK: it is no evidence of a gap.
    if (answersProbe) return;
    if (cumulative === this.base && this.base < this.highestSent) {
      this.dupAcks++;
      // Early retransmit (RFC 5827): with fewer than 4 segments in flight, 3 duplicates can never come.
      const threshold = Math.max(1, Math.min(this.dupAckThreshold, this.highestSent - this.base - 1));
      if (this.dupAcks === threshold && this.cc.onLoss(this.base, this.nextSeq)) {
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
  private acknowledge(cumulative: number, now: number): void {
    const newlyAcked = cumulative - this.base;
    this.base = cumulative;
    if (this.nextSeq < this.base) this.nextSeq = this.base;
    this.dupAcks = 0;
    this.freshDupAcks = 0;
    this.cc.onAck(newlyAcked, this.base);
    if (this.base >= this.config.totalSegments) {
      this.finish({ type: "completed" });
      return;
    }
    // RFC 6298 §5.3: restart the timer when new data is acknowledged.
    this.rtoDeadline = this.base < this.nextSeq ? now + this.rtt.rtoMs() : undefined;
    this.armProbe(now);
  }

  private goBack(now: number): void {
    this.counters.fastRetransmits++;
    this.nextSeq = this.base;
    this.dupAcks = 0;
    this.freshDupAcks = 0;
    this.goBackStampUs = timestampUs(now);
    this.rtoDeadline = now + this.rtt.rtoMs();
    this.dropProbe();
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
    this.dropProbe();
    this.rtt.onTimeout();
    this.cc.onTimeout(this.nextSeq);
    this.nextSeq = this.base;
    this.dupAcks = 0;
    this.freshDupAcks = 0;
    this.goBackStampUs = timestampUs(now);
    this.tokens = Math.max(this.tokens, 1);
    this.rtoDeadline = now + this.rtt.rtoMs();
  }

  /** The earliest moment the shell must call back: RTO, idle limit, or the next pacing token. */
  pollTimeout(now: number): number | undefined {
    if (this.finished) return undefined;
    if (this.probePending) return now;
    let deadline = this.lastAckAt + this.config.idleTimeoutMs;
    if (this.rtoDeadline !== undefined && this.rtoDeadline < deadline) deadline = this.rtoDeadline;
    if (this.ptoDeadline !== undefined && this.ptoDeadline < deadline) deadline = this.ptoDeadline;
    if (this.nextSeq < this.config.totalSegments && this.nextSeq - this.base < this.window && this.tokens < 1 - TOKEN_EPSILON) {
      const rate = this.pacingRatePerMs();
      const ready = rate === Infinity ? now : Math.max(now, this.lastRefillAt + (1 - this.tokens) / rate);
      if (ready < deadline) deadline = ready;
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
      rtoMs: this.rtt.rtoMs(),
      cwnd: this.cc.cwnd,
      ssthresh: this.cc.ssthresh,
      peerWindow: this.peerWindow,
      acked: this.base,
      ...this.counters,
    };
  }
}
