import { dlopen, read, type FFIFunction } from "bun:ffi";

/**
 * C functions of Linux's glibc, through bun:ffi, for the file calls Bun does not expose
 * (posix_fadvise, fallocate). Null on other systems, on another C library (musl), or when FFI is
 * unavailable: callers then go without.
 */
export function linuxLibc<const Fns extends Record<string, FFIFunction>>(fns: Fns) {
  if (process.platform !== "linux") return null;
  try {
    return dlopen("libc.so.6", fns).symbols;
  } catch {
    return null;
  }
}

let errnoLocation: (() => unknown) | null | undefined;

/** errno as the last C call on this thread left it (read right after the call that failed); undefined if unknown. */
export function lastErrno(): number | undefined {
  errnoLocation ??= (linuxLibc({ __errno_location: { args: [], returns: "ptr" } })?.__errno_location as (() => unknown) | undefined) ?? null;
  const at = errnoLocation?.();
  return typeof at === "number" && at !== 0 ? read.i32(at as never, 0) : undefined;
}
