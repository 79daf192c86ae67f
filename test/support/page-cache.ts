/**
 * Bytes of `path` in the page cache, from util-linux's fincore; undefined where it is missing (or
 * where Bun cannot start it).
 */
export function residentBytes(path: string): number | undefined {
  try {
    const r = Bun.spawnSync(["fincore", "--bytes", "--noheadings", "--output", "RES", path]);
    return r.exitCode === 0 ? Number(r.stdout.toString().trim()) : undefined;
  } catch {
    return undefined;
  }
}
