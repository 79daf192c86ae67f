import { unsafeNameReason } from "../../files/core/safe-name.ts";
import type { FileRecord, ListEntry } from "./messages.ts";
import { ListingJob } from "./listing.ts";
import { compilePattern } from "./pattern.ts";
import type { RegistryStore, ServerSummary } from "./store.ts";

export interface RegistryLimits {
  /** A file server announcing more than this gets the rest refused, with a reason. */
  maxFilesPerServer: number;
  maxServers: number;
  /**
   * What one file server's list may cost the master, in bytes: each file's name (UTF-8) plus
   * RECORD_OVERHEAD_BYTES. 200,000 files with 1 KiB names would be ~230 MB; a real tree of 200,000
   * files with 60-byte paths is ~44 MB.
   */
  maxBytesPerServer: number;
  /** The same over every server of this master: the index's memory stays bounded whoever registers. */
  maxIndexBytes: number;
}

export const DEFAULT_REGISTRY_LIMITS: RegistryLimits = {
  maxFilesPerServer: 200_000,
  maxServers: 10_000,
  maxBytesPerServer: 64 << 20,
  maxIndexBytes: 256 << 20,
};

/** What a file costs the master beside its name: its record, its slot in two maps, its list entry. */
export const RECORD_OVERHEAD_BYTES = 160;

export function fileCostBytes(name: string): number {
  return Buffer.byteLength(name, "utf8") + RECORD_OVERHEAD_BYTES;
}

export interface Rejection {
  name: string;
  reason: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The master's index, as a pure state machine: file servers and their files, each server held by a
 * lease that its traffic renews. No sockets, no clock: every call that depends on time takes `now`
 * (monotonic ms, never going back), and `expire(now)` returns the servers whose lease ran out for the shell to drop.
 */
export class Registry {
  /**
   * peerId → lease deadline. Every lease is `now + leaseMs` and `now` only grows, so a lease that is
   * renewed is moved to the end and the map stays in deadline order: the earliest is always first.
   */
  private readonly leases = new Map<number, number>();
  /** Bytes each local server's files cost (fileCostBytes), and their sum. */
  private readonly bytesByServer = new Map<number, number>();
  private indexBytes = 0;
  constructor(
    private readonly store: RegistryStore,
    private readonly leaseMs: number,
    private readonly limits: RegistryLimits = DEFAULT_REGISTRY_LIMITS,
  ) {}

  /** Registers (or re-addresses) a file server. Returns a refusal reason when full. */
  addServer(peerId: number, address: string, now: number): string | undefined {
    if (!this.store.hasServer(peerId) && this.store.serverCount() >= this.limits.maxServers)
      return `the index holds its maximum of ${this.limits.maxServers} file servers`;
    this.store.addServer(peerId, address);
    this.renewLease(peerId, now);
    return undefined;
  }

  hasServer(peerId: number): boolean {
    return this.store.hasServer(peerId);
  }

  /** Any sign of life from a server renews its lease. */
  touch(peerId: number, now: number): void {
    if (!this.leases.has(peerId)) return;
    this.renewLease(peerId, now);
    this.store.renew?.(peerId, now);
  }

  private renewLease(peerId: number, now: number): void {
    const deadline = now + this.leaseMs;
    if (this.leases.get(peerId) === deadline) return;
    this.leases.delete(peerId);
    this.leases.set(peerId, deadline);
  }

  /** When this server's lease runs out, if it holds one. */
  leaseDeadline(peerId: number): number | undefined {
    return this.leases.get(peerId);
  }

  /** Whether list answers may be out of date (the shared store is unreachable). */
  get stale(): boolean {
    return this.store.isStale?.() ?? false;
  }

  removeServer(peerId: number): void {
    this.leases.delete(peerId);
    this.indexBytes -= this.bytesByServer.get(peerId) ?? 0;
    this.bytesByServer.delete(peerId);
    this.store.removeServer(peerId);
  }

  /** Adds or replaces files; returns the ones refused and why. */
  addFiles(peerId: number, files: readonly FileRecord[], now: number): Rejection[] {
    const rejected: Rejection[] = [];
    if (!this.store.hasServer(peerId)) {
      for (const f of files) rejected.push({ name: f.name, reason: "not registered: announce first" });
      return rejected;
    }
    this.touch(peerId, now);
    for (const file of files) {
      const reason = validateFile(file);
      if (reason) {
        rejected.push({ name: file.name, reason });
        continue;
      }
      const isNew = this.store.getFile(peerId, file.name) === undefined;
      if (isNew && this.store.fileCount(peerId) >= this.limits.maxFilesPerServer) {
        rejected.push({ name: file.name, reason: `more than ${this.limits.maxFilesPerServer} files from one server` });
        continue;
      }
      if (isNew) {
        const cost = fileCostBytes(file.name);
        const held = this.bytesByServer.get(peerId) ?? 0;
        if (held + cost > this.limits.maxBytesPerServer) {
          rejected.push({ name: file.name, reason: `the list of one server may take at most ${this.limits.maxBytesPerServer >> 20} MiB of the index` });
          continue;
        }
        if (this.indexBytes + cost > this.limits.maxIndexBytes) {
          rejected.push({ name: file.name, reason: `the index is full (${this.limits.maxIndexBytes >> 20} MiB)` });
          continue;
        }
        this.bytesByServer.set(peerId, held + cost);
        this.indexBytes += cost;
      }
      this.store.putFile(peerId, file);
    }
    return rejected;
  }

  removeFiles(peerId: number, names: readonly string[], now: number): void {
    this.touch(peerId, now);
    for (const name of names) {
      if (!this.store.deleteFile(peerId, name)) continue;
      const cost = fileCostBytes(name);
      this.bytesByServer.set(peerId, (this.bytesByServer.get(peerId) ?? cost) - cost);
      this.indexBytes -= cost;
    }
  }

  /** Drops every server whose lease has run out; returns their ids so the shell can close them. */
  expire(now: number): number[] {
    const expired: number[] = [];
    for (const [peerId, deadline] of this.leases) {
      if (deadline > now) break; // in deadline order: the rest run out later
      expired.push(peerId);
    }
    for (const peerId of expired) this.removeServer(peerId);
    return expired;
  }

  /** The earliest lease deadline: when the shell should call expire() next. */
  pollTimeout(): number | undefined {
    for (const deadline of this.leases.values()) return deadline;
    return undefined;
  }

  /**
   * Names matching PATTERN, sorted (code-unit order), so output is stable. Callers fetch the entries of
   * each name as they stream them out (`entriesFor`), so a huge answer never sits in memory whole.
   */
  matchingNames(pattern: string): string[] {
    const m = compilePattern(pattern);
    return this.store.names((name) => m.matches(name)).sort();
  }

  /** The entries of one name, sorted by hash. */
  entriesFor(name: string): ListEntry[] {
    return this.store.entriesFor(name).sort((a, b) => (a.sha256 < b.sha256 ? -1 : a.sha256 > b.sha256 ? 1 : 0));
  }

  /** What the local servers' lists cost, in bytes (fileCostBytes). */
  get bytes(): number {
    return this.indexBytes;
  }

  /** A LIST answer to prepare in slices (ListingJob). Throws PatternError for a pattern it refuses. */
  listing(requestId: number, pattern: string): ListingJob {
    return new ListingJob(requestId, this.store.allNames(), compilePattern(pattern));
  }

  // ---- operators' view (src/ops): read-only -----------------------------------------------------
  serverSummary(peerId: number): ServerSummary | undefined {
    return this.store.serverSummary?.(peerId);
  }

  remoteServers(): Array<ServerSummary & { master: string }> {
    return this.store.remoteServers?.() ?? [];
  }

  get masterId(): string | undefined {
    return this.store.masterId;
  }

  /** The first `limit` of matchingNames(PATTERN) and how many match, without sorting them all (a page of a huge index). */
  firstNames(pattern: string, limit: number): { names: string[]; matched: number } {
    const m = compilePattern(pattern);
    const all = this.store.names((name) => m.matches(name));
    if (all.length <= limit) return { names: all.sort(), matched: all.length };
    const first: string[] = [];
    for (const name of all) {
      if (first.length === limit && name >= first[limit - 1]!) continue;
      let lo = 0;
      let hi = first.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (first[mid]! < name) lo = mid + 1;
        else hi = mid;
      }
      first.splice(lo, 0, name);
      if (first.length > limit) first.pop();
    }
    return { names: first, matched: all.length };
  }

  /** Every entry matching PATTERN, sorted by name then hash. */
  list(pattern: string): ListEntry[] {
    return this.matchingNames(pattern).flatMap((name) => this.entriesFor(name));
  }
}

function validateFile(file: FileRecord): string | undefined {
  const nameReason = unsafeNameReason(file.name);
  if (nameReason) return nameReason;
  if (!Number.isSafeInteger(file.size) || file.size < 0) return "invalid size";
  if (!SHA256_HEX.test(file.sha256)) return "invalid sha256";
  if (file.piecesRoot !== undefined && !SHA256_HEX.test(file.piecesRoot)) return "invalid pieces root";
  return undefined;
}
