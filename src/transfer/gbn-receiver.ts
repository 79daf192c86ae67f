/**
 * The Go-Back-N receiver, sans-IO. It accepts only the next expected segment (the shell writes that
 * payload), acknowledges cumulatively, and answers anything else with a duplicate ACK at once so the
 * sender can fast-retransmit. In-order data is acknowledged every `ackEvery` segments or after
 * `ackDelayMs`, whichever comes first.
 */
export interface ReceiverConfig {
  totalSegments: number;
  windowSegments: number;
  ackEvery: number;
  ackDelayMs: number;
}

export interface AckToSend {
  cumulative: number;
  windowSegments: number;
  echoTimestampUs: number;
  ackDelayUs: number;
}

export class GbnReceiver {
  /** Next segment expected; everything below it has been delivered. */
  expected = 0;
  windowSegments: number;
  private sinceAck = 0;
  private ackNow = false;
  private ackDeadline: number | undefined;
  private echoTimestampUs = 0;
  private echoArrivedAt: number | undefined; // undefined until data arrives: an ACK before that has no delay
  private readonly ack: AckToSend = { cumulative: 0, windowSegments: 0, echoTimestampUs: 0, ackDelayUs: 0 };
  readonly counters = { delivered: 0, duplicates: 0, outOfOrder: 0, acksSent: 0 };

  constructor(private readonly config: ReceiverConfig) {
    this.windowSegments = config.windowSegments;
  }

  get complete(): boolean {
    return this.expected >= this.config.totalSegments;
  }

  /**
   * Returns true when this segment is the next in order: the shell must deliver its payload now.
   * `ackNow`: the sender is waiting for this ACK (FLAG_ACK_NOW), so it goes out at once.
   */
  handleData(seq: number, timestampUs: number, now: number, ackNow = false): boolean {
    this.echoTimestampUs = timestampUs;
    this.echoArrivedAt = now;
    if (seq === this.expected && !this.complete) {
      this.expected++;
      this.counters.delivered++;
      this.sinceAck++;
      if (ackNow || this.sinceAck >= this.config.ackEvery || this.complete) this.ackNow = true;
      else if (this.ackDeadline === undefined) this.ackDeadline = now + this.config.ackDelayMs;
      return true;
    }
    if (seq < this.expected) this.counters.duplicates++;
    else this.counters.outOfOrder++;
    this.ackNow = true; // duplicate ACK: tells the sender where we are
    return false;
  }

  /**
   * Echo this timestamp in the next ACK although no data carried it: the first ACK answers the
   * ACCEPT, and must give the sender a true RTT sample, not an echo of nothing.
   */
  noteEcho(timestampUs: number, now: number): void {
    this.echoTimestampUs = timestampUs;
    this.echoArrivedAt = now;
  }

  /** Ask for an ACK to be sent at the next poll (e.g. a retransmitted ACCEPT, a window update). */
  requestAck(): void {
    this.ackNow = true;
  }

  /** An ACK to send now, or undefined. The returned object is reused: copy what you keep. */
  pollAck(now: number): AckToSend | undefined {
    if (!this.ackNow && (this.ackDeadline === undefined || now < this.ackDeadline)) return undefined;
    this.ackNow = false;
    this.ackDeadline = undefined;
    this.sinceAck = 0;
    this.counters.acksSent++;
    this.ack.cumulative = this.expected;
    this.ack.windowSegments = this.windowSegments;
    this.ack.echoTimestampUs = this.echoTimestampUs;
    this.ack.ackDelayUs = this.echoArrivedAt === undefined ? 0 : Math.max(0, Math.round((now - this.echoArrivedAt) * 1000));
    return this.ack;
  }

  pollTimeout(): number | undefined {
    return this.ackNow ? 0 : this.ackDeadline;
  }
}
