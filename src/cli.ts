#!/usr/bin/env bun
import { renderUsage, runCommand, type CommandDef } from "citty";
import { checkArgs } from "./cli/strict-args.ts";
import { FtxError, UsageError } from "./errors.ts";
import { escapeControl } from "./util/terminal-text.ts";
import { VERSION } from "./version.ts";

/**
 * The one entry point. Subcommands load lazily through literal import paths (so `bun build --compile`
 * bundles them). citty parses; we check arguments strictly first and own the exit codes:
 * 0 ok, 1 failure, 2 bad usage.
 */
interface CommandModule {
  default: CommandDef<any>;
  variadic?: boolean;
  /**
   * A one-shot command (ls, fetch): once it has answered, the process ends. Every handle ftx owns is
   * closed by then, but a host-name lookup in flight cannot be abandoned (getaddrinfo runs to its own
   * timeout, 10 s with the default resolv.conf), and the contract wants an unreachable master reported
   * and the process gone within 5 s.
   */
  exitWhenDone?: boolean;
}

const commands: Record<string, { description: string; load: () => Promise<CommandModule> }> = {
  master: { description: "Run the index that file servers register with", load: () => import("./commands/master.ts") },
  serve: { description: "Share a folder: register with a master and serve downloads over UDP", load: () => import("./commands/serve.ts") },
  ls: { description: "List the files shared through a master", load: () => import("./commands/ls.ts") },
  fetch: { description: "Download files over UDP, verified by SHA-256", load: () => import("./commands/fetch.ts") },
  status: { description: "Show the file servers behind a master and its counters", load: () => import("./commands/status.ts") },
  token: { description: "Print a fresh random token for --token / FTX_TOKEN", load: () => import("./commands/token.ts") },
};

const root: CommandDef = {
  meta: { name: "ftx", version: VERSION, description: "Fast, verified file transfer over UDP" },
  subCommands: Object.fromEntries(
    Object.entries(commands).map(([name, c]) => [name, async () => ({ ...(await c.load()).default, meta: { name, description: c.description } })]),
  ),
};

function plain(text: string): string {
  // citty colours its usage unless NO_COLOR/CI; we never colour what goes to a pipe.
  return process.stdout.isTTY && !process.env.NO_COLOR ? text : text.replace(/\u001b\[[0-9;]*m/g, "");
}

function usageError(message: string, command?: string): never {
  const hint = command ? `ftx ${command} --help` : "ftx --help";
  process.stderr.write(`ftx: ${message}\nTry '${hint}' for usage.\n`);
  process.exit(2);
}

function reportFailure(err: unknown, verbose: boolean): void {
  if (err instanceof FtxError) {
    // A message may carry a peer's words (a master's ERROR text, a name): shown, never obeyed.
    process.stderr.write(`ftx: ${escapeControl(err.message)}\n`);
    if (verbose && err.stack) process.stderr.write(`${err.stack}\n`);
  } else {
    const e = err as Error;
    process.stderr.write(`ftx: unexpected error: ${escapeControl(e?.message ?? String(err))}\n`);
    if (verbose && e?.stack) process.stderr.write(`${e.stack}\n`);
    else process.stderr.write("(run again with --verbose for details)\n");
  }
}

async function main(argv: string[]): Promise<void> {
  const first = argv[0];
  if (first === undefined) usageError("missing command (master, serve, ls, fetch, status)");
  if (first === "--version" || first === "-v") {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  if (first === "--help" || first === "-h" || first === "help") {
    process.stdout.write(plain(await renderUsage(root)) + "\n");
    return;
  }
  const entry = commands[first];
  if (!entry) usageError(first.startsWith("-") ? `unknown option '${first}'` : `unknown command '${first}'`);
  const mod = await entry.load();
  const cmd: CommandDef<any> = { ...mod.default, meta: { name: first, description: entry.description } };
  const rest = argv.slice(1);
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(plain(await renderUsage(cmd, root)) + "\n");
    return;
  }
  const verbose = rest.includes("--verbose") || rest.includes("-V");
  try {
    checkArgs(rest, (cmd.args ?? {}) as Record<string, never>, mod.variadic === true);
    await runCommand(cmd, { rawArgs: rest });
  } catch (err) {
    if (err instanceof UsageError || (err as { name?: string })?.name === "CLIError") usageError((err as Error).message, first);
    reportFailure(err, verbose);
    process.exitCode = 1;
  }
  if (mod.exitWhenDone) await exitAfterOutput();
}

/** Exit once stdout and stderr have taken everything written to them (a pipe may still be draining). */
async function exitAfterOutput(): Promise<never> {
  await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write("", () => resolve()))));
  process.exit(process.exitCode ?? 0);
}

await main(process.argv.slice(2));
