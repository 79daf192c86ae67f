/**
 * Round-trip time and retransmission timeout, as RFC 6298 computes them, with RFC 9002's initial RTT
 * and its treatment of the peer's acknowledgement delay. Samples come from echoed timestamps, so a
 * retransmitted segment's ACK is never ambiguous (Karn's problem does not arise).
 */
export const INITIAL_RTT_MS = 333; // RFC 9002 §6.2.2
export const GRANULARITY_MS = 1; // RFC 9002 kGranularity
/**
 * Floor for the RTO: far below TCP's 200 ms (made for 1990s WANs); LAN RTTs are well under 1 ms. Low
 * enough that a tail loss costs little, high enough to ride out a typical event-loop or GC pause; a
 * spurious timeout costs Go-Back-N one window resent, a late one costs the whole floor in idle time.
 */
export const MIN_RTO_MS = 5;
/** Ceiling for the backed-off RTO: RFC 6298 allows ≥ 60 s; a file transfer gives up long before. */
export const MAX_RTO_MS = 4000;

/**
 * How long to wait for the answer to a control datagram (a path probe, a REQUEST) when one RTT sample
 * is all there is: 4 of them, but at least 20 ms (a busy event loop on either side is often that
 * late) and at most `capMs`, the wait used when nothing is known.
 */
export function answerWaitMs(rttMs: number, capMs: number): number {
  return Math.min(capMs, Math.max(20, 4 * rttMs));
}

export class RttEstimator {
  srttMs = INITIAL_RTT_MS;
  rttvarMs = INITIAL_RTT_MS / 2;
  minRttMs = Infinity;
  latestRttMs = 0;
  /** The newest sample less the peer's ACK delay (where that keeps it at or above the minimum): the path's share of it. */
  latestAdjustedMs = 0;
  hasSample = false;
  private backoff = 1;

  /** One RTT sample; `ackDelayMs` is how long the peer held the ACK (subtracted when plausible). */
  onSample(rttMs: number, ackDelayMs = 0): void {
    if (!(rttMs >= 0)) return;
    this.latestRttMs = rttMs;
    if (rttMs < this.minRttMs) this.minRttMs = rttMs;
    // RFC 9002 §5.3: never adjust below min_rtt.
    const adjusted = rttMs - ackDelayMs >= this.minRttMs ? rttMs - ackDelayMs : rttMs;
    this.latestAdjustedMs = adjusted;
    if (!this.hasSample) {
      this.srttMs = adjusted;
      this.rttvarMs = adjusted / 2;
      this.hasSample = true;
    } else {
      this.rttvarMs = 0.75 * this.rttvarMs + 0.25 * Math.abs(this.srttMs - adjusted);
      this.srttMs = 0.875 * this.srttMs + 0.125 * adjusted;
    }
    this.backoff = 1;
  }

  /** RTO before backoff: SRTT + max(G, 4·RTTVAR), clamped. With no sample: 333 + 4·166.5 = 999 ms. */
  baseRtoMs(): number {
    const rto = this.srttMs + Math.max(GRANULARITY_MS, 4 * this.rttvarMs);
    return Math.min(MAX_RTO_MS, Math.max(this.hasSample ? MIN_RTO_MS : 0, rto));
  }

  rtoMs(): number {
    return Math.min(MAX_RTO_MS, this.baseRtoMs() * this.backoff);
  }

  /** After a timeout: double (RFC 6298 §5.5), up to the ceiling. */
  onTimeout(): void {
    if (this.baseRtoMs() * this.backoff < MAX_RTO_MS) this.backoff *= 2;
  }

  get backoffFactor(): number {
    return this.backoff;
  }
}
