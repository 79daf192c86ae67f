import type { udp } from "bun";
import { isIP } from "node:net";
import { FtxError, ProtocolError } from "../errors.ts";
import { silentLogger, type Logger } from "../log.ts";
import { unmapIPv4 } from "../net/address.ts";
import { udpErrorOf } from "../net/udp-error.ts";
import { DeadlineTimer } from "../util/deadline-timer.ts";
import { Download, type DownloadSpec } from "./download.ts";
import type { DownloadSink } from "./part-file.ts";
import { readHeader } from "./wire.ts";

/** How long a finished session keeps its socket, to answer the server's late datagrams with FIN. */
const LINGER_MS = 3000;
/**
 * Bun cannot enlarge a socket's receive buffer (≈208 KiB, and each datagram costs more than its
 * payload there). A download's window stays within this budget, so a burst the event loop is slow to
 * drain does not overflow it; each download has a socket (and so a receive buffer) of its own.
 * Measured on loopback: doubling it brought drops and no speed.
 */
export const RECEIVE_BUDGET_BYTES = 176 * 1024;
/** What the kernel charges a datagram beyond its payload (headers, sk_buff bookkeeping), roughly. */
const DATAGRAM_OVERHEAD_BYTES = 1024;
const MIN_WINDOW_SEGMENTS = 2;

/** The receive window, in segments, that keeps a download's in-flight data inside its socket buffer. */
export function windowFor(segmentBytes: number): number {
  return Math.max(MIN_WINDOW_SEGMENTS, Math.floor(RECEIVE_BUDGET_BYTES / (segmentBytes + DATAGRAM_OVERHEAD_BYTES)));
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

  constructor(
    private readonly logger: Logger = silentLogger,
    /** Source address to send from (multi-homed hosts); default: any address of the right family. */
    private readonly bindHost?: string,
  ) {}

  /** Starts a download; its receive window is decided here, where the sockets are. */
  async start(request: Omit<DownloadSpec, "windowSegments">, sink: DownloadSink): Promise<Download> {
    const spec: DownloadSpec = { ...request, windowSegments: windowFor(request.segmentBytes) };
    const family = isIP(spec.ip) === 6 ? 6 : 4;
    let download: Download | undefined;
    const portGone = (detail: string) => {
      this.logger.debug(`${spec.name}: socket error from ${spec.display}: ${detail}`);
      download?.fail(new FtxError("E_UNREACHABLE", `file server ${spec.display} is gone (${detail})`));
    };
    const socket = await Bun.udpSocket({
      hostname: this.bindHost ?? (family === 6 ? "::" : "0.0.0.0"),
      port: 0,
      binaryType: "uint8array",
      socket: {
        data: (_s, data, port, address) => download && this.onDatagram(download, data, port, address),
        error: (first, second) => {
          const err = udpErrorOf(first, second);
          portGone(err.code ?? err.message);
        },
      },
    });
    const send = (bytes: Uint8Array) => {
      try {
        socket.send(bytes, spec.port, spec.ip);
      } catch (err) {
        // Bun throws the ICMP error the kernel queued for this socket: the server's port is closed.
        queueMicrotask(() => portGone((err as { code?: string }).code ?? (err as Error).message));
      }
    };
    download = new Download(spec, sink, send, performance.now());
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

  private onDatagram(d: Download, data: Uint8Array, port: number, address: string): void {
    const now = performance.now();
    try {
      const header = readHeader(data);
      if (header.sessionId !== d.sessionId || port !== d.spec.port || unmapIPv4(address) !== unmapIPv4(d.spec.ip)) {
        this.counters.dropped++;
        return;
      }
      d.handle(header, data, now);
    } catch (err) {
      if (err instanceof ProtocolError) this.counters.dropped++;
      // A failure while handling this download (disk full, a bug) fails this download, not the process.
      else d.fail(err instanceof FtxError ? err : new FtxError("E_IO", (err as Error).message));
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
