import { defineCommand } from "citty";
import { statusFromMaster } from "../ops/status-client.ts";
import { toReport, type StatusReport } from "../ops/status-report.ts";
import { humanBytes, renderTable } from "../util/format.ts";
import { jsonArg, logArgs, resolveMasters, resolveToken, tokenArg, securityArgs, applySecurityArgs } from "./shared-args.ts";

export const exitWhenDone = true;

export default defineCommand({
  args: {
    master: { type: "positional", required: true, valueHint: "HOST:PORT", description: "The master to ask, or a comma-separated list tried in turn (env FTX_MASTER)" },
    ...jsonArg,
    ...tokenArg,
    ...securityArgs,
    ...logArgs,
  },
  async run({ args }) {
    applySecurityArgs(args);
    const masters = resolveMasters(args.master, "MASTER");
    const report = toReport(await statusFromMaster(masters, resolveToken(args.token)));
    process.stdout.write(args.json ? JSON.stringify(report) + "\n" : toText(report, Date.now()));
  },
});

function ago(iso: string | null, nowMs: number): string {
  if (iso === null) return "-";
  const s = Math.max(0, (nowMs - Date.parse(iso)) / 1000);
  return s < 60 ? `${s.toFixed(1)}s ago` : s < 3600 ? `${Math.floor(s / 60)}m${Math.floor(s % 60)}s ago` : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m ago`;
}

export function toText(report: StatusReport, nowMs: number): string {
  const c = report.master.counters;
  const head =
    `master ${report.master.id}, up since ${report.master.startedAt}${c.stale ? " (shared store unreachable: stale)" : ""}\n` +
    `  ${c.connections ?? 0} connection(s) open, ${c.servers ?? 0} file server(s), ${c.files ?? 0} file(s), ${humanBytes(c.bytes ?? 0)}\n` +
    `  since start: ${c.connections_total ?? 0} connections, ${c.lists_total ?? 0} lists, ${c.registrations_total ?? 0} registrations, ${c.evictions_total ?? 0} evictions, ${c.departures_total ?? 0} departures\n`;
  if (report.servers.length === 0) return `${head}\nno file servers registered\n`;
  const multi = report.servers.some((s) => s.master !== report.master.id);
  const rows = report.servers.map((s) => [
    s.address,
    String(s.files),
    humanBytes(s.bytes),
    s.connectedSince ?? "-",
    ago(s.lastHeartbeat, nowMs),
    ...(multi ? [s.master === report.master.id ? `${s.master} (this)` : s.master] : []),
  ]);
  const header = ["SERVER", "FILES", "BYTES", "CONNECTED SINCE", "LAST HEARD", ...(multi ? ["MASTER"] : [])];
  return `${head}\n${renderTable(header, rows, new Set([1, 2]))}\n`;
}
