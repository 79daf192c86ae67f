/**
 * `bun run bench [--quick] [--source] [--only=NAME[,NAME…]]`: measures ftx on this machine and prints a
 * table plus a JSON result (bench/results/latest.json). Each scenario lives in a module of its own
 * (bench/README.md says what each measures); this file only picks them and runs them in order:
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
import { benchIndex, benchRegistration, benchShared } from "./index-scale.ts";
import { Bench } from "./lib/bench.ts";
import { benchMultiSource } from "./multi-source.ts";
import { benchPeers } from "./peers.ts";
import { benchSparse, benchTransfer } from "./transfer-loopback.ts";

// `--paths[=NAME,…]`: ftx against TCP over emulated network paths (bench/paths/), instead of the rest.
const pathsFlag = process.argv.find((a) => a === "--paths" || a.startsWith("--paths="));
if (pathsFlag) {
  const { runPaths } = await import("./paths/run-paths.ts");
  process.exit(await runPaths({ only: pathsFlag.split("=")[1]?.split(",").filter(Boolean), source: process.argv.includes("--source") }));
}

interface Scenario {
  name: string;
  run: (bench: Bench) => Promise<void>;
  /** Runs only when named with `--only`, not in a plain `bun run bench`. */
  optIn?: boolean;
}

/** Every scenario, in the order a full run takes them. A new one is one line here. */
const SCENARIOS: Scenario[] = [
  { name: "index", run: benchIndex },
  { name: "registration", run: benchRegistration },
  { name: "transfer", run: benchTransfer },
  { name: "multi", run: benchMultiSource },
  { name: "shared", run: benchShared },
  { name: "peers", run: benchPeers },
  { name: "sparse", run: benchSparse },
];

const argv = process.argv.slice(2);
if (argv.includes("--help") || argv.includes("-h")) {
  console.log(`usage: bun bench/run.ts [--quick] [--source] [--only=NAME[,NAME…]] | --paths[=NAME,…]
  --paths    ftx against curl ← nginx (TCP BBR and CUBIC) over emulated paths (see bench/README.md)
  --quick    smaller sizes (about 10 s)
  --source   run \`bun src/cli.ts\` instead of the executable built afresh
  --only     run these scenarios only: ${SCENARIOS.map((s) => s.name + (s.optIn ? " (only when named)" : "")).join(", ")}`);
  process.exit(0);
}
const only = argv.find((a) => a.startsWith("--only="))?.slice(7).split(",");
const unknown = only?.filter((name) => !SCENARIOS.some((s) => s.name === name)) ?? [];
if (unknown.length > 0) {
  console.error(`unknown scenario ${unknown.join(", ")}: one of ${SCENARIOS.map((s) => s.name).join(", ")} (see --help)`);
  process.exit(2);
}
const chosen = SCENARIOS.filter((s) => (only ? only.includes(s.name) : !s.optIn));

const bench = new Bench(argv.includes("--quick"), argv.includes("--source"));
try {
  for (const scenario of chosen) await scenario.run(bench);
} finally {
  bench.cleanUp();
}
bench.report();
process.exit(0);
