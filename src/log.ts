import { createConsola, LogLevels, type ConsolaInstance } from "consola";

/**
 * Logs go to stderr always: stdout is reserved for data (`ls`, `--json`) so pipes stay clean.
 * consola's info/log would otherwise write to stdout.
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

export function createLogger(opts: LogOptions = {}, tag?: string): ConsolaInstance {
  const logger = createConsola({
    level: levelFor(opts),
    stdout: process.stderr,
    stderr: process.stderr,
    formatOptions: { colors: process.stderr.isTTY === true && !process.env.NO_COLOR, date: false },
  });
  return tag ? logger.withTag(tag) : logger;
}

/** A logger that prints nothing: the default for library code used from tests. */
export const silentLogger: ConsolaInstance = createConsola({ level: LogLevels.silent });

export type Logger = ConsolaInstance;
