import { describe, expect, test } from "bun:test";
import { Rng } from "../../support/random.ts";
import { simFile, simulateEndpoints, type SimClient, type SimFile } from "../../support/sim-endpoints.ts";
import type { LinkProfile } from "../../support/sim-link.ts";

/**
 * The real ServerEndpoint and the real client Downloads, 1–4 at once (some from the same address),
 * over seeded impaired links, with the server's socket refusing sends now and then. A failure prints
 * its seed; replay one with SIMULATION_SEED=<seed> bun test server-endpoint-sim.
 */
const RUNS = Number(process.env.SIMULATION_RUNS ?? 1000);
/**
 * Seeds beyond RUNS that once failed, kept in every run: 1223 took back a repair of an earlier block
 * (a later block's repairs queued since) and drove the repair index negative.
 */
const PINNED_SEEDS = [1223];

function randomProfile(rng: Rng): LinkProfile {
  const profile: LinkProfile = {
    loss: rng.next() * 0.2,
    duplicate: rng.next() * 0.05,
    reorder: rng.next() * 0.1,
    corrupt: rng.next() * 0.02,
    delayMs: 0.05 + rng.next() * 20,
    jitterMs: rng.next() * 5,
    mtu: 1500,
  };
  if (rng.chance(0.2)) profile.burstLength = 2 + rng.int(4);
  if (rng.chance(0.2)) profile.rateBytesPerMs = 125 + rng.int(10_000); // 1 Mbit/s to 80 Mbit/s
  return profile;
}

function scenario(seed: number) {
  const rng = new Rng(seed);
  const files: SimFile[] = [];
  const fileCount = 1 + rng.int(3);
  for (let i = 0; i < fileCount; i++) files.push(simFile(rng, `f${i}.bin`, rng.chance(0.05) ? rng.int(3) : rng.int(120_000)));
  const token = rng.chance(0.3) ? "sim-token" : undefined;
  const clients: SimClient[] = [];
  const clientCount = 1 + rng.int(4);
  for (let i = 0; i < clientCount; i++) {
    const file = rng.pick(files);
    const pieceHashes = rng.chance(0.15);
    const size = pieceHashes ? file.pieceHashes.byteLength : file.size;
    const offset = rng.chance(0.5) ? 0 : rng.int(size + 1);
    // A length of 0 asks for "to the end", which the client only does for an empty remainder.
    const length = offset === size ? 0 : 1 + rng.int(size - offset);
    clients.push({
      // Two clients out of three share one address, told apart by their ports.
      address: rng.chance(0.66) ? "10.0.0.1" : `10.0.0.${2 + i}`,
      port: 40_000 + i,
      file,
      offset: length === 0 ? size : offset,
      length,
      pieceHashes,
      segmentBytes: 512 + rng.int(900),
      windowSegments: 2 + rng.int(64),
      ackEvery: 1 + rng.int(4),
      token,
      // One session in five asks for its datagrams in clear (--insecure-plaintext).
      plaintext: rng.chance(0.2),
      startAtMs: rng.chance(0.5) ? 0 : rng.next() * 50,
      forward: randomProfile(rng),
      backward: randomProfile(rng),
    });
  }
  // At 20 % loss each way a REQUEST and its ACCEPT both get through only 64 % of the time, and the
  // link's bursts count packets, not time (a burst of 5 can swallow 10 s of REQUEST retries): give
  // both sides long enough that giving up is not a likely outcome of a correct implementation.
  const bursty = clients.some((c) => c.forward.burstLength !== undefined || c.backward.burstLength !== undefined);
  const idleTimeoutMs = bursty ? 60_000 : 30_000;
  for (const c of clients) c.idleTimeoutMs = idleTimeoutMs;
  // Half the servers send runs (UDP GSO), half the clients read coalesced runs (UDP GRO).
  return { rng, files, clients, token, idleTimeoutMs, refuse: rng.next() * 0.3, runs: rng.chance(0.5), gro: rng.chance(0.5) };
}

function runSeed(seed: number) {
  const { rng, files, clients, token, idleTimeoutMs, refuse, runs, gro } = scenario(seed);
  return simulateEndpoints(rng, { files, clients, token, idleTimeoutMs, refuse, runs, gro, maxSimMs: 600_000 });
}

describe("the file server's endpoint with real clients over simulated links", () => {
  test(
    `${RUNS} seeded runs of 1–4 concurrent downloads deliver the exact bytes (loss, bursts, duplication, reordering, corruption, bottlenecks, refused sends, sent as runs, read coalesced)`,
    () => {
      const only = process.env.SIMULATION_SEED;
      const seeds = only ? [Number(only)] : [...Array.from({ length: RUNS }, (_, i) => i + 1), ...PINNED_SEEDS];
      let refusals = 0;
      let downloads = 0;
      let corrupted = 0;
      let runs = 0;
      let coalescedReads = 0;
      for (const seed of seeds) {
        let r: ReturnType<typeof runSeed>;
        try {
          r = runSeed(seed);
        } catch (err) {
          throw new Error(`seed ${seed} failed (replay: SIMULATION_SEED=${seed}): ${(err as Error).message}`);
        }
        const problems: string[] = [];
        for (const [i, c] of r.clients.entries()) {
          const d = c.download;
          // A client none of whose datagrams ever reached the server (a burst swallowed every REQUEST
          // for the whole idle timeout) is right to say the server does not answer.
          const unheard = d?.state === "failed" && d.failure?.code === "E_UNREACHABLE" && c.backward.counters.delivered === 0;
          if (unheard) continue;
          if (!d || d.state !== "done") problems.push(`client ${i}: ${d?.state ?? "never started"} ${d?.failure?.message ?? ""} ${JSON.stringify(d?.stats())} fwd=${JSON.stringify(c.forward.counters)} back=${JSON.stringify(c.backward.counters)} droppedAtClient=${c.droppedAtClient}`);
          else if (!Buffer.from(c.output).equals(Buffer.from(c.expected))) problems.push(`client ${i}: bytes differ`);
          corrupted += c.forward.counters.corrupted + c.backward.counters.corrupted;
        }
        if (r.endpoint.sessionCount !== 0) problems.push(`${r.endpoint.sessionCount} server session(s) still open`);
        if (r.storage.openHandles !== 0) problems.push(`${r.storage.openHandles} file handle(s) still open`);
        if (problems.length > 0) {
          throw new Error(
            `seed ${seed} failed (replay: SIMULATION_SEED=${seed}): ${problems.join("; ")} simMs=${r.simMs.toFixed(0)} ` +
              `server=${JSON.stringify(r.endpoint.counters)} events=${JSON.stringify(r.events.filter((e) => e.type !== "dropped").map((e) => e.type))}`,
          );
        }
        refusals += r.refusals;
        downloads += r.clients.length;
        runs += r.runs;
        coalescedReads += r.coalescedReads;
      }
      if (!only) {
        expect(downloads).toBeGreaterThan(RUNS * 2);
        expect(refusals).toBeGreaterThan(RUNS); // the unsend path really was exercised
        expect(corrupted).toBeGreaterThan(100); // and the checksum
        expect(runs).toBeGreaterThan(RUNS); // and runs of datagrams both ways
        expect(coalescedReads).toBeGreaterThan(RUNS);
      }
    },
    120_000,
  );
});
