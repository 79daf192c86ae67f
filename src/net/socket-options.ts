import { dlopen, ptr } from "bun:ffi";

/**
 * Socket options Bun's UDP sockets do not expose, set through setsockopt on the socket's descriptor
 * (bun:ffi), as QUIC stacks set them (quinn, quic-go). Only where the C library and the constants are
 * known (Linux with glibc, macOS); elsewhere, or when anything fails, callers are told and keep the
 * system's defaults.
 *
 * - The receive buffer. The default one (Linux: net.core.rmem_default, 208 KiB) holds about three
 *   64 KiB datagrams: a receive window that small leaves the sender waiting whenever the receiving
 *   thread is descheduled for a moment, and a 2-core machine running sender, receiver and writer
 *   threads deschedules it all the time. Linux caps a request at net.core.rmem_max and doubles it for
 *   its own bookkeeping, so an unprivileged process on a default kernel gets 416 KiB, and more where
 *   the administrator raised rmem_max.
 * - Don't fragment, for path MTU probes (RFC 8899 §3: probes are sent with DF). Without it Linux
 *   fragments a datagram larger than the interface's MTU and the probe "succeeds" in 45 fragments on
 *   an ordinary 1500-byte LAN: segments would then be fragmented too, and one lost fragment loses the
 *   whole datagram. With it, a probe larger than the path fails (EMSGSIZE, or an ICMP-advertised MTU)
 *   and the probe settles on a size the path carries whole.
 */
interface Platform {
  libc: string;
  solSocket: number;
  soRcvbuf: number;
  /** [level, option, value] that forbids fragmentation, for IPv4 and IPv6 sockets. */
  dontFragment4: [number, number, number];
  dontFragment6: [number, number, number];
}

const PLATFORMS: Partial<Record<NodeJS.Platform, Platform>> = {
  // IP_MTU_DISCOVER = IP_PMTUDISC_DO; IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DO
  linux: { libc: "libc.so.6", solSocket: 1, soRcvbuf: 8, dontFragment4: [0, 10, 2], dontFragment6: [41, 23, 2] },
  // IP_DONTFRAG; IPV6_DONTFRAG
  darwin: { libc: "libSystem.B.dylib", solSocket: 0xffff, soRcvbuf: 0x1002, dontFragment4: [0, 28, 1], dontFragment6: [41, 62, 1] },
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

/**
 * The socket's file descriptor (Bun's UDP socket has one at run time, though its types do not say so)
 * and the loaded C functions; undefined when either is missing.
 */
function access(socket: object): { fd: number; sockopt: NonNullable<typeof sockopt> } | undefined {
  const fd = (socket as { fd?: unknown }).fd;
  if (typeof fd !== "number" || fd < 0) return undefined;
  sockopt ??= load();
  return sockopt ? { fd, sockopt } : undefined;
}

function setInt(fd: number, level: number, name: number, value: number): boolean {
  try {
    return sockopt!.set(fd, level, name, ptr(new Int32Array([value])), 4) === 0;
  } catch {
    return false;
  }
}

/**
 * Ask for a receive buffer of `bytes` and return the size the kernel now accounts against (what
 * getsockopt reports), or undefined when that cannot be known.
 */
export function growReceiveBuffer(socket: object, bytes: number): number | undefined {
  const a = access(socket);
  if (!a) return undefined;
  const { solSocket, soRcvbuf } = a.sockopt.platform;
  setInt(a.fd, solSocket, soRcvbuf, bytes); // a refusal still leaves a size to read back
  const value = new Int32Array(1);
  const length = new Uint32Array([4]);
  try {
    if (a.sockopt.get(a.fd, solSocket, soRcvbuf, ptr(value), ptr(length)) !== 0) return undefined;
  } catch {
    return undefined;
  }
  return value[0]! > 0 ? value[0] : undefined;
}

/**
 * Datagrams from this socket leave with Don't Fragment and are never fragmented locally: one larger
 * than the path carries fails instead. Returns whether that could be set. An IPv6 socket may carry
 * IPv4 too (mapped addresses), so both options are set on it.
 */
export function forbidFragmentation(socket: object, family: 4 | 6): boolean {
  const a = access(socket);
  if (!a) return false;
  const v4 = setInt(a.fd, ...a.sockopt.platform.dontFragment4);
  return family === 6 ? setInt(a.fd, ...a.sockopt.platform.dontFragment6) || v4 : v4;
}
