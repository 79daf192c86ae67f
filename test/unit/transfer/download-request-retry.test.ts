import { describe, expect, test } from "bun:test";
import { downloadSpec } from "../../support/download-spec.ts";
import { Download, type DownloadSpec } from "../../../src/transfer/download.ts";
import { PacketType, readHeader } from "../../../src/transfer/core/wire.ts";

const SPEC: DownloadSpec = downloadSpec();

/** When the REQUEST goes out, following the Download's own wake-up times, against a server that never answers. */
function requestTimes(spec: DownloadSpec): { times: number[]; failedAt: number; message: string } {
  const times: number[] = [];
  let now = 1000;
  const d = new Download(
    spec,
    { append() {}, backlogBytes: 0 },
    (bytes) => {
      if (readHeader(bytes).type === PacketType.Request) times.push(now - 1000);
    },
    now,
  );
  d.finished.catch(() => {});
  while (d.state === "requesting") {
    now = d.pollTimeout()!;
    d.onTimer(now);
  }
  return { times, failedAt: now - 1000, message: d.failure?.message ?? "" };
}

describe("REQUEST retransmission", () => {
  test("with a round trip from the path probe, the first retry comes after 4 RTTs (at least 20 ms), then doubling to 2 s", () => {
    const { times } = requestTimes({ ...SPEC, pathRttMs: 0.2 });
    expect(times.slice(0, 5)).toEqual([0, 20, 60, 140, 300]);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(Math.max(...gaps)).toBe(2000);
    expect(requestTimes({ ...SPEC, pathRttMs: 30 }).times.slice(0, 3)).toEqual([0, 120, 360]);
  });

  test("without one, or on a path slower than that, the first retry comes after 500 ms", () => {
    expect(requestTimes(SPEC).times.slice(0, 4)).toEqual([0, 500, 1500, 3500]);
    expect(requestTimes({ ...SPEC, pathRttMs: 400 }).times.slice(0, 2)).toEqual([0, 500]);
  });

  test("the server counts as unreachable once the idle timeout has passed since the first REQUEST", () => {
    for (const pathRttMs of [undefined, 0.2]) {
      const { times, failedAt, message } = requestTimes({ ...SPEC, pathRttMs });
      expect(failedAt).toBe(SPEC.idleTimeoutMs);
      expect(times.at(-1)!).toBeLessThan(SPEC.idleTimeoutMs);
      expect(message).toBe("file server s does not answer");
    }
  });
});
