import { existsSync } from "node:fs";
import { FtxError, errorMessage } from "../errors.ts";
import { PART_SUFFIX } from "../files/core/safe-name.ts";
import { PIECE_HASH_BYTES, pieceCountFor, piecesRootOf } from "../files/core/pieces.ts";
import type { ListEntry } from "../index/core/messages.ts";
import type { Logger } from "../log.ts";
import { parseHostPort } from "../net/address.ts";
import { resolveHost } from "../net/resolve.ts";
import type { Download, DownloadSpec } from "../transfer/download.ts";
import { PartFile, type DownloadSink, type RangeSink } from "../transfer/part-file.ts";
import type { TransferClient } from "../transfer/transfer-client.ts";
import { INTERNET_DATAGRAM_BYTES, segmentBytesFor } from "../transfer/core/wire.ts";
import { PiecePlanner, type PlannedRange, type SourceId } from "./core/piece-planner.ts";
import { COOLDOWN_FIRST_MS, COOLDOWN_MAX_MS, SourceBook, sessionErrorAction } from "./core/source-book.ts";
import { InterruptibleSleep } from "../util/interruptible-sleep.ts";
import { copyRange } from "../util/bytes.ts";

/** What a FileFetch needs from the fetch around it. */
export interface FileFetchContext {
  client: TransferClient;
  logger: Logger;
  idleTimeoutMs: number;
  /** How long to keep asking the index when no server can deliver, before giving up on the file. */
  retryForMs: number;
  /** What is known of the path to a server: the segment size to use (probed once per server, or pinned) and its round trip. */
  pathFor(server: string, ip: string, port: number): Promise<PathInfo>;
  /** Ask the index again who holds the file (the answer's entries for this name). */
  lookup(): Promise<ListEntry[]>;
  progress?(bytes: number): void;
  /**
   * Every byte has arrived and the whole file's SHA-256 matched: what remains (the sync to disk and the
   * rename) needs no network, so the caller may start the next file meanwhile.
   */
  verified?(): void;
}

/** At most this many servers feed one file at once. */
const MAX_SOURCES = 8;
/** While something displays progress, the byte counts are handed to it this often (the terminal redraws every 100 ms). */
const PROGRESS_EVERY_MS = 100;

/** The path before a probe has answered: datagrams that fit a 1500-byte MTU. */
const UNPROBED_PATH: PathInfo = { segmentBytes: segmentBytesFor(INTERNET_DATAGRAM_BYTES) };

export interface PathInfo {
  segmentBytes: number;
  /** The probe's round trip, when a probe was answered. */
  rttMs?: number;
  /** Not even the small first probe was answered: why ("does not answer", "is gone (ECONNREFUSED)"); nothing large goes to it. */
  unanswered?: string;
}

/** The shell's side of a source: its address once resolved and its session, if it has one. */
interface Link {
  address?: { ip: string; port: number };
  range?: PlannedRange;
  download?: Download;
  sink?: TimedSink;
}

/**
 * A range's sink that notes when its last bytes came (so a stall is timed from the bytes themselves,
 * not from when the loop last looked) and tells the loop when the writer has failed.
 */
class TimedSink implements DownloadSink {
  lastAppendAt: number;
  private told = false;
  constructor(
    private readonly inner: RangeSink,
    private readonly part: PartFile,
    private readonly writeFailed: () => void,
  ) {
    this.lastAppendAt = performance.now();
  }
  get received(): number {
    return this.inner.received;
  }
  get backlogBytes(): number {
    return this.inner.backlogBytes;
  }
  whenBacklogBelow(bytes: number, callback: () => void): void {
    this.inner.whenBacklogBelow(bytes, callback);
  }
  append(bytes: Uint8Array, start: number, end: number): void {
    this.inner.append(bytes, start, end);
    this.lastAppendAt = performance.now();
    if (this.part.failure !== undefined && !this.told) {
      this.told = true;
      this.writeFailed();
    }
  }
  flush(): void {
    this.inner.flush();
  }
}

/** A sink for a piece-hash list: it is small and wanted whole, in memory. */
class MemorySink implements DownloadSink {
  readonly bytes: Uint8Array;
  private at = 0;
  readonly backlogBytes = 0;
  constructor(length: number) {
    this.bytes = new Uint8Array(length);
  }
  append(data: Uint8Array, start: number, end: number): void {
    copyRange(data, start, end, this.bytes, this.at);
    this.at += end - start;
  }
}

/**
 * One file, from every server that holds its content. First the piece hashes (from any one server,
 * checked against the pieces root the index gave), then ranges of pieces from all servers at once
 * (PiecePlanner decides who gets what); each piece is verified by the writer thread as it completes.
 * A server that dies, stalls or leaves loses its range to the others; one that sends a bad piece is
 * dropped for this file, named in a warning, and the piece is fetched elsewhere. With no server left,
 * the index is asked again until `retryForMs` passes without progress; then the file fails and the
 * part file keeps what was verified, for the next run.
 *
 * This is the shell: what to think of each server is the SourceBook's, what to fetch from whom the
 * PiecePlanner's. The planning loop wakes when something happens (a session ends, a verdict or the
 * index's answer comes back) or at the earliest deadline either of them gives, and never otherwise.
 */
export class FileFetch {
  private readonly book: SourceBook;
  /** By source id (the book's ids, which the planner uses too). */
  private readonly links: Link[] = [];
  private planner: PiecePlanner | undefined;
  private part: PartFile | undefined;
  private readonly pause = new InterruptibleSleep();
  private bytesAtOpen = 0;
  /** How often the planning loop woke (for `--verbose`: it should wake on events and deadlines, not spin). */
  private wakeups = 0;
  /** A wake-up is asked for once the writes have drained (or failed). */
  private watchingWrites = false;
  /** The piece hashes being fetched beside the transfer (a fresh part), its session, and why it failed. */
  private hashesBeside: Promise<void> | undefined;
  private hashDownload: Download | undefined;
  private hashesFailure: FtxError | undefined;
  /** The fetch of this file is over (done or failed): nothing more is started for it. */
  private stopped = false;
  /** The hash list's rest between attempts, cut short when the fetch stops. */
  private readonly hashPause = new InterruptibleSleep();

  constructor(
    private readonly ctx: FileFetchContext,
    readonly name: string,
    private readonly entry: ListEntry,
    servers: string[],
    private readonly dest: string,
  ) {
    this.book = new SourceBook(servers, performance.now(), { sha256: entry.sha256, piecesRoot: entry.piecesRoot, retryForMs: ctx.retryForMs, random: Math.random });
  }

  private link(id: SourceId): Link {
    return (this.links[id] ??= {});
  }

  private serverOf(id: SourceId): string {
    return this.book.source(id)?.server ?? `source ${id}`;
  }

  /** Something changed that the planning loop should act on now. */
  private notify(): void {
    this.pause.wake();
  }

  async run(): Promise<{ bytes: number; sha256: string; servers: number }> {
    const part = await this.openPart();
    this.part = part;
    const planner = new PiecePlanner(this.entry.size, part.pieceBytes, (i) => part.isVerified(i));
    this.planner = planner;
    this.bytesAtOpen = part.verifiedBytes;
    if (this.bytesAtOpen > 0) this.ctx.logger.info(`${this.name}: resuming with ${this.bytesAtOpen} of ${this.entry.size} bytes already verified`);
    part.onPieces = (verified, failed) => this.onPieces(verified, failed);
    this.updateVerifyMode();
    try {
      for (;;) {
        await this.transfer(planner, part);
        this.stopAll();
        // The whole file's check does not need the piece hashes, but naming the bad pieces after it failed does.
        if (this.hashesBeside) {
          await this.hashesBeside;
          if (this.hashesFailure) throw this.hashesFailure;
        }
        const committing = performance.now();
        const result = await part.commit(this.entry.sha256, () => this.ctx.verified?.());
        this.ctx.logger.debug(`${this.name}: whole-file check and sync to disk took ${(performance.now() - committing).toFixed(0)} ms; the planning loop woke ${this.wakeups} times`);
        if ("sha256" in result) {
          this.ctx.progress?.(this.entry.size);
          return { bytes: this.entry.size, sha256: result.sha256, servers: this.book.deliveringCount };
        }
        // The whole-file hash was wrong: the audit named the bad pieces; blame their senders, fetch them again.
        this.onPieces([], result.badPieces, true);
      }
    } catch (err) {
      this.stopAll();
      this.stopped = true;
      this.hashDownload?.cancel("fetch stopped");
      this.hashPause.wake();
      await part.close().catch(() => {});
      throw err;
    }
  }

  /**
   * The part file, with its piece hashes. A fresh download does not wait for them: the list is fetched
   * beside the first range (pieceHashesBeside), whose bytes arrive in order and are left to the whole
   * file's check until then; a round trip sooner on every path, 200 ms on a 200 ms one. A part on disk
   * waits: what it holds is checked against them before anything else.
   */
  private async openPart(): Promise<PartFile> {
    if (pieceCountFor(this.entry.size) > 1 && !existsSync(this.dest + PART_SUFFIX)) {
      const part = await PartFile.open(this.dest, this.entry.size, this.entry.sha256, undefined);
      const beside = this.pieceHashesBeside().then(
        (hashes) => part.setHashes(hashes),
        (err: unknown) => {
          this.hashesFailure = err instanceof FtxError ? err : new FtxError("E_IO", errorMessage(err));
          this.notify();
        },
      );
      this.hashesBeside = beside;
      return part;
    }
    return PartFile.open(this.dest, this.entry.size, this.entry.sha256, await this.pieceHashes());
  }

  /**
   * The piece-hash list, fetched beside the transfer: from the first server that may be asked (a
   * session of its own, which the book does not count: the server's range may be running too). A
   * server that sends a list not matching the index is banned; one that fails otherwise is asked again
   * after a rest (0.5 s doubling to 4 s), it or another, until `retryForMs` of failures in a row.
   */
  private async pieceHashesBeside(): Promise<Uint8Array> {
    const length = pieceCountFor(this.entry.size) * PIECE_HASH_BYTES;
    let failingSince: number | undefined;
    // Failures of this list's sessions, by source: the book does not see them (the source's range may be running).
    const failures = new Map<SourceId, number>();
    for (;;) {
      if (this.stopped) throw new FtxError("E_CLOSED", "fetch stopped");
      const now = performance.now();
      // Among the sources that failed this list least, the first whose path probe answers (the ranges
      // start those probes anyway): the list is off the critical path now, and an advertised address
      // that never answers must not hold it up. None answering, the first of them is asked all the same.
      const candidates = this.book.sources.filter((s) => s.banned === undefined && s.listed && s.restUntil <= now);
      const fewest = Math.min(...candidates.map((s) => failures.get(s.id) ?? 0));
      const tier = candidates.filter((s) => (failures.get(s.id) ?? 0) === fewest).slice(0, MAX_SOURCES);
      const id = tier.length === 0 ? undefined : ((await this.firstAnswering(tier.map((s) => s.id))) ?? tier[0]!.id);
      if (this.stopped) throw new FtxError("E_CLOSED", "fetch stopped");
      if (id === undefined) {
        if (this.book.candidateCount === 0) throw this.book.giveUpError();
      } else {
        const sink = new MemorySink(length);
        try {
          const download = await this.startSession(id, { offset: 0, length, size: length, pieceHashes: true }, sink);
          this.hashDownload = download;
          await download.finished;
          if (this.trustedList(id, sink.bytes)) return sink.bytes;
        } catch (err) {
          const e = err instanceof FtxError ? err : new FtxError("E_IO", errorMessage(err));
          if (sessionErrorAction(e.code) === "ban") this.ban(id, e);
          else this.ctx.logger.debug(`${this.name}: piece hashes from ${this.serverOf(id)}: ${e.message}`);
          failures.set(id, (failures.get(id) ?? 0) + 1);
        } finally {
          this.hashDownload = undefined;
        }
        if (this.stopped) throw new FtxError("E_CLOSED", "fetch stopped");
      }
      failingSince ??= now;
      if (performance.now() - failingSince >= this.ctx.retryForMs) throw this.book.lastError ?? new FtxError("E_UNREACHABLE", "no server sent the piece hashes");
      // A source that failed fewer times is asked at once; otherwise a rest first (0.5 s doubling to 4 s per failure).
      const mine = id === undefined ? 1 : (failures.get(id) ?? 0);
      const at = performance.now();
      const fresher = this.book.sources.some((s) => s.id !== id && s.banned === undefined && s.listed && s.restUntil <= at && (failures.get(s.id) ?? 0) < mine);
      if (!fresher) await this.hashPause.sleep(Math.min(COOLDOWN_MAX_MS, COOLDOWN_FIRST_MS * 2 ** Math.max(0, mine - 1)));
    }
  }

  /** The first of these sources whose path answers a probe, or undefined when none does. */
  private firstAnswering(ids: SourceId[]): Promise<SourceId | undefined> {
    return new Promise((resolve) => {
      let left = ids.length;
      for (const id of ids) {
        void (async () => {
          try {
            const server = this.serverOf(id);
            const link = this.link(id);
            link.address ??= await this.resolve(server);
            if ((await this.ctx.pathFor(server, link.address.ip, link.address.port)).unanswered === undefined) return resolve(id);
          } catch {} // an address that cannot be resolved does not answer either
          if (--left === 0) resolve(undefined);
        })();
      }
    });
  }

  /** Whether a piece-hash list from source `id` matches the index's root; a source whose list does not is banned. */
  private trustedList(id: SourceId, list: Uint8Array): boolean {
    const root = piecesRootOf(list);
    if (this.entry.piecesRoot === undefined || root === this.entry.piecesRoot) return true;
    this.ban(id, integrityError(this.serverOf(id), `sent piece hashes that do not match the index (root ${root.slice(0, 12)}…)`));
    return false;
  }

  /** The trusted piece hashes: for one piece, the file's own SHA-256; otherwise a list checked against the root. */
  private async pieceHashes(): Promise<Uint8Array> {
    const count = pieceCountFor(this.entry.size);
    if (count <= 1) return count === 0 ? new Uint8Array(0) : Buffer.from(this.entry.sha256, "hex");
    for (;;) {
      const now = performance.now();
      this.book.handleTimeout(now);
      const id = this.book.pickIdle(now);
      if (id === undefined) {
        await this.waitForSources(now);
        continue;
      }
      this.book.setStarving(false, now);
      const sink = new MemorySink(count * PIECE_HASH_BYTES);
      this.book.sessionStarted(id, now);
      try {
        const download = await this.startSession(id, { offset: 0, length: sink.bytes.byteLength, size: sink.bytes.byteLength, pieceHashes: true }, sink);
        this.link(id).download = download;
        await download.finished;
        this.link(id).download = undefined;
        this.book.sessionEnded(id, performance.now(), { kind: "done" });
        if (this.trustedList(id, sink.bytes)) return sink.bytes;
      } catch (err) {
        this.link(id).download = undefined;
        this.onSessionError(id, err);
      }
    }
  }

  /** Nobody can deliver the piece hashes right now: ask the index again, within the patience allowed. */
  private async waitForSources(now: number): Promise<void> {
    this.book.setStarving(true, now);
    if (this.book.expired(now)) throw this.book.giveUpError();
    this.lookupIfDue(now);
    await this.sleepUntil(this.book.pollTimeout());
  }

  private async transfer(planner: PiecePlanner, part: PartFile): Promise<void> {
    const progress = this.ctx.progress ? setInterval(() => this.refresh(performance.now()), PROGRESS_EVERY_MS) : undefined;
    try {
      while (!planner.complete) {
        if (part.failure) throw part.failure;
        if (this.hashesFailure) throw this.hashesFailure;
        const now = performance.now();
        this.wakeups++;
        this.refresh(now);
        this.book.handleTimeout(now);
        const waitingRate = this.startRanges(planner, now);
        // Nobody can deliver: no session, no verdict to wait for, and pieces missing.
        this.book.setStarving(planner.activeCount === 0 && planner.pendingCount === 0 && planner.missingCount > 0, now);
        if (this.book.expired(now)) throw this.book.giveUpError();
        this.lookupIfDue(now);
        let deadline = this.book.pollTimeout() ?? Infinity;
        // A source is waiting for work: a range may stall, or the end game become worth it, without any event.
        if (waitingRate !== undefined) deadline = Math.min(deadline, planner.pollTimeout(now, (id) => this.book.rateOf(id), waitingRate) ?? Infinity);
        // With no session left, no bytes arrive to report a failed write: have the writes' end (or failure) wake us.
        if (planner.activeCount === 0 && part.backlogBytes > 0) this.watchWrites(part);
        await this.sleepUntil(deadline);
      }
    } finally {
      clearInterval(progress);
    }
  }

  private sleepUntil(deadline: number | undefined): Promise<void> {
    return this.pause.sleep(deadline === undefined ? Infinity : deadline - performance.now());
  }

  private watchWrites(part: PartFile): void {
    if (this.watchingWrites) return;
    this.watchingWrites = true;
    part.whenBacklogBelow(1, () => {
      this.watchingWrites = false;
      this.notify();
    });
  }

  /** Hand the byte counts to the book and the planner (and the progress display). */
  private refresh(now: number): void {
    for (let id = 0; id < this.links.length; id++) {
      const { range, sink } = this.links[id] ?? {};
      if (!range || !sink) continue;
      const received = sink.received;
      if (range.received !== received) {
        range.received = received;
        range.lastProgressAt = sink.lastAppendAt;
      }
      this.book.handleBytes(id, received, now);
    }
    this.ctx.progress?.(Math.min(this.entry.size, this.bytesAtOpen + this.book.deliveredBytes));
  }

  /**
   * Work for the idle sources, fastest first. Returns the rate of a source left waiting because the
   * planner had nothing worth giving it (undefined if none was): its deadlines matter then.
   */
  private startRanges(planner: PiecePlanner, now: number): number | undefined {
    const idle = this.book.idle(now);
    let busy = planner.activeCount;
    for (let i = 0; i < idle.length && busy < MAX_SOURCES; i++) {
      const source = idle[i]!;
      const assignment = planner.assign(source.id, now, (id) => this.book.rateOf(id), Math.min(idle.length - i, MAX_SOURCES - busy));
      if (!assignment) return source.rateBytesPerS;
      if (assignment.cancelled) {
        const owner = assignment.cancelled.source;
        const stalled = assignment.cancelledBecause === "stalled";
        this.ctx.logger.debug(`${this.name}: ${this.serverOf(owner)} ${stalled ? "made no progress" : "is far slower"}; the rest of its range goes to ${source.server}`);
        this.endRange(owner, new FtxError(stalled ? "E_TIMEOUT" : "E_CLOSED", stalled ? `file server ${this.serverOf(owner)} stalled` : "range taken over by a faster server"));
        // A stalled one rests like a failed one, or it would be handed new work at once and stall again.
        this.book.sessionEnded(owner, now, { kind: stalled ? "stalled" : "stopped" });
      }
      if (assignment.shortened) this.links[assignment.shortened.source]?.download?.shorten(planner.byteRange(assignment.shortened).length);
      busy++;
      void this.runRange(planner, source.id, assignment.range, now);
    }
    return undefined;
  }

  private async runRange(planner: PiecePlanner, id: SourceId, range: PlannedRange, now: number): Promise<void> {
    const part = this.part!;
    const { offset, length } = planner.byteRange(range);
    const link = this.link(id);
    link.range = range;
    link.sink = new TimedSink(part.stream(offset), part, () => this.notify());
    this.book.sessionStarted(id, now);
    try {
      const download = await this.startSession(id, { offset, length, size: this.entry.size }, link.sink);
      link.download = download;
      if (link.range !== range) return download.cancel("range reassigned");
      // Another server may have taken the tail while this session was being set up.
      download.shorten(planner.byteRange(range).length);
      await download.finished;
      if (link.range !== range) return;
      this.ctx.logger.debug(`${this.name}: bytes ${offset}+${download.received} from ${this.serverOf(id)}: ${JSON.stringify(download.stats())}`);
      this.finishRange(id, "done");
      this.book.sessionEnded(id, performance.now(), { kind: "done" });
    } catch (err) {
      if (link.range !== range) return; // already ended by us (stalled, bad data)
      this.finishRange(id, "failed");
      this.onSessionError(id, err);
    }
    this.notify();
  }

  /** Stop the source's range: its session ends, what it received stays, the rest is missing again. */
  private finishRange(id: SourceId, how: "done" | "failed"): void {
    const link = this.link(id);
    const { range, sink } = link;
    if (!range || !sink) return;
    sink.flush();
    range.received = sink.received;
    this.planner?.close(range, how);
    this.book.handleBytes(id, sink.received, performance.now());
    link.range = undefined;
    link.sink = undefined;
    link.download = undefined;
  }

  /** End a source's range from our side (stalled, or it sent bad data); the session is told. */
  private endRange(id: SourceId, reason: FtxError): void {
    const download = this.link(id).download;
    this.finishRange(id, "failed");
    download?.fail(reason);
  }

  private async startSession(id: SourceId, range: Pick<DownloadSpec, "offset" | "length" | "size" | "pieceHashes">, sink: DownloadSink): Promise<Download> {
    const link = this.link(id);
    const server = this.serverOf(id);
    link.address ??= await this.resolve(server);
    const { ip, port } = link.address;
    const probing = this.ctx.pathFor(server, ip, port);
    // The piece-hash list (≤ 32 KiB) does not wait for the path probe: it goes in internet-sized
    // segments while the probe runs beside it, which saves the probe's round trips on a long path.
    const path = range.pieceHashes ? ((await Promise.race([probing, Promise.resolve(undefined)])) ?? UNPROBED_PATH) : await probing;
    if (path.unanswered !== undefined) throw new FtxError("E_UNREACHABLE", `file server ${server} ${path.unanswered}`);
    const download = await this.ctx.client.start(
      {
        name: this.name,
        sha256: this.entry.sha256,
        ip,
        port,
        display: server,
        segmentBytes: path.segmentBytes,
        pathRttMs: path.rttMs,
        ackEvery: 2,
        idleTimeoutMs: this.ctx.idleTimeoutMs,
        ...range,
      },
      sink,
    );
    if (range.pieceHashes) {
      // It went before the first probe was answered: if that never is, stop asking too (an advertised
      // address is a claim; small REQUESTs for the whole idle timeout would hold the fetch up).
      void probing.then((p) => {
        if (p.unanswered !== undefined && download.state === "requesting") download.fail(new FtxError("E_UNREACHABLE", `file server ${server} ${p.unanswered}`));
      });
    }
    return download;
  }

  private async resolve(server: string): Promise<{ ip: string; port: number }> {
    try {
      const hp = parseHostPort(server, "server address");
      return { ip: await resolveHost(hp.host), port: hp.port };
    } catch (err) {
      throw new FtxError("E_UNREACHABLE", `cannot use server ${server}: ${errorMessage(err)}`);
    }
  }

  /** A session failed: the book says what that means for its server (SESSION_ERROR_ACTIONS); say so. */
  private onSessionError(id: SourceId, err: unknown): void {
    const e = err instanceof FtxError ? err : new FtxError("E_IO", errorMessage(err));
    const verdict = this.book.sessionEnded(id, performance.now(), { kind: "failed", error: e });
    switch (verdict.kind) {
      case "busy":
        this.ctx.logger.debug(`${this.name}: ${e.message}`);
        break;
      case "banned":
        if (verdict.newly) this.banned(id, e);
        break;
      case "rested":
        this.ctx.logger.warn(`${this.name}: ${e.message}${this.book.othersCanHelp(id) ? "; carrying on with the other servers" : ""}`);
        break;
    }
    this.notify();
  }

  /** `err` names the server in its message; its detail, when it has one, says what the server did. */
  private ban(id: SourceId, err: FtxError): void {
    if (this.book.ban(id, err)) this.banned(id, err);
  }

  /** The book has just banned the source: say so, and end its range if it has one. */
  private banned(id: SourceId, err: FtxError): void {
    this.ctx.logger.warn(
      err.detail === undefined
        ? `${this.name}: ${err.message}; not using that server for this file`
        : `${this.name}: not using file server ${this.serverOf(id)} for this file: ${err.detail}`,
    );
    this.updateVerifyMode();
    if (this.link(id).range) {
      this.endRange(id, err);
      this.book.sessionEnded(id, performance.now(), { kind: "stopped" });
    }
  }

  /** Verdicts from the writer thread (or from the commit's audit). */
  private onPieces(verified: number[], failed: number[], audited = false): void {
    const planner = this.planner;
    if (!planner) return;
    for (const i of verified) planner.pieceVerified(i);
    for (const i of failed) {
      if (audited) planner.pieceUnverified(i);
      const supplier = planner.supplierOf(i);
      if (this.book.source(supplier)) this.ban(supplier, integrityError(this.serverOf(supplier), `sent bad data: piece ${i} does not match its SHA-256 (its copy changed or is damaged)`));
      planner.pieceFailed(i);
    }
    if (verified.length > 0) this.book.piecesVerified(performance.now());
    // Routine progress changes no decision; a bad piece, the end, or the last verdict with nobody at work (the
    // patience clock starts then) do.
    if (failed.length === 0 && !planner.complete && (planner.activeCount > 0 || planner.pendingCount > 0)) return;
    this.updateVerifyMode();
    this.notify();
  }

  /** Ask the index again if the book wants it and allows it now. */
  private lookupIfDue(now: number): void {
    if (!this.book.pollLookup(now)) return;
    this.ctx
      .lookup()
      .then((entries) => {
        for (const server of this.book.handleLookup(entries)) this.ctx.logger.debug(`${this.name}: ${server} now holds it too`);
        this.updateVerifyMode();
      })
      .catch((err) => {
        this.book.lookupFailed();
        this.ctx.logger.debug(`${this.name}: cannot ask the index again: ${errorMessage(err)}`);
      })
      .finally(() => this.notify());
  }

  /**
   * With one server there is nobody to fetch a bad piece from instead, so pieces arriving in order are
   * left to the whole-file check (one SHA-256 pass, not two); with several, each is checked at once.
   */
  private updateVerifyMode(): void {
    if (!this.part) return;
    this.part.verifyEachPiece = this.book.candidateCount > 1;
  }

  private stopAll(): void {
    for (const link of this.links) {
      link?.download?.cancel("fetch stopped");
      link?.sink?.flush();
    }
  }
}

/** A server sent bytes that fail their check; `detail` says which, for a message that names the server its own way. */
function integrityError(server: string, detail: string): FtxError {
  return new FtxError("E_INTEGRITY", `file server ${server} ${detail}`, { detail });
}
