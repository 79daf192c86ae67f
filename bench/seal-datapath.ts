/**
 * `bun bench/seal-datapath.ts [MiB] [segment]`: the whole datapath in one process, no sockets: the real
 * ServerEndpoint (runs of up to 64 datagrams, as with GSO) feeding the real client Download (each run
 * read whole, as with GRO), ACKs fed back at once; sealed sessions against --insecure-plaintext ones,
 * alternating. CPU time per GiB of the two together: what sealing adds to the JavaScript and the
 * AEAD, without the kernel's part.
 */
import { Download } from "../src/transfer/download.ts";
import { MAX_RUN_DATAGRAMS, ServerEndpoint } from "../src/transfer/core/server-endpoint.ts";
import { MemoryFiles, simFile } from "../test/support/sim-endpoints.ts";
import { Rng } from "../test/support/random.ts";
import { testCrypto } from "../test/support/transfer-crypto.ts";

const mib = Number(process.argv[2] ?? 256);
const segment = Number(process.argv[3] ?? 1350);
const rng = new Rng(1);
const file = simFile(rng, "f.bin", mib << 20, 1);

function once(plaintext: boolean): number {
  const files = new MemoryFiles([file]);
  const ep = new ServerEndpoint({ files, randomU32: () => 7, tokenSecret: new Uint8Array(32), crypto: testCrypto({ seed: 1 }), allowPlaintext: true, maxRunDatagrams: MAX_RUN_DATAGRAMS });
  let now = 0;
  const toServer: Uint8Array[] = [];
  let written = 0;
  const sink = { backlogBytes: 0, append: (_b: Uint8Array, s: number, e: number) => void (written += e - s) };
  const d = new Download(
    { name: "f.bin", size: file.size, offset: 0, length: file.size, sha256: file.sha256, ip: "10.0.0.2", port: 9, display: "s", crypto: testCrypto({ seed: 2 }), plaintext, segmentBytes: segment, windowSegments: 4096, ackEvery: 16, idleTimeoutMs: 10_000, addressTokens: { get: (t) => ep.greeting("10.0.0.1", t), set() {} } },
    sink,
    (b) => void toServer.push(b.slice()),
    now,
    () => {},
    { now: () => now, sessionId: 5 },
  );
  const t0 = process.cpuUsage();
  for (let steps = 0; d.state !== "done" && steps < 10_000_000; steps++) {
    now += 0.01;
    for (const b of toServer.splice(0)) ep.handle(b, "10.0.0.1", 9, now);
    for (let t = ep.pollTransmit(now); t; t = ep.pollTransmit(now)) d.receive(t.bytes.slice(), now);
    const at = ep.pollTimeout();
    if (at !== undefined && at <= now) ep.handleTimeout(now);
    const dt = d.pollTimeout();
    if (dt !== undefined && dt <= now) d.onTimer(now);
  }
  const u = process.cpuUsage(t0);
  if (written !== file.size) throw new Error(`got ${written} of ${file.size}`);
  return (u.user + u.system) / 1e6 / (file.size / 2 ** 30);
}

once(false);
once(true);
const r: Record<string, number[]> = { sealed: [], clear: [] };
for (let i = 0; i < 3; i++) {
  r.sealed!.push(once(false));
  r.clear!.push(once(true));
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
console.log(`${mib} MiB in ${segment}-byte segments, server + client in one process, CPU-s per GiB: sealed ${r.sealed!.map((x) => x.toFixed(2)).join(", ")} (median ${med(r.sealed!).toFixed(2)}); clear ${r.clear!.map((x) => x.toFixed(2)).join(", ")} (median ${med(r.clear!).toFixed(2)}): sealing adds ${(med(r.sealed!) - med(r.clear!)).toFixed(2)}`);
