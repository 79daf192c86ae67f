import type { udp } from "bun";
import { Rng } from "./random.ts";

/**
 * A UDP relay that impairs traffic on purpose, for end-to-end tests with real processes: loss,
 * duplication, reordering, delay + jitter, corruption and a bandwidth cap, each direction on its own.
 * Clients send to `port`; each client gets its own upstream socket, so the server sees distinct
 * addresses as it would without the relay.
 */
export interface Impairment {
  loss?: number;
  duplicate?: number;
  reorder?: number; // chance a datagram is held back by an extra 1–5 ms
  corrupt?: number;
  delayMs?: number;
  jitterMs?: number;
  bytesPerSecond?: number;
  /** Datagrams larger than this are dropped, as a link with that MTU would (IP and UDP headers aside). */
  mtu?: number;
}

interface Direction {
  imp: Impairment;
  nextFreeAt: number; // bandwidth cap: when the link is free again
}

export interface RelayCounters {
  toServer: number;
  toClient: number;
  dropped: number;
  duplicated: number;
  corrupted: number;
  reordered: number;
  bytesToServer: number;
  bytesToClient: number;
}

/** Bun's send() throws a queued ICMP error (a peer that went away): for a relay, just a lost datagram. */
function trySend(send: () => unknown): void {
  try {
    send();
  } catch {}
}

export class ImpairmentRelay {
  private front!: udp.Socket<"uint8array">;
  private readonly upstream = new Map<string, udp.Socket<"uint8array">>();
  private readonly rng: Rng;
  private readonly up: Direction;
  private readonly down: Direction;
  readonly counters: RelayCounters = { toServer: 0, toClient: 0, dropped: 0, duplicated: 0, corrupted: 0, reordered: 0, bytesToServer: 0, bytesToClient: 0 };
  private closed = false;
  /** Drop client→server datagrams this predicate picks (on top of the random impairments). */
  dropToServer: ((bytes: Uint8Array) => boolean) | undefined;
  /** Sees every datagram that reaches the relay, either way, before any impairment (a capture). */
  tap: ((bytes: Uint8Array, toServer: boolean) => void) | undefined;

  private constructor(
    private readonly serverHost: string,
    private readonly serverPort: number,
    toServer: Impairment,
    toClient: Impairment,
    seed: number,
  ) {
    this.rng = new Rng(seed);
    this.up = { imp: toServer, nextFreeAt: 0 };
    this.down = { imp: toClient, nextFreeAt: 0 };
  }

  static async start(server: { host: string; port: number }, opts: { toServer?: Impairment; toClient?: Impairment; both?: Impairment; seed?: number } = {}): Promise<ImpairmentRelay> {
    const relay = new ImpairmentRelay(server.host, server.port, { ...opts.both, ...opts.toServer }, { ...opts.both, ...opts.toClient }, opts.seed ?? 1);
    relay.front = await Bun.udpSocket({
      hostname: "127.0.0.1",
      port: 0,
      binaryType: "uint8array",
      socket: {
        data: (_s, data, port, address) => void relay.fromClient(data, port, address),
        error: () => {}, // ICMP unreachable from a client that left: expected
      },
    });
    return relay;
  }

  get port(): number {
    return this.front.port;
  }

  /** Change impairments mid-test (e.g. cut the link entirely with loss: 1). */
  set(toServer: Impairment, toClient: Impairment = toServer): void {
    this.up.imp = toServer;
    this.down.imp = toClient;
  }

  private async fromClient(data: Uint8Array, port: number, address: string): Promise<void> {
    const key = `${address}|${port}`;
    let socket = this.upstream.get(key);
    if (!socket) {
      socket = await Bun.udpSocket({
        hostname: "127.0.0.1",
        port: 0,
        binaryType: "uint8array",
        socket: {
          data: (_s, reply) => {
            this.tap?.(reply, false);
            this.impair(this.down, reply, (bytes) => {
              if (this.closed) return;
              this.counters.toClient++;
              this.counters.bytesToClient += bytes.byteLength;
              trySend(() => this.front.send(bytes, port, address));
            });
          },
          error: () => {}, // the server went away (a test killed it): expected
        },
      });
      this.upstream.set(key, socket);
    }
    const s = socket;
    this.tap?.(data, true);
    if (this.dropToServer?.(data)) {
      this.counters.dropped++;
      return;
    }
    this.impair(this.up, data, (bytes) => {
      if (this.closed) return;
      this.counters.toServer++;
      this.counters.bytesToServer += bytes.byteLength;
      trySend(() => s.send(bytes, this.serverPort, this.serverHost));
    });
  }

  private impair(dir: Direction, data: Uint8Array, deliver: (b: Uint8Array) => void): void {
    const imp = dir.imp;
    if (imp.mtu !== undefined && data.byteLength > imp.mtu) {
      this.counters.dropped++;
      return;
    }
    if (this.rng.chance(imp.loss ?? 0)) {
      this.counters.dropped++;
      return;
    }
    const copies = this.rng.chance(imp.duplicate ?? 0) ? 2 : 1;
    if (copies === 2) this.counters.duplicated++;
    for (let i = 0; i < copies; i++) {
      let bytes = data.slice();
      if (this.rng.chance(imp.corrupt ?? 0)) {
        this.counters.corrupted++;
        bytes[this.rng.int(bytes.length)]! ^= 1 + this.rng.int(255);
      }
      let delay = (imp.delayMs ?? 0) + this.rng.next() * (imp.jitterMs ?? 0);
      if (this.rng.chance(imp.reorder ?? 0)) {
        this.counters.reordered++;
        delay += 1 + this.rng.next() * 4;
      }
      if (imp.bytesPerSecond) {
        const now = performance.now();
        const start = Math.max(now, dir.nextFreeAt);
        dir.nextFreeAt = start + (bytes.byteLength / imp.bytesPerSecond) * 1000;
        // Tail drop, like a router queue: more than 50 ms of backlog is lost.
        if (dir.nextFreeAt - now > 50) {
          dir.nextFreeAt -= (bytes.byteLength / imp.bytesPerSecond) * 1000;
          this.counters.dropped++;
          continue;
        }
        delay += dir.nextFreeAt - now;
      }
      if (delay <= 0) deliver(bytes);
      else setTimeout(() => deliver(bytes), delay);
    }
  }

  close(): void {
    this.closed = true;
    this.front.close();
    for (const s of this.upstream.values()) s.close();
  }
}
