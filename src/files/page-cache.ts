import { linuxLibcFunction } from "../util/linux-libc.ts";

/**
 * Telling the kernel that a file's pages will not be read again (posix_fadvise POSIX_FADV_DONTNEED),
 * where the C library has it (Linux with glibc); elsewhere nothing happens.
 */
const POSIX_FADV_DONTNEED = 4;

type Fadvise = (fd: number, offset: number, length: number, advice: number) => number;
let fadvise: Fadvise | null | undefined;

/**
 * Let the page cache drop `length` bytes of `fd` from `offset`. Only clean pages go (written back
 * already): call it on a range an fdatasync has covered. Returns whether the advice was taken.
 */
export function dropFromPageCache(fd: number, offset: number, length: number): boolean {
  fadvise ??= linuxLibcFunction<Fadvise>("posix_fadvise", { args: ["i32", "i64", "i64", "i32"], returns: "i32" });
  if (!fadvise || length <= 0) return false;
  try {
    return fadvise(fd, offset, length, POSIX_FADV_DONTNEED) === 0;
  } catch {
    return false;
  }
}
