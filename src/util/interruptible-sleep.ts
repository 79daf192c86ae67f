/**
 * A sleep that something else can cut short: a loop waits for its next tick, and an event (a reply,
 * a stop, new work) wakes it at once instead of leaving it to the timer.
 */
export class InterruptibleSleep {
  private wakeUp: (() => void) | undefined;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
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
