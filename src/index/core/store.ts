import type { FileRecord, ListEntry } from "./messages.ts";

/**
 * Where the registry keeps its state. The in-memory store is the embedded default; a shared store
 * (Redis, so several masters see one index) implements the same interface. The store only stores:
 * validation, leases and matching live in Registry and are written once.
 */
export interface RegistryStore {
  addServer(peerId: number, address: string): void;
  removeServer(peerId: number): void;
  hasServer(peerId: number): boolean;
  serverCount(): number;
  fileCount(peerId: number): number;
  /** Adds or replaces (same name, new content) one file of a server. */
  putFile(peerId: number, file: FileRecord): void;
  /** Returns whether the server had that name. */
  deleteFile(peerId: number, name: string): boolean;
  getFile(peerId: number, name: string): FileRecord | undefined;
  /** Every distinct name, unsorted, lazily: a listing walks it in slices (names added meanwhile may or may not appear). */
  allNames(): Iterator<string>;
  /** Every distinct name that passes `match` (unsorted). */
  names(match: (name: string) => boolean): string[];
  /** The distinct contents listed under one name, with the addresses of the servers holding each. */
  entriesFor(name: string): ListEntry[];
  /** A server showed signs of life (a shared store refreshes its lease). */
  renew?(peerId: number, now: number): void;
  /** True while answers may be out of date (a shared store that cannot reach its backend). */
  isStale?(): boolean;
  close?(): void;
  // ---- operators' view (ftx status, --http): read-only ------------------------------------------
  /** This master's id in a shared index. */
  readonly masterId?: string;
  /** One of this master's servers: its address, file count and bytes. */
  serverSummary?(peerId: number): ServerSummary | undefined;
  /** Servers registered through other masters sharing the store. */
  remoteServers?(): Array<ServerSummary & { master: string }>;
}

export interface ServerSummary {
  address: string;
  files: number;
  bytes: number;
}
