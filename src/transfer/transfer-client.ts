import type { udp } from "bun";
import { ipVersion } from "../net/ip.ts";
import { FtxError } from "../errors.ts";
import { silentLogger, type Logger } from "../log.ts";
import { unmapIPv4 } from "../net/address.ts";
import { udpErrorOf } from "../net/udp-error.ts";
import { growReceiveBuffer } from "../net/socket-options.ts";
import { enableGro } from "../net/udp-gso.ts";
import { DATAGRAM_OVERHEAD_BYTES as SEAL_BYTES, HEADER_BYTES, JUMBO_DATAGRAM_BYTES, MAX_DATAGRAM_BYTES } from "./core/wire.ts";
import { DeadlineTimer } from "../util/deadline-timer.ts";
import { Download, type DownloadSpec } from "./download.ts";
import type { DownloadSink } from "./part-file.ts";
import { AddressTokenCache } from "./address-token-cache.ts";
import type { TransferCrypto } from "./core/session-keys.ts";
import { transferSecurityDefaults } from "./transfer-crypto.ts";

/** How long a finished session keeps its socket, to answer the server's late datagrams with FIN. */
const LINGER_MS = 3000;
/**
 * The receive buffer each download's socket asks for (socket-options.ts; the kernel may grant less,
 * or double it). Measured on loopback with 1 GiB: with the default 208 KiB buffer a window of 5
 * segments of 32 KiB, 2.10 s; with 1 MiB granted, 1.70 s and 30 % less server CPU (one ACK per 4
 * segments instead of 2). Windows of 12 to 36 segments measured the same, so more buys nothing here,
 * while a Go-Back-N window far larger than needed costs more on every loss.
 */
const RECEIVE_BUFFER_BYTES = 1 << 20;
/**
 * With datagrams a network carries (up to a jumbo frame), the window must hold a long fast path's BDP in
 * segments of ~1,350 bytes: 1 Gbit/s × 20 ms is 1,850 of them, and 1 MiB (granted 2 MiB) gave a
 * window of 662, which held a 64 MiB fetch there to 2.0–2.5 s; with 4 MiB asked for (8 MiB granted
 * where rmem_max allows, a window of 2,650) it took 1.4–1.5 s. The small window had also hidden that
 * start-up overflows a queue of one BDP (100 Mbit/s × 50 ms): one go-back resending ~7 % of a 16 MiB
 * fetch, 2.1–2.4 s instead of 2.0–2.3 (docs/PROTOCOL.md, "Flow control"). Loopback's 64 KiB datagrams
 * keep 1 MiB: a larger window only costs more on each loss there.
 */
const NETWORK_RECEIVE_BUFFER_BYTES = 4 << 20;
/**
 * The share of the granted buffer the window may fill: the kernel charges each datagram more than its
 * payload, and a burst the event loop is slow to drain must not overflow it.
 */
const RECEIVE_BUFFER_SHARE = 0.75;
/** When the buffer's size cannot be known: the window that fits Linux's default 208 KiB. */
export const DEFAULT_RECEIVE_BUDGET_BYTES = 176 * 1024;
/** What the kernel charges a datagram beyond its payload (headers, sk_buff bookkeeping), roughly. */
const DATAGRAM_OVERHEAD_BYTES = 1024;
const MIN_WINDOW_SEGMENTS = 2;

/** The receive window, in segments, that keeps a download's in-flight data inside its socket buffer. */
export function windowFor(segmentBytes: number, budgetBytes = DEFAULT_RECEIVE_BUDGET_BYTES): number {
  return Math.max(MIN_WINDOW_SEGMENTS, Math.floor(budgetBytes / (segmentBytes + DATAGRAM_OVERHEAD_BYTES)));
}

interface Active {
  download: Download;
  socket: udp.Socket<"uint8array">;
  lingerUntil?: number;
}

/**
 * The client's UDP shell. Each download has a socket of its own: the kernel reports an ICMP error
 * (the server's port is closed: it died) per socket, so it can only ever mean that download's server,
 * and it fails over at once instead of waiting out the idle timeout.
 */
export class TransferClient {
  private readonly active = new Map<Download, Active>();
  private readonly wake = new DeadlineTimer(() => this.onTimer());
  readonly counters = { dropped: 0 };
  /** The servers `--verbose` has named the cipher of. */
  private readonly saidCipher = new Set<string>();
  /** Whether `--verbose` has been told of a socket without GRO, and of one with it. */
  private readonly saidReceivePath = [false, false];
  /** Each server's newest address token: a session after the first needs no RETRY round trip. */
  readonly addressTokens = new AddressTokenCache();

  constructor(
    /** The sessions' key exchange and AEAD (transfer-crypto.ts). */
    private readonly crypto: TransferCrypto,
    private readonly logger: Logger = silentLogger,
    /** Source address to send from (multi-homed hosts); default: any address of the right family. */
    private readonly bindHost?: string,
    /** --insecure-plaintext: datagrams in clear after the ACCEPT. */
    private readonly plaintext = transferSecurityDefaults.plaintext,
  ) {}

  /** Starts a download; its receive window is decided here, where the sockets are. */
  async start(request: Omit<DownloadSpec, "windowSegments" | "crypto">, sink: DownloadSink): Promise<Download> {
    const family = ipVersion(request.ip) === 6 ? 6 : 4;
    let download: Download | undefined;
    // The server's address as datagrams from it name it, worked out once rather than per datagram.
    const serverIp = unmapIPv4(request.ip);
    const portGone = (detail: string) => {
      this.logger.debug(`${request.name}: socket error from ${request.display}: ${detail}`);
      download?.fail(new FtxError("E_UNREACHABLE", `file server ${request.display} is gone (${detail})`));
    };
    const socket = await Bun.udpSocket({
      hostname: this.bindHost ?? (family === 6 ? "::" : "0.0.0.0"),
      port: 0,
      binaryType: "uint8array",
      socket: {
        data: (_s, data, port, address) => download && this.onDatagram(download, serverIp, data, port, address),
        error: (first, second) => {
          const err = udpErrorOf(first, second);
          portGone(err.code ?? err.message);
        },
      },
    });
    // Runs the server sent in one piece (GSO) may then arrive in one piece too: split in onDatagram.
    // Only where two datagrams fit in one read: loopback's 64 KiB ones never coalesce, and asking cost
    // a tenth of the rate there.
    const datagramBytes = request.segmentBytes + HEADER_BYTES + SEAL_BYTES;
    const gro = process.env.FTX_NO_GSO !== "1" && 2 * datagramBytes <= MAX_DATAGRAM_BYTES && enableGro(socket);
    if (!this.saidReceivePath[gro ? 1 : 0]) {
      this.saidReceivePath[gro ? 1 : 0] = true;
      this.logger.debug(`UDP receive, ${request.segmentBytes}-byte segments: ${gro ? "coalesced runs (GRO)" : "one datagram per read"}`);
    }
    const granted = growReceiveBuffer(socket, datagramBytes <= JUMBO_DATAGRAM_BYTES ? NETWORK_RECEIVE_BUFFER_BYTES : RECEIVE_BUFFER_BYTES);
    const budget = granted === undefined ? DEFAULT_RECEIVE_BUDGET_BYTES : Math.max(DEFAULT_RECEIVE_BUDGET_BYTES, granted * RECEIVE_BUFFER_SHARE);
    const spec: DownloadSpec = {
      ...request,
      crypto: this.crypto,
      plaintext: request.plaintext ?? this.plaintext,
      windowSegments: windowFor(request.segmentBytes, budget),
      addressTokens: request.addressTokens ?? this.addressTokens.slot(request.ip, request.port),
    };
    const send = (bytes: Uint8Array) => {
      try {
        socket.send(bytes, spec.port, spec.ip);
      } catch (err) {
        // Bun throws the ICMP error the kernel queued for this socket: the server's port is closed.
        queueMicrotask(() => portGone((err as { code?: string }).code ?? (err as Error).message));
      }
    };
    download = new Download(spec, sink, send, performance.now(), (at) => this.wake.wakeBy(at));
    const started = download;
    this.active.set(started, { download: started, socket });
    started.finished.then(
      () => this.retire(started),
      () => this.retire(started),
    );
    this.reschedule();
    return started;
  }

  private retire(d: Download): void {
    const a = this.active.get(d);
    if (!a || a.lingerUntil !== undefined) return;
    a.lingerUntil = performance.now() + LINGER_MS;
    this.reschedule();
  }

  private onDatagram(d: Download, serverIp: string, data: Uint8Array, port: number, address: string): void {
    const now = performance.now();
    if (port !== d.spec.port || (address !== serverIp && unmapIPv4(address) !== serverIp)) {
      this.counters.dropped++;
      return;
    }
    try {
      this.counters.dropped += d.receive(data, now);
      if (d.cipherName !== undefined && !this.saidCipher.has(d.spec.display)) {
        this.saidCipher.add(d.spec.display);
        const auth = this.crypto.kx.authenticated ? "the server proved it knows the token" : "no token: the server is not authenticated";
        this.logger.debug(`transfers from ${d.spec.display}: ${d.cipherName === "none" ? "unencrypted (--insecure-plaintext)" : d.cipherName}, ${this.crypto.kx.name}, ${auth}`);
      }
    } catch (err) {
      // A failure while handling this download (disk full, a bug) fails this download, not the process.
      d.fail(err instanceof FtxError ? err : new FtxError("E_IO", (err as Error).message));
    }
    // Only this download's deadline can have moved earlier; the timer re-scans everyone when it fires.
    const t = d.pollTimeout();
    if (t !== undefined) this.wake.wakeBy(t);
  }

  private reschedule(): void {
    let next = Infinity;
    for (const a of this.active.values()) {
      const t = a.lingerUntil ?? a.download.pollTimeout();
      if (t !== undefined && t < next) next = t;
    }
    if (next === Infinity) this.wake.cancel();
    else this.wake.wakeBy(next);
  }

  private onTimer(): void {
    const now = performance.now();
    for (const a of [...this.active.values()]) {
      if (a.lingerUntil !== undefined) {
        if (a.lingerUntil <= now) {
          a.socket.close();
          this.active.delete(a.download);
        }
        continue;
      }
      const t = a.download.pollTimeout();
      if (t !== undefined && t <= now + 0.25) a.download.onTimer(now);
    }
    this.reschedule();
  }

  close(): void {
    this.wake.cancel();
    for (const a of this.active.values()) {
      a.download.cancel("cancelled");
      a.socket.close();
    }
    this.active.clear();
  }
}
