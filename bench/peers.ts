/** ftx against curl ← nginx and atftp ← atftpd, at 0, 1 and 5 % loss; 100 small files; 20 concurrent clients. */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor, type Bench, type Timed } from "./lib/bench.ts";
import { median } from "./lib/measure.ts";
import { nftDrop, nftLoss } from "./lib/nft.ts";
import { ATFTP_CONFIGS, ATFTP_HOST, atftpOnce, startAtftpd, startNginx } from "./lib/peer-servers.ts";

/**
 * `rounds` samples of ftx and of curl (when there is a curl command), alternating, each into an empty
 * output folder: on a shared machine only samples taken side by side compare.
 */
async function alternate(b: Bench, rounds: number, out: string, ftxArgv: string[], curlArgv: string[] | undefined) {
  const ftx: Timed[] = [];
  const curl: Timed[] = [];
  for (let r = 0; r < rounds; r++) {
    rmSync(out, { recursive: true, force: true });
    ftx.push(await b.timeCommand(ftxArgv));
    if (curlArgv) {
      rmSync(out, { recursive: true, force: true });
      mkdirSync(out, { recursive: true });
      curl.push(await b.timeCommand(curlArgv));
    }
  }
  return { ftx, curl };
}

/**
 * ftx against the tool a user would pick instead, in the same run: curl ← nginx (HTTP over TCP) for one
 * large file with 0 %, 1 % and 5 % loss (nftables, both directions of each server's port), and for 100
 * files of 1 MiB in one process; plus 20 concurrent ftx clients on distinct files.
 */
export async function benchPeers(b: Bench): Promise<void> {
  const size = b.quick ? 64 << 20 : 1 << 30;
  const mib = size / (1 << 20);
  const dir = join(b.work, "peers");
  mkdirSync(join(dir, "many"), { recursive: true });
  const big = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) big.writeUInt32LE((i * 2246822519) >>> 0, i);
  writeFileSync(join(dir, "big.bin"), big);
  for (let i = 0; i < 100; i++) writeFileSync(join(dir, "many", `${i}.bin`), big.subarray(i << 20, (i + 1) << 20));
  const clients = 20;
  const each = b.quick ? 4 << 20 : 50 << 20;
  mkdirSync(join(dir, "conc"), { recursive: true });
  for (let i = 0; i < clients; i++) writeFileSync(join(dir, "conc", `${i}.bin`), Buffer.concat([Buffer.from(`client ${i}`), big.subarray(0, each - 9)]));

  const master = await b.startMaster();
  const server = b.spawnFtx(["serve", dir, "--master", master.address, "--host", "127.0.0.1"]);
  const udpPort = Number((await waitFor(server, /over UDP on 127\.0\.0\.1:(\d+)/))[1]);
  while ((await b.lsCount(master.address)) < 1 + 100 + clients) await Bun.sleep(200);
  const nginx = await startNginx(b, dir);
  const atftpd = await startAtftpd(b, dir);
  const out = join(b.work, "peer-out");
  const peerResults: Record<string, unknown> = {};

  // Warm-up, not measured: on a VM the first write into memory never touched before costs far more
  // (measured here: 2.4 s of kernel time per GiB), and would land on whichever tool happens to go first.
  rmSync(out, { recursive: true, force: true });
  await b.timeCommand([...b.ftxCommand, "fetch", master.address, "big.bin", "-o", out]);
  if (nginx) await b.timeCommand(["curl", "-sf", "-o", join(b.work, "warm.bin"), `http://127.0.0.1:${nginx.port}/big.bin`]);
  rmSync(join(b.work, "warm.bin"), { force: true });

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
      const { ftx, curl } = await alternate(b, 
        b.quick ? 1 : permille ? 3 : 5,
        out,
        [...b.ftxCommand, "fetch", master.address, "big.bin", "-o", out],
        nginx ? ["curl", "-sf", "-o", join(out, "big.bin"), `http://127.0.0.1:${nginx.port}/big.bin`] : undefined,
      );
      const f = median(ftx.map((x) => size / 1e6 / x.seconds));
      if (curl.some((x) => !x.ok)) throw new Error("curl failed: the comparison would be meaningless");
      const c = curl.length ? median(curl.map((x) => size / 1e6 / x.seconds)) : NaN;
      const clientCpuPerGiB = (median(ftx.map((x) => x.cpuSeconds)) * (1 << 30)) / size;
      peerResults[label] = { ftxMBps: f, curlMBps: c, ratio: f / c, ftxIntact: ftx.every((x) => x.ok), ftxClientCpuSecondsPerGiB: clientCpuPerGiB };
      b.rows.push([`${mib} MiB, ${label}: ftx vs curl←nginx`, `${f.toFixed(0)} vs ${c.toFixed(0)} MB/s (ftx client ${clientCpuPerGiB.toFixed(2)} CPU-s/GiB)`, `ratio ${(f / c).toFixed(2)}`]);
      if (atftpd) {
        // TFTP at loss can stall for minutes: each run is cut off at 4× ftx's time (at least 20 s, 5 s with --quick), reported as gave up.
        const limit = Math.max(b.quick ? 5 : 20, (4 * size) / 1e6 / f);
        for (const cfg of ATFTP_CONFIGS) {
          const samples = [];
          for (let r = 0; r < (b.quick || permille ? 1 : 3); r++) samples.push(await atftpOnce(atftpd.port, "big.bin", join(b.work, "tftp-out.bin"), cfg, big, limit));
          const good = samples.filter((x) => x.ok);
          const t = good.length === samples.length ? median(good.map((x) => size / 1e6 / x.seconds)) : NaN;
          (peerResults[label] as Record<string, unknown>)[cfg.label] = { MBps: t, ratio: f / t, gaveUp: good.length < samples.length };
          b.rows.push([`${mib} MiB, ${label}: ftx vs ${cfg.label}`, Number.isNaN(t) ? `${f.toFixed(0)} MB/s vs gave up after ${limit.toFixed(0)} s` : `${f.toFixed(0)} vs ${t.toFixed(0)} MB/s`, Number.isNaN(t) ? "ratio ∞" : `ratio ${(f / t).toFixed(2)}`]);
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
  const many = await alternate(b, 
    b.quick ? 1 : 3,
    out,
    [...b.ftxCommand, "fetch", master.address, ...names, "-o", out],
    nginx ? ["curl", "-sf", "--create-dirs", ...names.flatMap((n) => ["-o", join(out, n), `http://127.0.0.1:${nginx.port}/${n}`])] : undefined,
  );
  if (!many.ftx.every((x) => x.ok) || !many.curl.every((x) => x.ok)) throw new Error("a fetch of the 100 files failed");
  const ftxManySeconds = median(many.ftx.map((x) => x.seconds));
  const curlManySeconds = many.curl.length ? median(many.curl.map((x) => x.seconds)) : undefined;
  const manyRatio = curlManySeconds !== undefined ? curlManySeconds / ftxManySeconds : NaN;
  peerResults.hundredFiles = { ftxSeconds: ftxManySeconds, curlSeconds: curlManySeconds, ratio: manyRatio };
  b.rows.push(["100 × 1 MiB in one process", `ftx ${ftxManySeconds.toFixed(2)} s vs curl ${curlManySeconds?.toFixed(2) ?? "-"} s (medians)`, `ratio ${manyRatio.toFixed(2)}`]);

  // 20 concurrent clients, distinct files; first one client alone on one of those files (median of 3),
  // the single-client rate for the same work, process start included.
  const alone: number[] = [];
  for (let r = 0; r < (b.quick ? 1 : 3); r++) {
    rmSync(out, { recursive: true, force: true });
    const one = await b.timeCommand([...b.ftxCommand, "fetch", master.address, "conc/0.bin", "-o", join(out, "alone")]);
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
      const p = Bun.spawn([...b.ftxCommand, "fetch", master.address, `conc/${i}.bin`, "-o", join(out, String(i))], { stdout: "ignore", stderr: "ignore" });
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
  b.rows.push([`${clients} concurrent clients × ${each / (1 << 20)} MiB`, `aggregate ${aggregate.toFixed(0)} MB/s, all ok: ${runs.every((r) => r.ok)}`, `slowest/fastest ${fairness.toFixed(2)}`]);
  b.rows.push([
    `  the same aggregate against one client`,
    `alone on one of the files: ${aloneRate.toFixed(0)} MB/s`,
    `ratio ${(aggregate / aloneRate).toFixed(2)} (${(aggregate / bigRate).toFixed(2)} of the ${mib} MiB rate)`,
  ]);
  b.results.peers = peerResults;
  nginx?.stop();
  atftpd?.stop();
  server.kill("SIGTERM");
}
