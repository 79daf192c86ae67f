import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ImpairmentRelay } from "../support/impairment-relay.ts";
import { chaosSchedule, describeChaosEvent } from "../support/chaos-schedule.ts";
import { deriveSeed, Rng } from "../support/random.ts";
import { eventually, freeUdpPort, FtxProcess, lsJson, runFtx, sha256Hex, startMaster, startServer, stopAll, tempDir } from "../support/ftx-process.ts";

afterAll(stopAll);

const MiB = 1 << 20;
const SEED = Number(process.env.CHAOS_SEED ?? 7);
const REPLAY = `CHAOS_SEED=${SEED} bun test --timeout 120000 test/e2e/chaos.test.ts`;
const SERVERS = 4;

interface Node {
  dir: string;
  udpPort: number;
  relay: ImpairmentRelay;
  advertised: string;
  server: FtxProcess | undefined;
}

test("the chaos schedule is a function of the seed alone", () => {
  const plan = (seed: number) => chaosSchedule(new Rng(deriveSeed(seed, "schedule")), SERVERS);
  expect(plan(SEED)).toEqual(plan(SEED));
  expect(plan(SEED)).not.toEqual(plan(SEED + 1));
  for (let seed = 0; seed < 200; seed++) {
    const { events } = plan(seed);
    expect(events.filter((e) => e.kind === "kill-master")).toHaveLength(1); // once, within the first 5 s planned
    const stop = events.findIndex((e) => e.kind === "stop-server");
    expect(events.filter((e) => e.kind === "stop-server").length).toBeLessThanOrEqual(1);
    // Once stopped, a server is not also killed.
    if (stop >= 0) for (const e of events.slice(stop)) if (e.kind === "kill-server") expect(e.node).not.toBe((events[stop] as { node: number }).node);
  }
});

/**
 * Chaos: 4 file servers holding overlapping copies of 6 files, each behind a relay that loses 2 % of
 * datagrams each way and caps the rate; 6 fetches at once. Meanwhile, at seeded random moments,
 * servers are SIGKILLed and restarted, one is SIGSTOPped for a while, and the master is killed and
 * restarted once. Every fetch must end with its file intact, or fail with a clear message and a part
 * file that a later fetch completes. No final file may ever hold wrong bytes.
 *
 * Everything random comes from CHAOS_SEED, each part from a generator of its own (deriveSeed): the
 * files and who holds them, the schedule (which server, what, every pause: planned in full before
 * anything runs, so timing cannot change it) and each relay's losses. A failure prints the seed and the
 * command that replays it. What a replay cannot repeat exactly is timing: which datagram meets the
 * relay's nth draw, and where in the schedule the fetches end.
 */
test(`chaos: servers killed, stopped and restarted, master restarted, 2 % loss; every file intact (seed ${SEED})`, async () => {
  const rng = new Rng(deriveSeed(SEED, "layout"));
  const schedule = chaosSchedule(new Rng(deriveSeed(SEED, "schedule")), SERVERS);
  console.log(`chaos seed ${SEED} (replay: ${REPLAY}); schedule: ${schedule.events.map(describeChaosEvent).join(", ")}`);
  const events: string[] = [];
  const work = tempDir("ftx-chaos-");
  try {
    const files = Array.from({ length: 6 }, (_, i) => ({ name: `f${i}.bin`, content: Buffer.from(new Rng(deriveSeed(SEED, `file ${i}`)).bytes((8 + rng.int(9)) * MiB)) }));
    // Each file on 2 or 3 of the 4 servers.
    const holders = files.map((_, i) => [i % SERVERS, (i + 1) % SERVERS, ...(rng.chance(0.5) ? [(i + 2) % SERVERS] : [])]);
    const { master: firstMaster, address, port: masterPort } = await startMaster(["--heartbeat-timeout", "2"]);
    let master = firstMaster;
    const nodes: Node[] = [];
    for (let n = 0; n < SERVERS; n++) {
      const dir = join(work.path, `server${n}`);
      mkdirSync(dir);
      files.forEach((f, i) => holders[i]!.includes(n) && writeFileSync(join(dir, f.name), f.content));
      const udpPort = await freeUdpPort();
      const relay = await ImpairmentRelay.start({ host: "127.0.0.1", port: udpPort }, { both: { loss: 0.02 }, toClient: { bytesPerSecond: 3e6 }, seed: deriveSeed(SEED, `relay ${n}`) });
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

    // The chaos: the seeded schedule, played in order for as long as any fetch runs (at most 20 s of it).
    const t0 = performance.now();
    const chaos = (async () => {
      const until = performance.now() + 20_000;
      const log = (what: string) => events.push(`${((performance.now() - t0) / 1000).toFixed(1)}s ${what}`);
      const running = () => fetches.some((f) => f.proc.exitCode === null);
      await Bun.sleep(schedule.startMs);
      for (const event of schedule.events) {
        if (!running() || performance.now() >= until) break;
        log(describeChaosEvent(event));
        if (event.kind === "kill-master") {
          await master.stop("SIGKILL");
          await Bun.sleep(event.downMs);
          master = new FtxProcess(["master", "--host", "127.0.0.1", "--port", String(masterPort), "--heartbeat-timeout", "2"]);
          await master.waitFor(/listening on/);
        } else if (event.kind === "stop-server") {
          const node = nodes[event.node]!;
          node.server?.signal("SIGSTOP");
          setTimeout(() => node.server?.signal("SIGCONT"), event.stoppedMs);
        } else {
          const node = nodes[event.node]!;
          await node.server?.stop("SIGKILL");
          await Bun.sleep(event.downMs);
          await startNode(node);
        }
        await Bun.sleep(event.pauseMs);
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
  } catch (err) {
    console.error(`chaos failed with seed ${SEED}; events: ${events.join(", ") || "none yet"}\nreplay: ${REPLAY}`);
    throw err;
  } finally {
    await stopAll();
    work.cleanup();
  }
}, 120_000);
