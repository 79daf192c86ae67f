/**
 * `bun run bench --paths[=NAME,NAME]`: ftx against curl ← nginx over TCP BBR and TCP CUBIC, on the same
 * emulated paths, in one run (paths.ts lists them). For each path: two network namespaces joined by the
 * path; in the server's, `ftx master`, `ftx serve` and nginx sharing one file; from the client's, `ftx
 * fetch` and `curl -o` alternate, with the server namespace's TCP congestion control switched between
 * the two curl samples (the TCP sender is nginx, on the server side). Medians of BENCH_SAMPLES samples
 * (default 3); a sample that takes longer than BENCH_PATH_CAP_S (default 60) is stopped and counted as
 * "> 60 s". Prints a table, writes bench/results/paths-latest.json. Linux, root, nginx (installed with
 * apt when missing), curl, nft for the lossy LANs.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { writePathsChart } from "../chart.ts";
import { waitForStderr } from "../process-lines.ts";
import { nsExec, PathNamespaces, readSysctl, SERVER_ADDRESS, sysctl, type EmulatorCounters } from "./netns.ts";
import { fileBytesFor, selectPaths, type PathSpec } from "./paths.ts";
import { median, procStat } from "../lib/measure.ts";

export interface PathsOptions {
  /** Path names; all the default ones when absent. */
  only?: string[];
  /** Run `bun src/cli.ts` instead of the built executable. */
  source?: boolean;
}

const MASTER_PORT = 7700;
const NGINX_PORT = 8080;
const CONGESTION_CONTROLS = ["bbr", "cubic"] as const;
type Tool = "ftx" | (typeof CONGESTION_CONTROLS)[number];

interface Sample {
  seconds: number;
  /** Stopped at the time cap. */
  capped: boolean;
  intact: boolean;
  /** The exit code, when not 0. */
  failed?: number | null;
  /** ftx only: CPU seconds (user + system, all threads) of the fetch, and of the file server meanwhile. */
  clientCpu?: number;
  serverCpu?: number;
}

interface PathResult {
  name: string;
  label: string;
  fileBytes: number;
  samples: Record<Tool, Sample[]>;
  medianMBps: Record<Tool, number | undefined>;
  utilisation: number | undefined;
  /** The lossless LAN: 20 clients at once, aggregate MB/s of ftx and of TCP BBR (each client its own copy). */
  concurrent?: { clients: number; ftxMBps: number; bbrMBps: number; ftxIntact: number };
  /** ftx's share of the path with one TCP BBR download beside it (BENCH_PATH_SHARE=1). */
  shareBesideBbr?: number;
  /** ftx with --insecure-plaintext, each right after a sealed sample (BENCH_PATH_CLEAR=1): what sealing costs. */
  clear?: Sample[];
  emulator: EmulatorCounters | undefined;
}

const CONCURRENT_CLIENTS = 20;
const CONCURRENT_FILE_BYTES = 128 << 20;

const live = { namespaces: new Set<PathNamespaces>(), procs: new Set<ReturnType<typeof Bun.spawn>>() };

async function stopProcess(p: ReturnType<typeof Bun.spawn>): Promise<void> {
  live.procs.delete(p);
  if (p.exitCode !== null || p.signalCode !== null) return;
  // SIGTERM first: nginx's master stops its workers only then.
  p.kill("SIGTERM");
  const timer = setTimeout(() => p.kill("SIGKILL"), 3000);
  await p.exited;
  clearTimeout(timer);
}

async function cleanUp(): Promise<void> {
  await Promise.all([...live.procs].map(stopProcess));
  for (const ns of live.namespaces) await ns.close();
  live.namespaces.clear();
}

function spawnIn(ns: string, argv: string[]): ReturnType<typeof Bun.spawn> {
  const p = Bun.spawn(nsExec(ns, argv), { stdout: "ignore", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  live.procs.add(p);
  return p;
}

/** Runs `argv` in `ns`, stopped after `capSeconds`; its wall time, whether it hit the cap, its exit code. */
async function timed(ns: string, argv: string[], capSeconds: number): Promise<{ seconds: number; capped: boolean; code: number | null; stdout: string; stderr: string; cpuSeconds: number }> {
  Bun.spawnSync(["sync"]);
  const t0 = performance.now();
  const p = Bun.spawn(nsExec(ns, argv), { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  live.procs.add(p);
  let capped = false;
  const timer = setTimeout(() => {
    capped = true;
    p.kill("SIGKILL");
  }, capSeconds * 1000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const seconds = (performance.now() - t0) / 1000;
  clearTimeout(timer);
  live.procs.delete(p);
  // `ip netns exec` replaces itself with the command: this is the command's own CPU.
  const usage = p.resourceUsage();
  const cpuSeconds = usage ? Number(usage.cpuTime.user + usage.cpuTime.system) / 1e6 : NaN;
  return { seconds, capped, code, stdout, stderr, cpuSeconds };
}

async function sha256File(path: string): Promise<string | undefined> {
  if (!existsSync(path)) return undefined;
  const h = new Bun.CryptoHasher("sha256");
  const reader = Bun.file(path).stream().getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    h.update(value);
  }
  return h.digest("hex");
}

/** The file shared on a path: `bytes` of a pattern no compressor shrinks much; its SHA-256. */
function makeShare(work: string, bytes: number): { dir: string; sha256: string } {
  const dir = join(work, `share-${bytes >> 20}m`);
  const file = join(dir, "payload.bin");
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4) data.writeUInt32LE((Math.imul(i, 2654435761) ^ (i >>> 13)) >>> 0, i);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    writeFileSync(file, data, { mode: 0o644 });
  }
  return { dir, sha256: new Bun.CryptoHasher("sha256").update(data).digest("hex") };
}

function ensureNginx(): boolean {
  if (!Bun.which("nginx")) {
    console.error("  (installing nginx-light with apt for the curl ← nginx comparison)");
    Bun.spawnSync(["apt-get", "install", "-y", "nginx-light"], { stdout: "ignore", stderr: "ignore" });
  }
  return Bun.which("nginx") !== null && Bun.which("curl") !== null;
}

function startNginx(ns: string, work: string, tag: string, root: string): ReturnType<typeof Bun.spawn> {
  const prefix = join(work, `nginx-${tag}`);
  mkdirSync(join(prefix, "logs"), { recursive: true });
  writeFileSync(
    join(prefix, "nginx.conf"),
    `worker_processes 1; daemon off; pid ${prefix}/nginx.pid; error_log ${prefix}/logs/error.log;
events { worker_connections 64; }
http { access_log off; sendfile on; tcp_nopush on;
  server { listen ${SERVER_ADDRESS}:${NGINX_PORT}; root ${root}; } }`,
  );
  return spawnIn(ns, ["nginx", "-p", prefix, "-c", join(prefix, "nginx.conf")]);
}

function fmtRate(mbps: number | undefined, capSeconds: number): string {
  if (mbps === undefined) return `> ${capSeconds} s`;
  return mbps >= 10 ? mbps.toFixed(0) : mbps.toFixed(2);
}

/** ftx's median over a TCP median; a bound ("< x", "> x") when one of them hit the cap. */
function fmtRatio(ftx: number | undefined, tcp: number | undefined, capRate: number): string {
  if (ftx !== undefined && tcp !== undefined) return (ftx / tcp).toFixed(2);
  if (ftx === undefined && tcp !== undefined) return `< ${(capRate / tcp).toFixed(2)}`;
  if (ftx !== undefined && tcp === undefined) return `> ${(ftx / capRate).toFixed(2)}`;
  return "-";
}

async function measurePath(spec: PathSpec, index: number, ctx: { work: string; ftx: string[]; samples: number; capSeconds: number; warm: boolean; share: boolean; clear: boolean }): Promise<PathResult> {
  const { work, ftx, samples, capSeconds } = ctx;
  const fileBytes = fileBytesFor(spec.link);
  const share = makeShare(work, fileBytes);
  // For the share beside TCP: a file TCP keeps downloading for the whole of ftx's fetch.
  const longBytes = 4 * fileBytes;
  if (ctx.share && !existsSync(join(share.dir, "tcp-long.bin"))) writeFileSync(join(share.dir, "tcp-long.bin"), Buffer.alloc(longBytes, 0x5a));
  const tag = `${process.pid % 100000}-${index}`;
  console.error(`${spec.name}: ${spec.label}, ${fileBytes >> 20} MiB`);
  const ns = await PathNamespaces.create(tag, spec.link);
  live.namespaces.add(ns);
  const result: PathResult = {
    name: spec.name,
    label: spec.label,
    fileBytes,
    samples: { ftx: [], bbr: [], cubic: [] },
    medianMBps: { ftx: undefined, bbr: undefined, cubic: undefined },
    utilisation: undefined,
    emulator: undefined,
  };
  try {
    const master = `${SERVER_ADDRESS}:${MASTER_PORT}`;
    // With BENCH_PATH_CLEAR=1 both allow --insecure-plaintext (sessions stay sealed unless a fetch asks).
    const allowClear = ctx.clear ? ["--insecure-plaintext"] : [];
    const m = spawnIn(ns.server, [...ftx, "master", "--host", SERVER_ADDRESS, "--port", String(MASTER_PORT), ...allowClear]);
    await waitForStderr(m.stderr as ReadableStream<Uint8Array>, /listening on/);
    // The lossless LAN also measures 20 clients at once (the datapath issue's "20 concurrent clients").
    const concurrent = spec.link.kind === "veth" && spec.link.lossPct === 0;
    const concurrentFile = join(share.dir, "clients.bin");
    if (concurrent && !existsSync(concurrentFile)) writeFileSync(concurrentFile, Buffer.alloc(CONCURRENT_FILE_BYTES, 0x3c), { mode: 0o644 });
    const s = spawnIn(ns.server, [...ftx, "serve", share.dir, "--master", master, "--host", SERVER_ADDRESS, ...allowClear]);
    await waitForStderr(s.stderr as ReadableStream<Uint8Array>, /registered with master/);
    startNginx(ns.server, work, tag, share.dir);
    // Both servers answer across the path before the first sample.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ls = Bun.spawnSync(nsExec(ns.client, [...ftx, "ls", master, "--json"]), { stdout: "pipe", stderr: "ignore" });
      const head = Bun.spawnSync(nsExec(ns.client, ["curl", "-sf", "--max-time", "5", "-r", "0-0", "-o", "/dev/null", `http://${SERVER_ADDRESS}:${NGINX_PORT}/payload.bin`]));
      if (ls.exitCode === 0 && ls.stdout.toString().includes("payload.bin") && head.exitCode === 0) break;
      if (Date.now() > deadline) throw new Error("ftx or nginx not reachable across the path after 30 s");
      await Bun.sleep(200);
    }

    const runFtx = async (out = join(work, `out-${tag}`), extra: string[] = []): Promise<Sample> => {
      rmSync(out, { recursive: true, force: true });
      const serverBefore = procStat(s.pid).cpuSeconds;
      const r = await timed(ns.client, [...ftx, "fetch", master, "payload.bin", "-o", out, "--json", ...extra], capSeconds);
      const serverCpu = procStat(s.pid).cpuSeconds - serverBefore;
      const intact = r.code === 0 && (await sha256File(join(out, "payload.bin"))) === share.sha256;
      // A failed fetch says why in its last line: show it, a bench that only counts failures hides bugs.
      if (r.code !== 0 && !r.capped) console.log(`  ftx fetch failed (exit ${r.code}): ${r.stderr.trim().split("\n").at(-1)}`);
      return { seconds: r.capped ? Infinity : r.seconds, capped: r.capped, intact, clientCpu: r.cpuSeconds, serverCpu, ...(r.code !== 0 && !r.capped && { failed: r.code }) };
    };
    const runCurl = async (cc: "bbr" | "cubic", out = join(work, `out-${tag}`)): Promise<Sample> => {
      // New connections take the namespace's default; nginx's accepted sockets are such connections.
      sysctl(ns.server, "net.ipv4.tcp_congestion_control", cc);
      rmSync(out, { recursive: true, force: true });
      mkdirSync(out, { recursive: true });
      const file = join(out, "payload.bin");
      const r = await timed(ns.client, ["curl", "-sf", "--max-time", String(capSeconds), "-o", file, `http://${SERVER_ADDRESS}:${NGINX_PORT}/payload.bin`], capSeconds + 5);
      // curl's own --max-time stops it first (exit 28): that is the cap too.
      const capped = r.capped || r.code === 28;
      const intact = r.code === 0 && (await sha256File(file)) === share.sha256;
      return { seconds: capped ? Infinity : r.seconds, capped, intact, ...(r.code !== 0 && !capped && { failed: r.code }) };
    };
    if (ctx.warm) {
      // Untimed, once per run: on a VM the first writes into memory never touched cost far more.
      await runFtx();
      await runCurl("bbr");
    }
    const mb = fileBytes / 1e6;
    const show = (x: Sample) =>
      x.capped ? `> ${capSeconds} s` : x.failed !== undefined ? `failed (exit ${x.failed})` : `${(mb / x.seconds).toFixed(2)} MB/s${x.intact ? "" : " (NOT intact)"}`;
    for (let i = 0; i < samples; i++) {
      const f = await runFtx();
      result.samples.ftx.push(f);
      const line = [`ftx ${show(f)}`];
      if (ctx.clear) {
        const c = await runFtx(undefined, ["--insecure-plaintext"]);
        (result.clear ??= []).push(c);
        line.push(`ftx clear ${show(c)}`);
      }
      for (const cc of CONGESTION_CONTROLS) {
        const t = await runCurl(cc);
        result.samples[cc].push(t);
        line.push(`${cc} ${show(t)}`);
      }
      console.error(`  sample ${i + 1}: ${line.join(", ")}`);
    }
    for (const tool of ["ftx", ...CONGESTION_CONTROLS] as const) {
      // A failed sample counts as never finishing: the median cannot be flattered by a quick failure.
      const secs = median(result.samples[tool].map((x) => (x.capped || x.failed !== undefined ? Infinity : x.seconds)));
      result.medianMBps[tool] = Number.isFinite(secs) ? mb / secs : undefined;
    }
    const link = spec.link;
    if (link.kind === "emulator" && link.rateMbit > 0 && result.medianMBps.ftx !== undefined) {
      result.utilisation = result.medianMBps.ftx / ((link.rateMbit / 8) * (1 - link.lossPct / 100));
    }
    if (link.kind === "emulator" && link.rateMbit > 0 && ctx.share) {
      // One TCP BBR download running already (2 s, past its start-up) and long enough to outlast
      // ftx's fetch; ftx's share is what it moved over what both moved while it ran, TCP's part
      // read off the growth of curl's output file.
      const linkMBps = (link.rateMbit / 8) * (1 - link.lossPct / 100);
      const shares: number[] = [];
      for (let i = 0; i < samples; i++) {
        sysctl(ns.server, "net.ipv4.tcp_congestion_control", "bbr");
        const dir = join(work, `share-tcp-${tag}`);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        const tcpFile = join(dir, "tcp-long.bin");
        const cap = Math.ceil(longBytes / 1e6 / linkMBps) * 3 + 10;
        const tcp = timed(ns.client, ["curl", "-sf", "--max-time", String(cap), "-o", tcpFile, `http://${SERVER_ADDRESS}:${NGINX_PORT}/tcp-long.bin`], cap + 5);
        await Bun.sleep(2000);
        const sizeOf = () => (existsSync(tcpFile) ? statSync(tcpFile).size : 0);
        const tcpBefore = sizeOf();
        const f = await runFtx(join(work, `share-ftx-${tag}`));
        const tcpDuring = sizeOf() - tcpBefore;
        const t = await tcp;
        const tcpDone = t.code === 0 && sizeOf() === longBytes;
        if (f.capped || f.failed !== undefined || tcpBefore === 0) continue;
        // TCP done before ftx: the overlap was shorter than ftx's fetch; still what both moved then.
        shares.push(fileBytes / (fileBytes + tcpDuring));
        console.error(
          `  beside TCP BBR ${i + 1}: ftx ${(mb / f.seconds).toFixed(2)} MB/s, TCP ${(tcpDuring / 1e6 / f.seconds).toFixed(2)} MB/s meanwhile${tcpDone ? "" : " (TCP did not finish)"}: ftx's share ${shares.at(-1)!.toFixed(2)}, together ${((mb + tcpDuring / 1e6) / f.seconds / linkMBps).toFixed(2)} of the link`,
        );
      }
      result.shareBesideBbr = shares.length > 0 ? median(shares) : undefined;
    }
    if (concurrent) {
      const all = async (argv: (i: number) => string[]): Promise<{ seconds: number; ok: number }> => {
        Bun.spawnSync(["sync"]);
        const t0 = performance.now();
        const codes = await Promise.all(
          Array.from({ length: CONCURRENT_CLIENTS }, async (_, i) => {
            mkdirSync(join(work, `many-${tag}`, String(i)), { recursive: true });
            const p = Bun.spawn(nsExec(ns.client, argv(i)), { stdout: "ignore", stderr: "ignore" });
            live.procs.add(p);
            const code = await p.exited;
            live.procs.delete(p);
            return code;
          }),
        );
        return { seconds: (performance.now() - t0) / 1000, ok: codes.filter((c) => c === 0).length };
      };
      const total = (CONCURRENT_CLIENTS * CONCURRENT_FILE_BYTES) / 1e6;
      const f = await all((i) => [...ftx, "fetch", master, "clients.bin", "-o", join(work, `many-${tag}`, String(i))]);
      rmSync(join(work, `many-${tag}`), { recursive: true, force: true });
      sysctl(ns.server, "net.ipv4.tcp_congestion_control", "bbr");
      const t = await all((i) => ["curl", "-sf", "-o", join(work, `many-${tag}`, String(i), "clients.bin"), `http://${SERVER_ADDRESS}:${NGINX_PORT}/clients.bin`]);
      rmSync(join(work, `many-${tag}`), { recursive: true, force: true });
      result.concurrent = { clients: CONCURRENT_CLIENTS, ftxMBps: total / f.seconds, bbrMBps: total / t.seconds, ftxIntact: f.ok };
      console.error(
        `  ${CONCURRENT_CLIENTS} clients at once, ${CONCURRENT_FILE_BYTES >> 20} MiB each: ftx ${(total / f.seconds).toFixed(0)} MB/s (${f.ok} intact), ` +
          `TCP BBR ${(total / t.seconds).toFixed(0)} MB/s (${t.ok} done): ${(t.seconds / f.seconds).toFixed(2)}×`,
      );
    }
    rmSync(join(work, `out-${tag}`), { recursive: true, force: true });
  } finally {
    await Promise.all([...live.procs].map(stopProcess));
    result.emulator = await ns.close();
    live.namespaces.delete(ns);
  }
  if (result.emulator?.aToB?.released !== undefined) {
    const { aToB, bToA, peakPacketsPerSec } = result.emulator;
    console.error(
      `  emulator: to server ${aToB.released} packets, ${aToB.lost} lost, ${aToB.dropped} queue drops; to client ${bToA.released} packets, ${bToA.lost} lost, ${bToA.dropped} queue drops; ` +
        `fell behind (TUN drops) ${(aToB.tunTxDropped ?? 0) + (bToA.tunTxDropped ?? 0)}; peak ${peakPacketsPerSec} packets/s`,
    );
  }
  return result;
}

export async function runPaths(options: PathsOptions): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error("bench --paths needs root (network namespaces, TUN devices, sysctl)");
    return 1;
  }
  const specs = selectPaths(options.only);
  if (specs.some((s) => s.link.kind === "veth" && s.link.lossPct > 0) && !Bun.which("nft")) {
    console.error("  (installing nftables with apt for the lossy LAN paths)");
    Bun.spawnSync(["apt-get", "install", "-y", "nftables"], { stdout: "ignore", stderr: "ignore" });
  }
  if (!ensureNginx()) {
    console.error("nginx or curl not available: the comparison needs both");
    return 1;
  }
  const samples = Math.max(1, Math.floor(Number(process.env.BENCH_SAMPLES) || 3));
  const capSeconds = Math.max(1, Number(process.env.BENCH_PATH_CAP_S) || 60);
  const work = mkdtempSync(join(tmpdir(), "ftx-paths-"));
  // nginx's worker runs as an unprivileged user: the work folder must be readable.
  chmodSync(work, 0o755);
  const root = resolve(import.meta.dir, "../..");
  let ftx: string[];
  if (options.source) ftx = [process.execPath, join(root, "src/cli.ts")];
  else {
    const exe = join(work, "ftx");
    const built = Bun.spawnSync([process.execPath, "build.ts", exe], { cwd: root, stdout: "ignore", stderr: "pipe" });
    if (built.exitCode !== 0) throw new Error(`bun build.ts failed: ${built.stderr.toString().trim()}`);
    ftx = [exe];
  }
  const allowedBefore = readSysctl("net.ipv4.tcp_allowed_congestion_control");
  sysctl(undefined, "net.ipv4.tcp_allowed_congestion_control", "reno bbr cubic");
  const interrupted = async () => {
    await cleanUp();
    sysctl(undefined, "net.ipv4.tcp_allowed_congestion_control", allowedBefore);
    rmSync(work, { recursive: true, force: true });
    process.exit(130);
  };
  process.on("SIGINT", interrupted);
  process.on("SIGTERM", interrupted);
  const results: PathResult[] = [];
  try {
    for (const [i, spec] of specs.entries()) {
      try {
        results.push(await measurePath(spec, i, { work, ftx, samples, capSeconds, warm: i === 0, share: process.env.BENCH_PATH_SHARE === "1", clear: process.env.BENCH_PATH_CLEAR === "1" }));
      } catch (e) {
        console.error(`  ${spec.name} failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  } finally {
    await cleanUp();
    sysctl(undefined, "net.ipv4.tcp_allowed_congestion_control", allowedBefore);
    rmSync(work, { recursive: true, force: true });
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
  }

  const header = ["path", "file", "ftx MB/s", "TCP BBR MB/s", "TCP CUBIC MB/s", "ftx/BBR", "ftx/CUBIC", "link use", "ftx intact", "share beside BBR", "ftx CPU s/GiB client/server"];
  const cpuPerGiB = (r: PathResult, side: "clientCpu" | "serverCpu") => median(r.samples.ftx.map((x) => (x[side] ?? NaN) / (r.fileBytes / 2 ** 30)));
  const rows = results.map((r) => {
    const capRate = r.fileBytes / 1e6 / capSeconds;
    return [
      r.name,
      `${r.fileBytes >> 20} MiB`,
      fmtRate(r.medianMBps.ftx, capSeconds),
      fmtRate(r.medianMBps.bbr, capSeconds),
      fmtRate(r.medianMBps.cubic, capSeconds),
      fmtRatio(r.medianMBps.ftx, r.medianMBps.bbr, capRate),
      fmtRatio(r.medianMBps.ftx, r.medianMBps.cubic, capRate),
      r.utilisation === undefined ? "-" : `${(r.utilisation * 100).toFixed(0)} %`,
      `${r.samples.ftx.filter((x) => x.intact).length}/${r.samples.ftx.length}`,
      r.shareBesideBbr === undefined ? "-" : r.shareBesideBbr.toFixed(2),
      `${cpuPerGiB(r, "clientCpu").toFixed(2)} / ${cpuPerGiB(r, "serverCpu").toFixed(2)}`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  console.log([header, ...rows].map((r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")).join("\n"));
  for (const r of results) {
    const c = r.concurrent;
    if (c) console.log(`${r.name}, ${c.clients} clients at once: ftx ${c.ftxMBps.toFixed(0)} MB/s aggregate (${c.ftxIntact}/${c.clients} intact), TCP BBR ${c.bbrMBps.toFixed(0)} MB/s: ${(c.ftxMBps / c.bbrMBps).toFixed(2)}×`);
  }
  const clearRows = results.filter((r) => r.clear && r.clear.length > 0);
  if (clearRows.length > 0) {
    console.log("\nwhat sealing costs (BENCH_PATH_CLEAR=1: each sealed ftx sample followed by one with --insecure-plaintext)");
    const perGiB = (xs: Sample[], side: "clientCpu" | "serverCpu", bytes: number) => median(xs.map((x) => (x[side] ?? NaN) / (bytes / 2 ** 30)));
    for (const r of clearRows) {
      const secs = median(r.clear!.map((x) => (x.capped || x.failed !== undefined ? Infinity : x.seconds)));
      const clearMBps = r.fileBytes / 1e6 / secs;
      const sealed = r.medianMBps.ftx;
      console.log(
        `${r.name}: sealed ${fmtRate(sealed, capSeconds)} MB/s, clear ${fmtRate(clearMBps, capSeconds)} MB/s: ${sealed === undefined ? "-" : (sealed / clearMBps).toFixed(2)}×; ` +
          `CPU s/GiB client ${perGiB(r.samples.ftx, "clientCpu", r.fileBytes).toFixed(2)} vs ${perGiB(r.clear!, "clientCpu", r.fileBytes).toFixed(2)}, ` +
          `server ${perGiB(r.samples.ftx, "serverCpu", r.fileBytes).toFixed(2)} vs ${perGiB(r.clear!, "serverCpu", r.fileBytes).toFixed(2)}; clear intact ${r.clear!.filter((x) => x.intact).length}/${r.clear!.length}`,
      );
    }
  }
  console.log(`\nmedians of ${samples} samples, alternating ftx / BBR / CUBIC; a sample is stopped after ${capSeconds} s`);
  for (const r of results) console.log(`  ${r.name}: ${r.label}`);
  if (process.env.BENCH_PATH_EMULATOR) console.log(`emulated paths through ${process.env.BENCH_PATH_EMULATOR}, not bench/paths/emulator.ts`);
  const outDir = resolve(import.meta.dir, "../results");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "paths-latest.json"), JSON.stringify({ date: new Date().toISOString(), samples, capSeconds, paths: results }, null, 2));
  console.log(`\nJSON: ${join(outDir, "paths-latest.json")}`);
  writePathsChart({ date: new Date().toISOString(), samples, capSeconds, paths: results }, join(outDir, "paths-latest.svg"));
  console.log(`SVG:  ${join(outDir, "paths-latest.svg")}`);
  return results.length === specs.length ? 0 : 1;
}
