import { UsageError } from "../errors.ts";
import { parseHostPort, type HostPort } from "../net/address.ts";

/** `--http HOST:PORT`: the port is required (0 picks a free one, the log line says which). */
export function parseListenArg(text: string, what = "--http"): HostPort {
  const parsed = parseHostPort(text, what, 0);
  if (!/:\d+$/.test(text) || (text.startsWith("[") === false && text.split(":").length > 2))
    throw new UsageError(`${what}: '${text}' is not HOST:PORT (port 0 picks a free one; IPv6 in brackets, as [::1]:8080)`);
  return parsed;
}
