import { BlockEncoder } from "./block-code.ts";

/**
 * The sender's side of forward error correction for one session: DATA segments go in as they are
 * prepared for their first send, REPAIR payloads come out for whole blocks. Two encoders alternate by
 * block, because the shell may prepare the next block's first segment in the same batch as the last
 * repairs of the previous one. A segment prepared again after the socket refused it is not added twice.
 */
export class SenderRepairs {
  /** Per slot: the encoder, its block, which segments it has, and how many from the block's start it has without a gap. */
  private readonly encoders: Array<{ encoder: BlockEncoder | undefined; start: number; added: Uint8Array; prefix: number }>;

  constructor(
    /** Data segments per block. */
    readonly fecBlock: number,
    private readonly segmentBytes: number,
    private readonly totalSegments: number,
  ) {
    this.encoders = [0, 1].map(() => ({ encoder: undefined, start: -1, added: new Uint8Array(fecBlock), prefix: 0 }));
  }

  /**
   * DATA segment `seq` is leaving (first send or resend); its block gets `repairs` repairs (0: none,
   * nothing to do). A block whose encoding starts part-way (a go-back resumed in its middle) has its
   * earlier segments read through `read` (seq, a buffer) → their bytes.
   */
  onData(seq: number, payload: Uint8Array, repairs: number, read: (seq: number, into: Uint8Array) => Uint8Array): void {
    if (repairs <= 0) return;
    const k = this.fecBlock;
    const start = seq - (seq % k);
    const slot = this.encoders[(start / k) & 1]!;
    if (slot.start !== start || slot.encoder!.m !== repairs) {
      const blockK = Math.min(k, this.totalSegments - start);
      if (slot.encoder) slot.encoder.reset(blockK, repairs);
      else slot.encoder = new BlockEncoder(blockK, repairs, this.segmentBytes);
      slot.start = start;
      slot.added.fill(0);
      slot.prefix = 0;
    }
    // Segments of the block before this one that the encoder has not had (the block's encoding began
    // part-way, or a later go-back skipped what the receiver had acknowledged) are read back.
    const index = seq - start;
    if (slot.prefix < index) {
      this.scratch ??= new Uint8Array(this.segmentBytes);
      for (let earlier = slot.prefix; earlier < index; earlier++) if (!slot.added[earlier]) this.add(slot, earlier, read(start + earlier, this.scratch));
    }
    this.add(slot, index, payload);
    while (slot.prefix < slot.added.length && slot.added[slot.prefix]) slot.prefix++;
  }

  private scratch: Uint8Array | undefined;

  private add(slot: { encoder: BlockEncoder | undefined; added: Uint8Array }, index: number, payload: Uint8Array): void {
    if (slot.added[index]) return;
    slot.added[index] = 1;
    slot.encoder!.addData(index, payload);
  }

  /** Writes repair `j` of the block starting at `blockStart` into `out`; returns its length (0: no such block here). */
  repair(blockStart: number, j: number, out: Uint8Array): number {
    const slot = this.encoders[(blockStart / this.fecBlock) & 1]!;
    if (slot.start !== blockStart || !slot.encoder?.complete || j >= slot.encoder.m) return 0;
    return slot.encoder.repair(j, out);
  }
}
