import { dlopen, ptr } from "bun:ffi";
import { ipBytes } from "./ip.ts";
import { lastErrno } from "../util/linux-libc.ts";

/**
 * UDP generic segmentation and receive offload (Linux ≥ 4.18 / 5.0), through bun:ffi on the
 * descriptor of Bun's own socket, as QUIC stacks use them (quinn's `UDP_SEGMENT`, quic-go's
 * `UDP_GRO`):
 *
 * - Send (GSO): one sendmsg carries a run of up to 64 datagrams back to back, all of one length but
 *   the last, with a `UDP_SEGMENT` control message naming that length; the kernel cuts the run into
 *   datagrams as late as it can (on a veth, at the receiving socket; on a NIC, in its driver). One
 *   system call and one trip through the stack per run instead of per datagram.
 * - Receive (GRO): a socket with `UDP_GRO` on may be handed such a run whole (or datagrams of one
 *   flow coalesced the same way); the reader splits it again (transfer-client.ts).
 *
 * Bun's socket never sees these sends: it keeps its event loop and receiving, we only write. When the
 * socket is full (EAGAIN) Bun's drain callback does not fire for our sends, so the caller retries on
 * a timer. Only on Linux with glibc; elsewhere `GsoSender.open` says no and the caller sends through
 * Bun one datagram at a time.
 */

const SOL_UDP = 17;
const UDP_SEGMENT = 103;
const UDP_GRO = 104;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const AF_INET = 2;
const AF_INET6 = 10;
const MSG_DONTWAIT = 0x40;
export const EAGAIN = 11;
/** What the kernel says when it will not segment a run on this route (no checksum offload, IPsec…). */
const GSO_REFUSED = new Set([5 /* EIO */, 22 /* EINVAL */, 90 /* EMSGSIZE */, 95 /* EOPNOTSUPP */]);
/** Errors that are news about one peer (ICMP said so earlier), never about the socket. */
const PEER_ERRORS = new Set([111 /* ECONNREFUSED */, 113 /* EHOSTUNREACH */, 101 /* ENETUNREACH */, 1 /* EPERM: a firewall */]);

type SendMsg = (fd: number, msg: number, flags: number) => number;
type SockOpt = (fd: number, level: number, name: number, value: unknown, length: unknown) => number;
interface Libc {
  sendmsg: SendMsg;
  setsockopt: SockOpt;
  getsockopt: SockOpt;
}
let libc: Libc | null | undefined;

function load(): Libc | null {
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) return null;
  try {
    const { symbols } = dlopen("libc.so.6", {
      sendmsg: { args: ["i32", "ptr", "i32"], returns: "i32" },
      setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
      getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
    });
    return symbols as unknown as Libc;
  } catch {
    return null;
  }
}

function fdOf(socket: object): number | undefined {
  const fd = (socket as { fd?: unknown }).fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}

/** Writes a pointer (a number below 2^53) into `u32` at word `at`, little-endian halves: no BigInt per call. */
function putPointer(u32: Uint32Array, at: number, p: number): void {
  u32[at] = p >>> 0;
  u32[at + 1] = Math.floor(p / 4294967296);
}

/** Asks the kernel to hand this socket coalesced runs (UDP_GRO); whether it agreed. */
export function enableGro(socket: object): boolean {
  const fd = fdOf(socket);
  libc ??= load();
  if (fd === undefined || !libc) return false;
  try {
    return libc.setsockopt(fd, SOL_UDP, UDP_GRO, ptr(new Int32Array([1])), 4) === 0;
  } catch {
    return false;
  }
}

/** What `GsoSender.send` did. */
export const enum SendResult {
  /** Handed to the kernel (or lost on the way to one peer, which the protocol repairs). */
  Sent = 0,
  /** The socket's buffer is full: nothing was sent; try again later. */
  WouldBlock = 1,
}

/** Sends runs of datagrams in one system call each (UDP_SEGMENT), or one by one where a route refuses. */
export class GsoSender {
  /** msghdr (56 bytes on LP64): name, namelen, iov, iovlen, control, controllen, flags. */
  private readonly msg = new Uint32Array(14);
  private readonly iov = new Uint32Array(4);
  /** One cmsghdr with a u16: CMSG_SPACE(2) = 24 bytes. */
  private readonly control = new Uint8Array(24);
  private readonly controlView = new DataView(this.control.buffer);
  /** sockaddr_in (16) or sockaddr_in6 (28). */
  private readonly name = new Uint8Array(28);
  private readonly nameView = new DataView(this.name.buffer);
  private readonly msgPtr: number;
  private readonly controlPtr: number;
  /** Each peer address's bytes, as this socket's family needs them (v4-mapped on an IPv6 socket). */
  private readonly addresses = new Map<string, Uint8Array | null>();
  /** Peers whose route would not segment a run: sent one datagram per call. */
  private readonly unsegmented = new Set<string>();
  /** The newest error that was not EAGAIN, for the shell's log: errno and whether it came from GSO. */
  lastError: { errno: number; gso: boolean } | undefined;

  private constructor(
    private readonly fd: number,
    private readonly c: Libc,
    private readonly family: 4 | 6,
  ) {
    this.msgPtr = ptr(this.msg);
    this.controlPtr = ptr(this.control);
    putPointer(this.msg, 0, ptr(this.name));
    this.msg[2] = family === 6 ? 28 : 16;
    putPointer(this.msg, 4, ptr(this.iov));
    this.msg[6] = 1; // iovlen
    // cmsg_len = CMSG_LEN(2) = 18, level SOL_UDP, type UDP_SEGMENT; the u16 value is set per send.
    this.controlView.setUint32(0, 18, true);
    this.controlView.setInt32(8, SOL_UDP, true);
    this.controlView.setInt32(12, UDP_SEGMENT, true);
    this.nameView.setUint16(0, family === 6 ? AF_INET6 : AF_INET, true);
  }

  /**
   * A sender for Bun's `socket` (its family: 4 or 6, as it was bound), or undefined where the kernel,
   * the C library or the socket cannot segment (the caller then sends one datagram at a time).
   */
  static open(socket: object, family: 4 | 6): GsoSender | undefined {
    const fd = fdOf(socket);
    libc ??= load();
    if (fd === undefined || !libc) return undefined;
    try {
      const value = new Int32Array(1);
      const length = new Uint32Array([4]);
      if (libc.getsockopt(fd, SOL_UDP, UDP_SEGMENT, ptr(value), ptr(length)) !== 0) return undefined; // kernel < 4.18
    } catch {
      return undefined;
    }
    return new GsoSender(fd, libc, family);
  }

  /** Asks for a send buffer of `bytes` (capped by net.core.wmem_max): runs are 64 KiB each. */
  growSendBuffer(bytes: number): void {
    try {
      this.c.setsockopt(this.fd, SOL_SOCKET, SO_SNDBUF, ptr(new Int32Array([bytes])), 4);
    } catch {}
  }

  /**
   * Sends `bytes`: `count` datagrams of `datagramBytes` each but the last (which may be shorter), to
   * address:port. A peer's error (an earlier ICMP) is tried once more, then counted as sent: it is
   * about that peer, and the protocol repairs the loss. WouldBlock only when nothing was sent.
   */
  send(bytes: Uint8Array, datagramBytes: number, count: number, address: string, port: number): SendResult {
    if (!this.setPeer(address, port)) {
      this.lastError = { errno: 22, gso: false };
      return SendResult.Sent; // not an address this socket can reach: as lost
    }
    const base = ptr(bytes);
    if (count > 1 && !this.unsegmented.has(address)) {
      const r = this.sendOne(base, bytes.byteLength, datagramBytes);
      if (r !== GSO_REFUSED_RESULT) return r;
      if (this.unsegmented.size > 4096) this.unsegmented.clear();
      this.unsegmented.add(address);
    }
    for (let at = 0, i = 0; i < count; i++, at += datagramBytes) {
      const r = this.sendOne(base + at, Math.min(datagramBytes, bytes.byteLength - at), 0);
      // Part of a run sent: the rest is as lost (rare: a route without GSO, and a full socket).
      if (r === SendResult.WouldBlock) return i === 0 ? r : SendResult.Sent;
    }
    return SendResult.Sent;
  }

  /** One sendmsg of `length` bytes at address `p`, segmented when `segment` > 0. */
  private sendOne(p: number, length: number, segment: number): SendResult | typeof GSO_REFUSED_RESULT {
    putPointer(this.iov, 0, p);
    this.iov[2] = length;
    this.iov[3] = 0;
    if (segment > 0) {
      this.controlView.setUint16(16, segment, true);
      putPointer(this.msg, 8, this.controlPtr);
      this.msg[10] = this.control.byteLength;
    } else {
      this.msg[8] = this.msg[9] = this.msg[10] = 0;
    }
    for (let attempt = 0; ; attempt++) {
      if (this.c.sendmsg(this.fd, this.msgPtr, MSG_DONTWAIT) >= 0) return SendResult.Sent;
      const errno = lastErrno() ?? 0;
      if (errno === EAGAIN) return SendResult.WouldBlock;
      this.lastError = { errno, gso: segment > 0 };
      if (segment > 0 && GSO_REFUSED.has(errno)) return GSO_REFUSED_RESULT;
      // A peer's ICMP error is reported once, on whichever send comes next: try once more.
      if (!PEER_ERRORS.has(errno) || attempt > 0) return SendResult.Sent;
    }
  }

  /** Writes the peer's socket address into `name`; false when the text is no address of this family. */
  private setPeer(address: string, port: number): boolean {
    let raw = this.addresses.get(address);
    if (raw === undefined) {
      raw = this.encode(address);
      if (this.addresses.size > 4096) this.addresses.clear();
      this.addresses.set(address, raw);
    }
    if (!raw) return false;
    this.name.set(raw, this.family === 6 ? 8 : 4);
    this.nameView.setUint16(2, port, false);
    return true;
  }

  private encode(address: string): Uint8Array | null {
    const bytes = ipBytes(address);
    if (!bytes) return null;
    if (this.family === 4) return bytes.byteLength === 4 ? bytes : null;
    if (bytes.byteLength === 16) return bytes;
    const mapped = new Uint8Array(16);
    mapped[10] = mapped[11] = 0xff;
    mapped.set(bytes, 12);
    return mapped;
  }
}

const GSO_REFUSED_RESULT = -1;
