/**
 * `bun bench/paths/diag.ts RATE_MBIT RTT_MS LOSS_PCT [MiB]` (RATE_MBIT `lan`: the veth LAN, loss by
 * nftables): one ftx fetch over an emulated path with
 * the file server and the client at --verbose, their logs in /tmp/ftx-diag/: for finding out where a
 * path's time goes, not for measuring (the bench does that). With DIAG_BESIDE_TCP=1, a TCP BBR
 * download (curl ← nginx) of a file 4× as large runs from 2 s before the fetch, as the bench's share
 * measurement does. With DIAG_PROFILE=1, both write CPU profiles (and their markdown) to /tmp/ftx-diag/prof.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PathNamespaces, SERVER_ADDRESS } from "./netns.ts";

const [rate = "100", rtt = "50", loss = "0", mib = "16", burst = "0"] = process.argv.slice(2);
const dir = "/tmp/ftx-diag";
mkdirSync(join(dir, "share"), { recursive: true });
writeFileSync(join(dir, "share", "payload.bin"), crypto.getRandomValues(new Uint8Array(Number(mib) << 20)));
const root = join(import.meta.dir, "../..");
// DIAG_PROFILE=1: the file server and the client write CPU profiles (markdown too) to /tmp/ftx-diag/prof.
const profile = process.env.DIAG_PROFILE === "1" ? ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${join(dir, "prof")}`] : [];
// DIAG_TIME=1: the client's and the server's CPU time (user, system) at the end of their logs.
const timed = process.env.DIAG_TIME === "1" ? ["/usr/bin/time", "-f", "CPU user %U s, system %S s, wall %e s"] : [];
const clear = process.env.DIAG_CLEAR === "1" ? ["--insecure-plaintext"] : [];
const ftx = [...timed, "bun", ...profile, join(root, "src/cli.ts")];
const link =
  rate === "lan"
    ? ({ kind: "veth", lossPct: Number(loss) } as const)
    : ({ kind: "emulator", rateMbit: Number(rate), delayMs: Number(rtt) / 2, queueMs: 50, lossPct: Number(loss), burst: Number(burst), seed: 7 } as const);
const ns = await PathNamespaces.create(`d${process.pid}`, link);
const procs: ReturnType<typeof Bun.spawn>[] = [];
try {
  const t0 = performance.now();
  const exec = (n: string, argv: string[], log: string) => {
    const p = Bun.spawn(["ip", "netns", "exec", n, ...argv], { stdout: "ignore", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
    procs.push(p);
    // Each line stamped with the ms since the fetch began, to see where the time goes.
    void (async () => {
      const lines: string[] = [];
      const decoder = new TextDecoder();
      for await (const chunk of p.stderr as ReadableStream<Uint8Array>) {
        for (const line of decoder.decode(chunk).split("\n")) if (line) lines.push(`${(performance.now() - fetchStart).toFixed(0).padStart(6)} ${line}`);
        writeFileSync(join(dir, log), lines.join("\n") + "\n");
      }
    })();
    return p;
  };
  let fetchStart = t0;
  if (process.env.DIAG_BESIDE_TCP === "1") {
    writeFileSync(join(dir, "share", "tcp-long.bin"), new Uint8Array(Number(mib) << 22));
    const prefix = join(dir, "nginx");
    mkdirSync(join(prefix, "logs"), { recursive: true });
    writeFileSync(
      join(prefix, "nginx.conf"),
      `worker_processes 1; daemon off; pid ${prefix}/nginx.pid; error_log ${prefix}/logs/error.log;
events { worker_connections 64; }
http { access_log off; sendfile on; tcp_nopush on; server { listen ${SERVER_ADDRESS}:8080; root ${join(dir, "share")}; } }`,
    );
    Bun.spawnSync(["ip", "netns", "exec", ns.server, "sysctl", "-qw", "net.ipv4.tcp_congestion_control=bbr"]);
    exec(ns.server, ["nginx", "-p", prefix, "-c", join(prefix, "nginx.conf")], "nginx.log");
  }
  exec(ns.server, [...ftx, "master", "--host", SERVER_ADDRESS, "--port", "7700", ...clear], "master.log");
  await Bun.sleep(500);
  exec(ns.server, [...ftx, "serve", join(dir, "share"), "--master", `${SERVER_ADDRESS}:7700`, "--host", SERVER_ADDRESS, "--verbose", ...clear], "serve.log");
  await Bun.sleep(1500 + Number(mib) * 12); // the server hashes the file before it lists it
  if (process.env.DIAG_BESIDE_TCP === "1") {
    exec(ns.client, ["curl", "-s", "-o", "/dev/null", "-w", "TCP: %{speed_download} B/s\\n", `http://${SERVER_ADDRESS}:8080/tcp-long.bin`], "curl.log");
    await Bun.sleep(2000);
  }
  if (timed.length > 0) console.log(`before the fetch: ${cpuOfTree(procs[procs.length - 1]!.pid)}`);
  fetchStart = performance.now();
  const f = exec(ns.client, [...ftx, "fetch", `${SERVER_ADDRESS}:7700`, "payload.bin", "-o", join(dir, "out"), "--verbose", ...clear], "fetch.log");
  await f.exited;
  console.log(`fetch exit ${f.exitCode} in ${((performance.now() - fetchStart) / 1000).toFixed(2)} s; logs in ${dir}`);
  await Bun.sleep(200);
} finally {
  // The file server's CPU time, read before it is stopped (a stopped /usr/bin/time prints nothing).
  if (timed.length > 0) for (const p of procs.slice(0, -1)) console.log(cpuOfTree(p.pid));
  for (const p of procs) p.kill();
  console.log(JSON.stringify(await ns.close()));
}

/** "pid command: user U s, system S s" for the deepest process under `pid` (what `ip netns exec` and /usr/bin/time started). */
function cpuOfTree(pid: number): string {
  for (;;) {
    const children = readFileSafe(`/proc/${pid}/task/${pid}/children`).trim();
    if (!children) break;
    pid = Number(children.split(" ")[0]);
  }
  const stat = readFileSafe(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cmd = readFileSafe(`/proc/${pid}/cmdline`).split("\0").slice(2, 4).join(" ");
  return `${pid} ${cmd}: user ${(Number(fields[11]) / 100).toFixed(2)} s, system ${(Number(fields[12]) / 100).toFixed(2)} s`;
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
