import { defineCommand } from "citty";
import { queryMaster } from "../index/index-client.ts";
import type { ListEntry } from "../index/core/messages.ts";
import { humanBytes, renderTable } from "../util/format.ts";
import { escapeControl } from "../util/terminal-text.ts";
import { jsonArg, logArgs, resolveMasters, resolveToken, tokenArg, securityArgs, applySecurityArgs } from "./shared-args.ts";

export const exitWhenDone = true;

export default defineCommand({
  args: {
    master: { type: "positional", required: true, valueHint: "HOST:PORT", description: "The master to ask, or a comma-separated list tried in turn (env FTX_MASTER)" },
    pattern: { type: "positional", required: false, description: "Glob (with * ? [) or case-insensitive substring" },
    ...jsonArg,
    ...tokenArg,
    ...securityArgs,
    ...logArgs,
  },
  async run({ args }) {
    applySecurityArgs(args);
    const masters = resolveMasters(args.master, "MASTER");
    const [answer] = await queryMaster(masters, [args.pattern ?? ""], resolveToken(args.token));
    const entries = answer!.entries;
    if (answer!.stale) process.stderr.write("ftx: warning: the master cannot reach its shared store; this listing may be out of date\n");
    // Bun.write resolves once all of it is written: a listing of tens of MB into a pipe is not cut short
    // by the exit that follows (process.stdout.write's callback came after the first ~1 MB).
    if (args.json) for (const piece of jsonPieces(entries)) await Bun.write(Bun.stdout, piece);
    else await Bun.write(Bun.stdout, toTable(entries));
  },
});

/** One JSON array, written a few thousand entries at a time: a 45 MB listing is never one string. */
function* jsonPieces(entries: ListEntry[]): Generator<string> {
  const PER_PIECE = 2000;
  if (entries.length === 0) {
    yield "[]\n";
    return;
  }
  for (let i = 0; i < entries.length; i += PER_PIECE) {
    const body = entries
      .slice(i, i + PER_PIECE)
      .map((e) => JSON.stringify({ name: e.name, size: e.size, sha256: e.sha256, servers: e.servers }))
      .join(",");
    yield (i === 0 ? "[" : ",") + body + (i + PER_PIECE >= entries.length ? "]\n" : "");
  }
}

function toTable(entries: ListEntry[]): string {
  if (entries.length === 0) return "no files shared that match\n";
  // Names and addresses come from the network: control characters in them are shown, not obeyed.
  const rows = entries.map((e) => [escapeControl(e.name), humanBytes(e.size), e.sha256.slice(0, 12), escapeControl(e.servers.join(", "))]);
  const total = entries.reduce((n, e) => n + e.size, 0);
  return `${renderTable(["NAME", "SIZE", "SHA256", "SERVERS"], rows, new Set([1]))}\n${entries.length} file(s), ${humanBytes(total)}\n`;
}
