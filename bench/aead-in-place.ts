/**
 * CPU per datagram of the two in-place AES-256-GCM implementations (src/crypto/aes-gcm-native.ts:
 * OpenSSL's libcrypto through bun:ffi; src/crypto/aes-gcm.ts: node:crypto), sealing and opening, at a
 * 1,500-byte MTU's payload (1,374 B), 8,192 B and 65,000 B, with a 34-byte aad (a 26-byte header and the
 * 8-byte packet number, docs/PROTOCOL.md "Datagrams"); and CPU-s per GiB of payload, each side
 * (issue #17's budget: ≤ 1.0 more per side).
 *
 *   bun bench/aead-in-place.ts [--rounds=7] [--ms=150]
 *
 * Rounds of the implementations and operations alternate, so a neighbour's burst on this 2-core machine
 * spreads over all of them; the table shows the median round and the best. CPU is process.cpuUsage
 * (user + system), which counts every thread of the process.
 *
 * Opening in place turns the ciphertext into plaintext, and a second open would fail its tag; but GCM's
 * keystream is an XOR, so the plaintext is itself the ciphertext of something under the same nonce, with
 * a tag of its own. Each open writes the matching one of the two tags (16 bytes) first, and every open
 * verifies: the bench checks that it did.
 */
import { parseArgs } from "node:util";
import { aes256gcmInPlace } from "../src/crypto/aes-gcm.ts";
import { loadNativeAes256Gcm } from "../src/crypto/aes-gcm-native.ts";
import type { InPlaceAead, InPlaceAeadFactory } from "../src/crypto/core/aead.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "7" }, ms: { type: "string", default: "150" } } });
const ROUNDS = Number(values.rounds);
const ROUND_MS = Number(values.ms);
const SIZES = [1374, 8192, 65_000];
const AAD_BYTES = 34;
const TAG_BYTES = 16;
const GIB = 2 ** 30;

const native = loadNativeAes256Gcm();
if (!native) console.error("aead-in-place: libcrypto did not load (or FTX_NO_NATIVE_AEAD=1): node:crypto only");
const implementations: [string, InPlaceAeadFactory][] = [...(native ? [["native", native] as [string, InPlaceAeadFactory]] : []), ["node", aes256gcmInPlace]];

const key = crypto.getRandomValues(new Uint8Array(32));
const nonce = crypto.getRandomValues(new Uint8Array(12));

interface Case {
  label: string;
  bytes: number;
  /** Runs the operation `n` times. */
  run(n: number): void;
}

function cases(name: string, aead: InPlaceAead, bytes: number): Case[] {
  const at = AAD_BYTES;
  const tagAt = at + bytes;
  const buf = crypto.getRandomValues(new Uint8Array(tagAt + TAG_BYTES));
  // The two states an open in place flips between, each with its valid tag (see above).
  const other = buf.slice();
  aead.sealInPlace(nonce, buf, 0, AAD_BYTES, at, bytes, tagAt); // buf: C with tag Tc, from P
  other.set(buf.subarray(at, tagAt), at);
  aead.sealInPlace(nonce, other, 0, AAD_BYTES, at, bytes, tagAt); // other: P with tag Tp, from C
  const tags = [buf.slice(tagAt), other.slice(tagAt)];
  const open = buf.slice();
  let which = 0;
  return [
    {
      label: `${name} seal`,
      bytes,
      run(n) {
        for (let i = 0; i < n; i++) aead.sealInPlace(nonce, buf, 0, AAD_BYTES, at, bytes, tagAt);
      },
    },
    {
      label: `${name} open`,
      bytes,
      run(n) {
        let verified = 0;
        for (let i = 0; i < n; i++) {
          open.set(tags[which]!, tagAt);
          which ^= 1;
          if (aead.openInPlace(nonce, open, 0, AAD_BYTES, at, bytes, tagAt)) verified++;
        }
        if (verified !== n) throw new Error(`${name} open: only ${verified} of ${n} verified`);
      },
    },
  ];
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`aead-in-place: ${ROUNDS} rounds of ~${ROUND_MS} ms per case; aad ${AAD_BYTES} B; load average ${(await Bun.file("/proc/loadavg").text().catch(() => "?")).split(" ").slice(0, 3).join(" ")}`);
const rows: string[][] = [["size", "operation", "CPU µs (median)", "CPU µs (best)", "wall µs (median)", "CPU-s/GiB (median)"]];
for (const bytes of SIZES) {
  const all = implementations.flatMap(([name, factory]) => cases(name, factory(key), bytes));
  // Warm up (JIT) and size each case's round to ~ROUND_MS.
  const perRound = all.map((c) => {
    c.run(2000);
    const t0 = performance.now();
    c.run(5000);
    return Math.max(1000, Math.round((5000 * ROUND_MS) / Math.max(performance.now() - t0, 0.001)));
  });
  const cpu = all.map((): number[] => []);
  const wall = all.map((): number[] => []);
  for (let r = 0; r < ROUNDS; r++) {
    all.forEach((c, i) => {
      const n = perRound[i]!;
      const c0 = cpuUs();
      const t0 = performance.now();
      c.run(n);
      wall[i]!.push(((performance.now() - t0) * 1000) / n);
      cpu[i]!.push((cpuUs() - c0) / n);
    });
  }
  all.forEach((c, i) => {
    const us = median(cpu[i]!);
    rows.push([`${bytes.toLocaleString("en")} B`, c.label, us.toFixed(2), Math.min(...cpu[i]!).toFixed(2), median(wall[i]!).toFixed(2), ((us * (GIB / bytes)) / 1e6).toFixed(2)]);
  });
}

const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
for (const [i, r] of rows.entries()) {
  console.log(`| ${r.map((cell, col) => (col < 2 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join(" | ")} |`);
  if (i === 0) console.log(`|${widths.map((w, col) => (col < 2 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`);
}
