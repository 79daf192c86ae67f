import { defineCommand } from "citty";
import { FetchProgress } from "../cli/progress.ts";
import { UsageError } from "../errors.ts";
import { fetchFiles } from "../fetch/fetch-files.ts";
import { createLogger } from "../log.ts";
import { parseBindHost } from "../net/address.ts";
import { MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES } from "../transfer/core/wire.ts";
import { escapeControl } from "../util/terminal-text.ts";
import { jsonArg, logArgs, parseSeconds, resolveMasters, resolveToken, tokenArg, securityArgs, applySecurityArgs } from "./shared-args.ts";

export const variadic = true;
export const exitWhenDone = true;

export default defineCommand({
  args: {
    master: { type: "positional", required: true, valueHint: "HOST:PORT", description: "The master to ask, or a comma-separated list tried in turn (env FTX_MASTER)" },
    file: { type: "positional", required: true, valueHint: "FILE...", description: "Names as `ftx ls` shows them" },
    output: { type: "string", alias: "o", default: ".", valueHint: "DIR", description: "Where to write (created if missing)" },
    ...jsonArg,
    ...tokenArg,
    ...securityArgs,
    "segment-size": { type: "string", valueHint: "BYTES", description: `Pin the datagram payload size (${MIN_SEGMENT_BYTES}–${MAX_SEGMENT_BYTES})` },
    parallel: { type: "string", default: "8", valueHint: "N", description: "Files downloaded at the same time" },
    bind: { type: "string", valueHint: "HOST", description: "Source address to send from (multi-homed hosts)" },
    "idle-timeout": { type: "string", default: "10", valueHint: "SECONDS", description: "Give up on a server silent this long (the others take over its share)" },
    "retry-for": { type: "string", default: "15", valueHint: "SECONDS", description: "With no server able to deliver a file, keep asking the master this long before failing it" },
    ...logArgs,
  },
  async run({ args }) {
    applySecurityArgs(args);
    const masters = resolveMasters(args.master, "MASTER");
    const files = args._.slice(1);
    const segmentBytes = args["segment-size"] === undefined ? undefined : parseIntArg(args["segment-size"], "--segment-size", MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES);
    const concurrency = parseIntArg(args.parallel, "--parallel", 1, 256);
    const idleTimeoutMs = Math.round(parseSeconds(args["idle-timeout"], "--idle-timeout") * 1000);
    const retryForMs = Math.round(parseSeconds(args["retry-for"], "--retry-for") * 1000);
    const logger = createLogger(args, "fetch");
    const progress = new FetchProgress(process.stderr, process.stderr.isTTY === true && !args.quiet, args.quiet === true);
    let results;
    try {
      results = await fetchFiles({
        masters,
        files,
        outDir: args.output,
        token: resolveToken(args.token),
        logger,
        segmentBytes,
        concurrency,
        idleTimeoutMs,
        retryForMs,
        progress,
        bindHost: args.bind === undefined ? undefined : parseBindHost(args.bind, "--bind"),
      });
    } finally {
      progress.stop();
    }
    // One line per distinct problem: an unreachable master is said once, not once per FILE.
    for (const error of new Set(results.filter((r) => !r.ok).map((r) => r.error))) process.stderr.write(`ftx: ${escapeControl(error ?? "")}\n`);
    if (args.json) process.stdout.write(JSON.stringify(results) + "\n");
    process.exitCode = results.every((r) => r.ok) ? 0 : 1;
  },
});

function parseIntArg(text: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${what}: '${text}' is not a whole number`);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`${what}: ${n} is out of range (${min}–${max})`);
  return n;
}
