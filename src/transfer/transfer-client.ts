import type { udp } from "bun";
import { isIP } from "node:net";
import { FtxError, ProtocolError } from "../errors.ts";
import { silentLogger, type Logger } from "../log.ts";
import { unmapIPv4 } from "../net/address.ts";
import { Download, type DownloadSpec } from "./download.ts";
import type { PartFile } from "./part-file.ts";
import { readHeader } from "./wire.ts";

/** How long a finished session is remembered, to answer the server's late datagrams with FIN. */
const LINGER_MS = 3000;
/**
 * Bun cannot enlarge the socket's receive buffer (≈208 KiB, and each datagram costs more than its
 * payload there). The receive windows of all active downloads together stay within this budget so a
 * burst the event loop is slow to drain does not overflow it.
 */
export const RECEIVE_BUDGET_BYTES = Number(process.env.FTX_RECEIVE_BUDGET ?? 176 * 1024);
/** What the kernel charges a datagram beyond its payload (headers, sk_buff bookkeeping), roughly. */
const DATAGRAM_OVERHEAD_BYTES = 1024;
const MIN_WINDOW_SEGMENTS = 2;

/**
 * The client's UDP shell: one socket per address family, shared by every download of this process;
 * datagrams are routed to downloads by session id and checked against the server's address.
 */
export class TransferClient {
  private readonly sockets = new Map<4 | 6, udp.Socket<"uint8array">>();
  private readonly downloads = new Map<number, Download>();
  private readonly lingering = new Map<number, { download: Download; until: number }>();
  private timer: Timer | undefined;
  private timerAt = Infinity;
  readonly counters = { dropped: 0 };

  constructor(
    private readonly logger: Logger = silentLogger,
    /** Source address to send from (multi-homed hosts); default: any address of the right family. */
    private readonly bindHost?: string,
  ) {}

  private async socketFor(ip: string): Promise<udp.Socket<"uint8array">> {
    const family = isIP(ip) === 6 ? 6 : 4;
    let socket = this.sockets.get(family);
    if (!socket) {
      socket = await Bun.udpSocket({
        hostname: this.bindHost ?? (family === 6 ? "::" : "0.0.0.0"),
        port: 0,
        binaryType: "uint8array",
        socket: {
          data: (_s, data, port, address) => this.onDatagram(data, port, address),
          error: (_s, err) => this.logger.debug(`UDP socket error: ${err.message}`),
        },
      });
      this.sockets.set(family, socket);
    }
    return socket;
  }

  async start(spec: DownloadSpec, part: PartFile): Promise<Download> {
    const socket = await this.socketFor(spec.ip);
    const send = (bytes: Uint8Array) => {
      socket.send(bytes, spec.port, spec.ip);
    };
    const download = new Download({ ...spec, windowSegments: this.windowFor(spec.segmentBytes, this.downloads.size + 1) }, part, send, performance.now());
    this.downloads.set(download.sessionId, download);
    this.rebalance();
    download.finished.then(
      () => this.retire(download),
      () => this.retire(download),
    );
    this.reschedule();
    return download;
  }

  private windowFor(segmentBytes: number, active: number): number {
    return Math.max(MIN_WINDOW_SEGMENTS, Math.floor(RECEIVE_BUDGET_BYTES / active / (segmentBytes + DATAGRAM_OVERHEAD_BYTES)));
  }

  private rebalance(): void {
    const active = Math.max(1, this.downloads.size);
    for (const d of this.downloads.values()) d.setWindow(this.windowFor(d.segmentBytes, active));
  }

  private retire(d: Download): void {
    if (this.downloads.get(d.sessionId) !== d) return;
    this.downloads.delete(d.sessionId);
    this.lingering.set(d.sessionId, { download: d, until: performance.now() + LINGER_MS });
    this.rebalance();
    this.reschedule();
  }

  private onDatagram(data: Uint8Array, port: number, address: string): void {
    const now = performance.now();
    try {
      const header = readHeader(data);
      const d = this.downloads.get(header.sessionId) ?? this.lingering.get(header.sessionId)?.download;
      if (!d || d.spec.port !== port || unmapIPv4(address) !== unmapIPv4(d.spec.ip)) {
        this.counters.dropped++;
        return;
      }
      d.handle(header, data, now);
    } catch (err) {
      if (!(err instanceof ProtocolError)) {
        // A bug or an I/O failure (disk full) while handling one download: fail that download, not the process.
        const d = this.downloads.get(new DataView(data.buffer, data.byteOffset).getUint32(6));
        if (d && err instanceof Error) d.fail(err instanceof FtxError ? err : new FtxError("E_IO", err.message));
        else throw err;
        return;
      }
      this.counters.dropped++;
    }
    this.reschedule();
  }

  private reschedule(): void {
    let next = Infinity;
    for (const d of this.downloads.values()) {
      const t = d.pollTimeout();
      if (t !== undefined && t < next) next = t;
    }
    for (const l of this.lingering.values()) if (l.until < next) next = l.until;
    if (next === Infinity) {
      clearTimeout(this.timer);
      this.timerAt = Infinity;
      return;
    }
    if (next >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = next;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, next - performance.now()));
  }

  private onTimer(): void {
    this.timerAt = Infinity;
    const now = performance.now();
    for (const d of [...this.downloads.values()]) {
      const t = d.pollTimeout();
      if (t !== undefined && t <= now + 0.25) d.onTimer(now);
    }
    for (const [id, l] of this.lingering) if (l.until <= now) this.lingering.delete(id);
    this.reschedule();
  }

  close(): void {
    clearTimeout(this.timer);
    for (const d of this.downloads.values()) d.cancel("cancelled");
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }
}
