import { BlockDecoder } from "./fec/block-code.ts";
import { MAX_REPAIRS_PER_BLOCK } from "./fec/fec-policy.ts";

/**
 * The Go-Back-N receiver, sans-IO. It accepts only the next expected segment (the shell writes that
 * payload), acknowledges cumulatively, and answers anything else with a duplicate ACK at once so the
 * sender can fast-retransmit. In-order data is acknowledged every `ackEvery` segments or after
 * `ackDelayMs`, whichever comes first.
 *
 * With forward error correction (`fecBlock` > 0), segments are grouped in blocks of that many, and the
 * sender follows a block with REPAIR datagrams when the path loses. A segment lost inside the block
 * of the next expected segment is then not a gap yet: what arrives after it in the same block is held
 * (copied), and once enough repairs have come the lost one is rebuilt and the run is delivered in
 * order (`pollDelivered`). Only when the block cannot be rebuilt (data of a later block arrives) does
 * the receiver answer with the duplicate ACK that makes the sender go back.
 */
export interface ReceiverConfig {
  totalSegments: number;
  windowSegments: number;
  ackEvery: number;
  ackDelayMs: number;
  /** FEC: data segments per block (0: none), the segment size, and the last segment's (the range's end). */
  fecBlock?: number;
  segmentBytes?: number;
  lastSegmentBytes?: number;
}

export interface AckToSend {
  cumulative: number;
  windowSegments: number;
  echoTimestampUs: number;
  ackDelayUs: number;
  /** DATA and REPAIR datagrams received so far (the sender's loss and delivery-rate signal). */
  received: number;
  /** A segment beyond a gap arrived since the last ACK: this one counts as a duplicate toward a go-back. */
  gap: boolean;
}

/** The block being reassembled: copies of its segments and repairs, and a decoder over them. */
class BlockBuffer {
  readonly decoder: BlockDecoder;
  private readonly data: Uint8Array;
  private readonly repairs: Uint8Array;
  /** Which segments of the block are here (held, delivered or rebuilt). */
  readonly have: Uint8Array;
  start = -1;
  k = 0;

  constructor(
    readonly capacity: number,
    private readonly segmentBytes: number,
  ) {
    this.decoder = new BlockDecoder(capacity, MAX_REPAIRS_PER_BLOCK, segmentBytes);
    this.data = new Uint8Array(capacity * segmentBytes);
    this.repairs = new Uint8Array(MAX_REPAIRS_PER_BLOCK * segmentBytes);
    this.have = new Uint8Array(capacity);
  }

  reset(start: number, k: number, lastBytes: number): void {
    this.start = start;
    this.k = k;
    this.have.fill(0);
    this.decoder.reset(k, MAX_REPAIRS_PER_BLOCK, lastBytes);
  }

  slot(index: number, length: number): Uint8Array {
    return this.data.subarray(index * this.segmentBytes, index * this.segmentBytes + length);
  }

  addData(index: number, payload: Uint8Array): void {
    if (this.have[index]) return;
    const slot = this.slot(index, payload.byteLength);
    slot.set(payload);
    this.have[index] = 1;
    this.decoder.addData(index, slot);
  }

  addRepair(j: number, payload: Uint8Array): void {
    const slot = this.repairs.subarray(j * this.segmentBytes, j * this.segmentBytes + payload.byteLength);
    slot.set(payload);
    this.decoder.addRepair(j, slot);
  }

  /** Rebuild what is missing if the repairs allow; true when something was rebuilt. */
  recover(): boolean {
    if (this.decoder.missingCount === 0 || !this.decoder.canRecover()) return false;
    const rebuilt = this.decoder.recover();
    if (!rebuilt) return false;
    for (const r of rebuilt) {
      this.slot(r.index, r.bytes.byteLength).set(r.bytes);
      this.have[r.index] = 1;
    }
    return rebuilt.length > 0;
  }
}

export class GbnReceiver {
  /** Next segment expected; everything below it has been delivered. */
  expected = 0;
  windowSegments: number;
  private sinceAck = 0;
  private ackNow = false;
  private ackDeadline: number | undefined;
  private echoTimestampUs = 0;
  private echoArrivedAt: number | undefined; // undefined until data arrives: an ACK before that has no delay
  private readonly ack: AckToSend = { cumulative: 0, windowSegments: 0, echoTimestampUs: 0, ackDelayUs: 0, received: 0, gap: false };
  readonly counters = { delivered: 0, duplicates: 0, outOfOrder: 0, acksSent: 0, held: 0, repairs: 0, rebuilt: 0 };
  /** DATA and REPAIR datagrams that arrived (duplicates included: they crossed the path too). */
  private received = 0;
  private gap = false;
  private readonly fecBlock: number;
  private block: BlockBuffer | undefined;
  /** The newest block a REPAIR came for. */
  private lastRepairBlock = -Infinity;
  /** Segments held or rebuilt that are next in order: `pollDelivered` hands them out. */
  private deliverable = 0;

  constructor(private readonly config: ReceiverConfig) {
    this.windowSegments = config.windowSegments;
    this.fecBlock = config.fecBlock ?? 0;
  }

  /** The block that holds `seq`, set up for reassembly (allocated on first use). */
  private blockFor(seq: number): BlockBuffer {
    const k = this.fecBlock;
    const segmentBytes = this.config.segmentBytes ?? 0;
    this.block ??= new BlockBuffer(k, segmentBytes);
    const start = seq - (seq % k);
    if (this.block.start !== start) {
      const blockK = Math.min(k, this.config.totalSegments - start);
      const lastBytes = start + blockK === this.config.totalSegments ? (this.config.lastSegmentBytes ?? segmentBytes) : segmentBytes;
      this.block.reset(start, blockK, lastBytes);
    }
    return this.block;
  }

  /** Repairs came for this block or one of the two before it: the server is protecting the stream. */
  private repairsFlowing(seq: number): boolean {
    return Math.floor(seq / this.fecBlock) - this.lastRepairBlock <= 2;
  }

  /** In the block of the next expected segment (the only one reassembled). */
  private inCurrentBlock(seq: number): boolean {
    const k = this.fecBlock;
    return k > 0 && Math.floor(seq / k) === Math.floor(this.expected / k);
  }

  get complete(): boolean {
    return this.expected >= this.config.totalSegments;
  }

  /**
   * Returns true when this segment is the next in order: the shell must deliver its payload now.
   * `ackNow`: the sender is waiting for this ACK (FLAG_ACK_NOW), so it goes out at once. `datagram`
   * (with FEC only): the payload is its bytes from `payloadAt` on, for the block's decoder.
   */
  handleData(seq: number, timestampUs: number, now: number, ackNow = false, datagram?: Uint8Array, payloadAt = 0): boolean {
    // The payload is `datagram` from `payloadAt` on; a view of it is made only if the block needs it.
    const payload = datagram === undefined ? undefined : payloadAt === 0 ? datagram : undefined;
    this.echoTimestampUs = timestampUs;
    this.echoArrivedAt = now;
    this.received++;
    if (seq === this.expected && !this.complete && this.deliverable === 0) {
      // A copy for the block's decoder, in case a later segment of the block is lost: while repairs
      // are coming (the server sends them only where the path loses), or once the block holds
      // something. On a clean path that copy was a memcpy of every byte for nothing.
      const block = datagram && this.inCurrentBlock(seq) && (this.repairsFlowing(seq) || this.block?.start === seq - (seq % this.fecBlock)) ? this.blockFor(seq) : undefined;
      block?.addData(seq % this.fecBlock, payload ?? datagram!.subarray(payloadAt));
      this.advance(1, ackNow, now);
      // Segments held behind this one (it came late, not lost) follow it.
      if (block && this.inCurrentBlock(this.expected)) this.rebuild(block, now);
      return true;
    }
    if (datagram && seq > this.expected && seq < this.config.totalSegments && this.inCurrentBlock(seq) && seq >= this.fecBlock) {
      // A gap inside the block: hold this one and wait for the block's repairs before crying loss.
      // Not in the first block: it never has repairs (the sender's loss estimate starts at 0), and
      // it is the whole first flight, so nothing of the next block comes to end the wait either: a
      // loss there waited for the retransmission timer, in half of all fetches at 1 % loss.
      this.counters.held++;
      // The sender asked for this ACK (its window is out): it says how much arrived, which is how a
      // sender whose block gets no repairs learns of the loss without a duplicate.
      if (ackNow) this.ackNow = true;
      const block = this.blockFor(seq);
      block.addData(seq % this.fecBlock, payload ?? datagram.subarray(payloadAt));
      this.rebuild(block, now);
      return false;
    }
    if (seq < this.expected) {
      // A resent copy of what is here already (a go-back resends from the block's start, or our ACK was
      // lost): say where we are soon, but not at once, or every resend would draw a duplicate ACK and
      // the sender would read a burst of them as a new loss.
      this.counters.duplicates++;
      if (this.ackDeadline === undefined) this.ackDeadline = now + this.config.ackDelayMs;
      return false;
    }
    this.counters.outOfOrder++;
    this.gap = true;
    this.ackNow = true; // duplicate ACK: tells the sender where we are
    return false;
  }

  /** REPAIR `j` of the block starting at `blockStart`; only the block being reassembled uses it. */
  handleRepair(blockStart: number, j: number, timestampUs: number, now: number, payload: Uint8Array): void {
    this.received++;
    this.counters.repairs++;
    if (this.fecBlock > 0) this.lastRepairBlock = Math.max(this.lastRepairBlock, Math.floor(blockStart / this.fecBlock));
    if (j >= MAX_REPAIRS_PER_BLOCK || this.complete || !this.inCurrentBlock(blockStart) || blockStart % this.fecBlock !== 0) return;
    this.echoTimestampUs = timestampUs;
    this.echoArrivedAt = now;
    const block = this.blockFor(blockStart);
    block.addRepair(j, payload);
    this.rebuild(block, now);
  }

  /** Rebuild what the block lacks if it can; then whatever follows `expected` in order is deliverable. */
  private rebuild(block: BlockBuffer, now: number): void {
    if (block.recover()) this.counters.rebuilt++;
    let run = 0;
    const base = this.expected + this.deliverable - block.start;
    while (base + run < block.k && block.have[base + run]) run++;
    if (run > 0) this.advance(run, false, now, true);
  }

  private advance(count: number, ackNow: boolean, now: number, held = false): void {
    if (held) this.deliverable += count;
    else this.expected += count;
    this.counters.delivered += count;
    this.sinceAck += count;
    if (ackNow || this.sinceAck >= this.config.ackEvery || this.expected + this.deliverable >= this.config.totalSegments) this.ackNow = true;
    else if (this.ackDeadline === undefined) this.ackDeadline = now + this.config.ackDelayMs;
  }

  /**
   * The next held or rebuilt segment now in order, or undefined: the shell delivers its payload (a view
   * valid until the next call into the receiver). Call until undefined after each datagram.
   */
  pollDelivered(): Uint8Array | undefined {
    if (this.deliverable === 0 || !this.block) return undefined;
    const seq = this.expected;
    const index = seq - this.block.start;
    const last = seq === this.config.totalSegments - 1;
    const length = last ? (this.config.lastSegmentBytes ?? this.config.segmentBytes ?? 0) : (this.config.segmentBytes ?? 0);
    this.expected++;
    this.deliverable--;
    return this.block.slot(index, length);
  }

  /**
   * Echo this timestamp in the next ACK although no data carried it: the first ACK answers the
   * ACCEPT, and must give the sender a true RTT sample, not an echo of nothing.
   */
  noteEcho(timestampUs: number, now: number): void {
    this.echoTimestampUs = timestampUs;
    this.echoArrivedAt = now;
  }

  /** Ask for an ACK to be sent at the next poll (e.g. a retransmitted ACCEPT, a window update). */
  requestAck(): void {
    this.ackNow = true;
  }

  /** An ACK to send now, or undefined. The returned object is reused: copy what you keep. */
  pollAck(now: number): AckToSend | undefined {
    if (!this.ackNow && (this.ackDeadline === undefined || now < this.ackDeadline)) return undefined;
    this.ackNow = false;
    this.ackDeadline = undefined;
    this.sinceAck = 0;
    this.counters.acksSent++;
    this.ack.cumulative = this.expected + this.deliverable;
    this.ack.received = this.received;
    this.ack.gap = this.gap;
    this.gap = false;
    this.ack.windowSegments = this.windowSegments;
    this.ack.echoTimestampUs = this.echoTimestampUs;
    this.ack.ackDelayUs = this.echoArrivedAt === undefined ? 0 : Math.max(0, Math.round((now - this.echoArrivedAt) * 1000));
    return this.ack;
  }

  pollTimeout(): number | undefined {
    return this.ackNow ? 0 : this.ackDeadline;
  }
}
