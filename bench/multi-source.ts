import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freeUdpPort, lsJson } from "../test/support/ftx-process.ts";
import { ImpairmentRelay } from "../test/support/impairment-relay.ts";
import { waitFor, type Bench } from "./lib/bench.ts";
import { median } from "./lib/measure.ts";

/**
 * Multi-source: one file on two file servers, each behind its own relay capped at 40 MB/s (a stand-in
 * for two servers on slower links). The same fetch with one server listed, then with both.
 */
export async function benchMultiSource(b: Bench): Promise<void> {
  const size = b.quick ? 64 << 20 : 256 << 20;
  const cap = 40e6;
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) data.writeUInt32LE((i * 2246822519) >>> 0, i);
  const dirs = [join(b.work, "multi-a"), join(b.work, "multi-b")];
  for (const d of dirs) {
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "multi.bin"), data);
  }
  const master = await b.startMaster();
  const relays: ImpairmentRelay[] = [];
  const startBehindRelay = async (dir: string) => {
    const udpPort = await freeUdpPort();
    const relay = await ImpairmentRelay.start({ host: "127.0.0.1", port: udpPort }, { toClient: { bytesPerSecond: cap } });
    relays.push(relay);
    const server = b.spawnFtx(["serve", dir, "--master", master.address, "--host", "127.0.0.1", "--port", String(udpPort), "--advertise", `127.0.0.1:${relay.port}`]);
    await waitFor(server, /registered with master/);
  };
  const runs = b.quick ? 1 : 3;
  const measure = async (servers: number) => {
    while (((await lsJson(master.address))[0]?.servers.length ?? 0) !== servers) await Bun.sleep(100);
    const samples = [];
    for (let i = 0; i < runs; i++) samples.push(await b.fetchOnce(master.address, "multi.bin", join(b.work, "out-multi")));
    return { medianMBps: size / 1e6 / median(samples.map((x) => x.seconds)), allIntact: samples.every((x) => x.ok) };
  };
  await startBehindRelay(dirs[0]!);
  const one = await measure(1);
  await startBehindRelay(dirs[1]!);
  const two = await measure(2);
  for (const r of relays) r.close();
  b.results.multiSource = { sizeMiB: size >> 20, capMBpsPerServer: cap / 1e6, one, two, speedup: two.medianMBps / one.medianMBps };
  b.rows.push([
    `multi-source ${size >> 20} MiB, servers behind 40 MB/s relays`,
    `1 server ${one.medianMBps.toFixed(1)} MB/s, 2 servers ${two.medianMBps.toFixed(1)} MB/s: ${(two.medianMBps / one.medianMBps).toFixed(2)}× (target ≥ 1.7×)`,
    `intact: ${one.allIntact && two.allIntact}`,
  ]);
}
