/**
 * `bun run bench [--quick]`: measures ftx on this machine and prints a table plus a JSON result
 * (bench/results/latest.json).
 *
 *  - index at scale: a master holding N file servers × 100 files; `ftx ls --json` latency and master RSS
 *  - registration: a file server with 10,000 files, time until all are listed
 *  - transfer: a 256 MiB file on loopback with no loss and with 5 % random loss. Loss comes from an
 *    nftables rule (kernel drops, no CPU of ours) matching only the file server's UDP port in both
 *    directions, deleted afterwards; where `nft` is missing or not permitted, from the impairment relay
 *    (which costs CPU on this 2-core machine, so it understates the rate), and the output says which.
 *
 * Timings on a shared machine are noisy: each transfer runs 3 times and the median is reported.
 */
import { chmodSync, closeSync, existsSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connectToMaster } from "../src/index/index-client.ts";
import { MsgType, Role } from "../src/index/messages.ts";
import { freeUdpPort, lsJson } from "../test/support/ftx-process.ts";
import { ImpairmentRelay } from "../test/support/impairment-relay.ts";
import { freePort, RedisProcess } from "../test/support/redis-process.ts";
import { waitForStderr } from "./process-lines.ts";

// `--paths[=NAME,…]`: ftx against TCP over emulated network paths (bench/paths/), instead of the rest.
const pathsFlag = process.argv.find((a) => a === "--paths" || a.startsWith("--paths="));
if (pathsFlag) {
  const { runPaths } = await import("./paths/run-paths.ts");
  process.exit(await runPaths({ only: pathsFlag.split("=")[1]?.split(",").filter(Boolean), source: process.argv.includes("--source") }));
}

const quick = process.argv.includes("--quick");
const work = mkdtempSync(join(tmpdir(), "ftx-bench-"));
/**
 * What runs as ftx: the executable users run, built afresh into the bench's folder (`bun run build`,
 * with bytecode: a process starts in ~10 ms rather than the ~40 ms of parsing the sources), or with
 * `--source` the sources under `bun`.
 */
const ftxCommand = buildFtx(process.argv.includes("--source"));
const procs: ReturnType<typeof Bun.spawn>[] = [];
const results: Record<string, unknown> = { quick, date: new Date().toISOString() };
const rows: string[][] = [];

function buildFtx(fromSource: boolean): string[] {
  const root = resolve(import.meta.dir, "..");
  if (fromSource) return ["bun", join(root, "src/cli.ts")];
  const exe = join(work, "ftx");
  const built = Bun.spawnSync(["bun", "build.ts", exe], { cwd: root, stdout: "ignore", stderr: "pipe" });
  if (built.exitCode !== 0) throw new Error(`bun run build failed: ${built.stderr.toString().trim()}`);
  return [exe];
}

function spawnFtx(args: string[]) {
  const p = Bun.spawn([...ftxCommand, ...args], { stdout: "ignore", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  procs.push(p);
  return p;
}

function waitFor(p: ReturnType<typeof spawnFtx>, re: RegExp): Promise<RegExpMatchArray> {
  return waitForStderr(p.stderr as ReadableStream<Uint8Array>, re);
}

function procStat(pid: number): { cpuSeconds: number; peakRssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  const ticks = Number(stat[11]) + Number(stat[12]);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return { cpuSeconds: ticks / 100, peakRssMiB: Number(status.match(/VmHWM:\s+(\d+)/)![1]) / 1024 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function startMaster(): Promise<{ address: string; port: number; pid: number }> {
  const m = spawnFtx(["master", "--host", "127.0.0.1", "--port", "0", "--max-connections", "20000"]);
  const port = Number((await waitFor(m, /listening on 127\.0\.0\.1:(\d+)/))[1]);
  return { address: `127.0.0.1:${port}`, port, pid: m.pid };
}

/**
 * How many entries `ftx ls --json` shows, run as the benched ftx in a process that does not block
 * this one: the index and shared-index benches keep 1,000 sessions heartbeating from here, and a
 * blocking spawn per listing starved them until their leases ran out.
 */
async function lsCount(address: string): Promise<number> {
  const p = Bun.spawn([...ftxCommand, "ls", address, "--json"], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`ftx ls failed (exit ${code}): ${stderr.trim()}`);
  return (JSON.parse(stdout) as unknown[]).length;
}

async function benchIndex(): Promise<void> {
  const servers = quick ? 200 : 1000;
  const filesEach = 100;
  const master = await startMaster();
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
  while ((await lsCount(master.address)) < total) await Bun.sleep(200);
  const registerSeconds = (performance.now() - t0) / 1000;
  const rssAfterRegistration = Number(readFileSync(`/proc/${master.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)![1]) / 1024;
  console.error(`  master RSS after registration: ${rssAfterRegistration.toFixed(0)} MiB`);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const n = await lsCount(master.address);
    times.push(performance.now() - t);
    if (n !== total) throw new Error(`ls returned ${n}, expected ${total}`);
  }
  const { peakRssMiB } = procStat(master.pid);
  const masterProc = procs.find((p) => p.pid === master.pid)!;
  masterProc.kill("SIGTERM");
  results.index = { servers, filesEach, entries: total, registerSeconds, lsJsonMedianMs: median(times), masterPeakRssMiB: peakRssMiB };
  rows.push([`index: ${servers} servers × ${filesEach} files`, `ls --json median ${median(times).toFixed(0)} ms (whole process)`, `master peak RSS ${peakRssMiB.toFixed(0)} MiB`]);
  for (const t of beats) clearInterval(t);
  for (const s of sessions) s.close();
  await masterProc.exited;
}

async function benchRegistration(): Promise<void> {
  const count = quick ? 2000 : 10_000;
  const dir = join(work, "many");
  for (let i = 0; i < count; i++) {
    const sub = join(dir, `d${i % 100}`);
    if (i < 100) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}.txt`), `file ${i}\n`);
  }
  const master = await startMaster();
  const t0 = performance.now();
  const server = spawnFtx(["serve", dir, "--master", master.address, "--host", "127.0.0.1"]);
  await waitFor(server, /over UDP/);
  while ((await lsCount(master.address)) < count) await Bun.sleep(100);
  const seconds = (performance.now() - t0) / 1000;
  const { peakRssMiB } = procStat(server.pid);
  results.registration = { files: count, secondsUntilAllListed: seconds, serverPeakRssMiB: peakRssMiB };
  rows.push([`serve: ${count} files`, `all listed after ${seconds.toFixed(2)} s`, `server peak RSS ${peakRssMiB.toFixed(0)} MiB`]);
  server.kill("SIGTERM");
}

async function fetchOnce(address: string, name: string, out: string): Promise<{ seconds: number; cpuSeconds: number; maxRssMiB: number; ok: boolean }> {
  rmSync(out, { recursive: true, force: true });
  // Start every sample with no dirty pages from the previous one being written back underneath it.
  Bun.spawnSync(["sync"]);
  const t0 = performance.now();
  // /usr/bin/time measures exactly this process (getrusage of children would mix in other children).
  const timeFile = join(work, "time.txt");
  const p = Bun.spawn(["/usr/bin/time", "-o", timeFile, "-f", "%U %S %M", ...ftxCommand, "fetch", address, name, "-o", out, "--json"], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) console.error(`  fetch failed (exit ${code}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`);
  else console.error(`  fetch: ${(JSON.parse(stdout) as Array<{ seconds: number }>)[0]!.seconds.toFixed(2)} s transfer, ${seconds.toFixed(2)} s wall`);
  const [user, sys, maxKiB] = readFileSync(timeFile, "utf8").trim().split(/\s+/).slice(-3).map(Number);
  const ok = code === 0 && (JSON.parse(stdout) as Array<{ ok: boolean }>)[0]!.ok;
  return { seconds, cpuSeconds: user! + sys!, maxRssMiB: maxKiB! / 1024, ok };
}

async function benchTransfer(): Promise<void> {
  const size = quick ? 64 << 20 : 256 << 20;
  const dir = join(work, "share");
  mkdirSync(dir, { recursive: true });
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(dir, "payload.bin"), data);
  const master = await startMaster();
  const server = spawnFtx(["serve", dir, "--master", master.address, "--host", "127.0.0.1"]);
  const udpPort = Number((await waitFor(server, /over UDP on 127\.0\.0\.1:(\d+)/))[1]);
  while ((await lsCount(master.address)) < 1) await Bun.sleep(100);
  const mib = size / (1 << 20);
  const runs = quick ? 1 : 3;
  // Warm-up, not measured, as in benchPeers: this is the bench's first transfer, and on a VM the first
  // writes into memory never touched before cost far more (one full run: client 2.16 CPU-s per GiB
  // here against 1.69 for the 8 GiB fetch later in the same run).
  await fetchOnce(master.address, "payload.bin", join(work, "out"));

  let serverPid = server.pid;
  const scenario = async (label: string, address: string) => {
    const before = procStat(serverPid);
    const samples = [];
    for (let i = 0; i < runs; i++) samples.push(await fetchOnce(address, "payload.bin", join(work, "out")));
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
    rows.push([
      `fetch ${mib} MiB, ${label}`,
      `${r.medianMBps.toFixed(0)} MB/s (median of ${runs}), intact: ${r.allIntact}`,
      `client ${r.clientCpuSecondsPerGiB.toFixed(2)} CPU-s/GiB, ${r.clientPeakRssMiB.toFixed(0)} MiB; server ${r.serverCpuSecondsPerGiB.toFixed(2)} CPU-s/GiB, ${r.serverPeakRssMiB.toFixed(0)} MiB`,
    ]);
    return r;
  };

  results.transferNoLoss = await scenario("no loss", master.address);

  const nft = nftLoss(udpPort, 50);
  if (nft) {
    try {
      results.transferLoss5 = await scenario("5% loss (nftables)", master.address);
    } finally {
      nft.remove();
    }
    return;
  }
  // 5 % loss without nftables: restart the server behind the relay (it advertises the relay's address).
  server.kill("SIGTERM");
  await server.exited;
  const relay = await ImpairmentRelay.start({ host: "127.0.0.1", port: udpPort }, { both: { loss: 0.05 }, seed: 5 });
  const relayed = spawnFtx(["serve", dir, "--master", master.address, "--host", "127.0.0.1", "--port", String(udpPort), "--advertise", `127.0.0.1:${relay.port}`]);
  await waitFor(relayed, /registered with master/);
  await Bun.sleep(500);
  serverPid = relayed.pid;
  results.transferLoss5 = await scenario("5% loss (relay)", master.address);
  relay.close();
}

/**
 * Multi-source: one file on two file servers, each behind its own relay capped at 40 MB/s (a stand-in
 * for two servers on slower links). The same fetch with one server listed, then with both.
 */
async function benchMultiSource(): Promise<void> {
  const size = quick ? 64 << 20 : 256 << 20;
  const cap = 40e6;
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) data.writeUInt32LE((i * 2246822519) >>> 0, i);
  const dirs = [join(work, "multi-a"), join(work, "multi-b")];
  for (const d of dirs) {
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "multi.bin"), data);
  }
  const master = await startMaster();
  const relays: ImpairmentRelay[] = [];
  const startBehindRelay = async (dir: string) => {
    const udpPort = await freeUdpPort();
    const relay = await ImpairmentRelay.start({ host: "127.0.0.1", port: udpPort }, { toClient: { bytesPerSecond: cap } });
    relays.push(relay);
    const server = spawnFtx(["serve", dir, "--master", master.address, "--host", "127.0.0.1", "--port", String(udpPort), "--advertise", `127.0.0.1:${relay.port}`]);
    await waitFor(server, /registered with master/);
  };
  const runs = quick ? 1 : 3;
  const measure = async (servers: number) => {
    while (((await lsJson(master.address))[0]?.servers.length ?? 0) !== servers) await Bun.sleep(100);
    const samples = [];
    for (let i = 0; i < runs; i++) samples.push(await fetchOnce(master.address, "multi.bin", join(work, "out-multi")));
    return { medianMBps: size / 1e6 / median(samples.map((x) => x.seconds)), allIntact: samples.every((x) => x.ok) };
  };
  await startBehindRelay(dirs[0]!);
  const one = await measure(1);
  await startBehindRelay(dirs[1]!);
  const two = await measure(2);
  for (const r of relays) r.close();
  results.multiSource = { sizeMiB: size >> 20, capMBpsPerServer: cap / 1e6, one, two, speedup: two.medianMBps / one.medianMBps };
  rows.push([
    `multi-source ${size >> 20} MiB, servers behind 40 MB/s relays`,
    `1 server ${one.medianMBps.toFixed(1)} MB/s, 2 servers ${two.medianMBps.toFixed(1)} MB/s: ${(two.medianMBps / one.medianMBps).toFixed(2)}× (target ≥ 1.7×)`,
    `intact: ${one.allIntact && two.allIntact}`,
  ]);
}

/** Several masters on one Redis holding N servers × 100 files: ls latency through each, Redis memory. */
async function benchShared(): Promise<void> {
  if (!RedisProcess.available()) {
    console.error("  (redis-server not installed: shared-index bench skipped; apt-get install redis-server)");
    return;
  }
  const servers = quick ? 200 : 1000;
  const filesEach = 100;
  const redis = await RedisProcess.start();
  try {
    const startShared = async () => {
      const m = spawnFtx(["master", "--host", "127.0.0.1", "--port", "0", "--max-connections", "20000", "--store", redis.url]);
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
      while ((await lsCount(address)) < total) await Bun.sleep(200);
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        if ((await lsCount(address)) !== total) throw new Error("incomplete listing");
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
    results.sharedIndex = { servers, filesEach, lsJsonMs1Master: one, lsJsonMs3Masters: three, redisUsedMemoryMiB: usedMiB };
    rows.push([`shared index (Redis): ${servers} × ${filesEach}`, `ls --json ${one.toFixed(0)} ms via 1 master; ${three.map((t) => t.toFixed(0)).join("/")} ms via each of 3`, `Redis used_memory ${usedMiB.toFixed(0)} MiB`]);
    for (const t of beats) clearInterval(t);
    for (const sess of sessions) sess.close();
  } finally {
    await redis.kill();
  }
}

/** nginx serving a folder on a free port (sendfile on), for curl to fetch from; undefined if absent. */
async function startNginx(root: string): Promise<{ port: number; stop: () => void } | undefined> {
  if (!Bun.which("nginx") && process.getuid?.() === 0) {
    console.error("  (installing nginx-light with apt for the curl ← nginx comparison)");
    Bun.spawnSync(["apt-get", "install", "-y", "nginx-light"], { stdout: "ignore", stderr: "ignore" });
  }
  if (!Bun.which("nginx") || !Bun.which("curl")) {
    console.error("  (nginx or curl not available: curl ← nginx comparison skipped)");
    return undefined;
  }
  // nginx's workers run as an unprivileged user: the (mkdtemp, 0700) work folder must be readable.
  chmodSync(work, 0o755);
  const prefix = join(work, "nginx");
  mkdirSync(join(prefix, "logs"), { recursive: true });
  const port = await freePort();
  writeFileSync(
    join(prefix, "nginx.conf"),
    `worker_processes 1; daemon off; pid ${prefix}/nginx.pid; error_log ${prefix}/logs/error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000;
  server { listen 127.0.0.1:${port}; root ${root}; } }`,
  );
  const p = Bun.spawn(["nginx", "-p", prefix, "-c", join(prefix, "nginx.conf")], { stdout: "ignore", stderr: "ignore" });
  procs.push(p);
  for (let i = 0; i < 50; i++) {
    try {
      const c = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      c.end();
      return { port, stop: () => p.kill("SIGTERM") };
    } catch {
      await Bun.sleep(50);
    }
  }
  return undefined;
}

/** The address atftpd binds: its own, so nftables can drop its traffic whatever ephemeral ports TFTP picks. */
const ATFTP_HOST = "127.0.0.9";

/** atftpd serving a folder (RFC 2348 blksize, RFC 7440 windowsize), for atftp to fetch from; undefined if absent. */
async function startAtftpd(root: string): Promise<{ port: number; stop: () => void } | undefined> {
  if ((!Bun.which("atftpd") || !Bun.which("atftp")) && process.getuid?.() === 0) {
    console.error("  (installing atftp and atftpd with apt for the TFTP comparison)");
    Bun.spawnSync(["apt-get", "install", "-y", "atftp", "atftpd"], { stdout: "ignore", stderr: "ignore" });
  }
  const daemon = Bun.which("atftpd") ?? (existsSync("/usr/sbin/atftpd") ? "/usr/sbin/atftpd" : undefined);
  if (!daemon || !Bun.which("atftp")) {
    console.error("  (atftp or atftpd not available: TFTP comparison skipped)");
    return undefined;
  }
  chmodSync(work, 0o755);
  const probe = await Bun.udpSocket({ hostname: ATFTP_HOST, port: 0 });
  const port = probe.port;
  probe.close();
  const p = Bun.spawn([daemon, "--daemon", "--no-fork", "--user", "nobody", "--group", "nogroup", "--bind-address", ATFTP_HOST, "--port", String(port), "--logfile", "/dev/null", root], {
    stdout: "ignore",
    stderr: "ignore",
  });
  procs.push(p);
  await Bun.sleep(300);
  if (p.exitCode !== null) {
    console.error(`  (atftpd exited with ${p.exitCode}: TFTP comparison skipped)`);
    return undefined;
  }
  return { port, stop: () => p.kill("SIGTERM") };
}

/** The two atftp set-ups the issue names: big blocks with a small window, MTU-sized blocks with a large one. */
const ATFTP_CONFIGS = [
  { label: "atftp 64K×2", blksize: 65464, windowsize: 2 },
  { label: "atftp 1428×64", blksize: 1428, windowsize: 64 },
];

/** One atftp download, killed after `limitSeconds` (at loss TFTP may stall for ever); checked against `expected`. */
async function atftpOnce(port: number, name: string, outPath: string, cfg: (typeof ATFTP_CONFIGS)[number], expected: Uint8Array, limitSeconds: number) {
  rmSync(outPath, { force: true });
  Bun.spawnSync(["sync"]);
  const t0 = performance.now();
  const p = Bun.spawn(["atftp", "--option", `blksize ${cfg.blksize}`, "--option", `windowsize ${cfg.windowsize}`, "-g", "-r", name, "-l", outPath, ATFTP_HOST, String(port)], {
    stdout: "ignore",
    stderr: "ignore",
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), limitSeconds * 1000);
  const code = await p.exited;
  clearTimeout(timer);
  const seconds = (performance.now() - t0) / 1000;
  const ok = code === 0 && existsSync(outPath) && readFileSync(outPath).equals(expected);
  return { seconds, ok, gaveUp: code !== 0 };
}

async function timeCommand(argv: string[]): Promise<{ seconds: number; cpuSeconds: number; maxRssMiB: number; ok: boolean }> {
  Bun.spawnSync(["sync"]);
  const timeFile = join(work, "time-peer.txt");
  const t0 = performance.now();
  const p = Bun.spawn(["/usr/bin/time", "-o", timeFile, "-f", "%U %S %M", ...argv], { stdout: "ignore", stderr: "pipe" });
  const [, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  const seconds = (performance.now() - t0) / 1000;
  const [user, sys, maxKiB] = readFileSync(timeFile, "utf8").trim().split(/\s+/).slice(-3).map(Number);
  if (process.env.BENCH_SAMPLES) console.error(`  sample: ${argv.slice(0, 4).join(" ")}… ${seconds.toFixed(2)} s, user ${user} s, sys ${sys} s`);
  return { seconds, cpuSeconds: user! + sys!, maxRssMiB: maxKiB! / 1024, ok: code === 0 };
}

/**
 * `rounds` samples of ftx and of curl (when there is a curl command), alternating, each into an empty
 * output folder: on a shared machine only samples taken side by side compare.
 */
async function alternate(rounds: number, out: string, ftxArgv: string[], curlArgv: string[] | undefined) {
  const ftx: Awaited<ReturnType<typeof timeCommand>>[] = [];
  const curl: Awaited<ReturnType<typeof timeCommand>>[] = [];
  for (let r = 0; r < rounds; r++) {
    rmSync(out, { recursive: true, force: true });
    ftx.push(await timeCommand(ftxArgv));
    if (curlArgv) {
      rmSync(out, { recursive: true, force: true });
      mkdirSync(out, { recursive: true });
      curl.push(await timeCommand(curlArgv));
    }
  }
  return { ftx, curl };
}

/**
 * ftx against the tool a user would pick instead, in the same run: curl ← nginx (HTTP over TCP) for one
 * large file with 0 %, 1 % and 5 % loss (nftables, both directions of each server's port), and for 100
 * files of 1 MiB in one process; plus 20 concurrent ftx clients on distinct files.
 */
async function benchPeers(): Promise<void> {
  const size = quick ? 64 << 20 : 1 << 30;
  const mib = size / (1 << 20);
  const dir = join(work, "peers");
  mkdirSync(join(dir, "many"), { recursive: true });
  const big = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) big.writeUInt32LE((i * 2246822519) >>> 0, i);
  writeFileSync(join(dir, "big.bin"), big);
  for (let i = 0; i < 100; i++) writeFileSync(join(dir, "many", `${i}.bin`), big.subarray(i << 20, (i + 1) << 20));
  const clients = 20;
  const each = quick ? 4 << 20 : 50 << 20;
  mkdirSync(join(dir, "conc"), { recursive: true });
  for (let i = 0; i < clients; i++) writeFileSync(join(dir, "conc", `${i}.bin`), Buffer.concat([Buffer.from(`client ${i}`), big.subarray(0, each - 9)]));

  const master = await startMaster();
  const server = spawnFtx(["serve", dir, "--master", master.address, "--host", "127.0.0.1"]);
  const udpPort = Number((await waitFor(server, /over UDP on 127\.0\.0\.1:(\d+)/))[1]);
  while ((await lsCount(master.address)) < 1 + 100 + clients) await Bun.sleep(200);
  const nginx = await startNginx(dir);
  const atftpd = await startAtftpd(dir);
  const out = join(work, "peer-out");
  const peerResults: Record<string, unknown> = {};

  // Warm-up, not measured: on a VM the first write into memory never touched before costs far more
  // (measured here: 2.4 s of kernel time per GiB), and would land on whichever tool happens to go first.
  rmSync(out, { recursive: true, force: true });
  await timeCommand([...ftxCommand, "fetch", master.address, "big.bin", "-o", out]);
  if (nginx) await timeCommand(["curl", "-sf", "-o", join(work, "warm.bin"), `http://127.0.0.1:${nginx.port}/big.bin`]);
  rmSync(join(work, "warm.bin"), { force: true });

  for (const permille of [0, 10, 50]) {
    const label = permille === 0 ? "no loss" : `${permille / 10}% loss`;
    const ftxLoss = permille ? nftLoss(udpPort, permille) : undefined;
    const tcpLoss = permille && nginx ? nftLoss(nginx.port, permille, "tcp") : undefined;
    const tftpLoss = permille && atftpd ? nftDrop("tftp", [`ip daddr ${ATFTP_HOST} meta l4proto udp`, `ip saddr ${ATFTP_HOST} meta l4proto udp`], permille) : undefined;
    if (permille && !ftxLoss) {
      console.error(`  (${label}: nftables unavailable, skipped)`);
      continue;
    }
    try {
      // Five samples without loss, where this machine's noise is largest relative to the run; three with.
      const { ftx, curl } = await alternate(
        quick ? 1 : permille ? 3 : 5,
        out,
        [...ftxCommand, "fetch", master.address, "big.bin", "-o", out],
        nginx ? ["curl", "-sf", "-o", join(out, "big.bin"), `http://127.0.0.1:${nginx.port}/big.bin`] : undefined,
      );
      const f = median(ftx.map((x) => size / 1e6 / x.seconds));
      if (curl.some((x) => !x.ok)) throw new Error("curl failed: the comparison would be meaningless");
      const c = curl.length ? median(curl.map((x) => size / 1e6 / x.seconds)) : NaN;
      const clientCpuPerGiB = (median(ftx.map((x) => x.cpuSeconds)) * (1 << 30)) / size;
      peerResults[label] = { ftxMBps: f, curlMBps: c, ratio: f / c, ftxIntact: ftx.every((x) => x.ok), ftxClientCpuSecondsPerGiB: clientCpuPerGiB };
      rows.push([`${mib} MiB, ${label}: ftx vs curl←nginx`, `${f.toFixed(0)} vs ${c.toFixed(0)} MB/s (ftx client ${clientCpuPerGiB.toFixed(2)} CPU-s/GiB)`, `ratio ${(f / c).toFixed(2)}`]);
      if (atftpd) {
        // TFTP at loss can stall for minutes: each run is cut off at 4× ftx's time (at least 20 s, 5 s with --quick), reported as gave up.
        const limit = Math.max(quick ? 5 : 20, (4 * size) / 1e6 / f);
        for (const cfg of ATFTP_CONFIGS) {
          const samples = [];
          for (let r = 0; r < (quick || permille ? 1 : 3); r++) samples.push(await atftpOnce(atftpd.port, "big.bin", join(work, "tftp-out.bin"), cfg, big, limit));
          const good = samples.filter((x) => x.ok);
          const t = good.length === samples.length ? median(good.map((x) => size / 1e6 / x.seconds)) : NaN;
          (peerResults[label] as Record<string, unknown>)[cfg.label] = { MBps: t, ratio: f / t, gaveUp: good.length < samples.length };
          rows.push([`${mib} MiB, ${label}: ftx vs ${cfg.label}`, Number.isNaN(t) ? `${f.toFixed(0)} MB/s vs gave up after ${limit.toFixed(0)} s` : `${f.toFixed(0)} vs ${t.toFixed(0)} MB/s`, Number.isNaN(t) ? "ratio ∞" : `ratio ${(f / t).toFixed(2)}`]);
        }
      }
    } finally {
      ftxLoss?.remove();
      tcpLoss?.remove();
      tftpLoss?.remove();
    }
  }

  // 100 × 1 MiB in one process each; three alternating samples (one with --quick), medians: one
  // sample of a 0.2 s run gave ratios from 0.38 to 0.59 across otherwise equal runs.
  const names = Array.from({ length: 100 }, (_, i) => `many/${i}.bin`);
  const many = await alternate(
    quick ? 1 : 3,
    out,
    [...ftxCommand, "fetch", master.address, ...names, "-o", out],
    nginx ? ["curl", "-sf", "--create-dirs", ...names.flatMap((n) => ["-o", join(out, n), `http://127.0.0.1:${nginx.port}/${n}`])] : undefined,
  );
  if (!many.ftx.every((x) => x.ok) || !many.curl.every((x) => x.ok)) throw new Error("a fetch of the 100 files failed");
  const ftxManySeconds = median(many.ftx.map((x) => x.seconds));
  const curlManySeconds = many.curl.length ? median(many.curl.map((x) => x.seconds)) : undefined;
  const manyRatio = curlManySeconds !== undefined ? curlManySeconds / ftxManySeconds : NaN;
  peerResults.hundredFiles = { ftxSeconds: ftxManySeconds, curlSeconds: curlManySeconds, ratio: manyRatio };
  rows.push(["100 × 1 MiB in one process", `ftx ${ftxManySeconds.toFixed(2)} s vs curl ${curlManySeconds?.toFixed(2) ?? "-"} s (medians)`, `ratio ${manyRatio.toFixed(2)}`]);

  // 20 concurrent clients, distinct files; first one client alone on one of those files (median of 3),
  // the single-client rate for the same work, process start included.
  const alone: number[] = [];
  for (let r = 0; r < (quick ? 1 : 3); r++) {
    rmSync(out, { recursive: true, force: true });
    const one = await timeCommand([...ftxCommand, "fetch", master.address, "conc/0.bin", "-o", join(out, "alone")]);
    if (!one.ok) throw new Error("a single client failed on conc/0.bin");
    alone.push(each / 1e6 / one.seconds);
  }
  const aloneRate = median(alone);
  const bigRate = (peerResults["no loss"] as { ftxMBps?: number } | undefined)?.ftxMBps ?? NaN;
  rmSync(out, { recursive: true, force: true });
  Bun.spawnSync(["sync"]);
  const t0 = performance.now();
  const runs = await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const t = performance.now();
      const p = Bun.spawn([...ftxCommand, "fetch", master.address, `conc/${i}.bin`, "-o", join(out, String(i))], { stdout: "ignore", stderr: "ignore" });
      const code = await p.exited;
      return { seconds: (performance.now() - t) / 1000, ok: code === 0 };
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const aggregate = (clients * each) / 1e6 / wall;
  const rates = runs.map((r) => each / 1e6 / r.seconds);
  const fairness = Math.min(...rates) / Math.max(...rates);
  peerResults.concurrent = {
    clients,
    fileMiB: each / (1 << 20),
    aggregateMBps: aggregate,
    aloneMBps: aloneRate,
    overAlone: aggregate / aloneRate,
    overOneGiB: aggregate / bigRate,
    slowestOverFastest: fairness,
    allIntact: runs.every((r) => r.ok),
  };
  rows.push([`${clients} concurrent clients × ${each / (1 << 20)} MiB`, `aggregate ${aggregate.toFixed(0)} MB/s, all ok: ${runs.every((r) => r.ok)}`, `slowest/fastest ${fairness.toFixed(2)}`]);
  rows.push([
    `  the same aggregate against one client`,
    `alone on one of the files: ${aloneRate.toFixed(0)} MB/s`,
    `ratio ${(aggregate / aloneRate).toFixed(2)} (${(aggregate / bigRate).toFixed(2)} of the ${mib} MiB rate)`,
  ]);
  results.peers = peerResults;
  nginx?.stop();
  atftpd?.stop();
  server.kill("SIGTERM");
}

/** Memory whatever the size: a sparse 8 GiB file fetched on loopback; peak RSS of client and server. */
async function benchSparse(): Promise<void> {
  if (quick) return;
  const size = 8 * 2 ** 30;
  const dir = join(work, "sparse");
  mkdirSync(dir, { recursive: true });
  const fd = openSync(join(dir, "sparse8g.bin"), "w");
  ftruncateSync(fd, size);
  closeSync(fd);
  const master = await startMaster();
  const server = spawnFtx(["serve", dir, "--master", master.address, "--host", "127.0.0.1"]);
  await waitFor(server, /over UDP on/);
  const t0 = performance.now();
  while ((await lsCount(master.address)) < 1) await Bun.sleep(200);
  console.error(`  sparse 8 GiB hashed and listed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const out = join(work, "sparse-out");
  const r = await fetchOnce(master.address, "sparse8g.bin", out);
  const srv = procStat(server.pid);
  rmSync(out, { recursive: true, force: true });
  server.kill("SIGTERM");
  results.sparse8GiB = { MBps: size / 1e6 / r.seconds, intact: r.ok, clientPeakRssMiB: r.maxRssMiB, clientCpuSecondsPerGiB: r.cpuSeconds / 8, serverPeakRssMiB: srv.peakRssMiB };
  rows.push([
    "fetch 8 GiB (sparse), no loss",
    `${(size / 1e6 / r.seconds).toFixed(0)} MB/s, intact: ${r.ok}`,
    `client peak ${r.maxRssMiB.toFixed(0)} MiB, ${(r.cpuSeconds / 8).toFixed(2)} CPU-s/GiB; server peak ${srv.peakRssMiB.toFixed(0)} MiB`,
  ]);
}

const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);
/** Random loss on one port, both directions, with nftables; undefined when nft is unavailable. */
function nftLoss(port: number, permille: number, proto: "udp" | "tcp" = "udp"): { remove: () => void } | undefined {
  return nftDrop(`${proto}_${port}`, [`${proto} dport ${port}`, `${proto} sport ${port}`], permille);
}

/** Drop `permille`/1000 of the packets matching each nftables expression, in the input hook; undefined if nft fails. */
function nftDrop(name: string, matches: string[], permille: number): { remove: () => void } | undefined {
  const table = `ftx_bench_${process.pid}_${name.replace(/[^a-z0-9_]/gi, "_")}`;
  const rules = [
    `add table inet ${table}`,
    `add chain inet ${table} input { type filter hook input priority 0 ; policy accept ; }`,
    ...matches.map((m) => `add rule inet ${table} input ${m} numgen random mod 1000 < ${permille} drop`),
  ].join("\n");
  const r = Bun.spawnSync(["nft", "-f", "-"], { stdin: Buffer.from(rules), stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) {
    console.error(`  (nftables unavailable: ${r.stderr.toString().trim() || "exit " + r.exitCode}; using the relay)`);
    return undefined;
  }
  return { remove: () => void Bun.spawnSync(["nft", "delete", "table", "inet", table]) };
}

try {
  if (!only || only === "index") await benchIndex();
  if (!only || only === "registration") await benchRegistration();
  if (!only || only === "transfer") await benchTransfer();
  if (!only || only === "multi") await benchMultiSource();
  if (!only || only === "shared") await benchShared();
  if (!only || only === "peers") await benchPeers();
  if (!only || only === "sparse") await benchSparse();
} finally {
  for (const p of procs) p.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
}

const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
console.log(rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ")).join("\n"));
const outDir = resolve(import.meta.dir, "results");
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, "latest.json"), JSON.stringify(results, null, 2));
console.log(`\nJSON: ${join(outDir, "latest.json")}`);
process.exit(0);
