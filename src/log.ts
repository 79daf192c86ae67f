import { escapeControl } from "./util/terminal-text.ts";
import { createConsola, LogLevels, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola/core";

/**
 * Logs go to stderr always: stdout is reserved for data (`ls`, `--json`) so pipes stay clean.
 *
 * consola's core with a reporter of our own: the package's default entry point loads its fancy and
 * basic reporters, prompts and terminal detection, which cost 23 ms of every process's start here
 * (a bare `bun` script 7 ms; one importing `consola` 30 ms, `consola/core` 7 ms) — paid by every
 * `ftx` run, 20 times over by 20 concurrent fetches.
 */
export interface LogOptions {
  verbose?: boolean;
  quiet?: boolean;
}

function levelFor(opts: LogOptions): number {
  if (opts.quiet) return LogLevels.error;
  if (opts.verbose) return LogLevels.debug;
  return LogLevels.info;
}

const ICONS: Record<string, string> = {
  fatal: "✖",
  error: "✖",
  warn: "⚠",
  info: "ℹ",
  success: "✔",
  ready: "✔",
  fail: "✖",
  start: "◐",
  debug: "⚙",
  trace: "→",
};
/** ANSI colours per type, used only on a terminal that wants colour. */
const COLOURS: Record<string, number> = { fatal: 31, error: 31, fail: 31, warn: 33, info: 36, success: 32, ready: 32, start: 35, debug: 90, trace: 90 };

function formatArg(arg: unknown): string {
  if (typeof arg === "string") return arg;
  if (arg instanceof Error) return arg.message;
  return Bun.inspect(arg);
}

/** One line per message: `[tag] icon text`, the icon coloured by level when stderr is a colour terminal. */
export function stderrReporter(colour: boolean): ConsolaReporter {
  return {
    log(logObj: LogObject) {
      const icon = ICONS[logObj.type] ?? "";
      const code = COLOURS[logObj.type];
      const mark = icon && colour && code !== undefined ? `\u001b[${code}m${icon}\u001b[0m` : icon;
      const tag = logObj.tag ? (colour ? `\u001b[90m[${logObj.tag}]\u001b[0m ` : `[${logObj.tag}] `) : "";
      // Log lines carry peers' words (names, addresses, error texts): control characters are shown, not obeyed.
      const text = escapeControl(logObj.args.map(formatArg).join(" "));
      process.stderr.write(`${tag}${mark ? `${mark} ` : ""}${text}\n`);
    },
  };
}

export function createLogger(opts: LogOptions = {}, tag?: string): ConsolaInstance {
  const logger = createConsola({
    level: levelFor(opts),
    reporters: [stderrReporter(process.stderr.isTTY === true && !process.env.NO_COLOR)],
  });
  return tag ? logger.withTag(tag) : logger;
}

/** A logger that prints nothing: the default for library code used from tests. */
export const silentLogger: ConsolaInstance = createConsola({ level: LogLevels.silent, reporters: [] });

export type Logger = ConsolaInstance;
