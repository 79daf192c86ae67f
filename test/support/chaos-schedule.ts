import { Rng } from "./random.ts";

/** One thing the chaos does, and the pause after it (ms): every number here comes from the seed. */
export type ChaosEvent =
  | { kind: "kill-master"; downMs: number; pauseMs: number }
  | { kind: "stop-server"; node: number; stoppedMs: number; pauseMs: number }
  | { kind: "kill-server"; node: number; downMs: number; pauseMs: number };

export interface ChaosSchedule {
  /** Before the first event. */
  startMs: number;
  events: ChaosEvent[];
}

/**
 * The chaos test's whole schedule, from its seed alone, before anything runs: what happens, to which
 * server, and every pause. The run plays it in order until the fetches end (or 20 s pass), so the
 * same seed replays the same events whatever the timing; only where the run stops in it varies.
 *
 * The master is killed once: by a roll of 20 %, or at the first event planned more than 5 s in. One
 * server at most is stopped (SIGSTOP, then SIGCONT 2.5–4 s later); the others are killed and restarted.
 */
export function chaosSchedule(rng: Rng, servers: number, spanMs = 20_000): ChaosSchedule {
  const startMs = 300 + rng.int(500);
  const events: ChaosEvent[] = [];
  let plannedMs = startMs;
  let masterKilled = false;
  let stopped: number | undefined;
  while (plannedMs < spanMs) {
    const roll = rng.next();
    let event: ChaosEvent;
    if (!masterKilled && (roll < 0.2 || plannedMs > spanMs - 15_000)) {
      masterKilled = true;
      event = { kind: "kill-master", downMs: 300 + rng.int(700), pauseMs: 0 };
      plannedMs += event.downMs;
    } else if (stopped === undefined && roll < 0.45) {
      stopped = rng.int(servers);
      event = { kind: "stop-server", node: stopped, stoppedMs: 2500 + rng.int(1500), pauseMs: 0 };
    } else {
      const candidates = Array.from({ length: servers }, (_, n) => n).filter((n) => n !== stopped);
      event = { kind: "kill-server", node: rng.pick(candidates), downMs: 300 + rng.int(1500), pauseMs: 0 };
      plannedMs += event.downMs;
    }
    event.pauseMs = 400 + rng.int(1200);
    plannedMs += event.pauseMs;
    events.push(event);
  }
  return { startMs, events };
}

export function describeChaosEvent(e: ChaosEvent): string {
  switch (e.kind) {
    case "kill-master":
      return `master killed (down ${e.downMs} ms)`;
    case "stop-server":
      return `server ${e.node} stopped (${e.stoppedMs} ms)`;
    case "kill-server":
      return `server ${e.node} killed (down ${e.downMs} ms)`;
  }
}
