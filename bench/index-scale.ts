/** The index side: a master at scale, a file server registering many files, several masters on one Redis. */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connectToMaster } from "../src/index/index-client.ts";
import { MsgType, Role } from "../src/index/core/messages.ts";
import { RedisProcess } from "../test/support/redis-process.ts";
import { waitFor, type Bench } from "./lib/bench.ts";
import { median, procStat } from "./lib/measure.ts";

export async function benchIndex(b: Bench): Promise<void> {
  const servers = b.quick ? 200 : 1000;
  const filesEach = 100;
  const master = await b.startMaster();
  const sha = "ab".repeat(32);
  const sessions = [];
  const beats: Timer[] = [];
  const t0 = performance.now();
  for (let i = 0; i < servers; i++) {
    const s = await connectToMaster({ host: "127.0.0.1", port: master.port }, { role: Role.FileServer, timeoutMs: 5000 });
    s.send({ type: MsgType.Announce, host: "127.0.0.1", port: 10_000 + i });
    s.send({ type: MsgType.FilesAdd, files: Array.from({ length: filesEach }, (_, j) => ({ name: `server-${i}/dir/file-${j}.dat`, size: j * 1000, sha256: sha })) });
    sessions.push(s);
    // Keep the leases alive while we measure.
    beats.push(setInterval(() => s.send({ type: MsgType.Ping, seq: 1 }), s.welcome.heartbeatIntervalMs));
  }
  const total = servers * filesEach;
  while ((await b.lsCount(master.address)) < total) await Bun.sleep(200);
  const registerSeconds = (performance.now() - t0) / 1000;
  const rssAfterRegistration = Number(readFileSync(`/proc/${master.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)![1]) / 1024;
  console.error(`  master RSS after registration: ${rssAfterRegistration.toFixed(0)} MiB`);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const n = await b.lsCount(master.address);
    times.push(performance.now() - t);
    if (n !== total) throw new Error(`ls returned ${n}, expected ${total}`);
  }
  const { peakRssMiB } = procStat(master.pid);
  const masterProc = b.procs.find((p) => p.pid === master.pid)!;
  masterProc.kill("SIGTERM");
  b.results.index = { servers, filesEach, entries: total, registerSeconds, lsJsonMedianMs: median(times), masterPeakRssMiB: peakRssMiB };
  b.rows.push([`index: ${servers} servers × ${filesEach} files`, `ls --json median ${median(times).toFixed(0)} ms (whole process)`, `master peak RSS ${peakRssMiB.toFixed(0)} MiB`]);
  for (const t of beats) clearInterval(t);
  for (const s of sessions) s.close();
  await masterProc.exited;
}

export async function benchRegistration(b: Bench): Promise<void> {
  const count = b.quick ? 2000 : 10_000;
  const dir = join(b.work, "many");
  for (let i = 0; i < count; i++) {
    const sub = join(dir, `d${i % 100}`);
    if (i < 100) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}.txt`), `file ${i}\n`);
  }
  const master = await b.startMaster();
  const t0 = performance.now();
  const server = b.spawnFtx(["serve", dir, "--master", master.address, "--host", "127.0.0.1"]);
  await waitFor(server, /over UDP/);
  while ((await b.lsCount(master.address)) < count) await Bun.sleep(100);
  const seconds = (performance.now() - t0) / 1000;
  const { peakRssMiB } = procStat(server.pid);
  b.results.registration = { files: count, secondsUntilAllListed: seconds, serverPeakRssMiB: peakRssMiB };
  b.rows.push([`serve: ${count} files`, `all listed after ${seconds.toFixed(2)} s`, `server peak RSS ${peakRssMiB.toFixed(0)} MiB`]);
  server.kill("SIGTERM");
}

/** Several masters on one Redis holding N servers × 100 files: ls latency through each, Redis memory. */
export async function benchShared(b: Bench): Promise<void> {
  if (!RedisProcess.available()) {
    console.error("  (redis-server not installed: shared-index bench skipped; apt-get install redis-server)");
    return;
  }
  const servers = b.quick ? 200 : 1000;
  const filesEach = 100;
  const redis = await RedisProcess.start();
  try {
    const startShared = async () => {
      const m = b.spawnFtx(["master", "--host", "127.0.0.1", "--port", "0", "--max-connections", "20000", "--store", redis.url]);
      const port = Number((await waitFor(m, /listening on 127\.0\.0\.1:(\d+)/))[1]);
      return { address: `127.0.0.1:${port}`, port, pid: m.pid };
    };
    const first = await startShared();
    const sha = "cd".repeat(32);
    const sessions = [];
    const beats: Timer[] = [];
    for (let i = 0; i < servers; i++) {
      const sess = await connectToMaster({ host: "127.0.0.1", port: first.port }, { role: Role.FileServer, timeoutMs: 5000 });
      sess.send({ type: MsgType.Announce, host: "127.0.0.1", port: 20_000 + i });
      sess.send({ type: MsgType.FilesAdd, files: Array.from({ length: filesEach }, (_, j) => ({ name: `srv-${i}/f-${j}.bin`, size: j, sha256: sha })) });
      sessions.push(sess);
      beats.push(setInterval(() => sess.send({ type: MsgType.Ping, seq: 1 }), sess.welcome.heartbeatIntervalMs));
    }
    const total = servers * filesEach;
    const latency = async (address: string) => {
      while ((await b.lsCount(address)) < total) await Bun.sleep(200);
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        if ((await b.lsCount(address)) !== total) throw new Error("incomplete listing");
        times.push(performance.now() - t);
      }
      return median(times);
    };
    const one = await latency(first.address);
    const others = [await startShared(), await startShared()];
    const three = [one];
    for (const m of others) three.push(await latency(m.address));
    const info = (await new Response(Bun.spawn(["redis-cli", "-p", String(redis.port), "info", "memory"]).stdout).text()) as string;
    const usedMiB = Number(info.match(/used_memory:(\d+)/)?.[1] ?? NaN) / (1 << 20);
    b.results.sharedIndex = { servers, filesEach, lsJsonMs1Master: one, lsJsonMs3Masters: three, redisUsedMemoryMiB: usedMiB };
    b.rows.push([`shared index (Redis): ${servers} × ${filesEach}`, `ls --json ${one.toFixed(0)} ms via 1 master; ${three.map((t) => t.toFixed(0)).join("/")} ms via each of 3`, `Redis used_memory ${usedMiB.toFixed(0)} MiB`]);
    for (const t of beats) clearInterval(t);
    for (const sess of sessions) sess.close();
  } finally {
    await redis.kill();
  }
}
