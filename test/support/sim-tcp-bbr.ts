import { HEADER_AT, HEADER_BYTES } from "../../src/transfer/core/wire.ts";
import type { SimLink } from "./sim-link.ts";

/**
 * A TCP flow driven by a model of Linux's BBR (v1, `tcp_bbr.c`, the kernel's default here): the
 * competitor ftx meets on a real path, for the simulator's fairness tests. Written apart from ftx's
 * own controller on purpose, so that changing ftx's cannot change its rival.
 *
 * What it models: 1,500-byte packets (1,448 of data), an ACK per packet (at once) that also repeats the last
 * few packet numbers received (as SACK blocks cover a lost ACK), loss detected when a packet sent 3
 * later is acknowledged (RACK-like) or on a retransmission timeout; delivery-rate sampling; Startup at
 * 2.885 (pacing and window), Drain, ProbeBW's eight-phase cycle with a window of 2 BDPs plus room for
 * aggregated ACKs, ProbeRTT every 10 s; on loss, packet conservation for a round (recovery), then the
 * window it had. Loss does not lower the rate otherwise, as in v1. Not modelled: the long-term
 * (policer) bandwidth mode, TSO autosizing, delayed ACKs.
 */
const WIRE_BYTES = 1500;
export const TCP_PAYLOAD_BYTES = 1448;
const HIGH_GAIN = 2.885;
const CYCLE = [1.25, 0.75, 1, 1, 1, 1, 1, 1];
const BW_WINDOW_ROUNDS = 10;
const MIN_RTT_WINDOW_MS = 10_000;
const PROBE_RTT_MS = 200;
const MIN_CWND = 4;
const ACKED_REPEAT = 4;

interface Sent {
  chunk: number;
  sentAt: number;
  delivered: number;
  deliveredAt: number;
  firstSentAt: number;
  acked: boolean;
  lost: boolean;
}

export class SimTcpBbrFlow {
  event: { type: "completed" } | undefined;
  finishedAt: number | undefined;
  /** Chunks delivered to the receiver, sampled by the driver: [ms, chunks]. */
  readonly progress: Array<[number, number]> = [];
  /** Packets sent, and of those, retransmissions. */
  readonly counters = { sent: 0, retransmitted: 0, lostDetected: 0, timeouts: 0 };
  state: "startup" | "drain" | "probe_bw" | "probe_rtt" = "startup";

  private readonly chunks: number;
  private nextChunk = 0;
  private readonly retransmitQueue: number[] = [];
  private readonly chunkDone: Uint8Array;
  private chunksDone = 0;
  private readonly sent: Sent[] = [];
  /** Packet number of sent[0]. */
  private firstPn = 0;
  private inFlight = 0;
  private largestAckedPn = -1;
  /** Index in `sent` before which every packet is acknowledged or lost. */
  private settled = 0;
  private delivered = 0;
  private deliveredAt = 0;
  private firstSentAt = 0;
  private nextSendAt = 0;
  private lastAckAt = 0;

  private cwnd = 10;
  private priorCwnd = 0;
  private recoveryUntilDelivered = -1;
  private pacingGain = HIGH_GAIN;
  private cwndGain = HIGH_GAIN;
  private readonly bwSamples: Array<[round: number, bw: number]> = [];
  private minRttMs = Infinity;
  private minRttAt = 0;
  private srttMs: number | undefined;
  private round = 0;
  private nextRoundDelivered = 0;
  private fullBw = 0;
  private fullBwRounds = 0;
  private filledPipe = false;
  private cycleIndex = 2;
  private cycleAt = 0;
  private probeRttDoneAt: number | undefined;
  private extraAckedWindow: Array<[round: number, extra: number]> = [];
  private ackEpochAt = 0;
  private ackEpochDelivered = 0;

  /** Receiver side: packet numbers received lately (repeated in each ACK). */
  private readonly received: number[] = [];
  private readonly dgram = new Uint8Array(WIRE_BYTES);
  private readonly ack = new Uint8Array(HEADER_BYTES + 4 * ACKED_REPEAT);

  constructor(
    readonly sessionId: number,
    readonly startAtMs: number,
    bytes: number,
    private readonly forward: SimLink,
    readonly backward: SimLink,
  ) {
    this.chunks = Math.ceil(bytes / TCP_PAYLOAD_BYTES);
    this.chunkDone = new Uint8Array(this.chunks);
    new DataView(this.dgram.buffer).setUint32(HEADER_AT.sessionId, sessionId);
  }

  /** Payload bytes the receiver has got so far. */
  get deliveredBytes(): number {
    return this.chunksDone * TCP_PAYLOAD_BYTES;
  }

  private get bw(): number {
    let best = 0;
    for (const [, b] of this.bwSamples) if (b > best) best = b;
    return best;
  }

  private bdp(gain: number): number {
    if (this.bw === 0 || this.minRttMs === Infinity) return this.cwnd;
    return gain * this.bw * this.minRttMs;
  }

  transmit(now: number): void {
    if (this.event) return;
    this.checkTimeout(now);
    while (now >= this.nextSendAt && this.inFlight < this.cwnd) {
      const chunk = this.retransmitQueue.length > 0 ? this.retransmitQueue.shift()! : this.nextChunk < this.chunks ? this.nextChunk++ : undefined;
      if (chunk === undefined) break;
      if (this.chunkDone[chunk]) continue;
      if (this.inFlight === 0) this.firstSentAt = this.deliveredAt = now;
      const pn = this.firstPn + this.sent.length;
      this.sent.push({ chunk, sentAt: now, delivered: this.delivered, deliveredAt: this.deliveredAt, firstSentAt: this.firstSentAt, acked: false, lost: false });
      this.inFlight++;
      this.counters.sent++;
      const view = new DataView(this.dgram.buffer);
      view.setUint32(HEADER_BYTES, pn);
      view.setUint32(HEADER_BYTES + 4, chunk);
      this.forward.send(this.dgram, now);
      const rate = this.bw > 0 ? this.pacingGain * this.bw : (HIGH_GAIN * this.cwnd) / Math.max(1, this.srttMs ?? 1);
      this.nextSendAt = Math.max(this.nextSendAt, now - 1) + 1 / rate;
    }
  }

  nextAt(now: number): number | undefined {
    if (this.event) return undefined;
    let next = this.backward.nextDeliveryAt() ?? Infinity;
    if (this.inFlight < this.cwnd && (this.retransmitQueue.length > 0 || this.nextChunk < this.chunks)) next = Math.min(next, Math.max(now, this.nextSendAt));
    if (this.inFlight > 0) next = Math.min(next, this.lastAckAt + this.rtoMs());
    return next === Infinity ? undefined : next;
  }

  /** A data packet off the forward link: the receiver takes it and owes an ACK. */
  receive(d: Uint8Array, now: number): void {
    const view = new DataView(d.buffer, d.byteOffset);
    const pn = view.getUint32(HEADER_BYTES);
    const chunk = view.getUint32(HEADER_BYTES + 4);
    this.received.push(pn);
    if (this.received.length > 64) this.received.splice(0, 32);
    if (!this.chunkDone[chunk]) {
      this.chunkDone[chunk] = 1;
      this.chunksDone++;
    }
    const ack = new DataView(this.ack.buffer);
    for (let i = 0; i < ACKED_REPEAT; i++) ack.setInt32(HEADER_BYTES + 4 * i, this.received[this.received.length - 1 - i] ?? -1);
    this.backward.send(this.ack, now);
  }

  private rtoMs(): number {
    return Math.max(200, 2 * (this.srttMs ?? 500));
  }

  private checkTimeout(now: number): void {
    if (this.inFlight === 0 || now < this.lastAckAt + this.rtoMs()) return;
    this.counters.timeouts++;
    for (const s of this.sent) if (!s.acked && !s.lost) this.markLost(s);
    this.priorCwnd = Math.max(this.priorCwnd, this.cwnd);
    this.cwnd = MIN_CWND;
    this.lastAckAt = now;
  }

  private markLost(s: Sent): void {
    s.lost = true;
    this.inFlight--;
    this.counters.lostDetected++;
    if (!this.chunkDone[s.chunk]) {
      this.retransmitQueue.push(s.chunk);
      this.counters.retransmitted++;
    }
  }

  acks(now: number): void {
    for (const d of this.backward.deliver(now)) {
      const view = new DataView(d.buffer, d.byteOffset);
      let newest: Sent | undefined;
      let newlyAcked = 0;
      for (let i = 0; i < ACKED_REPEAT; i++) {
        const pn = view.getInt32(HEADER_BYTES + 4 * i);
        const s = pn >= this.firstPn ? this.sent[pn - this.firstPn] : undefined;
        if (!s || s.acked) continue;
        s.acked = true;
        if (!s.lost) this.inFlight--;
        newlyAcked++;
        this.delivered++;
        this.deliveredAt = now;
        if (!newest || s.sentAt > newest.sentAt) newest = s;
        if (pn > this.largestAckedPn) this.largestAckedPn = pn;
        const rtt = now - s.sentAt;
        this.srttMs = this.srttMs === undefined ? rtt : 0.875 * this.srttMs + 0.125 * rtt;
        if (rtt <= this.minRttMs || now - this.minRttAt > MIN_RTT_WINDOW_MS) {
          this.minRttMs = rtt;
          this.minRttAt = now;
        }
      }
      if (newlyAcked === 0) continue;
      this.lastAckAt = now;
      this.detectLoss();
      if (newest) {
        this.firstSentAt = newest.sentAt;
        this.onSample(newest, now);
      }
      this.updateModel(newlyAcked, now);
      this.trim();
    }
    if (!this.event && this.chunksDone === this.chunks) {
      this.event = { type: "completed" };
      this.finishedAt = now;
    }
  }

  /** A packet sent three before the largest acknowledged and still unacknowledged is lost. */
  private detectLoss(): void {
    const upTo = this.largestAckedPn - 3 - this.firstPn;
    let lost = false;
    for (let i = this.settled; i <= upTo && i < this.sent.length; i++) {
      const s = this.sent[i]!;
      if (!s.acked && !s.lost) {
        this.markLost(s);
        lost = true;
      }
    }
    while (this.settled < this.sent.length && (this.sent[this.settled]!.acked || this.sent[this.settled]!.lost)) this.settled++;
    if (lost && this.delivered >= this.recoveryUntilDelivered) {
      // Recovery: packet conservation for one round (bbr_set_cwnd_to_recover_or_restore).
      this.priorCwnd = Math.max(this.priorCwnd, this.cwnd);
      this.cwnd = Math.max(MIN_CWND, this.inFlight + 1);
      this.recoveryUntilDelivered = this.delivered + this.inFlight + 1;
    }
  }

  private trim(): void {
    // Keep a few settled packets: an ACK repeating an old number may still name one.
    const drop = this.settled - 64;
    if (drop > 1024) {
      this.sent.splice(0, drop);
      this.firstPn += drop;
      this.settled -= drop;
    }
  }

  private onSample(s: Sent, now: number): void {
    if (s.delivered >= this.nextRoundDelivered) {
      this.nextRoundDelivered = this.delivered;
      this.round++;
      if (!this.filledPipe) {
        if (this.bw >= this.fullBw * 1.25) {
          this.fullBw = this.bw;
          this.fullBwRounds = 0;
        } else if (++this.fullBwRounds >= 3) this.filledPipe = true;
      }
    }
    const interval = Math.max(s.sentAt - s.firstSentAt, now - s.deliveredAt);
    if (interval > 0) {
      const rate = (this.delivered - s.delivered) / interval;
      this.bwSamples.push([this.round, rate]);
      while (this.bwSamples.length > 0 && this.round - this.bwSamples[0]![0] >= BW_WINDOW_ROUNDS) this.bwSamples.shift();
      if (this.bwSamples.length > 256) this.bwSamples.splice(0, this.bwSamples.length - 256);
    }
  }

  private updateModel(newlyAcked: number, now: number): void {
    // ACK aggregation (bbr_update_ack_aggregation): what arrived beyond the estimated rate this epoch.
    const expected = this.bw * (now - this.ackEpochAt);
    if (this.delivered - this.ackEpochDelivered <= expected || now - this.ackEpochAt > 2 * (this.srttMs ?? 100)) {
      this.ackEpochAt = now;
      this.ackEpochDelivered = this.delivered;
    }
    const extra = Math.min(this.delivered - this.ackEpochDelivered - expected, this.cwnd);
    this.extraAckedWindow.push([this.round, Math.max(0, extra)]);
    this.extraAckedWindow = this.extraAckedWindow.filter(([r]) => this.round - r < 10).slice(-64);
    const extraAcked = Math.max(0, ...this.extraAckedWindow.map(([, e]) => e));

    if (this.state === "startup" && this.filledPipe) {
      this.state = "drain";
      this.pacingGain = 1 / HIGH_GAIN;
      this.cwndGain = HIGH_GAIN;
    }
    if (this.state === "drain" && this.inFlight <= this.bdp(1)) this.enterProbeBw(now);
    if (this.state === "probe_bw") {
      const elapsed = now - this.cycleAt > this.minRttMs;
      const g = this.pacingGain;
      const next = g > 1 ? elapsed && this.inFlight >= this.bdp(g) : g < 1 ? elapsed || this.inFlight <= this.bdp(1) : elapsed;
      if (next) {
        this.cycleIndex = (this.cycleIndex + 1) % CYCLE.length;
        this.cycleAt = now;
        this.pacingGain = CYCLE[this.cycleIndex]!;
      }
    }
    if (this.state !== "probe_rtt" && now - this.minRttAt > MIN_RTT_WINDOW_MS) {
      this.state = "probe_rtt";
      this.pacingGain = 1;
      this.priorCwnd = Math.max(this.priorCwnd, this.cwnd);
      this.probeRttDoneAt = undefined;
    }
    if (this.state === "probe_rtt") {
      this.cwnd = MIN_CWND;
      if (this.probeRttDoneAt === undefined && this.inFlight <= MIN_CWND) this.probeRttDoneAt = now + PROBE_RTT_MS;
      if (this.probeRttDoneAt !== undefined && now >= this.probeRttDoneAt) {
        this.minRttAt = now;
        this.cwnd = Math.max(this.cwnd, this.priorCwnd);
        this.priorCwnd = 0;
        if (this.filledPipe) this.enterProbeBw(now);
        else {
          this.state = "startup";
          this.pacingGain = this.cwndGain = HIGH_GAIN;
        }
      }
      return;
    }
    const target = this.bdp(this.cwndGain) + extraAcked + 3;
    if (this.delivered < this.recoveryUntilDelivered) {
      // Packet conservation: what was delivered may be sent again, no more.
      this.cwnd = Math.max(this.cwnd, this.inFlight + newlyAcked);
      return;
    }
    if (this.priorCwnd > 0) {
      this.cwnd = Math.max(this.cwnd, this.priorCwnd);
      this.priorCwnd = 0;
    }
    this.cwnd = this.filledPipe ? Math.min(this.cwnd + newlyAcked, target) : this.cwnd < target || this.delivered < 10 ? this.cwnd + newlyAcked : this.cwnd;
    this.cwnd = Math.max(MIN_CWND, this.cwnd);
  }

  private enterProbeBw(now: number): void {
    this.state = "probe_bw";
    this.pacingGain = 1;
    this.cwndGain = 2;
    this.cycleIndex = 2 + (Math.floor(now) % 6);
    this.cycleAt = now;
    this.pacingGain = CYCLE[this.cycleIndex]!;
  }
}
