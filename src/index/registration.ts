import { FtxError } from "../errors.ts";
import type { Catalog } from "../files/catalog.ts";
import { silentLogger, type Logger } from "../log.ts";
import { formatAddress, unmapIPv4, type HostPort } from "../net/address.ts";
import { connectToMaster, errorFromMaster, type IndexSession } from "./index-client.ts";
import { IndexErrorCode, MsgType, Role, type FileRecord } from "./core/messages.ts";
import { InterruptibleSleep } from "../util/interruptible-sleep.ts";

export interface RegistrationOptions {
  /** Tried in turn: registration stays with one until it is lost, then moves to the next. */
  masters: HostPort[];
  token?: string;
  /** What clients are told to send to. Host undefined: the local address of our connection to the master. */
  advertiseHost?: string;
  advertisePort: number;
  catalog: Catalog;
  logger?: Logger;
  /** Called once for a refusal that retrying cannot fix (wrong token): the server exits. */
  onFatal: (err: FtxError) => void;
}

/** Reconnect backoff: 250 ms doubling to a 2 s cap (the contract: retry at least every 2 s), with jitter. */
const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 2000;
const CONNECT_TIMEOUT_MS = 3000;
/** Changes are gathered this long and sent as one FILES_ADD / FILES_REMOVE. */
const FLUSH_DELAY_MS = 30;
const BATCH_BYTES = 256 * 1024;

export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  // "Equal jitter": never less than half the ceiling, so a herd of servers spreads out but none waits long.
  return ceiling / 2 + random() * (ceiling / 2);
}

/**
 * Keeps a file server registered with its master: connect, announce, send the whole list once, then only
 * what changes; heartbeat as the master asks; on any loss, reconnect with backoff and start over.
 */
export class Registration {
  private stopped = false;
  private session: IndexSession | undefined;
  private readonly logger: Logger;
  private pendingAdds = new Map<string, FileRecord>();
  private pendingRemoves = new Set<string>();
  private flushTimer: Timer | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly pause = new InterruptibleSleep();
  readonly display: string;

  constructor(private readonly opts: RegistrationOptions) {
    this.logger = opts.logger ?? silentLogger;
    this.display = opts.masters.map((m) => formatAddress(m.host, m.port)).join(",");
  }

  start(): void {
    this.unsubscribe = this.opts.catalog.subscribe({
      added: (f) => {
        this.pendingRemoves.delete(f.name);
        this.pendingAdds.set(f.name, f);
        this.scheduleFlush();
      },
      removed: (name) => {
        this.pendingAdds.delete(name);
        this.pendingRemoves.add(name);
        this.scheduleFlush();
      },
    });
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.flushTimer);
    this.session?.close();
    this.pause.wake();
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    let reportedDown = false;
    let current = 0; // index into masters: stay with the one that works, move on when it fails
    const masters = this.opts.masters;
    while (!this.stopped) {
      let session: IndexSession;
      const target = masters[current % masters.length]!;
      try {
        session = await connectToMaster(target, { role: Role.FileServer, token: this.opts.token, timeoutMs: CONNECT_TIMEOUT_MS });
      } catch (err) {
        const e = err as FtxError;
        if (e.code === "E_AUTH") return this.fatal(e);
        if (!reportedDown) this.logger.warn(`${e.message}; retrying`);
        else this.logger.debug(e.message);
        reportedDown = true;
        current++;
        // Back off only once every master has been tried.
        if (current % masters.length === 0) await this.pause.sleep(backoffMs(attempt++));
        continue;
      }
      if (this.stopped) {
        session.close();
        return;
      }
      attempt = 0;
      reportedDown = false;
      const reason = await this.runSession(session);
      if (this.stopped) return;
      this.logger.warn(`lost master ${session.master} (${reason}); reconnecting`);
      if (masters.length > 1) current++;
      await this.pause.sleep(backoffMs(0));
    }
  }

  private fatal(err: FtxError): void {
    this.stopped = true;
    this.opts.onFatal(err);
  }

  /** One connected period; resolves with why it ended. */
  private runSession(session: IndexSession): Promise<string> {
    this.session = session;
    const { heartbeatIntervalMs, heartbeatTimeoutMs } = session.welcome;
    return new Promise<string>((resolve) => {
      let lastHeard = performance.now();
      let seq = 0;
      let endReason: string | undefined;
      const beat = setInterval(() => {
        if (performance.now() - lastHeard > heartbeatTimeoutMs) {
          endReason = `no answer for ${heartbeatTimeoutMs / 1000}s`;
          session.peer.destroy();
          finish();
          return;
        }
        session.send({ type: MsgType.Ping, seq: ++seq >>> 0 });
      }, heartbeatIntervalMs);
      const finish = () => {
        clearInterval(beat);
        if (this.session === session) this.session = undefined;
        resolve(endReason ?? session.closeReason);
      };
      session.onMessage = (msg) => {
        lastHeard = performance.now();
        if (msg.type === MsgType.FileRejected) this.logger.warn(`master refused ${JSON.stringify(msg.name)}: ${msg.reason}`);
        else if (msg.type === MsgType.Error) {
          const err = errorFromMaster(msg.code, msg.message, session.master);
          if (msg.code === IndexErrorCode.AuthFailed) {
            clearInterval(beat);
            this.fatal(err);
          }
          endReason = err.message;
        }
      };
      session.onClose = () => finish();

      const host = this.opts.advertiseHost ?? unmapIPv4(session.localAddress);
      session.send({ type: MsgType.Announce, host, port: this.opts.advertisePort });
      // A fresh registration carries the whole list; whatever was pending is part of it.
      this.pendingAdds.clear();
      this.pendingRemoves.clear();
      this.sendAdds(this.opts.catalog.files());
      this.logger.info(`registered with master ${session.master} as ${formatAddress(host, this.opts.advertisePort)} (${this.opts.catalog.size} files so far)`);
    });
  }

  private scheduleFlush(): void {
    if (this.flushTimer || !this.session) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, FLUSH_DELAY_MS);
  }

  private flush(): void {
    if (!this.session) return;
    if (this.pendingRemoves.size > 0) {
      const names = [...this.pendingRemoves];
      this.pendingRemoves.clear();
      for (let i = 0; i < names.length; i += 1000) this.session.send({ type: MsgType.FilesRemove, names: names.slice(i, i + 1000) });
    }
    if (this.pendingAdds.size > 0) {
      const files = [...this.pendingAdds.values()];
      this.pendingAdds.clear();
      this.sendAdds(files);
    }
  }

  private sendAdds(files: FileRecord[]): void {
    let batch: FileRecord[] = [];
    let bytes = 0;
    for (const f of files) {
      const size = 2 + 8 + 32 + 32 + Buffer.byteLength(f.name); // a file record on the wire
      if (batch.length > 0 && bytes + size > BATCH_BYTES) {
        this.session!.send({ type: MsgType.FilesAdd, files: batch });
        batch = [];
        bytes = 0;
      }
      batch.push(f);
      bytes += size;
    }
    if (batch.length > 0) this.session!.send({ type: MsgType.FilesAdd, files: batch });
  }
}
