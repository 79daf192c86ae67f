import type { ArgsDef } from "citty";
import { UsageError } from "../errors.ts";
import { parseHostPort, type HostPort } from "../net/address.ts";
import { indexSecurityDefaults } from "../index/index-client.ts";
import { describeChannel } from "../index/core/handshake.ts";
import { transferSecurityDefaults } from "../transfer/transfer-crypto.ts";

/** Flags every command takes, defined once and spread into each command's args. */
export const logArgs = {
  verbose: { type: "boolean", alias: "V", description: "Log more (debug level; stack traces on errors)" },
  quiet: { type: "boolean", alias: "q", description: "Log only errors" },
} as const satisfies ArgsDef;

export const tokenArg = {
  token: { type: "string", valueHint: "SECRET", description: "Shared secret; env FTX_TOKEN" },
} as const satisfies ArgsDef;

export const jsonArg = {
  json: { type: "boolean", description: "Print JSON on stdout" },
} as const satisfies ArgsDef;

export const securityArgs = {
  "insecure-plaintext": {
    type: "boolean",
    description:
      "Do not encrypt (for measurement only): the token still authenticates, but anyone on the path reads everything; the master (for index connections) and the file server (for transfers) must be started with it to allow it",
  },
} as const satisfies ArgsDef;

/**
 * A token shorter than this draws a warning. The PAKE allows one online guess per connection and none
 * offline, so even a short token is not cracked from a capture; but a master takes many connections.
 */
export const SHORT_TOKEN_CHARS = 16;

/** A flag on the command line wins over the environment; an empty value means "none". */
export function resolveToken(flag: string | undefined): string | undefined {
  const value = flag ?? process.env.FTX_TOKEN;
  if (value !== undefined && value !== "" && value.length < SHORT_TOKEN_CHARS && !warnedShort) {
    warnedShort = true;
    process.stderr.write(`ftx: warning: the token is short (${value.length} characters); \`ftx token\` prints a strong one\n`);
  }
  return value === undefined || value === "" ? undefined : value;
}
let warnedShort = false;

/**
 * Sets every index connection and transfer of this process from the flags: `--insecure-plaintext`
 * asks for unencrypted frames and datagrams (and lets a file server allow them), and `--verbose` names
 * the cipher and whether the master was authenticated.
 */
export function applySecurityArgs(args: { "insecure-plaintext"?: boolean; verbose?: boolean }): void {
  indexSecurityDefaults.plaintext = args["insecure-plaintext"] === true;
  transferSecurityDefaults.plaintext = args["insecure-plaintext"] === true;
  if (args.verbose)
    indexSecurityDefaults.onSecured = (info, master) => process.stderr.write(`ftx: index connection to ${master}: ${describeChannel(info)}\n`);
}

/** MASTER, `--master` and FTX_MASTER take one HOST:PORT or a comma-separated list, tried in turn. */
export function resolveMasters(flagOrArg: string | undefined, what: string): HostPort[] {
  const text = flagOrArg ?? process.env.FTX_MASTER ?? "127.0.0.1:7700";
  const parts = text.split(",").map((p) => p.trim());
  if (parts.some((p) => p === "")) throw new UsageError(`${what}: '${text}' has an empty entry`);
  return parts.map((p) => parseHostPort(p, what));
}

export function parseSeconds(text: string, what: string): number {
  if (!/^\d+(\.\d+)?$/.test(text)) throw new UsageError(`${what}: '${text}' is not a number of seconds`);
  const s = Number(text);
  if (s <= 0 || s > 86_400) throw new UsageError(`${what}: ${text} is out of range (0 < seconds ≤ 86400)`);
  return s;
}
