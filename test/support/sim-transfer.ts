import { ProtocolError } from "../../src/errors.ts";
import { GbnReceiver } from "../../src/transfer/core/gbn-receiver.ts";
import { SenderRepairs } from "../../src/transfer/core/fec/sender-repairs.ts";
import { GbnSender, SendKind, type SenderEvent } from "../../src/transfer/core/gbn-sender.ts";
import {
  ACK_BYTES,
  DATA_AT,
  HEADER_AT,
  FLAG_GAP,
  HEADER_BYTES,
  writeHeader,
  seal,
  dataPayloadBytes,
  decodeAck,
  decodeData,
  FLAG_ACK_NOW,
  finishData,
  PacketType,
  readHeader,
  segmentCount,
  writeAck,
} from "../../src/transfer/core/wire.ts";
import type { Rng } from "./random.ts";
import { SimLink, type LinkProfile } from "./sim-link.ts";
import { SimTcpBbrFlow } from "./sim-tcp-bbr.ts";

/** What the driver needs of a flow: ftx's (SimFlow) or a TCP rival's (SimTcpBbrFlow). */
interface SimEndpoint {
  readonly sessionId: number;
  readonly startAtMs: number;
  readonly event: unknown;
  readonly progress: Array<[number, number]>;
  /** Payload bytes the receiver has in order (ftx) or at all (TCP). */
  readonly deliveredBytes: number;
  transmit(now: number): void;
  nextAt(now: number): number | undefined;
  receive(d: Uint8Array, now: number): void;
  acks(now: number): void;
}

/** What one flow sends and how its ends are set up. */
export interface FlowOptions {
  data: Uint8Array;
  segmentBytes: number;
  receiverWindow?: number;
  ackEvery?: number;
  maxWindow?: number;
  idleTimeoutMs?: number;
  /** Data segments per FEC block (0 or absent: no repair). */
  fecBlock?: number;
  /** Give up (fail the test) past this much simulated time. */
  maxSimMs?: number;
  onTransmit?: (sender: GbnSender, seq: number, now: number) => void;
  /** The sending socket refuses a batch (in part) with this probability. */
  refuse?: number;
  /**
   * The sender's timer fires late by up to this much (uniform, seeded), as a busy event loop's does:
   * on the 2-core bench machine 40 % of pacing wake-ups came 1–4 ms late.
   */
  timerLateMs?: number;
  /**
   * The receiver reads its socket only this long (at most: uniform, seeded) after a datagram arrives,
   * and then everything that came meanwhile in one go, as a busy client's event loop and its GRO
   * reads do: its ACKs come in bunches, and the round trip it shows is many times the path's.
   */
  readLateMs?: number;
}

export interface SimOptions extends FlowOptions {
  forward: LinkProfile;
  backward: LinkProfile;
}

export interface SimResult {
  output: Uint8Array;
  event: SenderEvent | undefined;
  simMs: number;
  sender: GbnSender;
  receiver: GbnReceiver;
  dropped: { corrupt: number };
  forward: SimLink;
  backward: SimLink;
}

/** One flow of a simulation: a real sender and receiver, their socket shell logic, and its ACK link. */
class SimFlow implements SimEndpoint {
  readonly sender: GbnSender;
  readonly receiver: GbnReceiver;
  readonly output: Uint8Array;
  readonly dropped = { corrupt: 0 };
  event: SenderEvent | undefined;
  finishedAt: number | undefined;
  /** Acknowledged segments, sampled every PROGRESS_EVERY_MS of simulated time: [ms, segments]. */
  readonly progress: Array<[number, number]> = [];
  private readonly repairs: SenderRepairs;
  private readonly fecBlock: number;
  private readonly dgram: Uint8Array;
  private readonly dview: DataView;
  private readonly ackBuf = new Uint8Array(ACK_BYTES);
  private readonly ackView = new DataView(this.ackBuf.buffer);
  private blockedUntil = 0;
  private readonly batch: number[] = [];
  private readonly kinds: SendKind[] = [];
  private readonly indices: number[] = [];
  private readonly refuse: number;
  /** The sender deadline last asked for, and how late its timer fires for it. */
  private lateFor: number | undefined;
  private late = 0;
  /** Datagrams the receiver has not read yet (readLateMs), and when it will. */
  private readonly inbox: Uint8Array[] = [];
  private readAt: number | undefined;

  constructor(
    private readonly rng: Rng,
    private readonly o: FlowOptions,
    readonly sessionId: number,
    readonly startAtMs: number,
    private readonly forward: SimLink,
    readonly backward: SimLink,
  ) {
    const totalSegments = segmentCount(o.data.byteLength, o.segmentBytes);
    const receiverWindow = o.receiverWindow ?? 64;
    this.fecBlock = o.fecBlock ?? 0;
    this.sender = new GbnSender({ totalSegments, maxWindowSegments: o.maxWindow ?? 256, idleTimeoutMs: o.idleTimeoutMs ?? 30_000, fecBlock: this.fecBlock, segmentBytes: o.segmentBytes }, startAtMs, receiverWindow);
    const lastSegmentBytes = o.data.byteLength - (totalSegments - 1) * o.segmentBytes;
    this.receiver = new GbnReceiver({ totalSegments, windowSegments: receiverWindow, ackEvery: o.ackEvery ?? 2, ackDelayMs: 2, fecBlock: this.fecBlock, segmentBytes: o.segmentBytes, lastSegmentBytes });
    this.repairs = new SenderRepairs(this.fecBlock, o.segmentBytes, totalSegments);
    this.output = new Uint8Array(o.data.byteLength);
    this.dgram = new Uint8Array(DATA_AT.payload + o.segmentBytes);
    this.dview = new DataView(this.dgram.buffer);
    this.refuse = o.refuse ?? 0;
  }

  get deliveredBytes(): number {
    return Math.min(this.o.data.byteLength, this.sender.base * this.o.segmentBytes);
  }

  private readonly segment = (seq: number) => this.o.data.subarray(seq * this.o.segmentBytes, Math.min((seq + 1) * this.o.segmentBytes, this.o.data.byteLength));

  /**
   * What the sender wants to send now, in batches as the file server's shell sends them. The socket
   * refuses sends now and then (its buffer is full) and says when it has drained, as Bun's does; the
   * kernel may take only part of a batch.
   */
  transmit(now: number): void {
    const { sender, batch, kinds, indices, o } = this;
    while (now >= this.blockedUntil) {
      batch.length = 0;
      kinds.length = 0;
      indices.length = 0;
      for (let seq = sender.pollTransmit(now); seq !== undefined; seq = batch.length < 8 ? sender.pollTransmit(now) : undefined) {
        if (sender.transmitKind !== SendKind.Repair) o.onTransmit?.(sender, seq, now);
        else if (this.fecBlock === 0) throw new Error("a repair without FEC");
        batch.push(seq);
        kinds.push(sender.transmitKind);
        indices.push(sender.repairIndex);
        if ((sender.transmitKind === SendKind.First || sender.transmitKind === SendKind.Resend) && this.fecBlock > 0) {
          this.repairs.onData(seq, this.segment(seq), sender.currentBlockRepairs, this.segment);
        }
      }
      if (batch.length === 0) break;
      const taken = this.refuse > 0 && this.rng.chance(this.refuse) ? this.rng.int(batch.length) : batch.length;
      for (let i = batch.length - 1; i >= taken; i--) sender.unsend(batch[i]!);
      for (let i = 0; i < taken; i++) this.send(batch[i]!, kinds[i]!, indices[i]!, now);
      if (taken < batch.length) this.blockedUntil = now + 0.05; // "drained" a little later
    }
    for (let ack = this.receiver.pollAck(now); ack; ack = this.receiver.pollAck(now)) {
      writeAck(this.ackBuf, this.ackView, this.sessionId, ack.cumulative, ack, 0, 0);
      this.backward.send(this.ackBuf, now);
    }
    if (!this.event) {
      this.event = sender.pollEvent();
      if (this.event) this.finishedAt = now;
    }
  }

  private send(seq: number, kind: SendKind, j: number, now: number): void {
    const { dgram, dview, sender, o } = this;
    if (kind === SendKind.Repair) {
      const length = this.repairs.repair(seq, j, dgram.subarray(HEADER_BYTES));
      if (length === 0) throw new Error(`repair ${j} of block ${seq} asked for but not encoded`);
      writeHeader(dgram, dview, PacketType.Repair, j, this.sessionId, seq, sender.stamp(now));
      seal(dgram, dview, HEADER_BYTES + length);
      this.forward.send(dgram.subarray(0, HEADER_BYTES + length), now);
      return;
    }
    const start = seq * o.segmentBytes;
    const payload = o.data.subarray(start, start + dataPayloadBytes(seq, o.segmentBytes, o.data.byteLength));
    const datagram = dgram.subarray(0, DATA_AT.payload + payload.byteLength);
    datagram.set(payload, DATA_AT.payload);
    finishData(datagram, dview, sender.awaitingAck ? FLAG_ACK_NOW : 0, this.sessionId, seq, sender.stamp(now));
    this.forward.send(datagram, now);
  }

  /** The next moment this flow needs the driver (its ACK link, its timers, its socket's drain). */
  nextAt(now: number): number | undefined {
    if (this.event) return undefined;
    // While the socket is blocked, a sender ready to transmit waits for the drain, as the shell does.
    let senderAt = this.sender.pollTimeout(now);
    if (senderAt !== undefined && (this.o.timerLateMs ?? 0) > 0) {
      if (senderAt !== this.lateFor) {
        this.lateFor = senderAt;
        this.late = this.rng.next() * this.o.timerLateMs!;
      }
      senderAt += this.late;
    }
    let next = Infinity;
    for (const t of [this.backward.nextDeliveryAt(), senderAt === undefined ? undefined : Math.max(senderAt, this.blockedUntil), this.receiver.pollTimeout(), this.blockedUntil > now ? this.blockedUntil : undefined, this.readAt])
      if (t !== undefined && t < next) next = t;
    return next === Infinity ? undefined : next;
  }

  /** A datagram off the forward link for this flow: read now, or at the receiver's next read (readLateMs). */
  receive(d: Uint8Array, now: number): void {
    if (!this.o.readLateMs) return this.read(d, now);
    this.inbox.push(d.slice());
    this.readAt ??= now + this.rng.next() * this.o.readLateMs;
  }

  private read(d: Uint8Array, now: number): void {
    const { receiver, o } = this;
    try {
      const h = readHeader(d);
      if (h.type === PacketType.Repair) receiver.handleRepair(h.seq, h.flags, h.timestampUs, now, d.subarray(HEADER_BYTES));
      else if (h.type === PacketType.Data) {
        const payload = decodeData(d, h.seq, o.segmentBytes, o.data.byteLength);
        if (!payload) return;
        if (receiver.handleData(h.seq, h.timestampUs, now, (h.flags & FLAG_ACK_NOW) !== 0, this.fecBlock > 0 ? payload : undefined)) this.output.set(payload, h.seq * o.segmentBytes);
      }
      for (let bytes = receiver.pollDelivered(); bytes; bytes = receiver.pollDelivered()) this.output.set(bytes, (receiver.expected - 1) * o.segmentBytes);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.dropped.corrupt++;
    }
  }

  /** The receiver's read, if due; ACKs due off this flow's return link; then the sender's timers. */
  acks(now: number): void {
    if (this.readAt !== undefined && now >= this.readAt) {
      this.readAt = undefined;
      for (const d of this.inbox.splice(0)) this.read(d, now);
    }
    for (const d of this.backward.deliver(now)) {
      try {
        const h = readHeader(d);
        const a = decodeAck(d);
        this.sender.handleAck(h.seq, a.windowSegments, a.echoTimestampUs, a.ackDelayUs, now, a.received, (h.flags & FLAG_GAP) !== 0);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.dropped.corrupt++;
      }
    }
    this.sender.handleTimeout(now);
  }
}

const PROGRESS_EVERY_MS = 100;

/**
 * Flows over one shared forward link (the bottleneck they compete for), each with its own return
 * link, real datagrams (header, checksum, payload) and a fake clock that jumps straight to the next
 * thing that can happen. A flow starts at its `startAtMs`.
 */
function drive(forward: SimLink, flows: SimEndpoint[], maxSimMs: number): number {
  let now = 0;
  const bySession = new Map(flows.map((f) => [f.sessionId, f]));
  let nextSample = 0;
  for (let steps = 0; steps < 20_000_000; steps++) {
    for (const f of flows) if (now >= f.startAtMs) f.transmit(now);
    if (flows.every((f) => f.event)) break;
    let next = forward.nextDeliveryAt() ?? Infinity;
    for (const f of flows) {
      const t = now < f.startAtMs ? f.startAtMs : f.nextAt(now);
      if (t !== undefined && t < next) next = t;
    }
    if (next === Infinity) break;
    now = Math.max(now, next);
    if (now > maxSimMs) break;
    for (const d of forward.deliver(now)) {
      // The session id names the flow; a corrupted one reaches nobody (or, rarely, another flow, whose checks drop it).
      const id = d.byteLength >= HEADER_BYTES ? new DataView(d.buffer, d.byteOffset).getUint32(HEADER_AT.sessionId) : -1;
      const flow = bySession.get(id);
      if (flow) flow.receive(d, now);
      else if (flows[0] instanceof SimFlow) flows[0].dropped.corrupt++;
    }
    for (const f of flows) if (now >= f.startAtMs && !f.event) f.acks(now);
    while (now >= nextSample) {
      for (const f of flows) f.progress.push([nextSample, f.deliveredBytes]);
      nextSample += PROGRESS_EVERY_MS;
    }
  }
  return now;
}

/** Sender and receiver over two simulated links: thousands of runs per second. */
export function simulateTransfer(rng: Rng, o: SimOptions): SimResult {
  const forward = new SimLink(rng, o.forward);
  const backward = new SimLink(rng, o.backward);
  const flow = new SimFlow(rng, { ...o, refuse: o.forward.refuse }, 7, 0, forward, backward);
  const simMs = drive(forward, [flow], o.maxSimMs ?? 3_600_000);
  return { output: flow.output, event: flow.event, simMs, sender: flow.sender, receiver: flow.receiver, dropped: flow.dropped, forward, backward };
}

export interface FlowSpec extends FlowOptions {
  startAtMs?: number;
}

/** A TCP download (Linux BBR v1's model) of `bytes` beside the ftx flows. */
export interface TcpBbrSpec {
  tcpBbr: true;
  bytes: number;
  startAtMs?: number;
}

export interface FlowResult {
  output: Uint8Array;
  event: SenderEvent | undefined;
  startAtMs: number;
  finishedAt: number | undefined;
  sender: GbnSender;
  /** Payload bytes delivered in order, every 100 ms of simulated time: [ms, bytes]. */
  progress: Array<[number, number]>;
}

export interface TcpFlowResult {
  tcp: SimTcpBbrFlow;
  event: { type: "completed" } | undefined;
  startAtMs: number;
  finishedAt: number | undefined;
  /** Payload bytes delivered, every 100 ms of simulated time: [ms, bytes]. */
  progress: Array<[number, number]>;
}

/**
 * Several flows sharing one bottleneck (`forward`); each has its own return link (`backward`). A
 * spec with `tcpBbr` is a TCP download beside them; results come in the specs' order.
 */
export function simulateFlows<S extends FlowSpec | TcpBbrSpec>(
  rng: Rng,
  forward: LinkProfile,
  backward: LinkProfile,
  specs: S[],
  maxSimMs = 3_600_000,
): { flows: Array<S extends TcpBbrSpec ? TcpFlowResult : FlowResult>; simMs: number; forward: SimLink } {
  const link = new SimLink(rng, forward);
  const flows = specs.map((s, i): SimFlow | SimTcpBbrFlow =>
    "tcpBbr" in s ? new SimTcpBbrFlow(100 + i, s.startAtMs ?? 0, s.bytes, link, new SimLink(rng, backward)) : new SimFlow(rng, s, 100 + i, s.startAtMs ?? 0, link, new SimLink(rng, backward)),
  );
  const simMs = drive(link, flows, maxSimMs);
  const results = flows.map((f): FlowResult | TcpFlowResult =>
    f instanceof SimFlow
      ? { output: f.output, event: f.event, startAtMs: f.startAtMs, finishedAt: f.finishedAt, sender: f.sender, progress: f.progress }
      : { tcp: f, event: f.event, startAtMs: f.startAtMs, finishedAt: f.finishedAt, progress: f.progress },
  );
  return { flows: results as Array<S extends TcpBbrSpec ? TcpFlowResult : FlowResult>, simMs, forward: link };
}
