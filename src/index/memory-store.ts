import type { FileRecord, ListEntry } from "./messages.ts";
import type { RegistryStore } from "./store.ts";

interface ServerState {
  address: string;
  files: Map<string, FileRecord>;
}

interface ContentEntry {
  file: FileRecord;
  holders: Set<number>; // peer ids
}

/** Content key: one index entry per distinct (name, sha256). NUL cannot occur in a valid name. */
function contentKey(name: string, sha256: string): string {
  return `${name}\u0000${sha256}`;
}

export class MemoryStore implements RegistryStore {
  private readonly servers = new Map<number, ServerState>();
  private readonly contents = new Map<string, ContentEntry>();

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
    if (previous && previous.sha256 === file.sha256 && previous.size === file.size) return;
    if (previous) this.deleteFile(peerId, file.name);
    server.files.set(file.name, file);
    const key = contentKey(file.name, file.sha256);
    let entry = this.contents.get(key);
    if (!entry) {
      entry = { file, holders: new Set() };
      this.contents.set(key, entry);
    }
    entry.holders.add(peerId);
  }

  deleteFile(peerId: number, name: string): boolean {
    const server = this.servers.get(peerId);
    const file = server?.files.get(name);
    if (!server || !file) return false;
    server.files.delete(name);
    const key = contentKey(name, file.sha256);
    const entry = this.contents.get(key);
    if (entry) {
      entry.holders.delete(peerId);
      if (entry.holders.size === 0) this.contents.delete(key);
    }
    return true;
  }

  getFile(peerId: number, name: string): FileRecord | undefined {
    return this.servers.get(peerId)?.files.get(name);
  }

  entries(match: (name: string) => boolean): ListEntry[] {
    const out: ListEntry[] = [];
    for (const { file, holders } of this.contents.values()) {
      if (!match(file.name)) continue;
      const servers: string[] = [];
      for (const peerId of holders) {
        const s = this.servers.get(peerId);
        if (s) servers.push(s.address);
      }
      servers.sort();
      out.push({ name: file.name, size: file.size, sha256: file.sha256, servers });
    }
    return out;
  }
}
