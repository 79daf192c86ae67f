/**
 * Congestion control in segments, NewReno-style (RFC 5681 / RFC 9002 §7): slow start from an initial
 * window of 10, additive increase of one segment per window, halving on loss (once per round trip),
 * collapse to the minimum on a timeout. Growth counts acknowledged segments (RFC 3465), so sparse ACKs
 * do not slow it.
 */
export const INITIAL_WINDOW_SEGMENTS = 10;
export const MIN_WINDOW_SEGMENTS = 2;
export const LOSS_REDUCTION = 0.5;

export class CongestionController {
  cwnd = INITIAL_WINDOW_SEGMENTS;
  ssthresh = Infinity;
  /** Growth pauses until segments sent before a fast-retransmit loss are acknowledged (NewReno recovery). */
  private recoveryUntilSeq = -1;
  /** Losses of segments sent before this point belong to a loss already reacted to: one cut per round trip. */
  private lossEpochUntilSeq = -1;

  constructor(private readonly maxWindowSegments: number) {}

  get inSlowStart(): boolean {
    return this.cwnd < this.ssthresh;
  }

  inRecovery(ackedThroughSeq: number): boolean {
    return ackedThroughSeq < this.recoveryUntilSeq;
  }

  onAck(newlyAcked: number, ackedThroughSeq: number): void {
    if (this.inRecovery(ackedThroughSeq)) return;
    if (this.inSlowStart) this.cwnd += newlyAcked;
    else this.cwnd += newlyAcked / this.cwnd;
    if (this.cwnd > this.maxWindowSegments) this.cwnd = this.maxWindowSegments;
  }

  /** A loss detected by duplicate ACKs. `sentUpTo` is the next unsent sequence at detection time. */
  onLoss(ackedThroughSeq: number, sentUpTo: number): boolean {
    if (ackedThroughSeq < this.lossEpochUntilSeq) return false;
    this.ssthresh = Math.max(MIN_WINDOW_SEGMENTS, this.cwnd * LOSS_REDUCTION);
    this.cwnd = this.ssthresh;
    this.recoveryUntilSeq = sentUpTo;
    this.lossEpochUntilSeq = sentUpTo;
    return true;
  }

  /** After a timeout the window restarts small but slow start regrows it while the old flight is resent. */
  onTimeout(sentUpTo: number): void {
    this.ssthresh = Math.max(MIN_WINDOW_SEGMENTS, this.cwnd * LOSS_REDUCTION);
    this.cwnd = MIN_WINDOW_SEGMENTS;
    this.recoveryUntilSeq = -1;
    this.lossEpochUntilSeq = sentUpTo;
  }
}
