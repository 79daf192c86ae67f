/** Transfers on loopback: 256 MiB with no loss and 5 % loss, and a sparse 8 GiB file for memory. */
import { closeSync, ftruncateSync, mkdirSync, openSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ImpairmentRelay } from "../test/support/impairment-relay.ts";
import { waitFor, type Bench } from "./lib/bench.ts";
import { median, procStat } from "./lib/measure.ts";
import { nftLoss } from "./lib/nft.ts";

export async function benchTransfer(b: Bench): Promise<void> {
  const size = b.quick ? 64 << 20 : 256 << 20;
  const dir = join(b.work, "share");
  mkdirSync(dir, { recursive: true });
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(dir, "payload.bin"), data);
  // Both allow --insecure-plaintext, so the same run can measure what sealing costs (sessions are sealed unless a fetch asks).
  const master = await b.startMaster(["--insecure-plaintext"]);
  const server = b.spawnFtx(["serve", dir, "--master", master.address, "--host", "127.0.0.1", "--insecure-plaintext"]);
  const udpPort = Number((await waitFor(server, /over UDP on 127\.0\.0\.1:(\d+)/))[1]);
  while ((await b.lsCount(master.address)) < 1) await Bun.sleep(100);
  const mib = size / (1 << 20);
  const runs = b.quick ? 1 : 3;
  // Warm-up, not measured, as in benchPeers: this is the bench's first transfer, and on a VM the first
  // writes into memory never touched before cost far more (one full run: client 2.16 CPU-s per GiB
  // here against 1.69 for the 8 GiB fetch later in the same run).
  await b.fetchOnce(master.address, "payload.bin", join(b.work, "out"));

  let serverPid = server.pid;
  const scenario = async (label: string, address: string) => {
    const before = procStat(serverPid);
    const samples = [];
    for (let i = 0; i < runs; i++) samples.push(await b.fetchOnce(address, "payload.bin", join(b.work, "out")));
    console.error(`  ${label}: ${samples.map((x) => `${(size / 1e6 / x.seconds).toFixed(0)} MB/s (client ${x.cpuSeconds.toFixed(2)} CPU-s)`).join(", ")}`);
    const after = procStat(serverPid);
    const med = median(samples.map((s) => s.seconds));
    const r = {
      sizeMiB: mib,
      medianSeconds: med,
      medianMBps: size / 1e6 / med,
      allIntact: samples.every((s) => s.ok),
      clientCpuSecondsPerGiB: (median(samples.map((s) => s.cpuSeconds)) * 1024) / mib,
      clientPeakRssMiB: Math.max(...samples.map((s) => s.maxRssMiB)),
      serverCpuSecondsPerGiB: ((after.cpuSeconds - before.cpuSeconds) / runs) * (1024 / mib),
      serverPeakRssMiB: after.peakRssMiB,
    };
    b.rows.push([
      `fetch ${mib} MiB, ${label}`,
      `${r.medianMBps.toFixed(0)} MB/s (median of ${runs}), intact: ${r.allIntact}`,
      `client ${r.clientCpuSecondsPerGiB.toFixed(2)} CPU-s/GiB, ${r.clientPeakRssMiB.toFixed(0)} MiB; server ${r.serverCpuSecondsPerGiB.toFixed(2)} CPU-s/GiB, ${r.serverPeakRssMiB.toFixed(0)} MiB`,
    ]);
    return r;
  };

  b.results.transferNoLoss = await scenario("no loss", master.address);
  b.results.encryption = await encryptionCost(b, master.address, size, () => serverPid);

  const nft = nftLoss(udpPort, 50);
  if (nft) {
    try {
      b.results.transferLoss5 = await scenario("5% loss (nftables)", master.address);
    } finally {
      nft.remove();
    }
    return;
  }
  // 5 % loss without nftables: restart the server behind the relay (it advertises the relay's address).
  server.kill("SIGTERM");
  await server.exited;
  const relay = await ImpairmentRelay.start({ host: "127.0.0.1", port: udpPort }, { both: { loss: 0.05 }, seed: 5 });
  const relayed = b.spawnFtx(["serve", dir, "--master", master.address, "--host", "127.0.0.1", "--port", String(udpPort), "--advertise", `127.0.0.1:${relay.port}`]);
  await waitFor(relayed, /registered with master/);
  await Bun.sleep(500);
  serverPid = relayed.pid;
  b.results.transferLoss5 = await scenario("5% loss (relay)", master.address);
  relay.close();
}

/**
 * What sealing costs (issue #17): the same fetch sealed (the default) and with --insecure-plaintext,
 * alternating, `runs` pairs; throughput ratio and CPU per GiB of each side, from one run.
 */
async function encryptionCost(b: Bench, address: string, size: number, serverPid: () => number) {
  const runs = b.quick ? 1 : 3;
  const gib = size / 2 ** 30;
  const side = { sealed: { secs: [] as number[], client: [] as number[], server: [] as number[] }, clear: { secs: [] as number[], client: [] as number[], server: [] as number[] } };
  for (let i = 0; i < runs; i++) {
    for (const mode of ["sealed", "clear"] as const) {
      const before = procStat(serverPid()).cpuSeconds;
      const t = await b.fetchOnce(address, "payload.bin", join(b.work, "out"), mode === "clear" ? ["--insecure-plaintext"] : []);
      side[mode].server.push((procStat(serverPid()).cpuSeconds - before) / gib);
      side[mode].secs.push(t.ok ? t.seconds : Infinity);
      side[mode].client.push(t.cpuSeconds / gib);
    }
  }
  const r = {
    sealedMBps: size / 1e6 / median(side.sealed.secs),
    clearMBps: size / 1e6 / median(side.clear.secs),
    sealedCpuPerGiB: { client: median(side.sealed.client), server: median(side.sealed.server) },
    clearCpuPerGiB: { client: median(side.clear.client), server: median(side.clear.server) },
  };
  b.rows.push([
    `fetch ${size >> 20} MiB, sealed vs --insecure-plaintext`,
    `${r.sealedMBps.toFixed(0)} vs ${r.clearMBps.toFixed(0)} MB/s: ${(r.sealedMBps / r.clearMBps).toFixed(2)}× (medians of ${runs}, alternating)`,
    `CPU-s/GiB client ${r.sealedCpuPerGiB.client.toFixed(2)} vs ${r.clearCpuPerGiB.client.toFixed(2)}, server ${r.sealedCpuPerGiB.server.toFixed(2)} vs ${r.clearCpuPerGiB.server.toFixed(2)}`,
  ]);
  return r;
}

/** Memory whatever the size: a sparse 8 GiB file fetched on loopback; peak RSS of client and server. */
export async function benchSparse(b: Bench): Promise<void> {
  if (b.quick) return;
  const size = 8 * 2 ** 30;
  const dir = join(b.work, "sparse");
  mkdirSync(dir, { recursive: true });
  const fd = openSync(join(dir, "sparse8g.bin"), "w");
  ftruncateSync(fd, size);
  closeSync(fd);
  const master = await b.startMaster();
  const server = b.spawnFtx(["serve", dir, "--master", master.address, "--host", "127.0.0.1"]);
  await waitFor(server, /over UDP on/);
  const t0 = performance.now();
  while ((await b.lsCount(master.address)) < 1) await Bun.sleep(200);
  console.error(`  sparse 8 GiB hashed and listed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const out = join(b.work, "sparse-out");
  const r = await b.fetchOnce(master.address, "sparse8g.bin", out);
  const srv = procStat(server.pid);
  rmSync(out, { recursive: true, force: true });
  server.kill("SIGTERM");
  b.results.sparse8GiB = { MBps: size / 1e6 / r.seconds, intact: r.ok, clientPeakRssMiB: r.maxRssMiB, clientCpuSecondsPerGiB: r.cpuSeconds / 8, serverPeakRssMiB: srv.peakRssMiB };
  b.rows.push([
    "fetch 8 GiB (sparse), no loss",
    `${(size / 1e6 / r.seconds).toFixed(0)} MB/s, intact: ${r.ok}`,
    `client peak ${r.maxRssMiB.toFixed(0)} MiB, ${(r.cpuSeconds / 8).toFixed(2)} CPU-s/GiB; server peak ${srv.peakRssMiB.toFixed(0)} MiB`,
  ]);
}
