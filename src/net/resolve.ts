import { lookup } from "node:dns/promises";
import { FtxError } from "../errors.ts";
import { bareHost } from "./address.ts";
import { ipVersion } from "./ip.ts";

/**
 * Resolve a host to one IP address. Bun's `udpSocket.send()` does no DNS, so every UDP destination
 * goes through here first.
 */
export async function resolveHost(host: string): Promise<string> {
  const h = bareHost(host);
  if (ipVersion(h)) return h;
  try {
    const { address } = await lookup(h);
    return address;
  } catch (err) {
    throw new FtxError("E_UNREACHABLE", `cannot resolve host '${h}'`, { cause: err });
  }
}
