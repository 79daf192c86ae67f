/**
 * The paths bench drawn: one SVG, a group of bars per path (ftx, TCP BBR, TCP CUBIC; median MB/s on a
 * log scale, since the paths span three orders of magnitude), labelled with the path's rate, RTT and
 * loss. `bun run bench --paths` writes it beside its JSON (bench/results/paths-latest.svg);
 * `bun bench/chart.ts [paths.json [out.svg]]` draws it again from a saved JSON. No dependency: the SVG is
 * written by hand, and a reader looks instead of reading tables.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

export interface ChartPath {
  name: string;
  label: string;
  fileBytes: number;
  /** Median MB/s per tool; undefined when every sample hit the time cap. */
  medianMBps: { ftx?: number; bbr?: number; cubic?: number };
  utilisation?: number;
}

export interface ChartInput {
  date?: string;
  samples?: number;
  capSeconds: number;
  paths: ChartPath[];
}

const TOOLS = [
  { key: "ftx", name: "ftx", colour: "#d9480f" },
  { key: "bbr", name: "TCP BBR", colour: "#1c7ed6" },
  { key: "cubic", name: "TCP CUBIC", colour: "#74b816" },
] as const;

const BAR_H = 14;
const BAR_GAP = 3;
const GROUP_GAP = 16;
const LEFT = 300; // room for the longest path label ("WAN 100 Mbit/s, 50 ms RTT, 1 % loss in bursts of 4")
const PLOT_W = 520;
const RIGHT = 90;
const TOP = 58;

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function fmt(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toPrecision(2);
}

/** The chart as SVG text; deterministic for the same input (the tests compare it). */
export function pathsChartSvg(input: ChartInput): string {
  const rates: number[] = [];
  for (const p of input.paths) for (const t of TOOLS) {
    const v = p.medianMBps[t.key];
    if (v !== undefined && v > 0) rates.push(v);
    // A capped tool is drawn at the cap's rate, so the axis must reach down to it.
    else rates.push(p.fileBytes / 1e6 / input.capSeconds);
  }
  // Half a decade of room below the slowest bar, so it still shows as a bar.
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...rates)) - 0.5));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...rates, 10))));
  const x = (v: number) => LEFT + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * PLOT_W;
  const groupH = TOOLS.length * (BAR_H + BAR_GAP) - BAR_GAP;
  const height = TOP + input.paths.length * (groupH + GROUP_GAP) + 40;
  const width = LEFT + PLOT_W + RIGHT;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui,sans-serif" font-size="12">`,
    `<title>ftx beside TCP on emulated paths</title>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="12" y="20" font-size="15" font-weight="bold">ftx beside TCP (curl ← nginx) on emulated paths: median MB/s, log scale</text>`,
    `<text x="12" y="38" fill="#666">${esc([input.date ? `run ${input.date}` : "", input.samples ? `median of ${input.samples} samples` : "", `hatched: every sample stopped at ${input.capSeconds} s`].filter(Boolean).join(" · "))}</text>`,
  );
  // Legend.
  TOOLS.forEach((t, i) => {
    const lx = LEFT + PLOT_W - 250 + i * 85;
    out.push(`<rect x="${lx}" y="44" width="10" height="10" fill="${t.colour}"/><text x="${lx + 14}" y="53">${esc(t.name)}</text>`);
  });
  out.push(`<defs><pattern id="capped" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#eee"/><line x1="0" y1="0" x2="0" y2="6" stroke="#999" stroke-width="3"/></pattern></defs>`);
  // Grid: one line per decade.
  const plotBottom = height - 30;
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    const gx = x(d).toFixed(1);
    out.push(`<line x1="${gx}" y1="${TOP - 4}" x2="${gx}" y2="${plotBottom}" stroke="#ddd"/><text x="${gx}" y="${plotBottom + 14}" text-anchor="middle" fill="#666">${Number(d.toPrecision(1))}</text>`);
  }
  out.push(`<text x="${LEFT + PLOT_W / 2}" y="${plotBottom + 28}" text-anchor="middle" fill="#666">MB/s</text>`);
  input.paths.forEach((p, gi) => {
    const gy = TOP + gi * (groupH + GROUP_GAP);
    out.push(
      `<g class="path" data-path="${esc(p.name)}">`,
      `<text x="${LEFT - 8}" y="${gy + 12}" text-anchor="end" font-weight="bold">${esc(p.name)}</text>`,
      `<text x="${LEFT - 8}" y="${gy + 27}" text-anchor="end" fill="#555" font-size="11">${esc(p.label)}</text>`,
    );
    TOOLS.forEach((t, ti) => {
      const by = gy + ti * (BAR_H + BAR_GAP);
      const v = p.medianMBps[t.key];
      const capped = v === undefined;
      const shown = capped ? p.fileBytes / 1e6 / input.capSeconds : v;
      const w = Math.max(1, x(shown) - LEFT);
      const text = capped ? `< ${fmt(shown)} (capped)` : fmt(v);
      out.push(
        `<rect class="bar" data-tool="${t.key}" data-mbps="${capped ? "" : v}" x="${LEFT}" y="${by}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${capped ? "url(#capped)" : t.colour}"><title>${esc(`${p.name}, ${t.name}: ${text} MB/s`)}</title></rect>`,
        `<text x="${(LEFT + w + 4).toFixed(1)}" y="${by + BAR_H - 3}" font-size="11">${esc(text)}</text>`,
      );
    });
    out.push(`</g>`);
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

/** Write the chart of a paths result (bench/results/paths-latest.json's shape) to `svgPath`. */
export function writePathsChart(input: ChartInput, svgPath: string): void {
  writeFileSync(svgPath, pathsChartSvg(input));
}

if (import.meta.main) {
  const jsonPath = process.argv[2] ?? resolve(import.meta.dir, "results/paths-latest.json");
  const svgPath = process.argv[3] ?? jsonPath.replace(/\.json$/, "") + ".svg";
  writePathsChart(JSON.parse(readFileSync(jsonPath, "utf8")) as ChartInput, svgPath);
  console.log(`SVG: ${join(svgPath)}`);
}
