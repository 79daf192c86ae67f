import type { Server } from "bun";
import { FtxError, UsageError } from "../errors.ts";
import { formatAddress, parseHostPort, type HostPort } from "../net/address.ts";

/** `--http HOST:PORT`: the port is required (0 picks a free one, the log line says which). */
export function parseListenArg(text: string, what = "--http"): HostPort {
  const parsed = parseHostPort(text, what, 0);
  if (!/:\d+$/.test(text) || (text.startsWith("[") === false && text.split(":").length > 2))
    throw new UsageError(`${what}: '${text}' is not HOST:PORT (port 0 picks a free one; IPv6 in brackets, as [::1]:8080)`);
  return parsed;
}

/** A Bun.serve on `listen` (an E_IO FtxError naming the address when it cannot listen). */
export function listenHttp(listen: HostPort, fetch: (req: Request, server: Server<undefined>) => Response | Promise<Response>, idleTimeoutS?: number): Server<undefined> {
  try {
    return Bun.serve({ hostname: listen.host, port: listen.port, ...(idleTimeoutS !== undefined && { idleTimeout: idleTimeoutS }), fetch });
  } catch (err) {
    throw new FtxError("E_IO", `cannot listen for HTTP on ${formatAddress(listen.host, listen.port)}: ${(err as Error).message}`, { cause: err });
  }
}

/** The URL to print for a server listening on `listen` (a wildcard host shown as loopback). */
export function httpUrl(listen: HostPort, port: number): string {
  return `http://${formatAddress(listen.host === "0.0.0.0" || listen.host === "::" ? "127.0.0.1" : listen.host, port)}/`;
}
