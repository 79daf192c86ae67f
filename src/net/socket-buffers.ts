import { dlopen, ptr } from "bun:ffi";

/**
 * Bun's UDP sockets offer no way to size their receive buffer, and the default one (Linux:
 * net.core.rmem_default, 208 KiB) holds about six 32 KiB datagrams: a receive window that small
 * leaves the sender waiting whenever the receiving thread is descheduled for a moment, and a 2-core
 * machine running sender, receiver and writer threads deschedules it all the time. So we ask the
 * kernel through setsockopt(SO_RCVBUF) on the socket's descriptor, as QUIC stacks do (quinn,
 * quic-go), and read back what it granted: Linux caps the request at net.core.rmem_max and doubles
 * it for its own bookkeeping, so an unprivileged process on a default kernel gets 416 KiB, and more
 * where the administrator raised rmem_max.
 *
 * Only where the C library and the constants are known (Linux with glibc, macOS); elsewhere, or
 * when anything fails, the answer is "unknown" and callers keep their defaults.
 */
interface Platform {
  libc: string;
  solSocket: number;
  soRcvbuf: number;
}

const PLATFORMS: Partial<Record<NodeJS.Platform, Platform>> = {
  linux: { libc: "libc.so.6", solSocket: 1, soRcvbuf: 8 },
  darwin: { libc: "libSystem.B.dylib", solSocket: 0xffff, soRcvbuf: 0x1002 },
};

type SockOpt = (fd: number, level: number, name: number, value: unknown, length: unknown) => number;
let sockopt: { set: SockOpt; get: SockOpt; platform: Platform } | null | undefined;

function load(): typeof sockopt {
  const platform = PLATFORMS[process.platform];
  if (!platform) return null;
  try {
    const { symbols } = dlopen(platform.libc, {
      setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
      getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
    });
    return { set: symbols.setsockopt as SockOpt, get: symbols.getsockopt as SockOpt, platform };
  } catch {
    return null; // another C library (musl), or FFI unavailable
  }
}

/** The socket's file descriptor: Bun's UDP socket has one at run time, though its types do not say so. */
function fdOf(socket: object): number | undefined {
  const fd = (socket as { fd?: unknown }).fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}

/**
 * Ask for a receive buffer of `bytes` and return the size the kernel now accounts against (what
 * getsockopt reports), or undefined when that cannot be known.
 */
export function growReceiveBuffer(socket: object, bytes: number): number | undefined {
  const fd = fdOf(socket);
  if (fd === undefined) return undefined;
  sockopt ??= load();
  if (!sockopt) return undefined;
  const { solSocket, soRcvbuf } = sockopt.platform;
  const value = new Int32Array([bytes]);
  const length = new Uint32Array([4]);
  try {
    sockopt.set(fd, solSocket, soRcvbuf, ptr(value), 4); // a refusal still leaves a size to read back
    if (sockopt.get(fd, solSocket, soRcvbuf, ptr(value), ptr(length)) !== 0) return undefined;
  } catch {
    return undefined;
  }
  return value[0]! > 0 ? value[0] : undefined;
}
