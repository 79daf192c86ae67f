/**
 * A sleep that something else can cut short: a loop waits for its next tick, and an event (a reply,
 * a stop, new work) wakes it at once instead of leaving it to the timer.
 */
export class InterruptibleSleep {
  private wakeUp: (() => void) | undefined;

  /** Until `ms` have passed or `wake()`; with `ms` Infinity, until `wake()` alone. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      // setTimeout takes Infinity (or anything above 2^31 - 1 ms) as 1 ms.
      const timer = Number.isFinite(ms) ? setTimeout(resolve, Math.max(0, ms)) : undefined;
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** End the current sleep now, if there is one. */
  wake(): void {
    const wakeUp = this.wakeUp;
    this.wakeUp = undefined;
    wakeUp?.();
  }
}
