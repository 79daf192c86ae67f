import { ProtocolError } from "../../src/errors.ts";
import { GbnReceiver } from "../../src/transfer/gbn-receiver.ts";
import { SenderRepairs } from "../../src/transfer/fec/sender-repairs.ts";
import { GbnSender, SendKind, type SenderEvent } from "../../src/transfer/gbn-sender.ts";
import {
  ACK_BYTES,
  DATA_AT,
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
} from "../../src/transfer/wire.ts";
import type { Rng } from "./random.ts";
import { SimLink, type LinkProfile } from "./sim-link.ts";

export interface SimOptions {
  data: Uint8Array;
  segmentBytes: number;
  forward: LinkProfile;
  backward: LinkProfile;
  receiverWindow?: number;
  ackEvery?: number;
  maxWindow?: number;
  idleTimeoutMs?: number;
  /** Data segments per FEC block (0 or absent: no repair). */
  fecBlock?: number;
  /** Give up (fail the test) past this much simulated time. */
  maxSimMs?: number;
  onTransmit?: (sender: GbnSender, seq: number, now: number) => void;
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

/**
 * Sender and receiver over two simulated links, with real datagrams (header, checksum, payload) and a
 * fake clock that jumps straight to the next thing that can happen: thousands of runs per second.
 */
export function simulateTransfer(rng: Rng, o: SimOptions): SimResult {
  const totalSegments = segmentCount(o.data.byteLength, o.segmentBytes);
  const forward = new SimLink(rng, o.forward);
  const backward = new SimLink(rng, o.backward);
  const receiverWindow = o.receiverWindow ?? 64;
  const fecBlock = o.fecBlock ?? 0;
  const sender = new GbnSender({ totalSegments, maxWindowSegments: o.maxWindow ?? 256, idleTimeoutMs: o.idleTimeoutMs ?? 30_000, fecBlock }, 0, receiverWindow);
  const lastSegmentBytes = o.data.byteLength - (totalSegments - 1) * o.segmentBytes;
  const receiver = new GbnReceiver({ totalSegments, windowSegments: receiverWindow, ackEvery: o.ackEvery ?? 2, ackDelayMs: 2, fecBlock, segmentBytes: o.segmentBytes, lastSegmentBytes });
  const repairs = new SenderRepairs(fecBlock, o.segmentBytes, totalSegments);
  const output = new Uint8Array(o.data.byteLength);
  const dgram = new Uint8Array(DATA_AT.payload + o.segmentBytes);
  const dview = new DataView(dgram.buffer);
  const ackBuf = new Uint8Array(ACK_BYTES);
  const ackView = new DataView(ackBuf.buffer);
  const dropped = { corrupt: 0 };
  const maxSimMs = o.maxSimMs ?? 3_600_000;
  let now = 0;
  let event: SenderEvent | undefined;

  // The socket refuses sends now and then (its buffer is full) and says when it has drained, as
  // Bun's does; a batching shell polls several segments, and the kernel may take only some of them.
  const refuse = o.forward.refuse ?? 0;
  let blockedUntil = 0;
  const batch: number[] = [];
  const kinds: SendKind[] = [];
  const segment = (seq: number) => o.data.subarray(seq * o.segmentBytes, Math.min((seq + 1) * o.segmentBytes, o.data.byteLength));
  const indices: number[] = [];

  for (let steps = 0; steps < 10_000_000; steps++) {
    while (now >= blockedUntil) {
      batch.length = 0;
      kinds.length = 0;
      indices.length = 0;
      for (let seq = sender.pollTransmit(now); seq !== undefined; seq = batch.length < 8 ? sender.pollTransmit(now) : undefined) {
        if (sender.transmitKind !== SendKind.Repair) o.onTransmit?.(sender, seq, now);
        else if (fecBlock === 0) throw new Error("a repair without FEC");
        batch.push(seq);
        kinds.push(sender.transmitKind);
        indices.push(sender.repairIndex);
        if ((sender.transmitKind === SendKind.First || sender.transmitKind === SendKind.Resend) && fecBlock > 0) {
          repairs.onData(seq, segment(seq), sender.currentBlockRepairs, segment);
        }
      }
      if (batch.length === 0) break;
      const taken = refuse > 0 && rng.chance(refuse) ? rng.int(batch.length) : batch.length;
      for (let i = batch.length - 1; i >= taken; i--) sender.unsend(batch[i]!);
      for (let i = 0; i < taken; i++) {
        const seq = batch[i]!;
        if (kinds[i] === SendKind.Repair) {
          const length = repairs.repair(seq, indices[i]!, dgram.subarray(HEADER_BYTES));
          if (length === 0) throw new Error(`repair ${indices[i]} of block ${seq} asked for but not encoded`);
          writeHeader(dgram, dview, PacketType.Repair, indices[i]!, 7, seq, sender.stamp(now));
          seal(dgram, dview, HEADER_BYTES + length);
          forward.send(dgram.subarray(0, HEADER_BYTES + length), now);
          continue;
        }
        const start = seq * o.segmentBytes;
        const payload = o.data.subarray(start, start + dataPayloadBytes(seq, o.segmentBytes, o.data.byteLength));
        const datagram = dgram.subarray(0, DATA_AT.payload + payload.byteLength);
        datagram.set(payload, DATA_AT.payload);
        finishData(datagram, dview, sender.awaitingAck ? FLAG_ACK_NOW : 0, 7, seq, sender.stamp(now));
        forward.send(datagram, now);
      }
      if (taken < batch.length) blockedUntil = now + 0.05; // "drained" a little later
    }
    for (let ack = receiver.pollAck(now); ack; ack = receiver.pollAck(now)) {
      writeAck(ackBuf, ackView, 7, ack.cumulative, ack, 0, 0);
      backward.send(ackBuf, now);
    }
    event = sender.pollEvent();
    if (event) break;
    // While the socket is blocked, a sender ready to transmit waits for the drain, as the shell does.
    const senderAt = sender.pollTimeout(now);
    const candidates = [forward.nextDeliveryAt(), backward.nextDeliveryAt(), senderAt === undefined ? undefined : Math.max(senderAt, blockedUntil), receiver.pollTimeout(), blockedUntil > now ? blockedUntil : undefined].filter(
      (t): t is number => t !== undefined,
    );
    if (candidates.length === 0) break;
    now = Math.max(now, Math.min(...candidates));
    if (now > maxSimMs) break;
    for (const d of forward.deliver(now)) {
      try {
        const h = readHeader(d);
        if (h.type === PacketType.Repair) receiver.handleRepair(h.seq, h.flags, h.timestampUs, now, d.subarray(HEADER_BYTES));
        else if (h.type === PacketType.Data) {
          const payload = decodeData(d, h.seq, o.segmentBytes, o.data.byteLength);
          if (!payload) continue;
          if (receiver.handleData(h.seq, h.timestampUs, now, (h.flags & FLAG_ACK_NOW) !== 0, fecBlock > 0 ? payload : undefined)) output.set(payload, h.seq * o.segmentBytes);
        }
        for (let bytes = receiver.pollDelivered(); bytes; bytes = receiver.pollDelivered()) output.set(bytes, (receiver.expected - 1) * o.segmentBytes);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        dropped.corrupt++;
      }
    }
    for (const d of backward.deliver(now)) {
      try {
        const h = readHeader(d);
        const a = decodeAck(d);
        sender.handleAck(h.seq, a.windowSegments, a.echoTimestampUs, a.ackDelayUs, now, a.received, (h.flags & FLAG_GAP) !== 0);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        dropped.corrupt++;
      }
    }
    sender.handleTimeout(now);
  }
  return { output, event, simMs: now, sender, receiver, dropped, forward, backward };
}
