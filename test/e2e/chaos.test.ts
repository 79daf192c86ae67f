import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ImpairmentRelay } from "../support/impairment-relay.ts";
import { Rng } from "../support/random.ts";
import { eventually, freeUdpPort, FtxProcess, lsJson, runFtx, sha256Hex, startMaster, startServer, stopAll, tempDir } from "../support/ftx-process.ts";

afterAll(stopAll);

const MiB = 1 << 20;
const SEED = Number(process.env.CHAOS_SEED ?? 7);

interface Node {
  dir: string;
  udpPort: number;
  relay: ImpairmentRelay;
  advertised: string;
  server: FtxProcess | undefined;
}

/**
 * Chaos: 4 file servers holding overlapping copies of 6 files, each behind a relay that loses 2 % of
 * datagrams each way and caps the rate; 6 fetches at once. Meanwhile, at seeded random moments,
 * servers are SIGKILLed and restarted, one is SIGSTOPped for a while, and the master is killed and
 * restarted once. Every fetch must end with its file intact, or fail with a clear message and a part
 * file that a later fetch completes. No final file may ever hold wrong bytes.
 * A failing run replays with CHAOS_SEED.
 */
test(`chaos: servers killed, stopped and restarted, master restarted, 2 % loss; every file intact (seed ${SEED})`, async () => {
  const rng = new Rng(SEED);
  const work = tempDir("ftx-chaos-");
  try {
    const files = Array.from({ length: 6 }, (_, i) => ({ name: `f${i}.bin`, content: Buffer.from(new Rng(SEED * 100 + i).bytes((8 + rng.int(9)) * MiB)) }));
    // Each file on 2 or 3 of the 4 servers.
    const holders = files.map((_, i) => [i % 4, (i + 1) % 4, ...(rng.chance(0.5) ? [(i + 2) % 4] : [])]);
    const { master: firstMaster, address, port: masterPort } = await startMaster(["--heartbeat-timeout", "2"]);
    let master = firstMaster;
    const nodes: Node[] = [];
    for (let n = 0; n < 4; n++) {
      const dir = join(work.path, `server${n}`);
      mkdirSync(dir);
      files.forEach((f, i) => holders[i]!.includes(n) && writeFileSync(join(dir, f.name), f.content));
      const udpPort = await freeUdpPort();
      const relay = await ImpairmentRelay.start({ host: "127.0.0.1", port: udpPort }, { both: { loss: 0.02 }, toClient: { bytesPerSecond: 3e6 }, seed: SEED + n });
      nodes.push({ dir, udpPort, relay, advertised: `127.0.0.1:${relay.port}`, server: undefined });
    }
    const startNode = async (node: Node) => {
      node.server = (await startServer(node.dir, address, ["--port", String(node.udpPort), "--advertise", node.advertised])).server;
    };
    for (const node of nodes) await startNode(node);
    await eventually(async () => (await lsJson(address)).reduce((n, e) => n + e.servers.length, 0) === holders.flat().length, 15_000, "every copy listed");

    const outs = files.map((_, i) => join(work.path, `out${i}`));
    const fetchArgs = (i: number) => ["fetch", address, files[i]!.name, "-o", outs[i]!, "--idle-timeout", "2", "--retry-for", "10"];
    const fetches = files.map((_, i) => new FtxProcess(fetchArgs(i)));
    const exits = fetches.map((f) => f.proc.exited);

    // The chaos, on a seeded schedule, for as long as any fetch runs (at most 20 s of it).
    const events: string[] = [];
    const t0 = performance.now();
    const chaos = (async () => {
      const until = performance.now() + 20_000;
      let masterRestarted = false;
      let stopped: Node | undefined;
      const log = (what: string) => events.push(`${((performance.now() - t0) / 1000).toFixed(1)}s ${what}`);
      const running = () => fetches.some((f) => f.proc.exitCode === null);
      await Bun.sleep(300 + rng.int(500));
      while (running() && performance.now() < until) {
        const roll = rng.next();
        if (!masterRestarted && (roll < 0.2 || performance.now() > until - 15_000)) {
          masterRestarted = true;
          log("master killed");
          await master.stop("SIGKILL");
          await Bun.sleep(300 + rng.int(700));
          master = new FtxProcess(["master", "--host", "127.0.0.1", "--port", String(masterPort), "--heartbeat-timeout", "2"]);
          await master.waitFor(/listening on/);
        } else if (!stopped && roll < 0.45) {
          stopped = rng.pick(nodes);
          log(`server ${nodes.indexOf(stopped)} stopped`);
          stopped.server?.signal("SIGSTOP");
          const node = stopped;
          setTimeout(() => node.server?.signal("SIGCONT"), 2500 + rng.int(1500));
        } else {
          const node = rng.pick(nodes.filter((n) => n !== stopped));
          log(`server ${nodes.indexOf(node)} killed`);
          await node.server?.stop("SIGKILL");
          await Bun.sleep(300 + rng.int(1500));
          await startNode(node);
        }
        await Bun.sleep(400 + rng.int(1200));
      }
      for (const n of nodes) n.server?.signal("SIGCONT");
    })();

    const codes = await Promise.all(exits);
    await chaos;
    console.log(`chaos seed ${SEED}: ${events.join(", ")}; fetches ended ${codes.join(" ")} after ${((performance.now() - t0) / 1000).toFixed(1)}s`);
    let completedLater = 0;
    for (let i = 0; i < files.length; i++) {
      const final = join(outs[i]!, files[i]!.name);
      if (codes[i] === 0) {
        expect(sha256Hex(readFileSync(final))).toBe(sha256Hex(files[i]!.content));
        continue;
      }
      // A failure is one clear line naming the file and the part kept, never a stack trace.
      expect(existsSync(final)).toBe(false);
      const last = fetches[i]!.stderr.trim().split("\n").at(-1)!;
      expect(last).toMatch(new RegExp(`^ftx: ${files[i]!.name}: .+ \\(what arrived is kept in ${files[i]!.name}\\.ftx-part; run the same fetch again to resume\\)$`));
      expect(fetches[i]!.stderr).not.toMatch(/^\s+at /m);
      const again = await runFtx(fetchArgs(i), { timeoutMs: 60_000 });
      expect(again.exitCode).toBe(0);
      expect(sha256Hex(readFileSync(final))).toBe(sha256Hex(files[i]!.content));
      completedLater++;
    }
    // Most fetches should ride the chaos out on their own.
    expect(completedLater).toBeLessThanOrEqual(2);
    for (const n of nodes) n.relay.close();
  } finally {
    await stopAll();
    work.cleanup();
  }
}, 120_000);
