/**
 * Rows of segment bytes and the two operations the block code does on them — row ^= coef · input and
 * row ^= coef · other row — in one of two implementations with the same results:
 *
 * - WebAssembly SIMD (where the runtime has it, as Bun does): 16 bytes per step, multiplying by a
 *   constant with two 16-entry nibble tables and `i8x16.swizzle` (the PSHUFB method of ISA-L and
 *   klauspost/reedsolomon). The rows live in the module's memory, so an input segment is first
 *   copied in (one memcpy); measured 5–10× the table code (bench/fec-speed.ts).
 * - Plain JavaScript: gf256.ts's `mulAddWords`, one 64 KiB-table lookup per byte, reading the input
 *   where it lies.
 *
 * Pure: the module is compiled from the bytes below, synchronously, once.
 */
import { GF_MUL_TABLE, mulAddWords } from "./gf256.ts";

/** Rows start on 16-byte boundaries and are processed in whole 16-byte steps. */
const LANE_BYTES = 16;
const roundUp = (n: number) => (n + LANE_BYTES - 1) & ~(LANE_BYTES - 1);

export interface RowWorkspace {
  readonly kind: "simd" | "js";
  readonly rowCount: number;
  /** Row r, `rowBytes` long. */
  row(r: number): Uint8Array;
  /** Makes `input` (≤ rowBytes) the operand of the next `mulAddInput` calls. */
  load(input: Uint8Array): void;
  /** row[r][0, length) ^= coef · input[0, length), length ≤ the loaded input's. */
  mulAddInput(r: number, coef: number, length: number): void;
  /** row[dst][0, length) ^= coef · row[src][0, length). */
  mulAddRow(dst: number, src: number, coef: number, length: number): void;
}

export function createRowWorkspace(rowCount: number, rowBytes: number, prefer: "simd" | "js" = "simd"): RowWorkspace {
  if (prefer === "simd") {
    const module = simdModule();
    if (module) return new SimdWorkspace(module, rowCount, rowBytes);
  }
  return new JsWorkspace(rowCount, rowBytes);
}

/** True when this runtime runs the SIMD workspace. */
export function simdAvailable(): boolean {
  return simdModule() !== undefined;
}

class JsWorkspace implements RowWorkspace {
  readonly kind = "js";
  private readonly bytes: Uint8Array[] = [];
  private readonly words: Uint32Array[] = [];
  private input: Uint8Array = new Uint8Array(0);

  constructor(
    readonly rowCount: number,
    rowBytes: number,
  ) {
    const stride = roundUp(rowBytes);
    const buffer = new ArrayBuffer(rowCount * stride);
    for (let r = 0; r < rowCount; r++) {
      this.bytes.push(new Uint8Array(buffer, r * stride, rowBytes));
      this.words.push(new Uint32Array(buffer, r * stride, stride >>> 2));
    }
  }
  row(r: number): Uint8Array {
    return this.bytes[r]!;
  }
  load(input: Uint8Array): void {
    this.input = input;
  }
  mulAddInput(r: number, coef: number, length: number): void {
    mulAddWords(this.bytes[r]!, this.words[r]!, this.input, coef, length);
  }
  mulAddRow(dst: number, src: number, coef: number, length: number): void {
    mulAddWords(this.bytes[dst]!, this.words[dst]!, this.bytes[src]!, coef, length);
  }
}

interface SimdExports {
  xor(dst: number, src: number, length: number): void;
  mul(dst: number, src: number, length: number, tables: number): void;
}

/** Memory layout: 256 × (16 low-nibble products, 16 high-nibble products), the input row, the rows. */
const TABLES_BYTES = 256 * 32;

class SimdWorkspace implements RowWorkspace {
  readonly kind = "simd";
  private readonly exports: SimdExports;
  private readonly memory: Uint8Array;
  private readonly stride: number;
  private readonly inputAt = TABLES_BYTES;
  private readonly rowsAt: number;
  private readonly views: Uint8Array[] = [];

  constructor(
    module: WebAssembly.Module,
    readonly rowCount: number,
    rowBytes: number,
  ) {
    this.stride = roundUp(rowBytes);
    this.rowsAt = this.inputAt + this.stride;
    const pages = Math.ceil((this.rowsAt + rowCount * this.stride) / 65536);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    this.exports = new WebAssembly.Instance(module, { m: { memory } }).exports as unknown as SimdExports;
    this.memory = new Uint8Array(memory.buffer);
    this.memory.set(nibbleTables());
    for (let r = 0; r < rowCount; r++) this.views.push(this.memory.subarray(this.rowsAt + r * this.stride, this.rowsAt + r * this.stride + rowBytes));
  }
  row(r: number): Uint8Array {
    return this.views[r]!;
  }
  load(input: Uint8Array): void {
    this.memory.set(input, this.inputAt);
    // the steps run to a 16-byte boundary: what follows the input must multiply to nothing
    this.memory.fill(0, this.inputAt + input.byteLength, this.inputAt + roundUp(input.byteLength));
  }
  mulAddInput(r: number, coef: number, length: number): void {
    this.apply(this.rowsAt + r * this.stride, this.inputAt, coef, length);
  }
  mulAddRow(dst: number, src: number, coef: number, length: number): void {
    this.apply(this.rowsAt + dst * this.stride, this.rowsAt + src * this.stride, coef, length);
  }
  private apply(dstAt: number, srcAt: number, coef: number, length: number): void {
    if (coef === 0 || length === 0) return;
    if (coef === 1) this.exports.xor(dstAt, srcAt, roundUp(length));
    else this.exports.mul(dstAt, srcAt, roundUp(length), coef * 32);
  }
}

let nibbleTableBytes: Uint8Array | undefined;

/** For each c: c · x for x = 0 … 15, then c · (x << 4). */
function nibbleTables(): Uint8Array {
  if (!nibbleTableBytes) {
    nibbleTableBytes = new Uint8Array(TABLES_BYTES);
    for (let c = 0; c < 256; c++) {
      for (let x = 0; x < 16; x++) {
        nibbleTableBytes[c * 32 + x] = GF_MUL_TABLE[(c << 8) | x]!;
        nibbleTableBytes[c * 32 + 16 + x] = GF_MUL_TABLE[(c << 8) | (x << 4)]!;
      }
    }
  }
  return nibbleTableBytes;
}

let compiled: WebAssembly.Module | null | undefined;

function simdModule(): WebAssembly.Module | undefined {
  if (compiled === undefined) {
    compiled = null;
    try {
      if (typeof WebAssembly === "object" && WebAssembly.validate(SIMD_MODULE_BYTES)) compiled = new WebAssembly.Module(SIMD_MODULE_BYTES);
    } catch {
      compiled = null; // no WebAssembly or no SIMD here: the JavaScript rows do the same work
    }
  }
  return compiled ?? undefined;
}

// The module, assembled by hand. In the WebAssembly text format:
//
//   (module
//     (import "m" "memory" (memory 1))
//     ;; dst[0, n) ^= src[0, n); n a multiple of 16
//     (func (export "xor") (param $dst i32) (param $src i32) (param $n i32)
//       (block (loop
//         (br_if 1 (i32.eqz (local.get $n)))
//         (v128.store (local.get $dst) (v128.xor (v128.load (local.get $dst)) (v128.load (local.get $src))))
//         (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
//         (local.set $src (i32.add (local.get $src) (i32.const 16)))
//         (local.set $n (i32.sub (local.get $n) (i32.const 16)))
//         (br 0))))
//     ;; dst[0, n) ^= c · src[0, n) with $t → c's low-nibble products, $t + 16 → its high-nibble ones:
//     ;; c · x = lo[x & 15] ^ hi[x >> 4], sixteen lanes at a time
//     (func (export "mul") (param $dst i32) (param $src i32) (param $n i32) (param $t i32)
//       (local $lo v128) (local $hi v128) (local $mask v128) (local $x v128)
//       (local.set $lo (v128.load (local.get $t)))
//       (local.set $hi (v128.load offset=16 (local.get $t)))
//       (local.set $mask (i8x16.splat (i32.const 15)))
//       (block (loop
//         (br_if 1 (i32.eqz (local.get $n)))
//         (local.set $x (v128.load (local.get $src)))
//         (v128.store (local.get $dst)
//           (v128.xor (v128.xor (v128.load (local.get $dst))
//                               (i8x16.swizzle (local.get $lo) (v128.and (local.get $x) (local.get $mask))))
//                     (i8x16.swizzle (local.get $hi) (v128.and (i8x16.shr_u (local.get $x) (i32.const 4)) (local.get $mask)))))
//         (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
//         (local.set $src (i32.add (local.get $src) (i32.const 16)))
//         (local.set $n (i32.sub (local.get $n) (i32.const 16)))
//         (br 0)))))
const SIMD_MODULE_BYTES = (() => {
  const I32 = 0x7f;
  const V128 = 0x7b;
  const [BLOCK, LOOP, END, BR, BR_IF, VOID] = [0x02, 0x03, 0x0b, 0x0c, 0x0d, 0x40];
  const [GET, SET, CONST, EQZ, ADD, SUB] = [0x20, 0x21, 0x41, 0x45, 0x6a, 0x6b];
  const simd = (op: number, ...imm: number[]) => [0xfd, op, ...imm];
  const load = (offset = 0) => simd(0x00, 4, offset); // v128.load align=16
  const store = simd(0x0b, 4, 0);
  const [XOR, AND, SWIZZLE, SPLAT8, SHR_U8] = [simd(0x51), simd(0x4e), simd(0x0e), simd(0x0f), simd(0x6d)];
  const leb = (n: number) => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n) b |= 0x80;
      out.push(b);
    } while (n);
    return out;
  };
  const name = (s: string) => [s.length, ...[...s].map((c) => c.charCodeAt(0))];
  const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
  const vector = (items: number[][]) => [...leb(items.length), ...items.flat()];
  const advance = (local: number, by: number, op: number) => [GET, local, CONST, by, op, SET, local];
  const loopUntilZero = (n: number, body: number[]) => [
    BLOCK, VOID, LOOP, VOID,
    GET, n, EQZ, BR_IF, 1,
    ...body,
    ...advance(0, 16, ADD), ...advance(1, 16, ADD), ...advance(n, 16, SUB),
    BR, 0, END, END,
  ];
  const xorBody = [
    0, // no locals
    ...loopUntilZero(2, [GET, 0, GET, 0, ...load(), GET, 1, ...load(), ...XOR, ...store]),
    END,
  ];
  const [lo, hi, mask, x] = [4, 5, 6, 7];
  const mulBody = [
    1, 4, V128, // four v128 locals
    GET, 3, ...load(), SET, lo,
    GET, 3, ...load(16), SET, hi,
    CONST, 15, ...SPLAT8, SET, mask,
    ...loopUntilZero(2, [
      GET, 1, ...load(), SET, x,
      GET, 0,
      GET, 0, ...load(),
      GET, lo, GET, x, GET, mask, ...AND, ...SWIZZLE, ...XOR,
      GET, hi, GET, x, CONST, 4, ...SHR_U8, GET, mask, ...AND, ...SWIZZLE, ...XOR,
      ...store,
    ]),
    END,
  ];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, vector([[0x60, 3, I32, I32, I32, 0], [0x60, 4, I32, I32, I32, I32, 0]])), // types
    ...section(2, vector([[...name("m"), ...name("memory"), 0x02, 0x00, 0x01]])), // import memory, min 1 page
    ...section(3, vector([[0], [1]])), // functions: xor has type 0, mul type 1
    ...section(7, vector([[...name("xor"), 0x00, 0], [...name("mul"), 0x00, 1]])), // exports
    ...section(10, vector([[...leb(xorBody.length), ...xorBody], [...leb(mulBody.length), ...mulBody]])), // code
  ]);
})();
