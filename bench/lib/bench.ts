import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { waitForStderr } from "../process-lines.ts";

/** What /usr/bin/time saw of one command: wall and CPU seconds, peak RSS, and whether it exited 0. */
export interface Timed {
  seconds: number;
  cpuSeconds: number;
  maxRssMiB: number;
  ok: boolean;
}

/**
 * One run of the bench, handed to every scenario: its options, its scratch folder, the ftx it runs,
 * the processes it started (killed at the end) and what it found (`results` for the JSON, `rows` for
 * the table).
 */
export class Bench {
  readonly work = mkdtempSync(join(tmpdir(), "ftx-bench-"));
  /**
   * What runs as ftx: the executable users run, built afresh into the bench's folder (`bun run build`,
   * with bytecode: a process starts in ~10 ms rather than the ~40 ms of parsing the sources), or with
   * `--source` the sources under `bun`.
   */
  readonly ftxCommand: string[];
  readonly procs: ReturnType<typeof Bun.spawn>[] = [];
  readonly results: Record<string, unknown>;
  readonly rows: string[][] = [];

  constructor(
    readonly quick: boolean,
    fromSource: boolean,
  ) {
    this.ftxCommand = this.buildFtx(fromSource);
    this.results = { quick, date: new Date().toISOString() };
  }

  private buildFtx(fromSource: boolean): string[] {
    const root = resolve(import.meta.dir, "../..");
    if (fromSource) return ["bun", join(root, "src/cli.ts")];
    const exe = join(this.work, "ftx");
    const built = Bun.spawnSync(["bun", "build.ts", exe], { cwd: root, stdout: "ignore", stderr: "pipe" });
    if (built.exitCode !== 0) throw new Error(`bun run build failed: ${built.stderr.toString().trim()}`);
    return [exe];
  }

  spawnFtx(args: string[]) {
    const p = Bun.spawn([...this.ftxCommand, ...args], { stdout: "ignore", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
    this.procs.push(p);
    return p;
  }

  async startMaster(extra: string[] = []): Promise<{ address: string; port: number; pid: number }> {
    const m = this.spawnFtx(["master", "--host", "127.0.0.1", "--port", "0", "--max-connections", "20000", ...extra]);
    const port = Number((await waitFor(m, /listening on 127\.0\.0\.1:(\d+)/))[1]);
    return { address: `127.0.0.1:${port}`, port, pid: m.pid };
  }

  /**
   * How many entries `ftx ls --json` shows, run as the benched ftx in a process that does not block
   * this one: the index and shared-index benches keep 1,000 sessions heartbeating from here, and a
   * blocking spawn per listing starved them until their leases ran out.
   */
  async lsCount(address: string): Promise<number> {
    const p = Bun.spawn([...this.ftxCommand, "ls", address, "--json"], { stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`ftx ls failed (exit ${code}): ${stderr.trim()}`);
    return (JSON.parse(stdout) as unknown[]).length;
  }

  async fetchOnce(address: string, name: string, out: string, extra: string[] = []): Promise<Timed> {
    rmSync(out, { recursive: true, force: true });
    // Start every sample with no dirty pages from the previous one being written back underneath it.
    Bun.spawnSync(["sync"]);
    const t0 = performance.now();
    // /usr/bin/time measures exactly this process (getrusage of children would mix in other children).
    const timeFile = join(this.work, "time.txt");
    const p = Bun.spawn(["/usr/bin/time", "-o", timeFile, "-f", "%U %S %M", ...this.ftxCommand, "fetch", address, name, "-o", out, "--json", ...extra], { stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    const seconds = (performance.now() - t0) / 1000;
    if (code !== 0) console.error(`  fetch failed (exit ${code}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`);
    else console.error(`  fetch: ${(JSON.parse(stdout) as Array<{ seconds: number }>)[0]!.seconds.toFixed(2)} s transfer, ${seconds.toFixed(2)} s wall`);
    const [user, sys, maxKiB] = readFileSync(timeFile, "utf8").trim().split(/\s+/).slice(-3).map(Number);
    const ok = code === 0 && (JSON.parse(stdout) as Array<{ ok: boolean }>)[0]!.ok;
    return { seconds, cpuSeconds: user! + sys!, maxRssMiB: maxKiB! / 1024, ok };
  }

  async timeCommand(argv: string[]): Promise<Timed> {
    Bun.spawnSync(["sync"]);
    const timeFile = join(this.work, "time-peer.txt");
    const t0 = performance.now();
    const p = Bun.spawn(["/usr/bin/time", "-o", timeFile, "-f", "%U %S %M", ...argv], { stdout: "ignore", stderr: "pipe" });
    const [, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    const seconds = (performance.now() - t0) / 1000;
    const [user, sys, maxKiB] = readFileSync(timeFile, "utf8").trim().split(/\s+/).slice(-3).map(Number);
    if (process.env.BENCH_SAMPLES) console.error(`  sample: ${argv.slice(0, 4).join(" ")}… ${seconds.toFixed(2)} s, user ${user} s, sys ${sys} s`);
    return { seconds, cpuSeconds: user! + sys!, maxRssMiB: maxKiB! / 1024, ok: code === 0 };
  }

  /** Kill every process the bench started and remove its scratch folder. */
  cleanUp(): void {
    for (const p of this.procs) p.kill("SIGKILL");
    rmSync(this.work, { recursive: true, force: true });
  }

  /** The table on stdout, the JSON into bench/results/latest.json. */
  report(): void {
    const rows = this.rows;
    const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
    console.log(rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ")).join("\n"));
    const outDir = resolve(import.meta.dir, "../results");
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, "latest.json"), JSON.stringify(this.results, null, 2));
    console.log(`\nJSON: ${join(outDir, "latest.json")}`);
  }
}

/** A process started by `spawnFtx`. */
export type FtxChild = ReturnType<Bench["spawnFtx"]>;

export function waitFor(p: FtxChild, re: RegExp): Promise<RegExpMatchArray> {
  return waitForStderr(p.stderr as ReadableStream<Uint8Array>, re);
}
