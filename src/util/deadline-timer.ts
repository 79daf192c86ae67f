/**
 * One timer for many deadlines: the shells (file service, transfer client) hold one of these and ask
 * it to wake them by the earliest deadline any session has. Creating and cancelling a timer per
 * datagram is what this avoids.
 */
export class DeadlineTimer {
  private timer: Timer | undefined;
  private armedFor = Infinity;

  constructor(private readonly fire: () => void) {}

  /** Wake by `at` (monotonic ms) at the latest; an earlier wake-up already armed is kept. */
  wakeBy(at: number): void {
    if (at >= this.armedFor) return;
    clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(() => {
      this.armedFor = Infinity;
      this.fire();
    }, Math.max(0, at - performance.now()));
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.armedFor = Infinity;
  }
}
