/**
 * Speed of the FEC block code (src/transfer/core/fec/) on this machine: `bun bench/fec-speed.ts`.
 * Blocks of k = 32 segments of 1374 bytes (1400-byte datagrams), payloads at offset 26 of their
 * datagram as the shell sees them. Prints MB/s of data bytes and the CPU seconds per GiB of file that
 * rate means (per CPU second, best of 3), for encoding (the sender, every block) and decoding (the receiver, only blocks that
 * lost something; a clean block costs it nothing but `addData`).
 */
import { BlockDecoder, BlockEncoder } from "../src/transfer/core/fec/block-code.ts";
import { mulAddRow, mulAddWords } from "../src/transfer/core/fec/gf256.ts";
import { createRowWorkspace } from "../src/transfer/core/fec/row-workspace.ts";

const K = 32;
const SEGMENT_BYTES = 1374;
const HEADER_BYTES = 26;
const BLOCKS = 8; // distinct blocks cycled through, so the data is not always in L1
const RUN_MS = Number(process.env.FEC_BENCH_MS ?? 1500);

const datagrams = Array.from({ length: BLOCKS }, () =>
  Array.from({ length: K }, () => {
    const d = new Uint8Array(HEADER_BYTES + SEGMENT_BYTES);
    for (let i = 0; i < d.length; i++) d[i] = (Math.random() * 256) | 0;
    return d.subarray(HEADER_BYTES);
  }),
);

/**
 * MB/s of `run`'s returned bytes per CPU second of this process (not wall time: the machine may be
 * shared), the best of 3 rounds after a warm-up that lets the JIT reach its top tier.
 */
function measure(run: () => number): number {
  const cpuMs = () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  };
  for (let t0 = cpuMs(); cpuMs() - t0 < RUN_MS / 3; ) for (let i = 0; i < 10; i++) run();
  let best = 0;
  for (let round = 0; round < 3; round++) {
    let bytes = 0;
    const t0 = cpuMs();
    let elapsed = 0;
    while ((elapsed = cpuMs() - t0) < RUN_MS / 3) for (let i = 0; i < 10; i++) bytes += run();
    best = Math.max(best, bytes / (elapsed / 1000) / 1e6);
  }
  return best;
}

const cpuPerGiB = (mbps: number) => (2 ** 30 / 1e6 / mbps).toFixed(3);
const rows: string[][] = [["what", "MB/s", "CPU-s/GiB"]];
const report = (what: string, mbps: number) => {
  rows.push([what, mbps.toFixed(0), cpuPerGiB(mbps)]);
};

// The kernels alone, on one segment.
{
  const buffer = new ArrayBuffer(1376);
  const dst = new Uint8Array(buffer, 0, SEGMENT_BYTES);
  const words = new Uint32Array(buffer);
  let n = 0;
  report("kernel XOR (mulAddWords, coef 1)", measure(() => (mulAddWords(dst, words, datagrams[0]![n++ & 31]!, 1, SEGMENT_BYTES), SEGMENT_BYTES)));
  report("kernel GF multiply-add (mulAddWords)", measure(() => (mulAddWords(dst, words, datagrams[0]![n++ & 31]!, 0x53, SEGMENT_BYTES), SEGMENT_BYTES)));
  report("kernel GF multiply-add (mulAddRow, bytes)", measure(() => (mulAddRow(dst, datagrams[0]![n++ & 31]!, 0x53, SEGMENT_BYTES), SEGMENT_BYTES)));
  const simd = createRowWorkspace(1, SEGMENT_BYTES, "simd");
  if (simd.kind === "simd") {
    report("kernel SIMD copy-in + XOR", measure(() => (simd.load(datagrams[0]![n++ & 31]!), simd.mulAddInput(0, 1, SEGMENT_BYTES), SEGMENT_BYTES)));
    report("kernel SIMD copy-in + GF multiply-add", measure(() => (simd.load(datagrams[0]![n++ & 31]!), simd.mulAddInput(0, 0x53, SEGMENT_BYTES), SEGMENT_BYTES)));
  }
}

for (const kernel of ["simd", "js"] as const) for (const m of [1, 2, 4]) {
  const encoder = new BlockEncoder(K, m, SEGMENT_BYTES, { kernel });
  const out = new Uint8Array(SEGMENT_BYTES);
  let block = 0;
  report(
    `${kernel}: encode k=${K} m=${m}`,
    measure(() => {
      encoder.reset();
      const data = datagrams[block++ % BLOCKS]!;
      for (let i = 0; i < K; i++) encoder.addData(i, data[i]!);
      for (let j = 0; j < m; j++) encoder.repair(j, out);
      return K * SEGMENT_BYTES;
    }),
  );

  // Repairs of every block, then decoding with e = 1 … m data segments lost (the worst case is e = m).
  const repairs = datagrams.map((data) => {
    encoder.reset();
    data.forEach((d, i) => encoder.addData(i, d));
    return Array.from({ length: m }, (_, j) => {
      const r = new Uint8Array(SEGMENT_BYTES);
      encoder.repair(j, r);
      return r;
    });
  });
  const decoder = new BlockDecoder(K, m, SEGMENT_BYTES, SEGMENT_BYTES, { kernel });
  for (const e of m === 1 ? [0, 1] : [1, m]) {
    let b = 0;
    report(
      `${kernel}: decode k=${K} m=${m}, ${e} lost`,
      measure(() => {
        const blockIndex = b++ % BLOCKS;
        const data = datagrams[blockIndex]!;
        decoder.reset();
        for (let i = e; i < K; i++) decoder.addData(i, data[i]!); // the first e are lost
        for (let j = 0; j < e; j++) decoder.addRepair(j, repairs[blockIndex]![j]!); // repair 0 (XOR) first, as when no repair is lost
        if (decoder.recover()?.length !== e) throw new Error("not recovered");
        return K * SEGMENT_BYTES;
      }),
    );
  }
}

const width = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
for (const r of rows) console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(width[c]!) : cell.padStart(width[c]!))).join("  "));
console.log(`(${SEGMENT_BYTES}-byte segments; decode MB/s counts the whole block's data bytes; bun ${Bun.version})`);
