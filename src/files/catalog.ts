import { watch, type FSWatcher } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import { FtxError } from "../errors.ts";
import { silentLogger, type Logger } from "../log.ts";
import type { FileRecord } from "./core/file-record.ts";
import { hashFile, type FileHashes } from "./hash-file.ts";
import { walkFolder, type Candidate } from "./walk.ts";

export interface CatalogEntry extends Candidate, FileHashes {}

export interface CatalogListener {
  added(file: FileRecord): void;
  removed(name: string): void;
}

export interface CatalogOptions {
  logger?: Logger;
  /** Safety-net rescan for changes the watcher missed; keeps the contract's 3 s even without inotify. */
  rescanIntervalMs?: number;
  /** A file modified more recently than this is still being written: wait before hashing it. */
  settleMs?: number;
  watch?: boolean;
}

const WATCH_DEBOUNCE_MS = 100;

function sameStat(a: Candidate, b: Candidate): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino && a.path === b.path;
}

/**
 * The served folder as a list of (name, size, sha256), kept current. Scans walk the folder (stat only);
 * files that are new or whose size+mtime+inode changed are hashed one at a time in the background, and
 * each is published as soon as its hash is known, so a large folder never holds back what is ready.
 */
export class Catalog {
  private readonly entries = new Map<string, CatalogEntry>();
  private readonly pending = new Map<string, Candidate>(); // waiting to be hashed
  private inFlight: Candidate | undefined; // being hashed right now
  private readonly listeners = new Set<CatalogListener>();
  /** Names already reported as not served, so a rescan does not repeat the warning. */
  private readonly skipped = new Set<string>();
  private readonly logger: Logger;
  private readonly settleMs: number;
  private scanning = false;
  private scanAgain = false;
  private hashing = false;
  private stopped = false;
  private watcher: FSWatcher | undefined;
  private rescanTimer: Timer | undefined;
  private debounceTimer: Timer | undefined;
  private settleTimer: Timer | undefined;

  private constructor(
    readonly root: string,
    private readonly opts: CatalogOptions,
  ) {
    this.logger = opts.logger ?? silentLogger;
    this.settleMs = opts.settleMs ?? 300;
  }

  /** Opens DIR (which must exist and be a folder) and starts the first scan. */
  static async open(dir: string, opts: CatalogOptions = {}): Promise<Catalog> {
    let root: string;
    try {
      root = await realpath(dir);
      if (!(await stat(root)).isDirectory()) throw new FtxError("E_IO", `${dir} is not a folder`);
    } catch (err) {
      if (err instanceof FtxError) throw err;
      throw new FtxError("E_NOT_FOUND", `folder ${dir} does not exist (create it, or name another one)`);
    }
    const catalog = new Catalog(root, opts);
    catalog.start();
    return catalog;
  }

  private start(): void {
    void this.scan();
    if (this.opts.watch !== false) {
      try {
        this.watcher = watch(this.root, { recursive: true }, () => this.scheduleScan(WATCH_DEBOUNCE_MS));
        this.watcher.on("error", (err) => this.logger.debug(`folder watcher failed (${err.message}); relying on rescans`));
      } catch (err) {
        this.logger.debug(`cannot watch ${this.root} (${(err as Error).message}); relying on rescans`);
      }
    }
    this.rescanTimer = setInterval(() => this.requestScan(), this.opts.rescanIntervalMs ?? 2000);
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    clearInterval(this.rescanTimer);
    clearTimeout(this.debounceTimer);
    clearTimeout(this.settleTimer);
  }

  subscribe(listener: CatalogListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(name: string): CatalogEntry | undefined {
    return this.entries.get(name);
  }

  files(): FileRecord[] {
    return [...this.entries.values()].map(toRecord);
  }

  get size(): number {
    return this.entries.size;
  }

  private scheduleScan(delayMs: number): void {
    if (this.stopped || this.debounceTimer) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      this.requestScan();
    }, delayMs);
  }

  requestScan(): void {
    if (this.stopped) return;
    if (this.scanning) {
      this.scanAgain = true;
      return;
    }
    void this.scan();
  }

  private async scan(): Promise<void> {
    this.scanning = true;
    try {
      do {
        this.scanAgain = false;
        await this.scanOnce();
      } while (this.scanAgain && !this.stopped);
    } finally {
      this.scanning = false;
    }
  }

  private async scanOnce(): Promise<void> {
    const seen = new Set<string>();
    for await (const c of walkFolder(this.root, (name, reason) => this.onSkip(name, reason))) {
      if (this.stopped) return;
      seen.add(c.name);
      const known = this.entries.get(c.name);
      if (known && sameStat(known, c)) continue;
      if (known) this.remove(c.name); // its advertised hash is wrong from now on
      if (this.inFlight?.name === c.name && sameStat(this.inFlight, c)) continue;
      const queued = this.pending.get(c.name);
      if (!queued || !sameStat(queued, c)) this.pending.set(c.name, c);
    }
    for (const name of [...this.entries.keys()]) if (!seen.has(name)) this.remove(name);
    for (const name of [...this.pending.keys()]) if (!seen.has(name)) this.pending.delete(name);
    void this.hashPending();
  }

  /** A file under DIR that no client could fetch (unsafe or too long a name): said once, not each scan. */
  private onSkip(name: string, reason: string): void {
    if (this.skipped.has(name)) return;
    this.skipped.add(name);
    this.logger.warn(`not serving ${JSON.stringify(name)}: ${reason}`);
  }

  private remove(name: string): void {
    if (!this.entries.delete(name)) return;
    for (const l of this.listeners) l.removed(name);
  }

  private async hashPending(): Promise<void> {
    if (this.hashing) return;
    this.hashing = true;
    let deferred = false;
    try {
      while (!this.stopped) {
        const next = this.nextSettled();
        if (!next) {
          deferred = this.pending.size > 0;
          break;
        }
        this.pending.delete(next.name);
        this.inFlight = next;
        await this.hashOne(next);
        this.inFlight = undefined;
      }
    } finally {
      this.hashing = false;
    }
    if (deferred && !this.stopped && !this.settleTimer) {
      this.settleTimer = setTimeout(() => {
        this.settleTimer = undefined;
        this.requestScan();
      }, this.settleMs);
    }
  }

  /** The next pending file that has not been modified for settleMs (one still being written waits). */
  private nextSettled(): Candidate | undefined {
    const now = Date.now();
    for (const c of this.pending.values()) {
      const age = now - c.mtimeMs;
      if (age < 0 || age >= this.settleMs) return c;
    }
    return undefined;
  }

  private async hashOne(c: Candidate): Promise<void> {
    let hashes: FileHashes;
    try {
      hashes = await hashFile(c.path, c.size);
      const after = await stat(c.path);
      if (after.size !== c.size || after.mtimeMs !== c.mtimeMs || after.ino !== c.ino) {
        this.requestScan(); // changed while we read it: the hash is already stale
        return;
      }
    } catch (err) {
      this.logger.debug(`cannot read ${c.name}: ${(err as Error).message}`);
      return;
    }
    if (this.stopped) return;
    const entry: CatalogEntry = { ...c, ...hashes };
    this.entries.set(c.name, entry);
    const record = toRecord(entry);
    for (const l of this.listeners) l.added(record);
  }
}

function toRecord(e: CatalogEntry): FileRecord {
  return { name: e.name, size: e.size, sha256: e.sha256, piecesRoot: e.piecesRoot };
}
