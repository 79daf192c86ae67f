import { ipVersion } from "./ip.ts";
import { UsageError } from "../errors.ts";

export interface HostPort {
  host: string; // bare: IPv6 without brackets
  port: number;
}

/** Strip the brackets a user may put around an IPv6 host (`[::1]` → `::1`). */
export function bareHost(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** Bun reports IPv4 peers of a dual-stack socket as `::ffff:a.b.c.d`; show them as plain IPv4. */
export function unmapIPv4(host: string): string {
  return host.startsWith("::ffff:") && ipVersion(host.slice(7)) === 4 ? host.slice(7) : host;
}

/** The one way ftx writes an address: `127.0.0.1:40123`, `[::1]:40123`, `example.org:80`. */
export function formatAddress(host: string, port: number): string {
  const h = unmapIPv4(bareHost(host));
  return ipVersion(h) === 6 ? `[${h}]:${port}` : `${h}:${port}`;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export function isValidHost(host: string): boolean {
  const h = bareHost(host);
  return ipVersion(h) !== 0 || HOSTNAME.test(h);
}

export function parsePort(text: string, what: string, allowZero: boolean): number {
  if (!/^\d{1,5}$/.test(text)) throw new UsageError(`${what}: '${text}' is not a port number`);
  const port = Number(text);
  if (port > 65535 || (!allowZero && port === 0)) throw new UsageError(`${what}: port ${port} is out of range`);
  return port;
}

/**
 * Parse `HOST:PORT` (IPv4, `[IPv6]`, or a name). With `defaultPort`, a bare HOST is accepted too
 * (used by `--advertise HOST[:PORT]`).
 */
export function parseHostPort(text: string, what: string, defaultPort?: number): HostPort {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw new UsageError(`${what}: '${text}' has an unclosed '['`);
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest === "") portText = undefined;
    else if (rest.startsWith(":")) portText = rest.slice(1);
    else throw new UsageError(`${what}: '${text}' is not HOST:PORT`);
    if (ipVersion(host) !== 6) throw new UsageError(`${what}: '${host}' is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon >= 0 && text.indexOf(":") !== colon) {
      // Several colons without brackets: a bare IPv6 address, accepted only where the port is optional.
      if (defaultPort === undefined || ipVersion(text) !== 6)
        throw new UsageError(`${what}: write an IPv6 address in brackets, as [::1]:7700`);
      host = text;
      portText = undefined;
    } else if (colon >= 0) {
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    } else {
      host = text;
      portText = undefined;
    }
    if (!isValidHost(host)) throw new UsageError(`${what}: '${host}' is not a host name or address`);
  }
  if (portText === undefined) {
    if (defaultPort === undefined) throw new UsageError(`${what}: '${text}' has no port (expected HOST:PORT)`);
    return { host, port: defaultPort };
  }
  return { host, port: parsePort(portText, what, defaultPort !== undefined) };
}

/** `--host` takes `::1` or `[::1]`. */
export function parseBindHost(text: string, what = "--host"): string {
  const h = bareHost(text);
  if (!isValidHost(h)) throw new UsageError(`${what}: '${text}' is not a host name or address`);
  return h;
}
