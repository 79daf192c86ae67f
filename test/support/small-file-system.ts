import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Mounts a 4 MiB tmpfs at `at` to fill; returns its unmount, or undefined where that cannot be done
 * (not Linux, no root or CAP_SYS_ADMIN, no mount command): the tests that need it skip themselves.
 */
export function smallFileSystem(at: string): (() => void) | undefined {
  if (process.platform !== "linux") return undefined;
  mkdirSync(at, { recursive: true });
  try {
    const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", at], { stderr: "ignore" });
    return mounted.exitCode === 0 ? () => void Bun.spawnSync(["umount", at]) : undefined;
  } catch {
    return undefined; // no mount command
  }
}

/** Whether smallFileSystem works here (tried once, in a folder of its own). */
export function canMountSmallFileSystem(): boolean {
  const probe = mkdtempSync(join(tmpdir(), "ftx-disk-probe-"));
  try {
    const unmount = smallFileSystem(join(probe, "m"));
    unmount?.();
    return unmount !== undefined;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}
