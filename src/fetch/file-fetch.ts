import { FtxError, errorMessage } from "../errors.ts";
import { PIECE_HASH_BYTES, pieceCountFor, piecesRootOf } from "../files/pieces.ts";
import type { ListEntry } from "../index/messages.ts";
import type { Logger } from "../log.ts";
import { parseHostPort, resolveHost } from "../net/address.ts";
import type { Download, DownloadSpec } from "../transfer/download.ts";
import { PartFile, type DownloadSink, type RangeSink } from "../transfer/part-file.ts";
import type { TransferClient } from "../transfer/transfer-client.ts";
import { PiecePlanner, type PlannedRange, type SourceId } from "./piece-planner.ts";
import { InterruptibleSleep } from "../util/interruptible-sleep.ts";

/** What a FileFetch needs from the fetch around it. */
export interface FileFetchContext {
  client: TransferClient;
  logger: Logger;
  token?: string;
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
/** A busy server is asked again after about this long. */
const BUSY_RETRY_MS = 250;
/** After a failure a server rests this long, doubling per consecutive failure, up to the maximum. */
const COOLDOWN_FIRST_MS = 500;
const COOLDOWN_MAX_MS = 4000;
/** The index is asked again at most this often while some work has no server. */
const LOOKUP_EVERY_MS = 1000;
const TICK_MS = 100;
/** Rates are smoothed over about this many ticks. */
const RATE_SMOOTHING = 0.3;

export interface PathInfo {
  segmentBytes: number;
  /** The probe's round trip, when a probe was answered. */
  rttMs?: number;
}

interface Source {
  id: SourceId;
  server: string;
  listed: boolean;
  banned?: string;
  restUntil: number;
  failures: number;
  address?: { ip: string; port: number; path: PathInfo };
  range?: PlannedRange;
  download?: Download;
  sink?: RangeSink;
  /** Bytes received by its finished ranges, plus the current one's: for its rate. */
  bytesBefore: number;
  bytesAtTick: number;
  rate: number;
}

/** A sink for a piece-hash list: it is small and wanted whole, in memory. */
class MemorySink implements DownloadSink {
  readonly bytes: Uint8Array;
  private at = 0;
  readonly backlogBytes = 0;
  constructor(length: number) {
    this.bytes = new Uint8Array(length);
  }
  append(data: Uint8Array): void {
    this.bytes.set(data.subarray(0, this.bytes.byteLength - this.at), this.at);
    this.at += data.byteLength;
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
 */
export class FileFetch {
  private readonly sources = new Map<string, Source>();
  /** The same sources, by id (ids count from 0): the planner names sources by id. */
  private readonly byId: Source[] = [];
  private planner: PiecePlanner | undefined;
  private part: PartFile | undefined;
  private lastProgressAt = performance.now();
  private lastLookupAt = 0;
  private lookingUp = false;
  private lastError: FtxError | undefined;
  private readonly pause = new InterruptibleSleep();
  private bytesAtOpen = 0;

  constructor(
    private readonly ctx: FileFetchContext,
    readonly name: string,
    private readonly entry: ListEntry,
    servers: string[],
    private readonly dest: string,
  ) {
    for (const server of servers) this.addSource(server);
  }

  private addSource(server: string): Source {
    let s = this.sources.get(server);
    if (!s) {
      s = { id: this.byId.length, server, listed: true, restUntil: 0, failures: 0, bytesBefore: 0, bytesAtTick: 0, rate: 0 };
      this.sources.set(server, s);
      this.byId.push(s);
    }
    return s;
  }

  private sourceById(id: SourceId): Source | undefined {
    return this.byId[id];
  }

  /** Something changed that the planning loop should act on now, not at its next tick. */
  private notify(): void {
    this.pause.wake();
  }

  async run(): Promise<{ bytes: number; sha256: string; servers: number }> {
    const hashes = await this.pieceHashes();
    const part = await PartFile.open(this.dest, this.entry.size, this.entry.sha256, hashes);
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
        const committing = performance.now();
        const result = await part.commit(this.entry.sha256, () => this.ctx.verified?.());
        this.ctx.logger.debug(`${this.name}: whole-file check and sync to disk took ${(performance.now() - committing).toFixed(0)} ms`);
        if ("sha256" in result) {
          this.ctx.progress?.(this.entry.size);
          let servers = 0;
          for (const s of this.sources.values()) if (s.bytesBefore > 0) servers++;
          return { bytes: this.entry.size, sha256: result.sha256, servers };
        }
        // The whole-file hash was wrong: the audit named the bad pieces; blame their senders, fetch them again.
        this.onPieces([], result.badPieces, true);
      }
    } catch (err) {
      this.stopAll();
      await part.close().catch(() => {});
      throw err;
    }
  }

  /** The trusted piece hashes: for one piece, the file's own SHA-256; otherwise a list checked against the root. */
  private async pieceHashes(): Promise<Uint8Array> {
    const count = pieceCountFor(this.entry.size);
    if (count <= 1) return count === 0 ? new Uint8Array(0) : Buffer.from(this.entry.sha256, "hex");
    for (;;) {
      const source = this.pickIdle(performance.now());
      if (!source) {
        await this.waitForSources();
        continue;
      }
      const sink = new MemorySink(count * PIECE_HASH_BYTES);
      try {
        const download = await this.startSession(source, { offset: 0, length: sink.bytes.byteLength, size: sink.bytes.byteLength, pieceHashes: true }, sink);
        await download.finished;
        source.download = undefined;
        const root = piecesRootOf(sink.bytes);
        if (this.entry.piecesRoot === undefined || root === this.entry.piecesRoot) return sink.bytes;
        this.ban(source, integrityError(source, `sent piece hashes that do not match the index (root ${root.slice(0, 12)}…)`));
      } catch (err) {
        source.download = undefined;
        this.onSessionError(source, err);
      }
    }
  }

  private async transfer(planner: PiecePlanner, part: PartFile): Promise<void> {
    while (!planner.complete) {
      if (part.failure) throw part.failure;
      const now = performance.now();
      this.tick(now);
      this.startRanges(planner, now);
      if (planner.activeCount === 0 && planner.pendingCount === 0 && planner.missingCount > 0) {
        await this.waitForSources();
        continue;
      }
      await this.pause.sleep(TICK_MS);
    }
  }

  /** Progress bookkeeping: what each range received, and each server's rate. */
  private tick(now: number): void {
    let total = 0;
    for (const s of this.sources.values()) {
      const current = s.sink?.received ?? 0;
      if (s.range && s.range.received !== current) {
        s.range.received = current;
        s.range.lastProgressAt = now;
        this.lastProgressAt = now;
      }
      const bytes = s.bytesBefore + current;
      s.rate = s.rate * (1 - RATE_SMOOTHING) + ((bytes - s.bytesAtTick) * (1000 / TICK_MS)) * RATE_SMOOTHING;
      s.bytesAtTick = bytes;
      total += bytes;
    }
    this.ctx.progress?.(Math.min(this.entry.size, this.bytesAtOpen + total));
  }

  private usable(s: Source, now: number): boolean {
    return !s.banned && s.listed && !s.range && !s.download && s.restUntil <= now;
  }

  private pickIdle(now: number): Source | undefined {
    let best: Source | undefined;
    for (const s of this.sources.values()) if (this.usable(s, now) && (!best || s.failures < best.failures)) best = s;
    return best;
  }

  private startRanges(planner: PiecePlanner, now: number): void {
    const idle = [...this.sources.values()].filter((s) => this.usable(s, now)).sort((a, b) => b.rate - a.rate || a.failures - b.failures);
    let busy = planner.activeCount;
    for (let i = 0; i < idle.length && busy < MAX_SOURCES; i++) {
      const source = idle[i]!;
      const assignment = planner.assign(source.id, now, (id) => this.sourceById(id)?.rate ?? 0, Math.min(idle.length - i, MAX_SOURCES - busy));
      if (!assignment) break;
      if (assignment.cancelled) {
        const owner = this.sourceById(assignment.cancelled.source);
        if (owner) {
          const stalled = assignment.cancelledBecause === "stalled";
          this.ctx.logger.debug(`${this.name}: ${owner.server} ${stalled ? "made no progress" : "is far slower"}; the rest of its range goes to ${source.server}`);
          this.endRange(owner, new FtxError(stalled ? "E_TIMEOUT" : "E_CLOSED", stalled ? `file server ${owner.server} stalled` : "range taken over by a faster server"));
          // A stalled one rests like a failed one, or it would be handed new work at once and stall again.
          if (stalled) this.rest(owner, now);
        }
      }
      if (assignment.shortened) {
        const owner = this.sourceById(assignment.shortened.source);
        owner?.download?.shorten(planner.byteRange(assignment.shortened).length);
      }
      busy++;
      void this.runRange(planner, source, assignment.range);
    }
  }

  private async runRange(planner: PiecePlanner, source: Source, range: PlannedRange): Promise<void> {
    const part = this.part!;
    const { offset, length } = planner.byteRange(range);
    const sink = part.stream(offset);
    source.range = range;
    source.sink = sink;
    try {
      const download = await this.startSession(source, { offset, length, size: this.entry.size }, sink);
      if (source.range !== range) return download.cancel("range reassigned");
      // Another server may have taken the tail while this session was being set up.
      download.shorten(planner.byteRange(range).length);
      await download.finished;
      if (source.range !== range) return;
      this.ctx.logger.debug(`${this.name}: bytes ${offset}+${download.received} from ${source.server}: ${JSON.stringify(download.stats())}`);
      source.failures = 0;
      this.finishRange(source, "done");
    } catch (err) {
      if (source.range !== range) return; // already ended by us (stalled, bad data)
      this.finishRange(source, "failed");
      this.onSessionError(source, err);
    }
    this.notify();
  }

  /** Stop the source's range: its session ends, what it received stays, the rest is missing again. */
  private finishRange(source: Source, how: "done" | "failed"): void {
    const range = source.range;
    const sink = source.sink;
    if (!range || !sink) return;
    sink.flush();
    range.received = sink.received;
    this.planner?.close(range, how);
    source.bytesBefore += sink.received;
    source.range = undefined;
    source.sink = undefined;
    source.download = undefined;
  }

  /** End a source's range from our side (stalled, or it sent bad data); the session is told. */
  private endRange(source: Source, reason: FtxError): void {
    const download = source.download;
    this.finishRange(source, "failed");
    download?.fail(reason);
  }

  private async startSession(source: Source, range: Pick<DownloadSpec, "offset" | "length" | "size" | "pieceHashes">, sink: DownloadSink): Promise<Download> {
    source.address ??= await this.resolve(source);
    const { ip, port, path } = source.address;
    const download = await this.ctx.client.start(
      {
        name: this.name,
        sha256: this.entry.sha256,
        ip,
        port,
        display: source.server,
        token: this.ctx.token,
        segmentBytes: path.segmentBytes,
        pathRttMs: path.rttMs,
        ackEvery: 2,
        idleTimeoutMs: this.ctx.idleTimeoutMs,
        ...range,
      },
      sink,
    );
    source.download = download;
    return download;
  }

  private async resolve(source: Source): Promise<{ ip: string; port: number; path: PathInfo }> {
    try {
      const hp = parseHostPort(source.server, "server address");
      const ip = await resolveHost(hp.host);
      return { ip, port: hp.port, path: await this.ctx.pathFor(source.server, ip, hp.port) };
    } catch (err) {
      throw new FtxError("E_UNREACHABLE", `cannot use server ${source.server}: ${errorMessage(err)}`);
    }
  }

  private onSessionError(source: Source, err: unknown): void {
    const e = err instanceof FtxError ? err : new FtxError("E_IO", errorMessage(err));
    const now = performance.now();
    switch (e.code) {
      case "E_LIMIT":
        // At its session cap: ask again in a moment, it is not a failure of the server.
        source.restUntil = now + BUSY_RETRY_MS * (0.5 + Math.random());
        this.ctx.logger.debug(`${this.name}: ${e.message}`);
        break;
      case "E_NOT_FOUND":
      case "E_CHANGED":
      case "E_INTEGRITY":
      case "E_AUTH":
      case "E_PROTOCOL":
        this.ban(source, e);
        break;
      default:
        this.rest(source, now);
        this.ctx.logger.warn(`${this.name}: ${e.message}${this.othersCanHelp(source) ? "; carrying on with the other servers" : ""}`);
        this.lastError = e;
        this.lookupSoon();
    }
    this.notify();
  }

  /** One more failure in a row: the server is not asked again for a while, longer each time. */
  private rest(source: Source, now: number): void {
    source.failures++;
    source.restUntil = now + Math.min(COOLDOWN_MAX_MS, COOLDOWN_FIRST_MS * 2 ** (source.failures - 1));
  }

  private othersCanHelp(except: Source): boolean {
    for (const s of this.sources.values()) if (s !== except && !s.banned && s.listed) return true;
    return false;
  }

  /** `err` names the server in its message; its detail, when it has one, says what the server did. */
  private ban(source: Source, err: FtxError): void {
    if (source.banned) return;
    source.banned = err.message;
    this.lastError = err;
    this.ctx.logger.warn(
      err.detail === undefined
        ? `${this.name}: ${err.message}; not using that server for this file`
        : `${this.name}: not using file server ${source.server} for this file: ${err.detail}`,
    );
    this.updateVerifyMode();
    if (source.range) this.endRange(source, this.lastError);
  }

  /** Verdicts from the writer thread (or from the commit's audit). */
  private onPieces(verified: number[], failed: number[], audited = false): void {
    const planner = this.planner;
    if (!planner) return;
    for (const i of verified) planner.pieceVerified(i);
    for (const i of failed) {
      if (audited) planner.pieceUnverified(i);
      const source = this.sourceById(planner.supplierOf(i));
      if (source) this.ban(source, integrityError(source, `sent bad data: piece ${i} does not match its SHA-256 (its copy changed or is damaged)`));
      planner.pieceFailed(i);
    }
    if (verified.length > 0) this.lastProgressAt = performance.now();
    if (failed.length === 0 && !planner.complete) return; // routine progress: the next tick is soon enough
    this.updateVerifyMode();
    this.notify();
  }

  /** Nobody can deliver right now: ask the index again (the server may be back), within the patience allowed. */
  private async waitForSources(): Promise<void> {
    if (performance.now() - this.lastProgressAt > this.ctx.retryForMs) throw this.lastError ?? new FtxError("E_UNREACHABLE", "no server could deliver it");
    this.lookupSoon();
    await this.pause.sleep(TICK_MS * 2);
  }

  private lookupSoon(): void {
    const now = performance.now();
    if (this.lookingUp || now - this.lastLookupAt < LOOKUP_EVERY_MS) return;
    this.lookingUp = true;
    this.lastLookupAt = now;
    this.ctx
      .lookup()
      .then((entries) => this.merge(entries))
      .catch((err) => this.ctx.logger.debug(`${this.name}: cannot ask the index again: ${errorMessage(err)}`))
      .finally(() => {
        this.lookingUp = false;
        this.notify();
      });
  }

  /** The index's current view: servers with this content (and this pieces root) are usable, others not. */
  private merge(entries: ListEntry[]): void {
    const holders = new Set(entries.filter((e) => e.sha256 === this.entry.sha256 && e.piecesRoot === this.entry.piecesRoot).flatMap((e) => e.servers));
    for (const s of this.sources.values()) s.listed = holders.has(s.server);
    for (const server of holders)
      if (!this.sources.has(server)) {
        this.ctx.logger.debug(`${this.name}: ${server} now holds it too`);
        this.addSource(server);
      }
    this.updateVerifyMode();
  }

  /**
   * With one server there is nobody to fetch a bad piece from instead, so pieces arriving in order are
   * left to the whole-file check (one SHA-256 pass, not two); with several, each is checked at once.
   */
  private updateVerifyMode(): void {
    if (!this.part) return;
    let candidates = 0;
    for (const s of this.sources.values()) if (!s.banned && s.listed) candidates++;
    this.part.verifyEachPiece = candidates > 1;
  }

  private stopAll(): void {
    for (const s of this.sources.values()) {
      s.download?.cancel("fetch stopped");
      s.sink?.flush();
    }
  }
}

/** A server sent bytes that fail their check; `detail` says which, for a message that names the server its own way. */
function integrityError(source: Source, detail: string): FtxError {
  return new FtxError("E_INTEGRITY", `file server ${source.server} ${detail}`, { detail });
}
