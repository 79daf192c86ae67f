import type { FileRecord, ListEntry } from "./core/messages.ts";
import type { RegistryStore, ServerSummary } from "./core/store.ts";

/**
 * One entry per distinct (name, sha256, size, pieces root). Servers' file maps point at these shared entries rather than
 * holding records of their own, and a name usually has exactly one content, so the index costs a few
 * hundred bytes per file (1,000 servers × 100 files ≈ 40 MiB of heap).
 */
interface ContentEntry {
  name: string;
  size: number;
  sha256: string;
  piecesRoot: string | undefined;
  holders: number[]; // peer ids; small, so an array beats a Set
}

interface ServerState {
  address: string;
  files: Map<string, ContentEntry>;
}

export class MemoryStore implements RegistryStore {
  private readonly servers = new Map<number, ServerState>();
  private readonly byName = new Map<string, ContentEntry[]>();

  addServer(peerId: number, address: string): void {
    const existing = this.servers.get(peerId);
    if (existing) existing.address = address;
    else this.servers.set(peerId, { address, files: new Map() });
  }

  removeServer(peerId: number): void {
    const server = this.servers.get(peerId);
    if (!server) return;
    for (const name of [...server.files.keys()]) this.deleteFile(peerId, name);
    this.servers.delete(peerId);
  }

  hasServer(peerId: number): boolean {
    return this.servers.has(peerId);
  }

  serverCount(): number {
    return this.servers.size;
  }

  fileCount(peerId: number): number {
    return this.servers.get(peerId)?.files.size ?? 0;
  }

  putFile(peerId: number, file: FileRecord): void {
    const server = this.servers.get(peerId);
    if (!server) return;
    const previous = server.files.get(file.name);
    if (previous && sameContent(previous, file)) return;
    if (previous) this.deleteFile(peerId, file.name);
    let contents = this.byName.get(file.name);
    if (!contents) {
      contents = [];
      this.byName.set(file.name, contents);
    }
    let entry = contents.find((e) => sameContent(e, file));
    if (!entry) {
      entry = { name: file.name, size: file.size, sha256: file.sha256, piecesRoot: file.piecesRoot, holders: [] };
      contents.push(entry);
    }
    entry.holders.push(peerId);
    server.files.set(entry.name, entry);
  }

  deleteFile(peerId: number, name: string): boolean {
    const server = this.servers.get(peerId);
    const entry = server?.files.get(name);
    if (!server || !entry) return false;
    server.files.delete(name);
    const at = entry.holders.indexOf(peerId);
    if (at >= 0) entry.holders.splice(at, 1);
    if (entry.holders.length === 0) {
      const contents = this.byName.get(name);
      if (contents) {
        contents.splice(contents.indexOf(entry), 1);
        if (contents.length === 0) this.byName.delete(name);
      }
    }
    return true;
  }

  /** Every file of one server (a shared store publishes them). */
  filesOf(peerId: number): FileRecord[] {
    const server = this.servers.get(peerId);
    return server ? [...server.files.values()].map(toRecord) : [];
  }

  addressOf(peerId: number): string | undefined {
    return this.servers.get(peerId)?.address;
  }

  serverIds(): number[] {
    return [...this.servers.keys()];
  }

  /** Operators' view (ftx status): O(files of that server). */
  serverSummary(peerId: number): ServerSummary | undefined {
    const server = this.servers.get(peerId);
    if (!server) return undefined;
    let bytes = 0;
    for (const e of server.files.values()) bytes += e.size;
    return { address: server.address, files: server.files.size, bytes };
  }

  getFile(peerId: number, name: string): FileRecord | undefined {
    const entry = this.servers.get(peerId)?.files.get(name);
    return entry && toRecord(entry);
  }

  allNames(): Iterator<string> {
    return this.byName.keys();
  }

  names(match: (name: string) => boolean): string[] {
    const out: string[] = [];
    for (const name of this.byName.keys()) if (match(name)) out.push(name);
    return out;
  }

  entriesFor(name: string): ListEntry[] {
    const contents = this.byName.get(name);
    if (!contents) return [];
    return contents.map((e) => {
      const servers: string[] = [];
      for (const peerId of e.holders) {
        const s = this.servers.get(peerId);
        if (s) servers.push(s.address);
      }
      // A server that re-registered through another master can briefly appear twice: list it once.
      const unique = [...new Set(servers)].sort();
      return { ...toRecord(e), servers: unique };
    });
  }
}

function sameContent(e: ContentEntry, f: FileRecord): boolean {
  return e.sha256 === f.sha256 && e.size === f.size && e.piecesRoot === f.piecesRoot;
}

function toRecord(e: ContentEntry): FileRecord {
  return e.piecesRoot === undefined ? { name: e.name, size: e.size, sha256: e.sha256 } : { name: e.name, size: e.size, sha256: e.sha256, piecesRoot: e.piecesRoot };
}
