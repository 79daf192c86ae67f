import type { ArgsDef } from "citty";
import { UsageError } from "../errors.ts";
import { parseHostPort, type HostPort } from "../net/address.ts";

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

/** A flag on the command line wins over the environment; an empty value means "none". */
export function resolveToken(flag: string | undefined): string | undefined {
  const value = flag ?? process.env.FTX_TOKEN;
  return value === undefined || value === "" ? undefined : value;
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
