import { concat } from "../../src/util/bytes.ts";
import { Download, type DownloadSpec } from "../../src/transfer/download.ts";
import { testCrypto } from "./transfer-crypto.ts";
import { MAX_RUN_DATAGRAMS, SEND_BATCH, ServerEndpoint, type EndpointEvent, type OpenResult, type ServedFile, type ServedFiles, type Transmit } from "../../src/transfer/core/server-endpoint.ts";
import { TransferErrorCode } from "../../src/transfer/core/wire.ts";
import type { Rng } from "./random.ts";
import { SimLink, type LinkProfile } from "./sim-link.ts";

/** A served file held in memory. */
export interface SimFile extends ServedFile {
  data: Uint8Array;
}

export function simFile(rng: Rng, name: string, size: number, pieces = 1 + rng.int(8)): SimFile {
  const data = rng.bytes(size);
  let sha256 = "";
  for (const b of rng.bytes(32)) sha256 += b.toString(16).padStart(2, "0");
  return { name, size, data, sha256, pieceHashes: rng.bytes(32 * pieces) };
}

/**
 * The simulator's storage: files in memory, handles as numbers, every open one tracked (a test can
 * check that none leaks), and knobs to make a file look changed or unreadable.
 */
export class MemoryFiles implements ServedFiles<SimFile, number> {
  readonly files = new Map<string, SimFile>();
  private readonly handles = new Map<number, SimFile>();
  private nextHandle = 1;
  scans = 0;
  /** Names whose content now differs from what was hashed (changed() says so). */
  readonly changing = new Set<string>();
  /** Names whose open fails with this code. */
  readonly openFails = new Map<string, TransferErrorCode.Changed | TransferErrorCode.NotFound>();
  /** Names that read short (the file shrank under the server). */
  readonly shrunk = new Set<string>();

  constructor(files: SimFile[] = []) {
    for (const f of files) this.files.set(f.name, f);
  }

  get openHandles(): number {
    return this.handles.size;
  }

  lookup(name: string): SimFile | undefined {
    return this.files.get(name);
  }

  open(file: SimFile): OpenResult<number> {
    const code = this.openFails.get(file.name);
    if (code !== undefined) return { ok: false, code };
    const handle = this.nextHandle++;
    this.handles.set(handle, file);
    return { ok: true, handle };
  }

  read(handle: number, buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    const file = this.handles.get(handle);
    if (!file) throw new Error(`read of handle ${handle}, which is not open`);
    const take = this.shrunk.has(file.name) ? Math.max(0, Math.min(length, file.size - 1 - position)) : Math.min(length, file.size - position);
    buf.set(file.data.subarray(position, position + take), bufOffset);
    return take;
  }

  changed(handle: number, file: SimFile): boolean {
    if (!this.handles.has(handle)) throw new Error(`changed() on handle ${handle}, which is not open`);
    return this.changing.has(file.name);
  }

  close(handle: number): void {
    if (!this.handles.delete(handle)) throw new Error(`handle ${handle} closed twice`);
  }

  requestScan(): void {
    this.scans++;
  }
}

export interface SimClient {
  address: string;
  port: number;
  file: SimFile;
  offset: number;
  length: number;
  pieceHashes?: boolean;
  segmentBytes: number;
  windowSegments: number;
  ackEvery: number;
  token?: string;
  startAtMs: number;
  /** Server → this client, and back. */
  forward: LinkProfile;
  backward: LinkProfile;
  idleTimeoutMs?: number;
}

export interface SimEndpointsOptions {
  files: SimFile[];
  clients: SimClient[];
  /** The probability that the server's socket refuses (part of) a batch; it drains 0.05 ms later. */
  refuse?: number;
  token?: string;
  maxSessions?: number;
  maxSessionsPerAddress?: number;
  idleTimeoutMs?: number;
  /** Give up (the test fails) past this much simulated time. */
  maxSimMs?: number;
  /** The server's socket takes runs (UDP GSO): the endpoint packs them, the link carries their datagrams one by one. */
  runs?: boolean;
  /** The clients' sockets coalesce what arrives together into runs, as UDP GRO does. */
  gro?: boolean;
}

export interface SimClientResult {
  download: Download | undefined;
  output: Uint8Array;
  /** What the client should have received. */
  expected: Uint8Array;
  forward: SimLink;
  backward: SimLink;
  droppedAtClient: number;
  lastReadAt: number;
}

export interface SimEndpointsResult {
  clients: SimClientResult[];
  endpoint: ServerEndpoint<SimFile, number>;
  storage: MemoryFiles;
  events: EndpointEvent[];
  simMs: number;
  refusals: number;
  /** Transmits of more than one datagram (runs), and reads of more than one datagram (GRO) at the clients. */
  runs: number;
  coalescedReads: number;
}

/** With GRO, how often a client reads its socket: what arrives in between is coalesced into runs. */
const READ_EVERY_MS = 0.5;

/** How long after refusing a send the simulated socket says it drained (as sim-transfer.ts). */
const DRAIN_AFTER_MS = 0.05;

/**
 * The real ServerEndpoint serving real client Downloads over simulated links (one pair per client),
 * with a fake clock that jumps to the next thing that can happen. Clients may share an address. The
 * server's socket refuses sends at random, as a full one does: the driver takes the rest of the batch
 * back (`unsend`, newest first) and waits for a simulated drain.
 */
export function simulateEndpoints(rng: Rng, o: SimEndpointsOptions): SimEndpointsResult {
  const storage = new MemoryFiles(o.files);
  const token = o.token;
  const endpoint = new ServerEndpoint<SimFile, number>({
    files: storage,
    randomU32: () => (rng.next() * 4294967296) >>> 0,
    tokenSecret: new Uint8Array(32).fill(9),
    crypto: testCrypto({ token, seed: 1 }),
    maxSessions: o.maxSessions,
    maxSessionsPerAddress: o.maxSessionsPerAddress,
    idleTimeoutMs: o.idleTimeoutMs,
    maxRunDatagrams: o.runs ? MAX_RUN_DATAGRAMS : 1,
  });
  const maxSimMs = o.maxSimMs ?? 600_000;
  const refuse = o.refuse ?? 0;
  let now = 0;
  let blockedUntil = 0;
  let refusals = 0;
  let runs = 0;
  let coalescedReads = 0;
  const events: EndpointEvent[] = [];
  let stalled = 0;

  const clients: SimClientResult[] = [];
  const byPeer = new Map<string, SimClientResult>();
  const pending: number[] = []; // clients not started yet, by index
  for (const [i, c] of o.clients.entries()) {
    const source = c.pieceHashes ? c.file.pieceHashes : c.file.data;
    const r: SimClientResult = {
      download: undefined,
      output: new Uint8Array(c.length),
      expected: source.subarray(c.offset, c.offset + c.length),
      forward: new SimLink(rng, c.forward),
      backward: new SimLink(rng, c.backward),
      droppedAtClient: 0,
      lastReadAt: -Infinity,
    };
    clients.push(r);
    byPeer.set(`${c.address}|${c.port}`, r);
    pending.push(i);
  }

  const start = (i: number) => {
    const c = o.clients[i]!;
    const r = clients[i]!;
    const spec: DownloadSpec = {
      name: c.file.name,
      size: c.pieceHashes ? c.file.pieceHashes.byteLength : c.file.size,
      offset: c.offset,
      length: c.length,
      pieceHashes: c.pieceHashes,
      sha256: c.file.sha256,
      ip: "192.0.2.1",
      port: 9,
      display: "sim-server",
      crypto: testCrypto({ token: c.token, seed: 100 + i }),
      segmentBytes: c.segmentBytes,
      windowSegments: c.windowSegments,
      ackEvery: c.ackEvery,
      idleTimeoutMs: c.idleTimeoutMs ?? 10_000,
    };
    let written = 0;
    const sink = {
      backlogBytes: 0,
      append(bytes: Uint8Array, start: number, end: number) {
        r.output.set(bytes.subarray(start, end), written);
        written += end - start;
      },
    };
    r.download = new Download(spec, sink, (bytes) => r.backward.send(bytes, now), now, () => {}, {
      now: () => now,
      sessionId: ((rng.next() * 4294967296) >>> 0) || 1,
    });
    r.download.finished.catch(() => {});
  };

  const route = (t: Transmit) => {
    const r = byPeer.get(`${t.address}|${t.port}`);
    if (!r) throw new Error(`the server sent to ${t.address}:${t.port}, which is no client`);
    if (t.count > 1) runs++;
    if (t.count === 1) {
      if (t.datagramBytes !== t.bytes.byteLength) throw new Error(`a transmit of one datagram says ${t.datagramBytes} bytes but holds ${t.bytes.byteLength}`);
      return r.forward.send(t.bytes, now);
    }
    // What GSO does: cut the run into datagrams, all as long as the first but the last.
    const last = t.bytes.byteLength - (t.count - 1) * t.datagramBytes;
    if (!o.runs || t.count > MAX_RUN_DATAGRAMS || last <= 0 || last > t.datagramBytes) throw new Error(`a run of ${t.count} × ${t.datagramBytes} bytes holds ${t.bytes.byteLength}`);
    for (let i = 0; i < t.count; i++) r.forward.send(t.bytes.subarray(i * t.datagramBytes, Math.min((i + 1) * t.datagramBytes, t.bytes.byteLength)), now);
  };

  const batch: Transmit[] = [];
  const flushServer = () => {
    while (!endpoint.blocked) {
      batch.length = 0;
      for (let t = endpoint.pollTransmit(now); t; t = batch.length < SEND_BATCH ? endpoint.pollTransmit(now) : undefined) batch.push(t);
      if (batch.length === 0) break;
      const taken = refuse > 0 && rng.chance(refuse) ? rng.int(batch.length) : batch.length;
      for (let i = batch.length - 1; i >= taken; i--) endpoint.unsend();
      for (let i = 0; i < taken; i++) route(batch[i]!);
      if (taken < batch.length) {
        refusals++;
        blockedUntil = now + DRAIN_AFTER_MS;
      }
    }
    for (let ev = endpoint.pollEvent(); ev; ev = endpoint.pollEvent()) events.push(ev);
  };

  const settled = () => pending.length === 0 && clients.every((r) => r.download!.state === "done" || r.download!.state === "failed");

  for (let steps = 0; steps < 5_000_000; steps++) {
    flushServer();
    if (settled() && endpoint.sessionCount === 0) break;
    let next = Infinity;
    const consider = (t: number | undefined) => {
      if (t !== undefined && t < next) next = t;
    };
    for (const r of clients) {
      const due = r.forward.nextDeliveryAt();
      // With GRO the client reads at most every READ_EVERY_MS: what arrived meanwhile waits, and coalesces.
      consider(due === undefined || !o.gro ? due : Math.max(due, r.lastReadAt + READ_EVERY_MS));
      consider(r.backward.nextDeliveryAt());
      if (r.download) consider(r.download.pollTimeout());
    }
    for (const i of pending) consider(o.clients[i]!.startAtMs);
    consider(endpoint.pollTimeout());
    if (endpoint.blocked) consider(blockedUntil);
    if (next === Infinity) break;
    // Time must move on: an endpoint that keeps asking to be woken now (say, for "ready to send" while
    // its socket is blocked) would make a real shell spin.
    if (next <= now) {
      if (++stalled > 10_000) throw new Error(`the simulation stalls at ${now} ms: something keeps asking to be woken now`);
    } else stalled = 0;
    now = Math.max(now, next);
    if (now > maxSimMs) break;
    if (endpoint.blocked && now >= blockedUntil) endpoint.handleDrain(now);
    for (let k = pending.length - 1; k >= 0; k--) {
      const i = pending[k]!;
      if (o.clients[i]!.startAtMs <= now) {
        pending.splice(k, 1);
        start(i);
      }
    }
    for (const [i, r] of clients.entries()) {
      const c = o.clients[i]!;
      for (const d of r.backward.deliver(now)) endpoint.handle(d, c.address, c.port, now);
      const download = r.download;
      const arrived = o.gro && now < r.lastReadAt + READ_EVERY_MS ? [] : r.forward.deliver(now);
      if (arrived.length > 0) r.lastReadAt = now;
      if (arrived.length > 0 && !download) throw new Error("a datagram for a client that has not started");
      for (let i = 0; i < arrived.length; ) {
        // With GRO, what arrives together is coalesced as the kernel does: a run of datagrams as long
        // as the first, the last maybe shorter, at most 64.
        let n = 1;
        if (o.gro) {
          const size = arrived[i]!.byteLength;
          while (n < MAX_RUN_DATAGRAMS && i + n < arrived.length && arrived[i + n - 1]!.byteLength === size && arrived[i + n]!.byteLength <= size) n++;
        }
        if (n > 1) coalescedReads++;
        const bytes = n === 1 ? arrived[i]! : concat(...arrived.slice(i, i + n));
        r.droppedAtClient += download!.receive(bytes, now);
        i += n;
      }
    }
    const at = endpoint.pollTimeout();
    if (at !== undefined && at <= now) endpoint.handleTimeout(now);
    for (const r of clients) {
      const t = r.download?.pollTimeout();
      if (t !== undefined && t <= now) r.download!.onTimer(now);
    }
  }
  flushServer();
  return { clients, endpoint, storage, events, simMs: now, refusals, runs, coalescedReads };
}
