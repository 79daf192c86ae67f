/**
 * The paths `bun run bench --paths` measures. A LAN is a veth pair (no rate of its own, loss from
 * nftables); a WAN goes through the emulator: the rate and loss are each way, the delay each way is
 * half the round trip, and the drop-tail queue holds 50 ms of the rate.
 */
import type { Link } from "./netns.ts";

export interface PathSpec {
  name: string;
  /** What the table says about it. */
  label: string;
  link: Link;
  /** In the default set (`--paths` with no names). */
  byDefault: boolean;
}

const QUEUE_MS = 50;
const SEED = 7;

function lan(lossPct: number): PathSpec {
  return { name: `lan-${lossPct}`, label: `LAN veth, ${lossPct} % loss`, link: { kind: "veth", lossPct }, byDefault: true };
}

function wan(name: string, rateMbit: number, rttMs: number, lossPct: number, burst = 0, byDefault = true): PathSpec {
  const rate = rateMbit >= 1000 ? `${rateMbit / 1000} Gbit/s` : rateMbit > 0 ? `${rateMbit} Mbit/s` : "no rate limit";
  const loss = burst > 0 ? `${lossPct} % loss in bursts of ${burst}` : `${lossPct} % loss`;
  return {
    name,
    label: `WAN ${rate}, ${rttMs} ms RTT, ${loss}`,
    link: { kind: "emulator", rateMbit, delayMs: rttMs / 2, queueMs: QUEUE_MS, lossPct, burst, seed: SEED },
    byDefault,
  };
}

export const PATHS: PathSpec[] = [
  lan(0),
  lan(1),
  lan(5),
  wan("wan-100m-50ms", 100, 50, 0),
  wan("wan-100m-50ms-1pct", 100, 50, 1),
  wan("wan-100m-50ms-burst", 100, 50, 1, 4),
  wan("wan-20m-200ms", 20, 200, 0),
  wan("wan-20m-200ms-2pct", 20, 200, 2),
  wan("wan-1g-20ms", 1000, 20, 0),
  // The emulator with nothing to emulate: its own ceiling, against the LAN's. Only when named.
  wan("tun-raw", 0, 0, 0, 0, false),
];

const MiB = 1 << 20;

/**
 * The file for a path: the LAN's as the datapath issue measures it (1 GiB without loss, 256 MiB at
 * 1 %, 64 MiB beyond: a smaller file is mostly process start, and CPU per GiB means nothing); on an
 * emulated path about three seconds at its rate, in steps of 4 MiB, at most 16 MiB below 1 Gbit/s and
 * 64 MiB at 1 Gbit/s and on paths without a rate.
 */
export function fileBytesFor(link: Link): number {
  if (link.kind === "veth") return link.lossPct === 0 ? 1024 * MiB : link.lossPct <= 1 ? 256 * MiB : 64 * MiB;
  if (link.rateMbit === 0 || link.rateMbit >= 1000) return 64 * MiB;
  const threeSeconds = ((link.rateMbit * 1e6) / 8) * 3;
  return Math.min(16 * MiB, Math.max(4 * MiB, Math.round(threeSeconds / (4 * MiB)) * 4 * MiB));
}

/** The selected paths, in table order; names not known are an error. */
export function selectPaths(names: string[] | undefined): PathSpec[] {
  if (!names?.length) return PATHS.filter((p) => p.byDefault);
  const unknown = names.filter((n) => !PATHS.some((p) => p.name === n));
  if (unknown.length) throw new Error(`unknown path ${unknown.join(", ")}; known: ${PATHS.map((p) => p.name).join(", ")}`);
  return PATHS.filter((p) => names.includes(p.name));
}
