/**
 * A systematic MDS erasure code over one block of k data segments with m repair segments: any k of the
 * k + m segments rebuild the block. Repair j is Σ_i c(j, i) · data_i over GF(2^8) (gf256.ts), each data
 * segment zero-padded to the block's longest. The coefficients are a Cauchy matrix (RFC 6865 uses a
 * Vandermonde one; Cauchy needs no systematisation step) with each column scaled so that row 0 is all
 * ones: repair 0 is the plain XOR of the block, and a code with m = 1 is exactly XOR parity.
 *
 *   c(j, i) = (X_0 ⊕ i) / (X_j ⊕ i),  X_j = 255 − j,  0 ≤ i < MAX_BLOCK_DATA, 0 ≤ j < MAX_BLOCK_REPAIR
 *
 * Every square submatrix of a Cauchy matrix is invertible, and scaling columns by non-zero factors keeps
 * it so: that is the MDS property. The coefficients depend on (j, i) only, never on k or m, so a block
 * of k segments with m repairs uses the top-left m × k corner, and a shorter last block needs nothing
 * special.
 *
 * Sender: `BlockEncoder` accumulates the m repairs as data segments are added (the sender sends data
 * first), so `repair(j)` is a copy. Receiver: `BlockDecoder` keeps references to what arrived and does
 * work only when a segment is missing: syndromes for e missing segments from e received repairs, then
 * an e × e inverse by Gauss–Jordan elimination. The row arithmetic is row-workspace.ts's (WebAssembly
 * SIMD where available, else JavaScript tables).
 */
import { ProtocolError } from "../../../errors.ts";
import { GF_MUL_TABLE, gfDiv, gfInv } from "./gf256.ts";
import { createRowWorkspace, type RowWorkspace } from "./row-workspace.ts";

/** X_j = 255 − j must stay clear of the data points 0 … MAX_BLOCK_DATA − 1: 128 + 32 ≤ 256. */
export const MAX_BLOCK_DATA = 128;
export const MAX_BLOCK_REPAIR = 32;
/** A segment is at most one UDP payload. */
export const MAX_SEGMENT_BYTES = 65535;

/** COEFFICIENTS[j * MAX_BLOCK_DATA + i] = c(j, i). */
const COEFFICIENTS = new Uint8Array(MAX_BLOCK_REPAIR * MAX_BLOCK_DATA);
for (let j = 0; j < MAX_BLOCK_REPAIR; j++) {
  for (let i = 0; i < MAX_BLOCK_DATA; i++) COEFFICIENTS[j * MAX_BLOCK_DATA + i] = gfDiv(255 ^ i, (255 - j) ^ i);
}

/** The coefficient of data segment `index` in repair segment `j`. */
export function repairCoefficient(j: number, index: number): number {
  if (!(j >= 0 && j < MAX_BLOCK_REPAIR && index >= 0 && index < MAX_BLOCK_DATA)) throw new RangeError(`no coefficient (${j}, ${index})`);
  return COEFFICIENTS[j * MAX_BLOCK_DATA + index]!;
}

function checkShape(k: number, m: number, segmentBytes: number): void {
  if (!Number.isInteger(k) || k < 1 || k > MAX_BLOCK_DATA) throw new RangeError(`k must be 1…${MAX_BLOCK_DATA}, not ${k}`);
  if (!Number.isInteger(m) || m < 1 || m > MAX_BLOCK_REPAIR) throw new RangeError(`m must be 1…${MAX_BLOCK_REPAIR}, not ${m}`);
  if (!Number.isInteger(segmentBytes) || segmentBytes < 1 || segmentBytes > MAX_SEGMENT_BYTES) throw new RangeError(`segment size ${segmentBytes} out of range`);
}

export interface BlockCodeOptions {
  /** Row arithmetic: WebAssembly SIMD where the runtime has it (the default), or plain JavaScript. */
  kernel?: "simd" | "js";
}

/**
 * Repair segments of one block at a time. Allocates only in the constructor (and in `reset` when m
 * grows past every m seen before). Misuse (an index out of range, a segment added twice, repair before
 * the block is complete) is a bug in the sender and throws RangeError.
 */
export class BlockEncoder {
  private kNow: number;
  private mNow: number;
  private parity: RowWorkspace;
  private readonly added: Uint8Array;
  private addedCount = 0;
  /** Length of the longest data segment so far: the repairs' length. */
  private repairBytes = 0;

  constructor(
    k: number,
    m: number,
    readonly segmentBytes: number,
    private readonly options: BlockCodeOptions = {},
  ) {
    checkShape(k, m, segmentBytes);
    this.kNow = k;
    this.mNow = m;
    this.parity = createRowWorkspace(m, segmentBytes, options.kernel);
    this.added = new Uint8Array(MAX_BLOCK_DATA);
  }

  get k(): number {
    return this.kNow;
  }
  get m(): number {
    return this.mNow;
  }
  /** True once all k data segments are in: the repairs can be read. */
  get complete(): boolean {
    return this.addedCount === this.kNow;
  }

  /** Start the next block, optionally with another shape (the last block of a file is shorter). */
  reset(k = this.kNow, m = this.mNow): void {
    checkShape(k, m, this.segmentBytes);
    if (m > this.parity.rowCount) this.parity = createRowWorkspace(m, this.segmentBytes, this.options.kernel);
    this.kNow = k;
    this.mNow = m;
    this.added.fill(0);
    this.addedCount = 0;
    this.repairBytes = 0;
  }

  /** Data segment `index` (0-based within the block) of up to segmentBytes bytes, in any order. */
  addData(index: number, bytes: Uint8Array): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.kNow) throw new RangeError(`data index ${index} outside the block of ${this.kNow}`);
    if (this.added[index]) throw new RangeError(`data segment ${index} added twice`);
    const length = bytes.byteLength;
    if (length > this.segmentBytes) throw new RangeError(`segment of ${length} bytes exceeds ${this.segmentBytes}`);
    const first = this.addedCount === 0;
    if (first) this.repairBytes = length;
    else if (length > this.repairBytes) {
      // a longer segment after a shorter one: the repairs' padding so far must read as zeros
      for (let j = 0; j < this.mNow; j++) this.parity.row(j).fill(0, this.repairBytes, length);
      this.repairBytes = length;
    }
    this.parity.load(bytes);
    for (let j = 0; j < this.mNow; j++) {
      if (first) this.parity.row(j).fill(0, 0, length);
      this.parity.mulAddInput(j, COEFFICIENTS[j * MAX_BLOCK_DATA + index]!, length);
    }
    this.added[index] = 1;
    this.addedCount++;
  }

  /** Copies repair segment j into `out` and returns its length (the block's longest data segment). */
  repair(j: number, out: Uint8Array): number {
    if (!Number.isInteger(j) || j < 0 || j >= this.mNow) throw new RangeError(`repair index ${j} outside 0…${this.mNow - 1}`);
    if (!this.complete) throw new RangeError(`repair asked after ${this.addedCount} of ${this.kNow} data segments`);
    if (out.byteLength < this.repairBytes) throw new RangeError(`output of ${out.byteLength} bytes cannot hold ${this.repairBytes}`);
    out.set(this.parity.row(j).subarray(0, this.repairBytes));
    return this.repairBytes;
  }
}

export interface RecoveredSegment {
  index: number;
  /** A view into the decoder's memory, valid until its next `reset`. */
  bytes: Uint8Array;
}

/**
 * Rebuilds the missing data segments of one block. It keeps a reference to every segment passed in (no
 * copy on the clean path): the caller must not reuse or change those bytes until `reset`. Every data
 * segment is `segmentBytes` long except the block's last, `lastSegmentBytes` (the receiver knows both
 * from the file's size); repairs are as long as the longest. Anything else is the peer's fault and
 * throws ProtocolError; a duplicate is ignored.
 */
export class BlockDecoder {
  private kNow: number;
  private mNow: number;
  private lastBytes: number;
  private readonly data: Array<Uint8Array | undefined> = new Array(MAX_BLOCK_DATA).fill(undefined);
  private readonly repairs: Array<Uint8Array | undefined> = new Array(MAX_BLOCK_REPAIR).fill(undefined);
  private dataCount = 0;
  private repairCount = 0;
  /** Syndromes, then (rescaled in place) the recovered segments: one row per missing segment. */
  private work: RowWorkspace;
  private readonly matrix = new Uint8Array(MAX_BLOCK_REPAIR * MAX_BLOCK_REPAIR);
  private readonly inverse = new Uint8Array(MAX_BLOCK_REPAIR * MAX_BLOCK_REPAIR);
  private readonly missing = new Uint8Array(MAX_BLOCK_REPAIR);
  private readonly chosen = new Uint8Array(MAX_BLOCK_REPAIR);

  constructor(
    k: number,
    m: number,
    readonly segmentBytes: number,
    lastSegmentBytes = segmentBytes,
    private readonly options: BlockCodeOptions = {},
  ) {
    checkShape(k, m, segmentBytes);
    this.kNow = k;
    this.mNow = m;
    this.lastBytes = BlockDecoder.checkLast(lastSegmentBytes, segmentBytes);
    this.work = createRowWorkspace(2 * m, segmentBytes, options.kernel);
  }

  private static checkLast(lastSegmentBytes: number, segmentBytes: number): number {
    if (!Number.isInteger(lastSegmentBytes) || lastSegmentBytes < 1 || lastSegmentBytes > segmentBytes) {
      throw new RangeError(`last segment of ${lastSegmentBytes} bytes with segments of ${segmentBytes}`);
    }
    return lastSegmentBytes;
  }

  get k(): number {
    return this.kNow;
  }
  get m(): number {
    return this.mNow;
  }
  get missingCount(): number {
    return this.kNow - this.dataCount;
  }
  get repairsReceived(): number {
    return this.repairCount;
  }

  /** Start the next block (and forget every reference to the previous one). */
  reset(k = this.kNow, m = this.mNow, lastSegmentBytes = this.segmentBytes): void {
    checkShape(k, m, this.segmentBytes);
    this.lastBytes = BlockDecoder.checkLast(lastSegmentBytes, this.segmentBytes);
    if (2 * m > this.work.rowCount) this.work = createRowWorkspace(2 * m, this.segmentBytes, this.options.kernel);
    this.data.fill(undefined);
    this.repairs.fill(undefined);
    this.kNow = k;
    this.mNow = m;
    this.dataCount = 0;
    this.repairCount = 0;
  }

  /** Length of data segment `index` in this block. */
  dataBytes(index: number): number {
    return index === this.kNow - 1 ? this.lastBytes : this.segmentBytes;
  }

  /** Length of every repair segment of this block. */
  get repairBytes(): number {
    return this.kNow === 1 ? this.lastBytes : this.segmentBytes;
  }

  hasData(index: number): boolean {
    return this.data[index] !== undefined;
  }

  /** Returns false for a duplicate. */
  addData(index: number, bytes: Uint8Array): boolean {
    if (!Number.isInteger(index) || index < 0 || index >= this.kNow) throw new ProtocolError(`FEC data index ${index} outside the block of ${this.kNow}`);
    if (bytes.byteLength !== this.dataBytes(index)) throw new ProtocolError(`FEC data segment ${index} has ${bytes.byteLength} bytes, not ${this.dataBytes(index)}`);
    if (this.data[index] !== undefined) return false;
    this.data[index] = bytes;
    this.dataCount++;
    return true;
  }

  /** Returns false for a duplicate. */
  addRepair(j: number, bytes: Uint8Array): boolean {
    if (!Number.isInteger(j) || j < 0 || j >= this.mNow) throw new ProtocolError(`FEC repair index ${j} outside 0…${this.mNow - 1}`);
    if (bytes.byteLength !== this.repairBytes) throw new ProtocolError(`FEC repair segment has ${bytes.byteLength} bytes, not ${this.repairBytes}`);
    if (this.repairs[j] !== undefined) return false;
    this.repairs[j] = bytes;
    this.repairCount++;
    return true;
  }

  /** True when nothing is missing or at least as many repairs arrived as data segments are missing. */
  canRecover(): boolean {
    return this.repairCount >= this.kNow - this.dataCount;
  }

  /**
   * The missing data segments, rebuilt (in index order; empty when none is missing), or undefined when
   * too few repairs arrived. Recovered segments count as received afterwards.
   */
  recover(): RecoveredSegment[] | undefined {
    const e = this.kNow - this.dataCount;
    if (e === 0) return [];
    if (this.repairCount < e) return undefined;
    const k = this.kNow;
    let n = 0;
    for (let i = 0; i < k && n < e; i++) if (this.data[i] === undefined) this.missing[n++] = i;
    // Choose e repairs, lowest j first: with one segment missing and repair 0 present, that is XOR.
    n = 0;
    for (let j = 0; j < this.mNow && n < e; j++) if (this.repairs[j] !== undefined) this.chosen[n++] = j;

    // Syndromes: s_a = repair_{chosen a} ⊕ Σ_{received i} c(chosen a, i) · data_i = Σ_b c(chosen a, missing b) · data_{missing b}
    const length = this.repairBytes;
    const work = this.work;
    for (let a = 0; a < e; a++) work.row(a).set(this.repairs[this.chosen[a]!]!);
    for (let i = 0; i < k; i++) {
      const segment = this.data[i];
      if (segment === undefined) continue;
      work.load(segment);
      for (let a = 0; a < e; a++) work.mulAddInput(a, COEFFICIENTS[this.chosen[a]! * MAX_BLOCK_DATA + i]!, segment.byteLength);
    }

    // data_missing = A⁻¹ · s with A[a][b] = c(chosen a, missing b): any square Cauchy submatrix is invertible.
    for (let a = 0; a < e; a++) {
      for (let b = 0; b < e; b++) this.matrix[a * e + b] = COEFFICIENTS[this.chosen[a]! * MAX_BLOCK_DATA + this.missing[b]!]!;
    }
    invert(this.matrix, this.inverse, e);
    const out: RecoveredSegment[] = [];
    for (let b = 0; b < e; b++) {
      let row = work.row(0);
      // one segment missing and its coefficient 1 (repair 0, XOR): the syndrome is the segment
      if (e !== 1 || this.inverse[0] !== 1) {
        row = work.row(e + b);
        row.fill(0, 0, length);
        for (let a = 0; a < e; a++) work.mulAddRow(e + b, a, this.inverse[b * e + a]!, length);
      }
      const index = this.missing[b]!;
      const bytes = row.subarray(0, this.dataBytes(index));
      this.data[index] = bytes;
      out.push({ index, bytes });
    }
    this.dataCount = k;
    return out;
  }
}

/**
 * inverse = matrix⁻¹ for an n × n matrix over GF(256) by Gauss–Jordan elimination; `matrix` is
 * destroyed. Only called on Cauchy submatrices, which are never singular.
 */
function invert(matrix: Uint8Array, inverse: Uint8Array, n: number): void {
  inverse.fill(0, 0, n * n);
  for (let i = 0; i < n; i++) inverse[i * n + i] = 1;
  for (let col = 0; col < n; col++) {
    let pivot = col;
    while (pivot < n && matrix[pivot * n + col] === 0) pivot++;
    if (pivot === n) throw new RangeError("singular FEC matrix"); // impossible for a Cauchy submatrix
    if (pivot !== col) {
      for (let c = 0; c < n; c++) {
        swap(matrix, pivot * n + c, col * n + c);
        swap(inverse, pivot * n + c, col * n + c);
      }
    }
    const scale = gfInv(matrix[col * n + col]!) << 8;
    for (let c = 0; c < n; c++) {
      matrix[col * n + c] = GF_MUL_TABLE[scale | matrix[col * n + c]!]!;
      inverse[col * n + c] = GF_MUL_TABLE[scale | inverse[col * n + c]!]!;
    }
    for (let r = 0; r < n; r++) {
      const factor = matrix[r * n + col]!;
      if (r === col || factor === 0) continue;
      const f = factor << 8;
      for (let c = 0; c < n; c++) {
        matrix[r * n + c]! ^= GF_MUL_TABLE[f | matrix[col * n + c]!]!;
        inverse[r * n + c]! ^= GF_MUL_TABLE[f | inverse[col * n + c]!]!;
      }
    }
  }
}

function swap(a: Uint8Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}
