import { expect, test } from "bun:test";
import { formatAddress, parseBindHost, parseHostPort, unmapIPv4 } from "../../../src/net/address.ts";

test("HOST:PORT in every accepted form", () => {
  expect(parseHostPort("127.0.0.1:7700", "x")).toEqual({ host: "127.0.0.1", port: 7700 });
  expect(parseHostPort("[::1]:40123", "x")).toEqual({ host: "::1", port: 40123 });
  expect(parseHostPort("localhost:1", "x")).toEqual({ host: "localhost", port: 1 });
  expect(parseHostPort("example.org", "x", 0)).toEqual({ host: "example.org", port: 0 });
  expect(parseHostPort("::1", "x", 0)).toEqual({ host: "::1", port: 0 });
  expect(parseHostPort("[::1]", "x", 0)).toEqual({ host: "::1", port: 0 });
});

test("bad addresses are usage errors naming the problem", () => {
  expect(() => parseHostPort("127.0.0.1", "MASTER")).toThrow(/no port/);
  expect(() => parseHostPort("127.0.0.1:abc", "MASTER")).toThrow(/not a port/);
  expect(() => parseHostPort("127.0.0.1:70000", "MASTER")).toThrow(/out of range/);
  expect(() => parseHostPort("::1:7700", "MASTER")).toThrow(/brackets/);
  expect(() => parseHostPort("[::1:7700", "MASTER")).toThrow(/unclosed/);
  expect(() => parseHostPort("bad host:1", "MASTER")).toThrow(/not a host/);
  expect(() => parseHostPort("h:0", "MASTER")).toThrow(/out of range/);
});

test("addresses print one way: IPv6 in brackets, mapped IPv4 plain", () => {
  expect(formatAddress("127.0.0.1", 1)).toBe("127.0.0.1:1");
  expect(formatAddress("::1", 2)).toBe("[::1]:2");
  expect(formatAddress("[::1]", 2)).toBe("[::1]:2");
  expect(formatAddress("::ffff:10.0.0.1", 3)).toBe("10.0.0.1:3");
  expect(unmapIPv4("::ffff:127.0.0.1")).toBe("127.0.0.1");
  expect(parseBindHost("[::1]")).toBe("::1");
  expect(parseBindHost("::")).toBe("::");
});
