/**
 * Rate-limited logging of peer misbehaviour: one line per kind per interval, with how many were held
 * back. A flood of bad peers (4,200 sockets reopened as they close wrote 20 MB of log in 20 s) costs
 * one line per kind every `intervalMs`. Pure: the caller passes `now`.
 */
export class LogLimiter {
  private readonly kinds = new Map<string, { windowStart: number; held: number }>();

  constructor(private readonly intervalMs = 10_000) {}

  /** The line to log for one event of `kind`, or undefined when it is held back (and counted). */
  admit(kind: string, text: string, now: number): string | undefined {
    const k = this.kinds.get(kind);
    if (k && now - k.windowStart < this.intervalMs) {
      k.held++;
      return undefined;
    }
    const held = k?.held ?? 0;
    this.kinds.set(kind, { windowStart: now, held: 0 });
    if (this.kinds.size > 1024) this.kinds.delete(this.kinds.keys().next().value!);
    return held > 0 ? `${text} (and ${held} more like it in the last ${Math.round((now - k!.windowStart) / 1000)}s)` : text;
  }
}
