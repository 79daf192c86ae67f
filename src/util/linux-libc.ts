import { dlopen, read, type FFIFunction, type Pointer } from "bun:ffi";

/**
 * One function of Linux's glibc, through bun:ffi, for the file calls Bun does not expose
 * (posix_fadvise, fallocate). Null on other systems, on another C library (musl), or when FFI is
 * unavailable: callers then go without.
 */
export function linuxLibcFunction<F>(name: string, signature: FFIFunction): F | null {
  if (process.platform !== "linux") return null;
  try {
    return dlopen("libc.so.6", { [name]: signature }).symbols[name] as F;
  } catch {
    return null;
  }
}

let errnoLocation: (() => Pointer | null) | null | undefined;

/** errno as the last C call on this thread left it (read right after the call that failed); undefined if unknown. */
export function lastErrno(): number | undefined {
  errnoLocation ??= linuxLibcFunction("__errno_location", { args: [], returns: "ptr" });
  const at = errnoLocation?.();
  return at ? read.i32(at, 0) : undefined;
}
