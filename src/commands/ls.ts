import { defineCommand } from "citty";
import { queryMaster } from "../index/index-client.ts";
import type { ListEntry } from "../index/core/messages.ts";
import { humanBytes, renderTable } from "../util/format.ts";
import { escapeControl } from "../util/terminal-text.ts";
import { jsonArg, logArgs, resolveMasters, resolveToken, tokenArg } from "./shared-args.ts";

export const exitWhenDone = true;

export default defineCommand({
  args: {
    master: { type: "positional", required: true, valueHint: "HOST:PORT", description: "The master to ask, or a comma-separated list tried in turn (env FTX_MASTER)" },
    pattern: { type: "positional", required: false, description: "Glob (with * ? [) or case-insensitive substring" },
    ...jsonArg,
    ...tokenArg,
    ...logArgs,
  },
  async run({ args }) {
    const masters = resolveMasters(args.master, "MASTER");
    const [answer] = await queryMaster(masters, [args.pattern ?? ""], resolveToken(args.token));
    const entries = answer!.entries;
    if (answer!.stale) process.stderr.write("ftx: warning: the master cannot reach its shared store; this listing may be out of date\n");
    process.stdout.write(args.json ? toJson(entries) : toTable(entries));
  },
});

function toJson(entries: ListEntry[]): string {
  return JSON.stringify(entries.map((e) => ({ name: e.name, size: e.size, sha256: e.sha256, servers: e.servers }))) + "\n";
}

function toTable(entries: ListEntry[]): string {
  if (entries.length === 0) return "no files shared that match\n";
  // Names and addresses come from the network: control characters in them are shown, not obeyed.
  const rows = entries.map((e) => [escapeControl(e.name), humanBytes(e.size), e.sha256.slice(0, 12), escapeControl(e.servers.join(", "))]);
  const total = entries.reduce((n, e) => n + e.size, 0);
  return `${renderTable(["NAME", "SIZE", "SHA256", "SERVERS"], rows, new Set([1]))}\n${entries.length} file(s), ${humanBytes(total)}\n`;
}
