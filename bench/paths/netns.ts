/**
 * Two network namespaces joined by a path, for the path bench: a veth pair (the LAN, with loss from
 * nftables inside the namespaces) or the emulator (emulator.ts) between two TUN devices. Everything made
 * here is undone by `close()`, which the harness calls whatever happened. Linux, root.
 */
import { resolve } from "node:path";
import { ADDRESS_A, ADDRESS_B } from "./emulator.ts";

export const CLIENT_ADDRESS = ADDRESS_A;
export const SERVER_ADDRESS = ADDRESS_B;

function run(argv: string[], input?: string): void {
  const r = Bun.spawnSync(argv, { stdin: input === undefined ? "ignore" : Buffer.from(input), stdout: "ignore", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString().trim() || `exit ${r.exitCode}`}`);
}

export function nsExec(ns: string, argv: string[]): string[] {
  return ["ip", "netns", "exec", ns, ...argv];
}

export function sysctl(ns: string | undefined, key: string, value: string): void {
  run(ns ? nsExec(ns, ["sysctl", "-q", "-w", `${key}=${value}`]) : ["sysctl", "-q", "-w", `${key}=${value}`]);
}

export function readSysctl(key: string): string {
  return Bun.spawnSync(["sysctl", "-n", key], { stdout: "pipe" }).stdout.toString().trim();
}

/** How the two namespaces are joined. */
export type Link =
  | { kind: "veth"; lossPct: number }
  | { kind: "emulator"; rateMbit: number; delayMs: number; queueMs: number; lossPct: number; burst: number; seed: number };

export interface EmulatorCounters {
  seconds: number;
  peakPacketsPerSec: number;
  aToB: Record<string, number>;
  bToA: Record<string, number>;
}

export class PathNamespaces {
  readonly client: string;
  readonly server: string;
  private emulator: ReturnType<typeof Bun.spawn> | undefined;
  private emulatorLines: Promise<string[]> | undefined;
  private emulatorStderr: Promise<string> | undefined;

  private constructor(tag: string) {
    this.client = `ftxb-cli-${tag}`;
    this.server = `ftxb-srv-${tag}`;
  }

  /**
   * Makes both namespaces and joins them; on any failure removes what was made and throws. TCP's
   * per-destination metrics cache is off in both, so one sample's ssthresh does not carry into the next.
   */
  static async create(tag: string, link: Link): Promise<PathNamespaces> {
    const p = new PathNamespaces(tag);
    try {
      run(["ip", "netns", "add", p.client]);
      run(["ip", "netns", "add", p.server]);
      for (const ns of [p.client, p.server]) {
        run(["ip", "-n", ns, "link", "set", "lo", "up"]);
        sysctl(ns, "net.ipv4.tcp_no_metrics_save", "1");
      }
      if (link.kind === "veth") p.joinByVeth(tag, link.lossPct);
      else await p.joinByEmulator(link);
      return p;
    } catch (e) {
      await p.close();
      throw e;
    }
  }

  private joinByVeth(tag: string, lossPct: number): void {
    const devs = [`ftxbc${tag}`.slice(0, 15), `ftxbs${tag}`.slice(0, 15)] as const;
    run(["ip", "link", "add", devs[0], "netns", this.client, "type", "veth", "peer", "name", devs[1], "netns", this.server]);
    const sides = [
      [this.client, devs[0], CLIENT_ADDRESS, SERVER_ADDRESS],
      [this.server, devs[1], SERVER_ADDRESS, CLIENT_ADDRESS],
    ] as const;
    for (const [ns, dev, local, peer] of sides) {
      // With loss, one MSS per packet: with TSO/GSO a veth carries 64 KiB super-packets, and one
      // nftables drop would lose 44 segments at once instead of one 1500-byte packet. Without loss the
      // veth keeps its offloads, as a real NIC has them: TCP without GSO ran at a tenth of its speed.
      run(["ip", "-n", ns, "link", "set", "dev", dev, "mtu", "1500", ...(lossPct > 0 ? ["gso_max_segs", "1"] : []), "up"]);
      run(["ip", "-n", ns, "addr", "add", `${local}/32`, "peer", `${peer}/32`, "dev", dev]);
      if (lossPct > 0) {
        // Loss each way: each namespace drops that share of what arrives from the other.
        const rules = [
          "add table inet ftxb_loss",
          "add chain inet ftxb_loss input { type filter hook input priority 0 ; policy accept ; }",
          `add rule inet ftxb_loss input iifname "${dev}" numgen random mod 10000 < ${Math.round(lossPct * 100)} counter drop`,
        ].join("\n");
        run(nsExec(ns, ["nft", "-f", "-"]), rules);
      }
    }
  }

  private async joinByEmulator(link: Extract<Link, { kind: "emulator" }>): Promise<void> {
    // BENCH_PATH_EMULATOR: another emulator taking the same flags (a reference instrument), to check
    // ours against on the same parameters.
    const command = process.env.BENCH_PATH_EMULATOR ? [process.env.BENCH_PATH_EMULATOR] : [process.execPath, resolve(import.meta.dir, "emulator.ts")];
    const argv = [...command, "--ns-a", this.client, "--ns-b", this.server];
    argv.push("--rate-mbit", String(link.rateMbit), "--delay-ms", String(link.delayMs), "--queue-ms", String(link.queueMs));
    argv.push("--loss-pct", String(link.lossPct), "--burst", String(link.burst), "--seed", String(link.seed));
    const e = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
    this.emulator = e;
    const stderr = new Response(e.stderr).text();
    this.emulatorStderr = stderr;
    // Its stdout: "ready" once the devices are up, then, when stopped, its counters as one JSON line.
    let text = "";
    let onText = () => {};
    this.emulatorLines = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of e.stdout as ReadableStream<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true });
        onText();
      }
      return text.split("\n").filter(Boolean);
    })();
    let timer: Timer | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      onText = () => text.startsWith("ready\n") && resolve();
      void e.exited.then(async (code) => reject(new Error(`emulator exited ${code}: ${(await stderr).trim()}`)));
      timer = setTimeout(() => reject(new Error("emulator not ready after 10 s")), 10_000);
    });
    try {
      await ready;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the emulator (if any) and returns its counters; removes both namespaces. Safe to call twice. */
  async close(): Promise<EmulatorCounters | undefined> {
    let counters: EmulatorCounters | undefined;
    if (this.emulator) {
      const e = this.emulator;
      this.emulator = undefined;
      if (e.exitCode !== null) console.error(`  the emulator had stopped by itself (exit ${e.exitCode}): ${(await this.emulatorStderr)?.trim()}`);
      e.kill("SIGTERM");
      const timer = setTimeout(() => e.kill("SIGKILL"), 5000);
      await e.exited;
      clearTimeout(timer);
      const last = (await this.emulatorLines)?.at(-1);
      try {
        counters = last?.startsWith("{") ? (JSON.parse(last) as EmulatorCounters) : undefined;
      } catch {
        counters = undefined;
      }
    }
    for (const ns of [this.client, this.server]) Bun.spawnSync(["ip", "netns", "del", ns], { stdout: "ignore", stderr: "ignore" });
    return counters;
  }
}
