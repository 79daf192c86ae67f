import { describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pathsChartSvg, writePathsChart, type ChartInput } from "../../../bench/chart.ts";
import { REPO } from "../../support/ftx-process.ts";

/** A fixed sample in bench/results/paths-latest.json's shape (what `bun run bench --paths` gathers); no bench runs. */
const SAMPLE: ChartInput = {
  date: "2026-11-01T00:00:00.000Z",
  samples: 3,
  capSeconds: 60,
  paths: [
    { name: "lan-0", label: "LAN veth, 0 % loss", fileBytes: 256 << 20, medianMBps: { ftx: 410, bbr: 1500, cubic: 1650 }, utilisation: undefined },
    { name: "lan-5", label: "LAN veth, 5 % loss", fileBytes: 256 << 20, medianMBps: { ftx: 280, bbr: 95.5, cubic: 12.25 } },
    { name: "wan-20m-200ms-2pct", label: "20 Mbit/s, 200 ms RTT, 2 % loss <&>", fileBytes: 64 << 20, medianMBps: { ftx: 2.31, bbr: 1.9, cubic: undefined }, utilisation: 0.92 },
  ],
};

function bars(svg: string): Array<{ tool: string; mbps: string; width: number }> {
  return [...svg.matchAll(/<rect class="bar" data-tool="(\w+)" data-mbps="([^"]*)" x="[\d.]+" y="[\d.]+" width="([\d.]+)"/g)].map((m) => ({ tool: m[1]!, mbps: m[2]!, width: Number(m[3]) }));
}

describe("bench chart (SVG)", () => {
  test("one bar per tool and path, log-scaled lengths, a capped tool hatched, labels escaped", () => {
    const svg = pathsChartSvg(SAMPLE);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    // Balanced: every opened element closed (no stray '<' from a label).
    const opened = [...svg.matchAll(/<(\w+)[ >]/g)].length;
    const selfClosed = [...svg.matchAll(/\/>/g)].length;
    const closed = [...svg.matchAll(/<\/\w+>/g)].length;
    expect(opened).toBe(selfClosed + closed);
    expect(svg).toContain("2 % loss &lt;&amp;&gt;");
    const b = bars(svg);
    expect(b.map((x) => x.tool)).toEqual(["ftx", "bbr", "cubic", "ftx", "bbr", "cubic", "ftx", "bbr", "cubic"]);
    expect(b.map((x) => x.mbps)).toEqual(["410", "1500", "1650", "280", "95.5", "12.25", "2.31", "1.9", ""]);
    // Log scale: 10× the rate is one decade further, whatever the magnitude.
    const widthOf = (i: number) => b[i]!.width;
    expect(widthOf(4) - widthOf(5)).toBeCloseTo((widthOf(0) - widthOf(3)) * (Math.log10(95.5 / 12.25) / Math.log10(410 / 280)), 0);
    expect(widthOf(3)).toBeGreaterThan(widthOf(4));
    expect(svg).toContain('fill="url(#capped)"');
    expect(svg).toContain("(capped)");
    for (const p of SAMPLE.paths) expect(svg).toContain(`data-path="${p.name}"`);
    expect(pathsChartSvg(SAMPLE)).toBe(svg); // deterministic
  });

  test("written next to the results, as the paths bench does", () => {
    const dir = join(REPO, "test-artifacts");
    mkdirSync(dir, { recursive: true });
    const path = join(dir, "paths-chart-sample.svg");
    rmSync(path, { force: true });
    writePathsChart(SAMPLE, path);
    expect(readFileSync(path, "utf8")).toBe(pathsChartSvg(SAMPLE));
  });
});
