/**
 * `bun bench/paths/emulator.ts --ns-a NS --ns-b NS [options]`: a packet-level path between two
 * network namespaces, for benchmarks on a kernel without netem.
 *
 * It opens a TUN device for each namespace, moves it there (ns-a gets 198.18.0.1, ns-b 198.18.0.2,
 * point to point, addresses of the RFC 2544 benchmarking range used only inside the namespaces), and
 * carries every IP packet (TCP and UDP alike) across path-model.ts's PathDirection, one per direction:
 * a bottleneck rate with a drop-tail queue, a one-way delay, random or Gilbert–Elliott loss.
 *
 *   --rate-mbit R    bottleneck each way (0: none)         --delay-ms D   one-way delay each way
 *   --queue-ms Q     drop-tail queue in ms of the rate (50) --loss-pct P   loss each way, in %
 *   --burst N        Gilbert–Elliott loss, mean burst N    --seed S       loss seed (1)
 *   --mtu M          MTU of both devices (1500)
 *
 * Prints "ready" on stdout once both sides are up; on SIGTERM or SIGINT prints its counters as one JSON
 * line on stdout and exits 0 (the devices go with it).
 *
 * One thread, no allocation per packet: each direction has a ring of preallocated packet buffers; a
 * packet is read into the next free slot and the model is told the slot, so what it releases is a slot
 * to write to the other device. Every wake-up reads up to READ_BATCH packets from each device.
 */
import { ptr } from "bun:ffi";
import { PathDirection, seededRandom, type PathDirectionConfig } from "./path-model.ts";
import { closeFd, openTun, POLLIN, ppollWait, readInto, setTimerSlackNs, writeFrom } from "./tun.ts";

export const ADDRESS_A = "198.18.0.1";
export const ADDRESS_B = "198.18.0.2";
/** Packets each direction can hold (queued or propagating): 1 Gbit/s of 1500-byte packets for 0.4 s. */
const SLOTS = 32768;
/** Bytes per slot: any packet up to the MTU fits (the MTU is at most SLOT_BYTES). */
const SLOT_BYTES = 2048;
/**
 * Packets the kernel holds at a TUN device for this process to read: room for the bursts a 1 Gbit/s TCP
 * sender makes while the loop is writing the other way (with 1000, a 20 ms path lost ~1 packet in 200).
 */
const TUN_TXQUEUELEN = 10000;
/** Packets read from one device per wake-up before the other gets its turn. */
const READ_BATCH = 64;
/** Longest sleep in ppoll, and how often the JS event loop gets a turn (signals are delivered there). */
const MAX_SLEEP_MS = 10;
/**
 * Packets due within this much are released now: at 1 Gbit/s one leaves every 12 µs, and a wake-up for
 * each cost more than the loop could afford. 50 µs early is nothing against a path's milliseconds.
 */
const RELEASE_AHEAD_MS = 0.05;

function parseArgs(argv: string[]) {
  const get = (name: string, fallback?: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : fallback;
  };
  const num = (name: string, fallback: number): number => {
    const v = Number(get(name, String(fallback)));
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${name}: not a number ≥ 0`);
    return v;
  };
  const nsA = get("ns-a");
  const nsB = get("ns-b");
  if (!nsA || !nsB) throw new Error("usage: emulator.ts --ns-a NS --ns-b NS [--rate-mbit R] [--delay-ms D] [--queue-ms Q] [--loss-pct P] [--burst N] [--seed S] [--mtu M]");
  const mtu = num("mtu", 1500);
  if (mtu < 576 || mtu > SLOT_BYTES) throw new Error(`--mtu must be within 576..${SLOT_BYTES}`);
  const config: PathDirectionConfig = {
    rateBitsPerSec: num("rate-mbit", 0) * 1e6,
    queueMs: num("queue-ms", 50),
    delayMs: num("delay-ms", 0),
    lossRate: num("loss-pct", 0) / 100,
    burstLen: num("burst", 0),
  };
  return { nsA, nsB, mtu, config, seed: num("seed", 1) };
}

function ip(args: string[]): void {
  const r = Bun.spawnSync(["ip", ...args], { stdout: "ignore", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.toString().trim()}`);
}

/** Packets the kernel dropped at a TUN device because this process did not read them fast enough. */
function tunTxDropped(ns: string, dev: string): number | undefined {
  const r = Bun.spawnSync(["ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev], { stdout: "pipe", stderr: "ignore" });
  try {
    return (JSON.parse(r.stdout.toString()) as Array<{ stats64?: { tx?: { dropped?: number } } }>)[0]?.stats64?.tx?.dropped;
  } catch {
    return undefined;
  }
}

/**
 * The packet loop uses only raw pointers into its buffers: they stay reachable from here for the life
 * of the process, or the collector could free memory the kernel is still reading packets into.
 */
const RETAINED: unknown[] = [];

async function main(): Promise<void> {
  const { nsA, nsB, mtu, config, seed } = parseArgs(process.argv.slice(2));
  const tag = String(process.pid % 100000);
  const devs = [`ftxea${tag}`, `ftxeb${tag}`] as const;
  const namespaces = [nsA, nsB] as const;
  const addresses = [ADDRESS_A, ADDRESS_B] as const;
  const fds = [openTun(devs[0]), openTun(devs[1])] as const;
  for (const s of [0, 1] as const) {
    ip(["link", "set", "dev", devs[s], "netns", namespaces[s]]);
    ip(["-n", namespaces[s], "link", "set", "dev", devs[s], "mtu", String(mtu), "txqueuelen", String(TUN_TXQUEUELEN), "up"]);
    ip(["-n", namespaces[s], "addr", "add", addresses[s], "peer", addresses[1 - s]!, "dev", devs[s]]);
    ip(["-n", namespaces[s], "link", "set", "lo", "up"]);
  }
  setTimerSlackNs(1000);

  // Direction d carries packets read from device d to device 1 - d. Each gets its own loss stream.
  const random = seededRandom(seed);
  const dirSeeds = [Math.floor(random() * 2 ** 32), Math.floor(random() * 2 ** 32)];
  const models = [0, 1].map((d) => new PathDirection(seededRandom(dirSeeds[d]!), config, SLOTS));
  const buffers = [new Uint8Array(SLOTS * SLOT_BYTES), new Uint8Array(SLOTS * SLOT_BYTES)];
  // Touch every page now, so the packet loop never faults one in.
  for (const b of buffers) b.fill(0);
  const bases = buffers.map((b) => ptr(b));
  const lengths = [new Uint16Array(SLOTS), new Uint16Array(SLOTS)];
  const tails = [0, 0];
  const overflow = [0, 0];
  const writeErrors = [0, 0];
  const scratch = new Uint8Array(SLOT_BYTES);
  const scratchAt = ptr(scratch);

  const pollfds = new Uint8Array(16);
  const pfd = new DataView(pollfds.buffer);
  for (const s of [0, 1]) {
    pfd.setInt32(s * 8, fds[s]!, true);
    pfd.setInt16(s * 8 + 4, POLLIN, true);
  }
  const timespec = new Int32Array(4);
  RETAINED.push(buffers, scratch, pollfds, timespec);

  let stopping = false;
  const stop = () => {
    stopping = true;
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  const startedMs = performance.now();
  // The busiest 200 ms seen, in packets carried (both directions), as a rate per second.
  let windowStartMs = startedMs;
  let windowPackets = 0;
  let peakPacketsPerSec = 0;

  process.stdout.write("ready\n");

  /** The packet loop, for `forMs`; it returns so that the event loop can run (signals arrive there). */
  const pump = (forMs: number): void => {
    const untilMs = performance.now() + forMs;
    for (;;) {
      let now = performance.now();
      let next = Infinity;
      for (let d = 0; d < 2; d++) {
        const model = models[d]!;
        const out = fds[1 - d]!;
        const base = bases[d]!;
        const length = lengths[d]!;
        const by = now + RELEASE_AHEAD_MS;
        for (let slot = model.pollRelease(by); slot !== -1; slot = model.pollRelease(by)) {
          if (writeFrom(out, base + slot * SLOT_BYTES, length[slot]!) < 0) writeErrors[d]!++;
          windowPackets++;
        }
        const due = model.nextReleaseAt();
        if (due !== undefined && due < next) next = due;
      }
      if (now - windowStartMs >= 200) {
        peakPacketsPerSec = Math.max(peakPacketsPerSec, (windowPackets * 1000) / (now - windowStartMs));
        windowStartMs = now;
        windowPackets = 0;
      }
      if (now >= untilMs) return;
      const sleepMs = Math.min(Math.max(0, next - now), untilMs - now);
      pfd.setInt16(6, 0, true);
      pfd.setInt16(14, 0, true);
      if (ppollWait(pollfds, 2, timespec, sleepMs * 1e6) <= 0) continue;
      for (let d = 0; d < 2; d++) {
        if (!(pfd.getInt16(d * 8 + 6, true) & POLLIN)) continue;
        const model = models[d]!;
        const fd = fds[d]!;
        const base = bases[d]!;
        for (let n = 0; n < READ_BATCH; n++) {
          if (model.inFlight >= SLOTS) {
            // Every slot holds a packet in flight: this one cannot be kept.
            if (readInto(fd, scratchAt, SLOT_BYTES) <= 0) break;
            overflow[d]!++;
            continue;
          }
          const slot = tails[d]!;
          const bytes = readInto(fd, base + slot * SLOT_BYTES, SLOT_BYTES);
          if (bytes <= 0) break;
          now = performance.now();
          if (model.offer(bytes, now, slot) === "queued") {
            lengths[d]![slot] = bytes;
            tails[d] = (slot + 1) % SLOTS;
          }
        }
      }
    }
  };
  while (!stopping) {
    pump(MAX_SLEEP_MS);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  const seconds = (performance.now() - startedMs) / 1000;
  const direction = (d: 0 | 1) => ({
    ...models[d]!.counters,
    ringOverflow: overflow[d],
    writeErrors: writeErrors[d],
    // Dropped by the kernel before this process read them: the emulator fell behind.
    tunTxDropped: tunTxDropped(namespaces[d], devs[d]),
  });
  const counters = { seconds, peakPacketsPerSec: Math.round(peakPacketsPerSec), aToB: direction(0), bToA: direction(1) };
  closeFd(fds[0]);
  closeFd(fds[1]);
  process.stdout.write(`${JSON.stringify(counters)}\n`);
  process.exit(0);
}

if (import.meta.main) {
  main().catch((e: unknown) => {
    console.error(`emulator: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
