/**
 * The servers of one file and what is known of them: a pure state machine (no sockets, no timers, no
 * clock or randomness of its own), fed by the FileFetch shell and asked what to do. It decides
 *
 * - who may be asked: a server is listed by the index (or not any more), banned for this file (with
 *   the reason), resting after a failure (0.5 s doubling to 4 s per failure in a row) or busy (at its
 *   session cap: asked again after 125–375 ms), or in a session;
 * - how fast each one delivers: an exponentially weighted rate over ~300 ms, from the byte counts the
 *   shell reports whenever it looks, at whatever intervals;
 * - what a failed session means, by its error's code alone (SESSION_ERROR_ACTIONS);
 * - when the index may be asked again (at most once a second) and when patience runs out
 *   (`retryForMs` without progress while nobody can deliver).
 *
 * Driving surface, as the transports': `sessionStarted` / `handleBytes` / `sessionEnded` / `ban` /
 * `piecesVerified` / `handleLookup` in; `handleTimeout(now)`; `pollTimeout()` the one next deadline
 * (a rest ending, the index askable again, patience running out); `pollLookup(now)`, `expired(now)`
 * and the queries (`idle`, `rateOf`, …) out.
 */
import { FtxError, type FtxErrorCode } from "../../errors.ts";
import type { ListEntry } from "../../index/core/messages.ts";
import type { SourceId } from "./piece-planner.ts";

/** A busy server is asked again after this long, ± half of it (so that many clients do not come back together). */
export const BUSY_RETRY_MS = 250;
/** After a failure a server rests this long, doubling per consecutive failure, up to the maximum. */
export const COOLDOWN_FIRST_MS = 500;
export const COOLDOWN_MAX_MS = 4000;
/** The index is asked again at most this often. */
export const LOOKUP_EVERY_MS = 1000;
/** Rates forget the past with this time constant (≈ the 0.3-per-100-ms smoothing of the old tick). */
export const RATE_TIME_CONSTANT_MS = 300;

/**
 * What a failed session says about its server, by code: "busy" (at its session cap: not its fault,
 * ask again in a moment), "ban" (it does not have this content, will not let us in, or speaks
 * nonsense: not for this file), anything else "rest" (it may be back: rest, longer each time).
 */
export type SessionErrorAction = "busy" | "ban" | "rest";
export const SESSION_ERROR_ACTIONS: Readonly<Partial<Record<FtxErrorCode, SessionErrorAction>>> = {
  E_LIMIT: "busy",
  E_NOT_FOUND: "ban",
  E_INTEGRITY: "ban",
  E_AUTH: "ban",
  E_PROTOCOL: "ban",
};

export function sessionErrorAction(code: FtxErrorCode): SessionErrorAction {
  return SESSION_ERROR_ACTIONS[code] ?? "rest";
}

/** How a session ended. "stalled" and "stopped" are ended by us: a stalled server rests like a failed one; "stopped" says nothing of the server (its range taken over, the fetch over). */
export type SessionOutcome = { kind: "done" } | { kind: "failed"; error: FtxError } | { kind: "stalled" } | { kind: "stopped" };

/** What the book made of a session's end. */
export type SessionVerdict =
  | { kind: "ok" }
  | { kind: "busy"; restUntil: number }
  | { kind: "rested"; restUntil: number; failures: number }
  /** `newly`: this error banned it (the shell says so once); otherwise it was banned already. */
  | { kind: "banned"; newly: boolean };

export interface SourceState {
  readonly id: SourceId;
  readonly server: string;
  /** Named by the index's last answer for this content (or by the first one). */
  listed: boolean;
  /** Why it is not used for this file any more. */
  banned: string | undefined;
  /** Not asked before this time (monotonic ms). */
  restUntil: number;
  /** Failures in a row; a completed session resets it. */
  failures: number;
  inSession: boolean;
  /** Bytes of this file it delivered, the current session's as last reported included. */
  deliveredBytes: number;
  /** Smoothed, bytes per second; kept (not decayed) while it has no session. */
  rateBytesPerS: number;
}

interface Source extends SourceState {
  /** Bytes of its finished sessions. */
  bytesBefore: number;
  /** The rate's last sample: when, and deliveredBytes then. */
  rateAt: number;
  rateMarkBytes: number;
  /** Its rest timer is armed (cleared by handleTimeout once it has passed). */
  resting: boolean;
}

export interface SourceBookOptions {
  /** The content this book is for: index entries for other content (or other piece hashes) name no holder. */
  sha256: string;
  piecesRoot?: string;
  /** How long to keep asking the index when no server can deliver, before giving up. */
  retryForMs: number;
  /** Uniform in [0, 1): the busy retry's jitter. */
  random: () => number;
}

export class SourceBook {
  private readonly list: Source[] = [];
  private readonly byServer = new Map<string, Source>();
  private lastProgressAt: number;
  private lastLookupAt = -Infinity;
  private lookupWantedAt: number | undefined;
  private lookingUp = false;
  private starving = false;
  /** The last error that says why servers could not deliver: what the file fails with when patience runs out. */
  lastError: FtxError | undefined;

  constructor(
    servers: Iterable<string>,
    now: number,
    private readonly opts: SourceBookOptions,
  ) {
    this.lastProgressAt = now;
    for (const server of servers) this.add(server);
  }

  // --- queries ---

  get sources(): readonly SourceState[] {
    return this.list;
  }

  source(id: SourceId): SourceState | undefined {
    return this.list[id];
  }

  idOf(server: string): SourceId | undefined {
    return this.byServer.get(server)?.id;
  }

  rateOf(id: SourceId): number {
    return this.list[id]?.rateBytesPerS ?? 0;
  }

  usable(id: SourceId, now: number): boolean {
    const s = this.list[id];
    return s !== undefined && s.banned === undefined && s.listed && !s.inSession && s.restUntil <= now;
  }

  /** The sources that may be given work now, the one to ask first first: fastest, then fewest failures in a row. */
  idle(now: number): SourceState[] {
    return this.list.filter((s) => this.usable(s.id, now)).sort((a, b) => b.rateBytesPerS - a.rateBytesPerS || a.failures - b.failures || a.id - b.id);
  }

  pickIdle(now: number): SourceId | undefined {
    return this.idle(now)[0]?.id;
  }

  /** Sources neither banned nor unlisted: they could deliver, now or after a rest. */
  get candidateCount(): number {
    let n = 0;
    for (const s of this.list) if (s.banned === undefined && s.listed) n++;
    return n;
  }

  /** Some other source could still deliver. */
  othersCanHelp(except: SourceId): boolean {
    return this.list.some((s) => s.id !== except && s.banned === undefined && s.listed);
  }

  /** How many sources delivered bytes of the file. */
  get deliveringCount(): number {
    return this.list.filter((s) => s.deliveredBytes > 0).length;
  }

  get deliveredBytes(): number {
    let n = 0;
    for (const s of this.list) n += s.deliveredBytes;
    return n;
  }

  /** Nobody could deliver for `retryForMs` since the last progress: give up (with giveUpError). */
  expired(now: number): boolean {
    return this.starving && now - this.lastProgressAt >= this.opts.retryForMs;
  }

  giveUpError(): FtxError {
    return this.lastError ?? new FtxError("E_UNREACHABLE", "no server could deliver it");
  }

  // --- inputs ---

  sessionStarted(id: SourceId, now: number): void {
    const s = this.list[id];
    if (!s) return;
    s.inSession = true;
    s.rateAt = now;
    s.rateMarkBytes = s.deliveredBytes;
  }

  /**
   * The source's current session has received `sessionBytes` in all by `now`: its rate takes the
   * sample since the last report, weighted by how long that was. Returns whether it was progress.
   */
  handleBytes(id: SourceId, sessionBytes: number, now: number): boolean {
    const s = this.list[id];
    if (!s || !s.inSession) return false;
    const total = s.bytesBefore + sessionBytes;
    const progressed = total > s.deliveredBytes;
    s.deliveredBytes = total;
    if (progressed) this.lastProgressAt = Math.max(this.lastProgressAt, now);
    const dtMs = now - s.rateAt;
    if (dtMs > 0) {
      const sample = ((total - s.rateMarkBytes) * 1000) / dtMs;
      s.rateBytesPerS += (1 - Math.exp(-dtMs / RATE_TIME_CONSTANT_MS)) * (sample - s.rateBytesPerS);
      s.rateAt = now;
      s.rateMarkBytes = total;
    }
    return progressed;
  }

  /** The session is over (report its last bytes with handleBytes first): what that means for the source. */
  sessionEnded(id: SourceId, now: number, outcome: SessionOutcome): SessionVerdict {
    const s = this.list[id];
    if (!s) return { kind: "ok" };
    if (s.inSession) {
      s.inSession = false;
      s.bytesBefore = s.deliveredBytes;
    }
    switch (outcome.kind) {
      case "done":
        s.failures = 0;
        return { kind: "ok" };
      case "stopped":
        return s.banned === undefined ? { kind: "ok" } : { kind: "banned", newly: false };
      case "stalled":
        this.rest(s, now);
        return { kind: "rested", restUntil: s.restUntil, failures: s.failures };
      case "failed": {
        const action = sessionErrorAction(outcome.error.code);
        if (action === "ban") return { kind: "banned", newly: this.ban(id, outcome.error) };
        if (s.banned !== undefined) return { kind: "banned", newly: false };
        if (action === "busy") {
          s.restUntil = now + BUSY_RETRY_MS * (0.5 + this.opts.random());
          s.resting = true;
          return { kind: "busy", restUntil: s.restUntil };
        }
        this.rest(s, now);
        this.lastError = outcome.error;
        this.wantLookup(now);
        return { kind: "rested", restUntil: s.restUntil, failures: s.failures };
      }
    }
  }

  /** Not this source for this file, for `err` (which names the server). Returns true if that is news. */
  ban(id: SourceId, err: FtxError): boolean {
    const s = this.list[id];
    if (!s || s.banned !== undefined) return false;
    s.banned = err.message;
    s.resting = false;
    this.lastError = err;
    return true;
  }

  /** Pieces passed their check: progress, for the patience clock. */
  piecesVerified(now: number): void {
    this.lastProgressAt = Math.max(this.lastProgressAt, now);
  }

  /**
   * Whether nobody can deliver (no session, no piece awaiting its verdict, work missing). While so, the
   * index is asked again as often as allowed and the patience clock runs.
   */
  setStarving(starving: boolean, now: number): void {
    this.starving = starving;
    if (starving) this.wantLookup(now);
  }

  /** Ask the index again, as soon as allowed. */
  wantLookup(now: number): void {
    this.lookupWantedAt ??= now;
  }

  /** True: ask the index now (then report the answer with handleLookup, or lookupFailed). */
  pollLookup(now: number): boolean {
    if (this.lookupWantedAt === undefined || this.lookingUp || now < this.lastLookupAt + LOOKUP_EVERY_MS) return false;
    this.lookupWantedAt = undefined;
    this.lookingUp = true;
    this.lastLookupAt = now;
    return true;
  }

  lookupFailed(): void {
    this.lookingUp = false;
  }

  /**
   * The index's answer: servers that hold this content (with these piece hashes) are listed, the
   * others not any more (a session in progress goes on). Returns the servers new to the book.
   */
  handleLookup(entries: readonly ListEntry[]): string[] {
    this.lookingUp = false;
    const holders = new Set(entries.filter((e) => e.sha256 === this.opts.sha256 && e.piecesRoot === this.opts.piecesRoot).flatMap((e) => e.servers));
    for (const s of this.list) s.listed = holders.has(s.server);
    const added: string[] = [];
    for (const server of holders)
      if (!this.byServer.has(server)) {
        this.add(server);
        added.push(server);
      }
    return added;
  }

  /** Timers whose time has come are done with (a rest that ended leaves its source usable). */
  handleTimeout(now: number): void {
    for (const s of this.list) if (s.resting && s.restUntil <= now) s.resting = false;
  }

  /**
   * The one next deadline (monotonic ms), undefined if none: the earliest rest ending (of a source
   * that could be used then), the index askable again (while a lookup is wanted and none is under
   * way), the patience running out (while nobody can deliver).
   */
  pollTimeout(): number | undefined {
    let at = Infinity;
    for (const s of this.list) if (s.resting && s.banned === undefined && s.listed && !s.inSession) at = Math.min(at, s.restUntil);
    if (this.lookupWantedAt !== undefined && !this.lookingUp) at = Math.min(at, Math.max(this.lookupWantedAt, this.lastLookupAt + LOOKUP_EVERY_MS));
    if (this.starving) at = Math.min(at, this.lastProgressAt + this.opts.retryForMs);
    return at === Infinity ? undefined : at;
  }

  // --- internals ---

  private add(server: string): Source {
    const s: Source = {
      id: this.list.length,
      server,
      listed: true,
      banned: undefined,
      restUntil: 0,
      failures: 0,
      inSession: false,
      deliveredBytes: 0,
      rateBytesPerS: 0,
      bytesBefore: 0,
      rateAt: 0,
      rateMarkBytes: 0,
      resting: false,
    };
    this.list.push(s);
    this.byServer.set(server, s);
    return s;
  }

  /** One more failure in a row: not asked again for a while, longer each time. */
  private rest(s: Source, now: number): void {
    s.failures++;
    s.restUntil = now + Math.min(COOLDOWN_MAX_MS, COOLDOWN_FIRST_MS * 2 ** (s.failures - 1));
    s.resting = true;
  }
}
