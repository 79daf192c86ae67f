/** The peers ftx is compared with: nginx (for curl) and atftpd (for atftp), started on loopback by the bench. */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../../test/support/redis-process.ts";
import type { Bench } from "./bench.ts";

/** nginx serving a folder on a free port (sendfile on), for curl to fetch from; undefined if absent. */
export async function startNginx(b: Bench, root: string): Promise<{ port: number; stop: () => void } | undefined> {
  if (!Bun.which("nginx") && process.getuid?.() === 0) {
    console.error("  (installing nginx-light with apt for the curl ← nginx comparison)");
    Bun.spawnSync(["apt-get", "install", "-y", "nginx-light"], { stdout: "ignore", stderr: "ignore" });
  }
  if (!Bun.which("nginx") || !Bun.which("curl")) {
    console.error("  (nginx or curl not available: curl ← nginx comparison skipped)");
    return undefined;
  }
  // nginx's workers run as an unprivileged user: the (mkdtemp, 0700) work folder must be readable.
  chmodSync(b.work, 0o755);
  const prefix = join(b.work, "nginx");
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
  b.procs.push(p);
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
export const ATFTP_HOST = "127.0.0.9";

/** atftpd serving a folder (RFC 2348 blksize, RFC 7440 windowsize), for atftp to fetch from; undefined if absent. */
export async function startAtftpd(b: Bench, root: string): Promise<{ port: number; stop: () => void } | undefined> {
  if ((!Bun.which("atftpd") || !Bun.which("atftp")) && process.getuid?.() === 0) {
    console.error("  (installing atftp and atftpd with apt for the TFTP comparison)");
    Bun.spawnSync(["apt-get", "install", "-y", "atftp", "atftpd"], { stdout: "ignore", stderr: "ignore" });
  }
  const daemon = Bun.which("atftpd") ?? (existsSync("/usr/sbin/atftpd") ? "/usr/sbin/atftpd" : undefined);
  if (!daemon || !Bun.which("atftp")) {
    console.error("  (atftp or atftpd not available: TFTP comparison skipped)");
    return undefined;
  }
  chmodSync(b.work, 0o755);
  const probe = await Bun.udpSocket({ hostname: ATFTP_HOST, port: 0 });
  const port = probe.port;
  probe.close();
  const p = Bun.spawn([daemon, "--daemon", "--no-fork", "--user", "nobody", "--group", "nogroup", "--bind-address", ATFTP_HOST, "--port", String(port), "--logfile", "/dev/null", root], {
    stdout: "ignore",
    stderr: "ignore",
  });
  b.procs.push(p);
  await Bun.sleep(300);
  if (p.exitCode !== null) {
    console.error(`  (atftpd exited with ${p.exitCode}: TFTP comparison skipped)`);
    return undefined;
  }
  return { port, stop: () => p.kill("SIGTERM") };
}

/** The two atftp set-ups the issue names: big blocks with a small window, MTU-sized blocks with a large one. */
export const ATFTP_CONFIGS = [
  { label: "atftp 64K×2", blksize: 65464, windowsize: 2 },
  { label: "atftp 1428×64", blksize: 1428, windowsize: 64 },
];

/** One atftp download, killed after `limitSeconds` (at loss TFTP may stall for ever); checked against `expected`. */
export async function atftpOnce(port: number, name: string, outPath: string, cfg: (typeof ATFTP_CONFIGS)[number], expected: Uint8Array, limitSeconds: number) {
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
