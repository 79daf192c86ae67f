/**
 * Model-based rate control in the spirit of BBR (draft-ietf-ccwg-bbr), sans-IO, in segments and ms.
 *
 * It keeps a model of the path: the bottleneck bandwidth (the highest delivery rate measured over the
 * last BW_WINDOW_ROUNDS round trips) and the minimum RTT (over MIN_RTT_WINDOW_MS). The sender paces at
 * gain × bandwidth and keeps at most cwnd_gain × BDP in flight. A random loss is not a signal here: the
 * rate comes from what the receiver actually got (delivery-rate sampling,
 * draft-cheng-iccrg-delivery-rate-estimation), so 1 % random loss costs about 1 % of the rate, where
 * NewReno would halve its window for each. Real congestion shows as a delivery rate that stops growing
 * (Startup ends on that plateau), as a queue (ProbeRTT drains it to find the true minimum RTT), and as
 * heavy loss (a round losing more than HEAVY_LOSS of what it sent caps what may be in flight).
 *
 * Go-Back-N detail: acknowledgements are cumulative, so a delivery sample is taken for the newest
 * segment an ACK covers; the sender keeps, per segment in flight, what had been delivered when it left.
 */

/** Startup: 2/ln 2, the smallest gain that doubles the delivery rate every round (BBR's high gain). */
const STARTUP_GAIN = 2.885;
const DRAIN_GAIN = 1 / STARTUP_GAIN;
/** In flight during start-up at most 2 BDPs (BBRv2's choice): 2.885 overflowed a one-BDP drop-tail queue. */
const STARTUP_CWND_GAIN = 2;
/** ProbeBW: one phase probing up, one draining what that queued, six cruising; a phase lasts one min RTT. */
const PROBE_BW_GAINS = [1.25, 0.75, 1, 1, 1, 1, 1, 1] as const;
/** In flight at most this many BDPs in ProbeBW (room for delayed and aggregated ACKs). */
const CWND_GAIN = 2;
/** The bandwidth filter's window, in round trips. */
const BW_WINDOW_ROUNDS = 10;
/** Startup ends when three rounds in a row raised the bandwidth by less than 25 %. */
const FULL_BW_GROWTH = 1.25;
const FULL_BW_ROUNDS = 3;
/** The minimum RTT expires after this long; ProbeRTT then holds in flight at 4 segments for 200 ms. */
const MIN_RTT_WINDOW_MS = 10_000;
const PROBE_RTT_DURATION_MS = 200;
export const MIN_CWND_SEGMENTS = 4;
export const INITIAL_CWND_SEGMENTS = 32;
/**
 * The initial window and the room for aggregated ACKs are amounts of bytes, as QUIC's initial window is
 * (RFC 9002 §7.2): 32 segments of 1,374 bytes is 43 KiB, 32 of loopback's 64 KiB is 2 MiB, which
 * overflowed a 50 ms queue at 12 MB/s at once. In segments: these bytes over the segment size, between
 * the minimum window and 32.
 */
const INITIAL_WINDOW_BYTES = 48 * 1024;
const ACK_AGGREGATION_BYTES = 48 * 1024;
/**
 * The measured aggregation (the draft's extra_acked) is the most that arrived acknowledged beyond what
 * the bandwidth estimate explains, the largest over this many round trips or this many ms, whichever
 * is longer, and at most this long at the estimated rate (Linux's bbr_extra_acked_max_us).
 */
const EXTRA_ACKED_WINDOW_ROUNDS = 10;
const EXTRA_ACKED_WINDOW_MS = 1000;
const EXTRA_ACKED_MAX_MS = 100;
const DEFAULT_SEGMENT_BYTES = 1374;

function segmentsOf(bytes: number, segmentBytes: number): number {
  return Math.max(MIN_CWND_SEGMENTS, Math.min(INITIAL_CWND_SEGMENTS, Math.ceil(bytes / segmentBytes)));
}
/**
 * A round that lost more than this share of what it sent (after repair) is congestion, not noise: what
 * may be in flight is capped at 85 % of what was in flight then, until a round without heavy loss
 * lifts it again by 25 % per probing phase.
 */
const HEAVY_LOSS = 0.2;
const HEAVY_LOSS_BETA = 0.85;
/** What queueCap allows above the BDP (and 32 segments), as a share of the deepest queue an overflow showed. */
const QUEUE_HEADROOM = 0.35;
/** A round losing at least this share is a queue overflowing, not random loss (with a queue in the RTT). */
const CONGESTION_LOSS = 0.03;
/** Rounds sending fewer datagrams than this say nothing about their loss share. */
const CONGESTION_MIN_SENT = 32;
/** HyStart's delay threshold, min RTT / 8 clamped to 4–16 ms (RFC 9406), for start-up's exit. */
const STARTUP_DELAY_MIN_MS = 4;
const STARTUP_DELAY_MAX_MS = 16;
/** RTT samples in a round before its minimum is trusted (RFC 9406's N_RTT_SAMPLE). */
const HYSTART_MIN_SAMPLES = 8;
/** Start-up ends on a round losing more than this (a queue overflowing), not only on a bandwidth plateau. */
const STARTUP_LOSS = 0.08;

export type BbrState = "startup" | "drain" | "probe_bw" | "probe_rtt";

/** One delivery-rate sample, taken when an ACK covers a segment (RFC draft: rs.*). */
export interface DeliverySample {
  /** Segments delivered between the segment's departure and this ACK. */
  delivered: number;
  /** The interval they were delivered over (ms): max(send interval, ACK interval). */
  intervalMs: number;
  /** The segment left while the sender had nothing more to send or was held by the receiver. */
  appLimited: boolean;
  /** Cumulative count of delivered segments when the sampled segment left (for round counting). */
  priorDelivered: number;
}

/** A windowed maximum over rounds (Kathleen Nichols' three-sample filter, as Linux's minmax). */
class MaxFilter {
  private readonly values = [0, 0, 0];
  private readonly rounds = [0, 0, 0];

  get best(): number {
    return this.values[0]!;
  }

  reset(value: number, round: number): void {
    this.values.fill(value);
    this.rounds.fill(round);
  }

  update(value: number, round: number, window: number): void {
    const v = this.values;
    const r = this.rounds;
    if (value >= v[0]! || round - r[2]! > window) return this.reset(value, round);
    if (value >= v[1]!) {
      v[1] = v[2] = value;
      r[1] = r[2] = round;
    } else if (value >= v[2]!) {
      v[2] = value;
      r[2] = round;
    }
    // Expire the best when it is older than the window; quarter- and half-window refreshes keep the
    // second and third samples spread out over it.
    if (round - r[0]! > window) {
      // Shift the newer samples down (twice, if the second is past the window too).
      for (let shifts = 0; shifts < 2 && round - r[0]! > window; shifts++) {
        v[0] = v[1]!;
        r[0] = r[1]!;
        v[1] = v[2]!;
        r[1] = r[2]!;
        v[2] = value;
        r[2] = round;
      }
    } else if (v[1] === v[0] && round - r[1]! > window / 4) {
      v[1] = v[2] = value;
      r[1] = r[2] = round;
    } else if (v[2] === v[1] && round - r[2]! > window / 2) {
      v[2] = value;
      r[2] = round;
    }
  }
}

export class BbrController {
  state: BbrState = "startup";
  /** Segments that may be in flight. */
  cwnd: number;
  /** Room on top of the BDP for ACKs that come in bunches (the receiver's every-16-segments ACKs, an event loop's batching): the least given. */
  private readonly ackAggregation: number;
  /**
   * ACK aggregation as measured (draft-ietf-ccwg-bbr's extra_acked, BBRUpdateACKAggregation): since
   * the ACKs last came no faster than the estimated rate, what they acknowledged beyond it. On a LAN
   * a GRO read of 64 datagrams comes back as one ACK and two event loops stand between each datagram
   * and its ACK: the working RTT (0.6–3 ms) is many times the minimum, and a window of 2 BDPs + 32
   * segments held a 1 GiB fetch to 57 segments in flight and 112 MiB/s with a core idle.
   */
  private readonly extraAcked = new MaxFilter();
  private extraAckedStartMs = 0;
  private extraAckedDelivered = 0;
  /** Bottleneck bandwidth estimate, segments per ms (0 until the first sample). */
  private readonly bw = new MaxFilter();
  minRttMs = Infinity;
  private minRttStampMs = 0;
  private pacingGain = STARTUP_GAIN;
  private cwndGain = STARTUP_CWND_GAIN;
  /** Round trips counted by delivery: a round ends when a segment sent after it began is acknowledged. */
  round = 0;
  private nextRoundDelivered = 0;
  private roundStarted = false;
  private fullBw = 0;
  private fullBwRounds = 0;
  filledPipe = false;
  private cycleIndex = 0;
  private cycleStampMs = 0;
  /** The bandwidth estimate when the current ProbeBW cycle's probe began (0: none yet). */
  private bwAtProbe = 0;
  /** A probe was cut short: the phase it moved to starts at the next ACK. */
  private probeStampForCycle = false;
  private probeRttDoneMs: number | undefined;
  private probeRttRoundDone = false;
  private priorCwnd = 0;
  /** Cap on what may be in flight after heavy loss (Infinity: none). */
  private inflightCap = Infinity;
  /** The deepest queueing delay (ms above the minimum RTT) at which the path overflowed (Infinity: never seen). */
  private lossQueueMs = Infinity;
  /**
   * Segments that may be in flight, learned from the overflows (Infinity: none yet): set at each to
   * the BDP plus QUEUE_HEADROOM of the deepest queue seen (if lower), raised by one segment per round
   * trip (additive, as Reno's: of two flows sharing a queue the smaller gains on the larger in
   * proportion), and dropped when a probe finds the path has room again (restartStartup).
   */
  private queueCap = Infinity;
  private roundSent = 0;
  /** The smallest RTT sampled in the current round (start-up's delay test). */
  private roundMinRttMs = Infinity;
  private roundRttSamples = 0;
  private roundLost = 0;
  /** The share of what the last whole round sent that was lost (0 when it sent too little to say). */
  private priorRoundLoss = 0;
  private readonly maxCwnd: number;

  constructor(maxWindowSegments: number, now: number, segmentBytes = DEFAULT_SEGMENT_BYTES) {
    this.cwnd = segmentsOf(INITIAL_WINDOW_BYTES, segmentBytes);
    this.ackAggregation = segmentsOf(ACK_AGGREGATION_BYTES, segmentBytes);
    this.maxCwnd = maxWindowSegments;
    this.minRttStampMs = now;
  }

  get bandwidth(): number {
    return this.bw.best;
  }

  /** The bandwidth-delay product in segments, or undefined before the model has both halves. */
  private bdp(gain: number): number | undefined {
    if (this.bw.best <= 0 || this.minRttMs === Infinity) return undefined;
    return gain * this.bw.best * this.minRttMs;
  }

  /**
   * Segments per ms to pace at. Before the first delivery sample: the initial window over the RTT
   * the handshake measured (or over 1 ms without one), at the start-up gain.
   */
  pacingRate(srttMs: number | undefined): number {
    if (this.bw.best > 0) return this.pacingGain * this.bw.best;
    return (STARTUP_GAIN * this.cwnd) / Math.max(0.05, srttMs ?? 1);
  }

  /** Datagrams that left, counted as the receiver's reports cover them (for the heavy-loss share). */
  onSent(datagrams: number): void {
    this.roundSent += datagrams;
  }

  /** Datagrams lost on the way (the receiver's count says so): the heavy-loss signal. */
  onLoss(lost: number): void {
    this.roundLost += lost;
  }

  /**
   * A loss the repair could not cover made the sender go back, with the latest RTT `rttMs` and
   * `inFlight` segments out. With the RTT above the minimum by HyStart's margin, a queue was there:
   * that is congestion (start-up ends; a probe for more bandwidth stops; what may be in flight is
   * capped at 85 % of what was out, as BBRv2's inflight_hi, and by queueCap). Without a queue it is
   * random loss, and nothing changes. Returns whether it was congestion.
   */
  onGoBack(rttMs: number, inFlight: number): boolean {
    // In start-up a queue alone is not enough: the first round trips' RTTs are noisy (the peer starting
    // up), the bandwidth estimate is a fraction of the path's, and one random loss in the first flight
    // taken for congestion ended start-up at 1 Mbit/s with a cap of 38 segments on a 100 Mbit/s path,
    // for 4 s. An overflow loses a share of the round far above random loss.
    if (!(this.state === "startup" ? this.congested(rttMs) : this.overflowing(rttMs))) return false;
    // The queue overflowed at this depth (the deepest seen: a loss at a shallower standing queue is
    // no measure of the buffer). A Go-Back-N loss costs a window, so probing into a queue that
    // overflows every cycle (1.25 × for one RTT fills a queue of ¼ BDP) costs far more than it finds.
    const depthMs = Math.max(this.queueMarginMs(), rttMs - this.minRttMs);
    this.lossQueueMs = this.lossQueueMs === Infinity ? depthMs : Math.max(this.lossQueueMs, depthMs);
    // What may be in flight from now on: the BDP and QUEUE_HEADROOM of the deepest queue seen, as the
    // model has them now, in segments. A snapshot: a cap that followed the bandwidth estimate fed on
    // itself (a capped flow measures less and is capped lower; on the bursty path it held cwnd at half
    // the BDP), and what was in the pipe is no measure (at start-up it holds what the queue is about to
    // drop; an RTT after the overflow it may have drained).
    const cap = (this.bdp(1) ?? 0) + QUEUE_HEADROOM * this.lossQueueMs * this.bw.best + this.ackAggregation;
    this.queueCap = Math.max(MIN_CWND_SEGMENTS, Math.min(this.queueCap, cap));
    if (this.state === "startup") {
      if (this.bw.best > 0) this.filledPipe = true;
      return true;
    }
    if (this.state !== "probe_bw") return true;
    this.inflightCap = Math.max(MIN_CWND_SEGMENTS, Math.min(this.inflightCap, HEAVY_LOSS_BETA * Math.max(inFlight, this.bdp(1) ?? 0)));
    if (this.pacingGain > 1) {
      // Stop probing: on to the phase that drains what the probe queued.
      this.cycleIndex = 1;
      this.pacingGain = PROBE_BW_GAINS[1];
      this.probeStampForCycle = true;
    }
    return true;
  }

  /** An RTT this far above the minimum shows a queue: a loss then may be the queue's (HyStart's margin). */
  private overflowing(rttMs: number): boolean {
    return this.minRttMs !== Infinity && rttMs > this.minRttMs + this.queueMarginMs();
  }

  /**
   * Losses now are the queue's, not the path's: the RTT shows it near overflowing, and this round or
   * the last lost far more than random loss does (a queue overflowing drops a run of what arrives
   * while it is full; 1 % loss in bursts of 4 loses ~1 % a round). Without that much loss a standing
   * queue, another flow's, does not make a random loss congestion, and the repairs must cover it.
   */
  congested(rttMs: number, lost = 0, sent = 0): boolean {
    return this.overflowing(rttMs) && Math.max(this.roundLossShare(lost, sent), this.priorRoundLoss) >= CONGESTION_LOSS;
  }

  /**
   * The share of what this round has sent so far that was lost, with `lost` of `sent` more being
   * judged now (0 while it has sent too little to say). The batch being judged counts: start-up's
   * overflow is reported in one batch (21 of 328), and judged on the round before it, it went into
   * the random-loss estimate and sized repairs of 4 % for the rest of a clean transfer.
   */
  private roundLossShare(lost = 0, sent = 0): number {
    const n = this.roundSent + sent;
    return n >= CONGESTION_MIN_SENT ? (this.roundLost + lost) / n : 0;
  }

  /** How far above the minimum RTT a sample must be to show a queue (RFC 9406's delay threshold). */
  private queueMarginMs(): number {
    return Math.min(STARTUP_DELAY_MAX_MS, Math.max(STARTUP_DELAY_MIN_MS, this.minRttMs / 8));
  }

  /** An RTT sample (ms), from an ACK's echoed timestamp. */
  onRtt(rttMs: number, now: number): void {
    if (rttMs < this.roundMinRttMs) this.roundMinRttMs = rttMs;
    // HyStart checks within the round, after its first few samples: at 2.885× a round can overflow a
    // queue shallower than the path's BDP before it ends.
    if (++this.roundRttSamples >= HYSTART_MIN_SAMPLES && this.state === "startup" && this.bw.best > 0 && this.minRttMs !== Infinity) {
      if (this.roundMinRttMs > this.minRttMs + this.queueMarginMs()) this.filledPipe = true;
    }
    if (rttMs <= this.minRttMs || now - this.minRttStampMs > MIN_RTT_WINDOW_MS) {
      this.minRttMs = rttMs;
      this.minRttStampMs = now;
    }
  }

  /**
   * An ACK delivered `newlyAcked` segments; `delivered` is the running total; `inFlight` what is
   * still out after it; `sample` the delivery-rate sample it gave, if any.
   */
  onAck(newlyAcked: number, delivered: number, inFlight: number, sample: DeliverySample | undefined, now: number): void {
    if (sample) {
      this.roundStarted = false;
      if (sample.priorDelivered >= this.nextRoundDelivered) {
        this.nextRoundDelivered = delivered;
        this.round++;
        this.roundStarted = true;
        this.onRoundEnd();
      }
      if (sample.intervalMs > 0 && sample.delivered > 0) {
        const rate = sample.delivered / sample.intervalMs;
        // An application-limited sample says only that the path can do at least this much.
        if (!sample.appLimited || rate >= this.bw.best) this.bw.update(rate, this.round, BW_WINDOW_ROUNDS);
      }
      if (this.roundStarted && !this.filledPipe && !sample.appLimited) this.checkFullPipe();
    }
    this.updateAckAggregation(newlyAcked, now);
    this.updateState(inFlight, now);
    this.updateCwnd(newlyAcked);
  }

  /** Segments of room for aggregated ACKs: the measured aggregation, never under the fixed allowance. */
  private aggregation(): number {
    return Math.max(this.ackAggregation, this.extraAcked.best);
  }

  /**
   * After start-up only, as Linux's BBR: start-up's ACKs outrun a bandwidth estimate that is itself
   * still growing, and a cap snapshot taken from that (the queue cap at start-up's overflow) let a
   * first flow keep 77 % of the path from a late joiner in the simulator, against 64 %.
   */
  private updateAckAggregation(newlyAcked: number, now: number): void {
    if (newlyAcked <= 0 || this.bw.best <= 0 || !this.filledPipe) return;
    let expected = this.bw.best * (now - this.extraAckedStartMs);
    // The ACKs came no faster than the rate: a new interval starts here.
    if (this.extraAckedDelivered <= expected) {
      this.extraAckedDelivered = 0;
      this.extraAckedStartMs = now;
      expected = 0;
    }
    this.extraAckedDelivered += newlyAcked;
    const extra = Math.min(this.extraAckedDelivered - expected, this.cwnd, this.bw.best * EXTRA_ACKED_MAX_MS);
    // Over time, not rounds: a LAN's round trips are ~1 ms, and its stalls (a collection, a busy
    // event loop) come seconds apart. 10 rounds held a 1 GiB fetch to 6.3 s where 1 s made 5.2.
    this.extraAcked.update(extra, now, Math.max(EXTRA_ACKED_WINDOW_MS, EXTRA_ACKED_WINDOW_ROUNDS * (Number.isFinite(this.minRttMs) ? this.minRttMs : 0)));
  }

  /** The retransmission timer fired: nothing is known to be in flight any more. */
  onTimeout(): void {
    this.priorCwnd = Math.max(this.priorCwnd, this.cwnd);
    this.cwnd = MIN_CWND_SEGMENTS;
  }

  private onRoundEnd(): void {
    // A probe for more bandwidth that found 25 % more: the pipe was not full (a rival left, or
    // Start-up ended on a queue that was not ours). Start-up again rather than climb 25 % per cycle.
    if (this.state === "probe_bw" && this.bwAtProbe > 0 && this.bw.best >= this.bwAtProbe * FULL_BW_GROWTH) this.restartStartup();
    // Start-up also ends when a whole round's smallest RTT stands clearly above the path's minimum:
    // a queue is building (HyStart's delay test, RFC 9406 §4.2), and with a queue shallower than
    // the path's BDP the next rounds at 2.885× would overflow it, which costs Go-Back-N a window.
    if (this.state === "startup" && this.bw.best > 0 && this.roundMinRttMs !== Infinity && this.minRttMs !== Infinity) {
      if (this.roundMinRttMs > this.minRttMs + this.queueMarginMs()) this.filledPipe = true;
    }
    this.roundMinRttMs = Infinity;
    this.roundRttSamples = 0;
    // Start-up overflowing the bottleneck's queue loses in bursts far above any random loss: the
    // pipe is full (BBRv2 ends start-up on loss the same way). Random loss of a few % does not end it.
    if (this.state === "startup" && this.bw.best > 0 && this.roundSent >= 32 && this.roundLost / this.roundSent > STARTUP_LOSS) this.filledPipe = true;
    if (this.roundSent > 0 && this.roundLost / this.roundSent > HEAVY_LOSS) {
      const bdp = this.bdp(1);
      // What was in flight: after a timeout, the window before it (the timeout left 4 segments).
      const window = Math.max(this.cwnd, this.priorCwnd);
      this.inflightCap = Math.max(MIN_CWND_SEGMENTS, HEAVY_LOSS_BETA * Math.min(window, this.inflightCap, bdp === undefined ? Infinity : 2 * bdp));
      // Heavy loss in start-up: the pipe is full, whatever the bandwidth growth says.
      if (!this.filledPipe) this.filledPipe = true;
    }
    this.priorRoundLoss = this.roundLossShare();
    this.roundSent = 0;
    this.roundLost = 0;
  }

  private restartStartup(): void {
    this.state = "startup";
    this.pacingGain = STARTUP_GAIN;
    this.cwndGain = STARTUP_CWND_GAIN;
    this.filledPipe = false;
    this.fullBw = this.bw.best;
    this.fullBwRounds = 0;
    this.bwAtProbe = 0;
    this.inflightCap = Infinity;
    this.queueCap = Infinity;
  }

  private checkFullPipe(): void {
    if (this.bw.best >= this.fullBw * FULL_BW_GROWTH) {
      this.fullBw = this.bw.best;
      this.fullBwRounds = 0;
      return;
    }
    if (++this.fullBwRounds >= FULL_BW_ROUNDS) this.filledPipe = true;
  }

  private enterProbeBw(now: number): void {
    this.state = "probe_bw";
    this.cwndGain = CWND_GAIN;
    // Start in a cruising phase (not the probing one), as the draft picks at random among those.
    this.cycleIndex = 2 + (Math.floor(now) % (PROBE_BW_GAINS.length - 2));
    this.cycleStampMs = now;
    this.pacingGain = PROBE_BW_GAINS[this.cycleIndex]!;
  }

  private updateState(inFlight: number, now: number): void {
    if (this.state === "startup" && this.filledPipe) {
      this.state = "drain";
      this.pacingGain = DRAIN_GAIN;
      this.cwndGain = STARTUP_CWND_GAIN;
    }
    if (this.state === "drain" && inFlight <= (this.bdp(1) ?? 0)) this.enterProbeBw(now);
    if (this.state === "probe_bw") this.advanceCycle(inFlight, now);
    this.checkProbeRtt(inFlight, now);
  }

  private advanceCycle(inFlight: number, now: number): void {
    if (this.probeStampForCycle) {
      this.probeStampForCycle = false;
      this.cycleStampMs = now;
    }
    const gain = this.pacingGain;
    const elapsed = now - this.cycleStampMs > this.minRttMs;
    const bdp = this.bdp(1) ?? 0;
    // Probing up lasts a min RTT and until the extra is in flight (or loss says stop); draining ends
    // early once in flight is back to one BDP.
    // A probe held below its target by the window (a cap after loss) has found all it can: without
    // this it waited for an in-flight it could never reach, and the cap was never lifted.
    const next = gain > 1 ? elapsed && inFlight >= Math.min(this.bdp(gain)!, this.cwnd - 1) : gain < 1 ? elapsed || inFlight <= bdp : elapsed;
    if (!next) return;
    this.cycleIndex = (this.cycleIndex + 1) % PROBE_BW_GAINS.length;
    this.cycleStampMs = now;
    this.pacingGain = PROBE_BW_GAINS[this.cycleIndex]!;
    if (this.pacingGain > 1) this.bwAtProbe = this.bw.best;
    // Each probing phase lifts a heavy-loss cap a little: the path may have room again.
    if (this.pacingGain > 1 && this.inflightCap !== Infinity) this.inflightCap *= FULL_BW_GROWTH;
  }

  private checkProbeRtt(inFlight: number, now: number): void {
    if (this.state !== "probe_rtt" && now - this.minRttStampMs > MIN_RTT_WINDOW_MS) {
      this.state = "probe_rtt";
      this.pacingGain = 1;
      this.priorCwnd = Math.max(this.priorCwnd, this.cwnd);
      this.probeRttDoneMs = undefined;
    }
    if (this.state !== "probe_rtt") return;
    if (this.probeRttDoneMs === undefined) {
      if (inFlight <= MIN_CWND_SEGMENTS) {
        this.probeRttDoneMs = now + PROBE_RTT_DURATION_MS;
        this.probeRttRoundDone = false;
        this.nextRoundDelivered = 0; // the next ACK starts a round
      }
      return;
    }
    if (this.roundStarted) this.probeRttRoundDone = true;
    if (this.probeRttRoundDone && now >= this.probeRttDoneMs) {
      this.minRttStampMs = now;
      this.cwnd = Math.max(this.cwnd, this.priorCwnd);
      if (this.filledPipe) this.enterProbeBw(now);
      else {
        this.state = "startup";
        this.pacingGain = STARTUP_GAIN;
        this.cwndGain = STARTUP_CWND_GAIN;
      }
    }
  }

  private updateCwnd(newlyAcked: number): void {
    if (this.state === "probe_rtt") {
      this.cwnd = Math.min(this.cwnd, MIN_CWND_SEGMENTS);
      return;
    }
    const target = (this.bdp(this.cwndGain) ?? Infinity) + this.aggregation();
    if (this.priorCwnd > 0) {
      // Back from a timeout or ProbeRTT: restore what was there, as the draft does after recovery.
      this.cwnd = Math.max(this.cwnd, Math.min(this.priorCwnd, target));
      this.priorCwnd = 0;
    }
    if (this.filledPipe) this.cwnd = Math.min(this.cwnd + newlyAcked, target);
    else if (this.cwnd < target) this.cwnd = this.cwnd + newlyAcked;
    // Additive increase of the learned cap: one segment per round trip's worth of acknowledgements.
    if (this.queueCap !== Infinity && newlyAcked > 0) this.queueCap += newlyAcked / this.queueCap;
    this.cwnd = Math.max(MIN_CWND_SEGMENTS, Math.min(this.cwnd, this.inflightCap, this.queueCap, this.maxCwnd));
  }
}
