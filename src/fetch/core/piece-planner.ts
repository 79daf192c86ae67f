/**
 * Which pieces of a file to ask which server for: a pure state machine (no sockets, no clock of its
 * own), so the policy can be tested with thousands of simulated sources.
 *
 * Each server works on one range (a run of whole pieces, one Go-Back-N session). Missing pieces are
 * shared out evenly among the servers that are starting; a server that finishes takes work from the
 * range expected to finish last, in proportion to the two servers' rates (work stealing: a slow server
 * ends up with less of the file, and no range holds the whole file back). A range whose server made no
 * progress for `stallMs` is taken over entirely, and so is the last bit of a slow server's range when a
 * faster one would finish all of it, piece in progress included, well before the slow one would (the
 * end game: otherwise the slowest server's last piece decides when the file is done).
 */
export type SourceId = number;

export interface PlannedRange {
  readonly id: number;
  readonly source: SourceId;
  readonly first: number; // first piece
  end: number; // one past the last piece; lowered when its tail is taken by another source
  /** Bytes received from the range's start: kept current by the owner. */
  received: number;
  readonly startedAt: number;
  lastProgressAt: number;
}

export interface Assignment {
  range: PlannedRange;
  /** A range whose tail was taken: its session must stop at its new end. */
  shortened?: PlannedRange;
  /** A range taken over whole: its session must be cancelled. */
  cancelled?: PlannedRange;
  /** Why: its server made no progress ("stalled"), or this one will finish its rest sooner ("outpaced"). */
  cancelledBecause?: "stalled" | "outpaced";
}

/** A faster source takes over the end of a range only if it would finish it this many times sooner. */
const OUTPACE_MARGIN = 2;
/** pollTimeout's deadlines are at least this far away: a prediction that came due a little early is not retried at once. */
const MIN_RECHECK_MS = 10;

const enum Piece {
  Missing = 0,
  Assigned = 1,
  /** Fully received; its verdict from the writer is pending. */
  Pending = 2,
  Verified = 3,
}

export class PiecePlanner {
  private readonly state: Uint8Array;
  private readonly supplier: Int32Array;
  private readonly ranges = new Map<number, PlannedRange>();
  private nextRangeId = 1;
  private verifiedCount = 0;

  constructor(
    readonly size: number,
    readonly pieceBytes: number,
    isVerified: (piece: number) => boolean,
    private readonly stallMs = 2000,
  ) {
    const count = Math.ceil(size / pieceBytes);
    this.state = new Uint8Array(count);
    this.supplier = new Int32Array(count).fill(-1);
    for (let i = 0; i < count; i++)
      if (isVerified(i)) {
        this.state[i] = Piece.Verified;
        this.verifiedCount++;
      }
  }

  get pieceCount(): number {
    return this.state.length;
  }

  get complete(): boolean {
    return this.verifiedCount === this.state.length;
  }

  get active(): Iterable<PlannedRange> {
    return this.ranges.values();
  }

  get activeCount(): number {
    return this.ranges.size;
  }

  /** Pieces received whose verdict has not come back yet. */
  get pendingCount(): number {
    let n = 0;
    for (const s of this.state) if (s === Piece.Pending) n++;
    return n;
  }

  get missingCount(): number {
    let n = 0;
    for (const s of this.state) if (s === Piece.Missing) n++;
    return n;
  }

  supplierOf(piece: number): SourceId {
    return this.supplier[piece]!;
  }

  byteRange(r: PlannedRange): { offset: number; length: number } {
    const offset = r.first * this.pieceBytes;
    return { offset, length: Math.min(this.size, r.end * this.pieceBytes) - offset };
  }

  /** Pieces of the range fully received so far. */
  receivedPieces(r: PlannedRange): number {
    const { length } = this.byteRange(r);
    return r.received >= length ? r.end - r.first : Math.floor(r.received / this.pieceBytes);
  }

  /**
   * Work for `source`, or undefined if there is none worth taking. `starting` is how many sources
   * (this one included) are about to ask, so that a first round shares the missing pieces evenly.
   */
  assign(source: SourceId, now: number, rateOf: (s: SourceId) => number, starting = 1): Assignment | undefined {
    const run = this.longestMissingRun();
    if (run) {
      const take = Math.max(1, Math.ceil(run.length / Math.max(1, starting)));
      return { range: this.open(source, run.first, run.first + take, now) };
    }
    return this.steal(source, now, rateOf);
  }

  /**
   * When a decision `assign` just declined could go the other way with nothing else happening, for a
   * source waiting for work whose rate is `waitingRate`: the earliest of a range becoming stalled
   * (its owner's last progress + `stallMs`, as far as the owner has reported it) and, if the waiting
   * source is more than OUTPACE_MARGIN times faster than an owner, that owner reaching its next piece
   * at its rate (the end game weighs the rest from the piece in progress, so a take-over becomes
   * possible at a piece's start). Undefined: nothing will change by itself. Never earlier than `now`
   * + MIN_RECHECK_MS, so a caller sleeping until it cannot spin.
   */
  pollTimeout(now: number, rateOf: (s: SourceId) => number, waitingRate = 0): number | undefined {
    let at = Infinity;
    for (const r of this.ranges.values()) {
      const { length } = this.byteRange(r);
      if (r.received >= length) continue;
      at = Math.min(at, Math.max(r.startedAt, r.lastProgressAt) + this.stallMs);
      const theirs = rateOf(r.source);
      if (theirs > 0 && waitingRate > OUTPACE_MARGIN * theirs) {
        const nextPieceEnd = Math.min(length, (this.receivedPieces(r) + 1) * this.pieceBytes);
        at = Math.min(at, now + ((nextPieceEnd - r.received) / theirs) * 1000);
      }
    }
    return at === Infinity ? undefined : Math.max(at, now + MIN_RECHECK_MS);
  }

  private longestMissingRun(): { first: number; length: number } | undefined {
    let best: { first: number; length: number } | undefined;
    for (let i = 0; i < this.state.length; ) {
      if (this.state[i] !== Piece.Missing) {
        i++;
        continue;
      }
      let j = i;
      while (j < this.state.length && this.state[j] === Piece.Missing) j++;
      if (!best || j - i > best.length) best = { first: i, length: j - i };
      i = j;
    }
    return best;
  }

  private steal(source: SourceId, now: number, rateOf: (s: SourceId) => number): Assignment | undefined {
    let victim: PlannedRange | undefined;
    let victimTime = 0;
    let stalled = false;
    for (const r of this.ranges.values()) {
      if (r.source === source) continue;
      const isStalled = now - r.startedAt >= this.stallMs && now - r.lastProgressAt >= this.stallMs;
      const remaining = this.byteRange(r).length - r.received;
      const time = isStalled ? Infinity : remaining / Math.max(1, rateOf(r.source));
      if (remaining > 0 && (!victim || time > victimTime)) {
        victim = r;
        victimTime = time;
        stalled = isStalled;
      }
    }
    if (!victim) return undefined;
    const inProgress = victim.first + this.receivedPieces(victim);
    const takeOver = (because: "stalled" | "outpaced"): Assignment => {
      // All of it, the piece it was in the middle of included (that piece starts over here).
      this.close(victim!, "reassign");
      return { range: this.open(source, inProgress, victim!.end, now), cancelled: victim, cancelledBecause: because };
    };
    if (stalled) return takeOver("stalled");
    // The owner keeps the piece it is receiving; the rest is split by rate so both finish together.
    const mine = rateOf(source);
    const theirs = rateOf(victim.source);
    const stealable = victim.end - (inProgress + 1);
    const share = mine > 0 && theirs > 0 ? mine / (mine + theirs) : 0.5;
    const take = Math.max(0, Math.floor(stealable * share + 1e-9));
    if (take < 1) {
      // The end game: nothing left to split. Take the rest whole if this source would finish it,
      // from the start of the piece in progress, in well under the time the owner needs.
      if (mine <= 0 || theirs <= 0) return undefined;
      const ownerLeftMs = ((this.byteRange(victim).length - victim.received) / theirs) * 1000;
      const rest = Math.min(this.size, victim.end * this.pieceBytes) - inProgress * this.pieceBytes;
      const mineMs = (rest / mine) * 1000;
      return mineMs * OUTPACE_MARGIN < ownerLeftMs ? takeOver("outpaced") : undefined;
    }
    const first = victim.end - take;
    victim.end = first;
    return { range: this.open(source, first, first + take, now), shortened: victim };
  }

  private open(source: SourceId, first: number, end: number, now: number): PlannedRange {
    for (let i = first; i < end; i++) {
      this.state[i] = Piece.Assigned;
      this.supplier[i] = source;
    }
    const range: PlannedRange = { id: this.nextRangeId++, source, first, end, received: 0, startedAt: now, lastProgressAt: now };
    this.ranges.set(range.id, range);
    return range;
  }

  /**
   * The range's session ended, whole ("done") or not: what it received fully awaits its verdict;
   * the rest is missing again (unless "reassign": a new range already holds it).
   */
  close(r: PlannedRange, how: "done" | "failed" | "reassign"): void {
    if (!this.ranges.delete(r.id)) return;
    const received = how === "done" ? r.end - r.first : this.receivedPieces(r);
    for (let i = r.first; i < r.end; i++) {
      if (this.state[i] !== Piece.Assigned || this.supplier[i] !== r.source) continue;
      if (i < r.first + received) this.state[i] = Piece.Pending;
      else if (how !== "reassign") this.state[i] = Piece.Missing;
    }
  }

  pieceVerified(piece: number): void {
    if (this.state[piece] === Piece.Verified) return;
    this.state[piece] = Piece.Verified;
    this.verifiedCount++;
  }

  /** A piece taken for good turned out bad (found by the whole-file check): it is pending its failure. */
  pieceUnverified(piece: number): void {
    if (this.state[piece] !== Piece.Verified) return;
    this.state[piece] = Piece.Pending;
    this.verifiedCount--;
  }

  /** The piece's bytes were wrong: it is missing again (the caller deals with its supplier). */
  pieceFailed(piece: number): void {
    if (this.state[piece] === Piece.Pending) this.state[piece] = Piece.Missing;
  }
}
