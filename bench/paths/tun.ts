/**
 * TUN devices and the few C calls the emulator's packet loop needs (open, ioctl, read, write, ppoll),
 * through bun:ffi on Linux's glibc. Bench tooling only: Linux, root (CAP_NET_ADMIN).
 */
import { dlopen, ptr, type Pointer } from "bun:ffi";
import { lastErrno } from "../../src/util/linux-libc.ts";

const O_RDWR = 0o2;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
/** _IOW('T', 202, int) from <linux/if_tun.h>. */
const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
/** struct ifreq: 16 bytes of name, then the union (flags: a short at offset 16); 40 bytes in all. */
const IFREQ_BYTES = 40;
const IFNAMSIZ = 16;
export const POLLIN = 0x1;
const PR_SET_TIMERSLACK = 29;
export const EAGAIN = 11;

const libc = dlopen("libc.so.6", {
  open: { args: ["ptr", "i32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  ioctl: { args: ["i32", "u64", "ptr"], returns: "i32" },
  read: { args: ["i32", "ptr", "u64"], returns: "i32" },
  write: { args: ["i32", "ptr", "u64"], returns: "i32" },
  ppoll: { args: ["ptr", "u64", "ptr", "ptr"], returns: "i32" },
  prctl: { args: ["i32", "u64", "u64", "u64", "u64"], returns: "i32" },
}).symbols;

function cString(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

/** Opens a new TUN device named `name` (IFF_TUN | IFF_NO_PI: bare IP packets), non-blocking. */
export function openTun(name: string): number {
  if (name.length >= IFNAMSIZ) throw new Error(`interface name too long: ${name}`);
  const path = cString("/dev/net/tun");
  const fd = libc.open(ptr(path), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw new Error(`open /dev/net/tun failed (errno ${lastErrno()})`);
  const ifr = new Uint8Array(IFREQ_BYTES);
  ifr.set(new TextEncoder().encode(name));
  new DataView(ifr.buffer).setUint16(IFNAMSIZ, IFF_TUN | IFF_NO_PI, true);
  if (libc.ioctl(fd, TUNSETIFF, ptr(ifr)) < 0) {
    const errno = lastErrno();
    libc.close(fd);
    throw new Error(`TUNSETIFF ${name} failed (errno ${errno})`);
  }
  return fd;
}

export function closeFd(fd: number): void {
  libc.close(fd);
}

/** read(2) into `at` (a pointer into a preallocated buffer); the byte count, or -errno. */
export function readInto(fd: number, at: number, capacity: number): number {
  const n = libc.read(fd, at as unknown as Pointer, capacity);
  return n >= 0 ? n : -(lastErrno() ?? EAGAIN);
}

/** write(2) of `length` bytes at `at`; the byte count, or -errno. */
export function writeFrom(fd: number, at: number, length: number): number {
  const n = libc.write(fd, at as unknown as Pointer, length);
  return n >= 0 ? n : -(lastErrno() ?? 0);
}

/**
 * Waits on a set of descriptors with a timeout of nanosecond precision (ppoll). `pollfds` is an
 * array of struct pollfd (int fd; short events; short revents), `timespec` a struct timespec (two
 * little-endian int64s, as four int32s: no BigInt per call), both made once by the caller; returns how
 * many are ready (0 on timeout, < 0 on error or a signal).
 */
export function ppollWait(pollfds: Uint8Array, count: number, timespec: Int32Array, timeoutNs: number): number {
  timespec[0] = Math.floor(timeoutNs / 1e9);
  timespec[1] = 0;
  timespec[2] = Math.floor(timeoutNs % 1e9);
  timespec[3] = 0;
  return libc.ppoll(ptr(pollfds), count, ptr(timespec), null);
}

/** Timers of this thread fire within `ns` of when they were asked for (the default slack is 50 µs). */
export function setTimerSlackNs(ns: number): boolean {
  return libc.prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) === 0;
}
