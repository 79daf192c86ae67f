import { opendir, realpath, stat } from "node:fs/promises";
import { join, sep } from "node:path";
import { PART_SUFFIX, unsafeNameReason } from "./core/safe-name.ts";

export interface Candidate {
  name: string; // relative, `/`-separated
  path: string; // absolute real path of the content (symlinks resolved)
  size: number;
  mtimeMs: number;
  ino: number;
}

export function isInside(rootReal: string, real: string): boolean {
  return real === rootReal || real.startsWith(rootReal.endsWith(sep) ? rootReal : rootReal + sep);
}

/**
 * Every regular file under `rootReal` (already a real path), recursively, dotfiles included, except
 * our own `*.ftx-part` files. A symlink is followed only when it resolves inside the root; a
 * directory reached twice (symlink loops) is walked once. Unreadable entries are skipped, not fatal:
 * a folder that changes while we walk it is normal.
 */
export async function* walkFolder(rootReal: string, onSkip?: (name: string, reason: string) => void): AsyncGenerator<Candidate> {
  const visited = new Set<string>([rootReal]);
  const stack: Array<{ dir: string; prefix: string }> = [{ dir: rootReal, prefix: "" }];
  while (stack.length > 0) {
    const { dir, prefix } = stack.pop()!;
    let handle;
    try {
      handle = await opendir(dir);
    } catch {
      continue;
    }
    for await (const ent of handle) {
      const name = prefix + ent.name;
      const full = join(dir, ent.name);
      let real = full;
      let isDir = ent.isDirectory();
      let isFile = ent.isFile();
      if (ent.isSymbolicLink()) {
        try {
          real = await realpath(full);
        } catch {
          onSkip?.(name, "dangling symlink");
          continue;
        }
        if (!isInside(rootReal, real)) {
          onSkip?.(name, "symlink leads outside the served folder");
          continue;
        }
        try {
          const st = await stat(real);
          isDir = st.isDirectory();
          isFile = st.isFile();
        } catch {
          continue;
        }
      }
      if (isDir) {
        if (!visited.has(real)) {
          visited.add(real);
          stack.push({ dir: real, prefix: name + "/" });
        }
        continue;
      }
      if (!isFile || name.endsWith(PART_SUFFIX)) continue;
      const reason = unsafeNameReason(name);
      if (reason) {
        onSkip?.(name, reason);
        continue;
      }
      try {
        const st = await stat(real);
        if (!st.isFile()) continue;
        yield { name, path: real, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
      } catch {
        // Removed between readdir and stat: the next scan sees the truth.
      }
    }
  }
}
