import type { Matcher } from "./pattern.ts";

/** Matched names are sorted in runs this long (a fraction of a millisecond each), then merged. */
const RUN_NAMES = 1024;
/**
 * A LIST whose matching costs more than this many steps is refused: about a second of one core, far
 * above any real pattern against 200,000 names (`**` costs ~30 steps a name).
 */
export const MAX_LIST_STEPS = 200_000_000;

export type ListingState = "matching" | "ready" | "too-costly";

/**
 * One LIST answer being prepared, in slices the caller sizes (sans-IO: no timer, no clock): `advance`
 * matches names until it has spent a number of steps, `next` then hands the matches out in code-unit
 * order, merged from sorted runs, so no single call sorts or scans the whole index.
 */
export class ListingJob {
  private readonly runs: string[][] = [];
  private current: string[] = [];
  private heap: { run: string[]; at: number }[] = [];
  private stepsSpent = 0;
  state: ListingState = "matching";

  constructor(
    readonly requestId: number,
    private readonly names: Iterator<string>,
    private readonly matcher: Matcher,
    private readonly maxSteps = MAX_LIST_STEPS,
  ) {}

  /** Match names until `stepBudget` steps are spent or all are seen. */
  advance(stepBudget: number): ListingState {
    if (this.state !== "matching") return this.state;
    const m = this.matcher;
    const stopAt = m.steps + stepBudget;
    while (m.steps < stopAt) {
      const it = this.names.next();
      if (it.done) {
        this.finishMatching();
        break;
      }
      if (m.matches(it.value)) {
        this.current.push(it.value);
        if (this.current.length >= RUN_NAMES) this.closeRun();
      }
    }
    this.stepsSpent = m.steps;
    if (this.state === "matching" && this.stepsSpent > this.maxSteps) {
      this.state = "too-costly";
      this.runs.length = 0;
      this.current = [];
    }
    return this.state;
  }

  get steps(): number {
    return this.stepsSpent;
  }

  /** The next matching name in order, once `ready`. */
  next(): string | undefined {
    const heap = this.heap;
    if (heap.length === 0) return undefined;
    const top = heap[0]!;
    const name = top.run[top.at++]!;
    if (top.at === top.run.length) {
      const last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        this.siftDown(0);
      }
    } else this.siftDown(0);
    return name;
  }

  private closeRun(): void {
    this.current.sort();
    this.runs.push(this.current);
    this.current = [];
  }

  private finishMatching(): void {
    if (this.current.length > 0) this.closeRun();
    this.heap = this.runs.map((run) => ({ run, at: 0 }));
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
    this.state = "ready";
  }

  private siftDown(i: number): void {
    const h = this.heap;
    const key = (k: number) => h[k]!.run[h[k]!.at]!;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < h.length && key(l) < key(min)) min = l;
      if (r < h.length && key(r) < key(min)) min = r;
      if (min === i) return;
      [h[i], h[min]] = [h[min]!, h[i]!];
      i = min;
    }
  }
}
