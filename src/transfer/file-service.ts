import type { udp } from "bun";
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { randomU32 } from "../util/random.ts";
import { FtxError } from "../errors.ts";
import type { Catalog, CatalogEntry } from "../files/catalog.ts";
import { silentLogger, type Logger } from "../log.ts";
import { formatAddress, unmapIPv4 } from "../net/address.ts";
import { growReceiveBuffer } from "../net/socket-options.ts";
import { GsoSender, SendResult } from "../net/udp-gso.ts";
import { udpErrorOf } from "../net/udp-error.ts";
import { DeadlineTimer } from "../util/deadline-timer.ts";
import { transferCrypto, transferSecurityDefaults } from "./transfer-crypto.ts";
import type { TransferCrypto } from "./core/session-keys.ts";
import { MAX_RUN_DATAGRAMS, SEND_BATCH, ServerEndpoint, type Transmit, type ActiveSession, type EndpointCounters, type EndpointEvent, type OpenResult, type ServedFiles } from "./core/server-endpoint.ts";
import { TransferErrorCode } from "./core/wire.ts";

export interface FileServiceOptions {
  host: string;
  port: number;
  catalog: Catalog;
  token?: string;
  /** Sessions may ask for their datagrams in clear (`--insecure-plaintext`); default: the process's setting. */
  allowPlaintext?: boolean;
  logger?: Logger;
  maxSessions?: number;
  maxSessionsPerAddress?: number;
  /** A session whose client says nothing for this long is dropped. */
  idleTimeoutMs?: number;
}

/**
 * The receive buffer the server's one socket asks for (socket-options.ts): every client's ACKs,
 * REQUESTs and path probes (up to 64 KiB each) land in it, and 20 clients starting at once overflowed
 * the default 208 KiB with their probes.
 */
const RECEIVE_BUFFER_BYTES = 2 << 20;
/**
 * The send buffer asked for when sending runs (GSO): room for 64 runs of 64 KiB. The default
 * (net.core.wmem_default, 208 KiB) held three, and a full buffer means waiting for a timer.
 */
const SEND_BUFFER_BYTES = 4 << 20;
/** After the kernel refused a run for a full buffer (EAGAIN), try again this much later: Bun's drain callback only follows its own sends. */
const FULL_RETRY_MS = 0.5;

export type FileServiceStats = EndpointCounters;

/** The served folder as the endpoint reads it: the catalog's entries, opened and read with node:fs. */
class DiskFiles implements ServedFiles<CatalogEntry, number> {
  constructor(private readonly catalog: Catalog) {}

  lookup(name: string): CatalogEntry | undefined {
    return this.catalog.get(name);
  }

  open(entry: CatalogEntry): OpenResult<number> {
    let fd: number | undefined;
    try {
      fd = openSync(entry.path, constants.O_RDONLY | constants.O_NOFOLLOW);
      const st = fstatSync(fd);
      if (st.ino === entry.ino && st.size === entry.size && st.mtimeMs === entry.mtimeMs) return { ok: true, handle: fd };
      this.close(fd);
      return { ok: false, code: TransferErrorCode.Changed };
    } catch {
      if (fd !== undefined) this.close(fd);
      return { ok: false, code: TransferErrorCode.NotFound };
    }
  }

  read(fd: number, buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    return readSync(fd, buf, bufOffset, length, position);
  }

  changed(fd: number, entry: CatalogEntry): boolean {
    const st = fstatSync(fd);
    return st.size !== entry.size || st.mtimeMs !== entry.mtimeMs;
  }

  close(fd: number): void {
    try {
      closeSync(fd);
    } catch {}
  }

  requestScan(): void {
    this.catalog.requestScan();
  }
}

/**
 * The file server's UDP side: one socket for all sessions (so one open port, NAT and relays work).
 * A thin shell around ServerEndpoint (server-endpoint.ts), which holds every rule: this file only
 * moves datagrams between the socket and the endpoint, batches sends, keeps one timer, and logs.
 */
export class FileService {
  private readonly endpoint: ServerEndpoint<CatalogEntry, number>;
  private readonly logger: Logger;
  /** One sendMany's arguments (buffer, port, address, …), reused. */
  private readonly batch: Array<Uint8Array | number | string> = [];
  private readonly wake = new DeadlineTimer(() => this.onTimer());
  private readonly drainRetry = new DeadlineTimer(() => this.onDrain());
  private sendBufferGrown = false;
  private stopped = false;
  /** Operators' view (`ftx serve --http`, src/ops): told every endpoint event after it is logged. */
  onEvent: ((ev: EndpointEvent) => void) | undefined;

  private constructor(
    private readonly socket: udp.Socket<"uint8array">,
    opts: FileServiceOptions,
    /** Sends runs of datagrams in one system call (UDP GSO); undefined: one datagram per send, through Bun. */
    private readonly gso: GsoSender | undefined,
    transfer: TransferCrypto,
  ) {
    this.logger = opts.logger ?? silentLogger;
    this.endpoint = new ServerEndpoint({
      files: new DiskFiles(opts.catalog),
      randomU32,
      tokenSecret: crypto.getRandomValues(new Uint8Array(32)),
      crypto: transfer,
      allowPlaintext: opts.allowPlaintext ?? transferSecurityDefaults.plaintext,
      maxSessions: opts.maxSessions,
      maxSessionsPerAddress: opts.maxSessionsPerAddress,
      idleTimeoutMs: opts.idleTimeoutMs,
      maxRunDatagrams: gso ? MAX_RUN_DATAGRAMS : 1,
    });
  }

  static async start(opts: FileServiceOptions): Promise<FileService> {
    let service: FileService | undefined;
    let socket: udp.Socket<"uint8array">;
    const transfer = await transferCrypto(opts.token);
    try {
      socket = await Bun.udpSocket({
        hostname: opts.host,
        port: opts.port,
        binaryType: "uint8array",
        socket: {
          data(_s, data, port, address) {
            service?.onDatagram(data, port, address);
          },
          drain() {
            service?.onDrain();
          },
          error(first, second) {
            // ICMP errors from clients that went away: expected, and never fatal to the service.
            service?.logger.debug(`UDP socket error: ${udpErrorOf(first, second).message}`);
          },
        },
      });
    } catch (err) {
      throw new FtxError("E_IO", `cannot bind UDP ${formatAddress(opts.host, opts.port)}: ${(err as Error).message}`);
    }
    const gso = process.env.FTX_NO_GSO === "1" ? undefined : GsoSender.open(socket, socket.address.family === "IPv6" ? 6 : 4);
    service = new FileService(socket, opts, gso, transfer);
    const plaintext = opts.allowPlaintext ?? transferSecurityDefaults.plaintext;
    service.logger.debug(`transfers: ${transfer.aeadName}, ${transfer.kx.name}${transfer.kx.authenticated ? " (clients must know the token)" : " (no token: clients are not authenticated)"}${plaintext ? "; sessions in clear allowed (--insecure-plaintext)" : ""}`);
    const granted = growReceiveBuffer(socket, RECEIVE_BUFFER_BYTES);
    service.logger.debug(`UDP receive buffer: ${granted === undefined ? "the system's default (could not be sized)" : `${granted} bytes`}`);
    service.logger.debug(
      gso
        ? `UDP send: segmentation offload (GSO), runs of up to ${MAX_RUN_DATAGRAMS} datagrams per system call`
        : `UDP send: one datagram per system call (${process.env.FTX_NO_GSO === "1" ? "FTX_NO_GSO=1" : "no UDP segmentation offload here"})`,
    );
    return service;
  }

  get port(): number {
    return this.socket.port;
  }

  get counters(): FileServiceStats {
    return this.endpoint.counters;
  }

  /** Operators' view: the transfers open now. */
  activeSessions(): ActiveSession[] {
    return this.endpoint.activeSessions();
  }

  stop(): void {
    this.stopped = true;
    this.wake.cancel();
    this.drainRetry.cancel();
    this.endpoint.closeAll();
    this.socket.close();
  }

  private onDatagram(data: Uint8Array, port: number, address: string): void {
    if (this.stopped) return;
    const now = performance.now();
    this.endpoint.handle(data, address, port, now);
    this.flush(now);
  }

  private onDrain(): void {
    if (this.stopped) return;
    const now = performance.now();
    this.endpoint.handleDrain(now);
    this.flush(now);
  }

  private onTimer(): void {
    if (this.stopped) return;
    const now = performance.now();
    this.endpoint.handleTimeout(now);
    this.flush(now);
  }

  /**
   * Hands what the endpoint has to send to the kernel: with GSO one run per sendmsg, else up to
   * SEND_BATCH datagrams per sendMany. What the kernel did not take goes back to the endpoint, newest
   * first, and nothing more goes until the socket drained (Bun says so after its own sends; after
   * ours, a short timer asks again). Then re-arms the one timer and logs what happened.
   */
  private flush(now: number): void {
    const endpoint = this.endpoint;
    const batch = this.batch;
    const gso = this.gso;
    while (gso && !endpoint.blocked) {
      // Single datagrams (loopback's 64 KiB ones, control) go through Bun, SEND_BATCH per system call
      // (sendmmsg); a run goes in one GSO send of its own, after what was batched before it.
      batch.length = 0;
      let count = 0;
      let run: Transmit | undefined;
      for (let t = endpoint.pollTransmit(now); t; t = count < SEND_BATCH ? endpoint.pollTransmit(now) : undefined) {
        if (t.count > 1) {
          run = t;
          break;
        }
        batch.push(t.bytes, t.port, t.address);
        count++;
      }
      if (count > 0) {
        const sent = this.sendMany(batch, count);
        if (sent < count) {
          // The run, if any, is the newest transmit: it goes back first.
          if (run) endpoint.unsend();
          for (let i = count - 1; i >= sent; i--) endpoint.unsend();
          break;
        }
      }
      if (!run) {
        if (count === 0) break;
        continue;
      }
      if (!this.sendBufferGrown) {
        // Only once runs are sent: loopback's single large datagrams need no more than the default.
        this.sendBufferGrown = true;
        gso.growSendBuffer(SEND_BUFFER_BYTES);
      }
      if (gso.send(run.bytes, run.datagramBytes, run.count, run.address, run.port) === SendResult.WouldBlock) {
        endpoint.unsend();
        this.drainRetry.wakeBy(now + FULL_RETRY_MS);
      }
      const error = gso.lastError;
      if (error) {
        gso.lastError = undefined;
        const peer = formatAddress(unmapIPv4(run.address), run.port);
        this.logger.debug(error.gso ? `the route to ${peer} refused a run (errno ${error.errno}): one datagram per system call to it` : `send to ${peer} failed (errno ${error.errno})`);
      }
    }
    while (!gso && !endpoint.blocked) {
      batch.length = 0;
      let count = 0;
      for (let t = endpoint.pollTransmit(now); t; t = count < SEND_BATCH ? endpoint.pollTransmit(now) : undefined) {
        batch.push(t.bytes, t.port, t.address);
        count++;
      }
      if (count === 0) break;
      const sent = this.sendMany(batch, count);
      for (let i = count - 1; i >= sent; i--) endpoint.unsend();
    }
    for (let ev = endpoint.pollEvent(); ev; ev = endpoint.pollEvent()) {
      this.log(ev);
      this.onEvent?.(ev);
    }
    const at = endpoint.pollTimeout();
    if (at !== undefined) this.wake.wakeBy(at);
  }

  /**
   * One socket serves every client, so the kernel's report of an ICMP error (ECONNREFUSED: a client
   * that went away, a probe socket closed before its last answers came) makes Bun's send throw on
   * whichever send comes next, to anyone, and that batch is not sent. The report clears the error, so
   * the batch is sent once more; a second failure is news about one peer only, never a reason to stop
   * serving the others: the batch counts as sent (and lost on the way, which the protocol repairs).
   */
  private sendMany(batch: Array<Uint8Array | number | string>, count: number): number {
    try {
      try {
        return this.socket.sendMany(batch);
      } catch {
        return this.socket.sendMany(batch);
      }
    } catch (err) {
      this.logger.debug(`send of ${count} datagram(s) failed: ${(err as Error).message}`);
      return count;
    }
  }

  private log(ev: EndpointEvent): void {
    const peer = formatAddress(unmapIPv4(ev.address), ev.port);
    switch (ev.type) {
      case "opened": {
        const what = ev.pieceHashes ? `the piece hashes of ${ev.name}` : ev.name;
        return this.logger.debug(`${peer} requests ${what} from byte ${ev.offset} (${ev.length} bytes, ${ev.segmentBytes}-byte segments)`);
      }
      case "refused":
        if (ev.code === TransferErrorCode.Forbidden) return this.logger.warn(`refused ${peer}: authentication failed`);
        return this.logger.debug(`refused ${peer}: ${ev.text}`);
      case "completed": {
        const st = ev.stats;
        return this.logger.debug(
          `${peer} received ${ev.name}${ev.via === "fin" ? " (said FIN)" : ""}: srtt ${st.srttMs.toFixed(2)}ms rto ${st.rtoMs.toFixed(0)}ms cwnd ${st.cwnd.toFixed(0)} ` +
            `peer window ${st.peerWindow} sent ${st.sent} resent ${st.retransmitted} timeouts ${st.timeouts} fast ${st.fastRetransmits} probes ${st.probes}`,
        );
      }
      case "failed":
        if (ev.code !== undefined) return this.logger.warn(`transfer of ${ev.name} to ${peer} stopped: ${ev.reason}`);
        return this.logger.debug(`session with ${peer} for ${ev.name} ended: ${ev.reason}`);
      case "cancelled":
        return this.logger.debug(`${peer} cancelled its transfer of ${ev.name}`);
      case "evicted":
        return this.logger.debug(`session with ${peer} for ${ev.name} evicted: ${ev.reason}`);
      case "dropped":
        return this.logger.debug(`bad datagram from ${peer}: ${ev.reason}`);
    }
  }
}
