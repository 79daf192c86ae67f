import { describe, expect, test } from "bun:test";
import { ADDRESS_TOKEN_REUSE_MS, AddressTokenCache } from "../../../src/transfer/address-token-cache.ts";
import { ADDRESS_TOKEN_LIFETIME_MS, AddressTokens } from "../../../src/transfer/core/address-token.ts";

describe("the client's address tokens", () => {
  test("one greeting (token and key share) per server, the newest, used for 20 s after it arrived (inside the server's 30 s)", () => {
    const cache = new AddressTokenCache();
    const a = cache.slot("127.0.0.1", 4000);
    const b = cache.slot("127.0.0.1", 4001);
    const greeting = (fill: number) => ({ token: new Uint8Array(20).fill(fill), kx: 0, epochId: new Uint8Array(16).fill(fill), share: new Uint8Array(32).fill(fill) });
    const t1 = greeting(1);
    const t2 = greeting(2);
    expect(a.get(0)).toBeUndefined();
    a.set(t1, 1000);
    expect(a.get(1000 + ADDRESS_TOKEN_REUSE_MS - 1)).toBe(t1);
    expect(b.get(1000)).toBeUndefined(); // another server's
    expect(cache.slot("127.0.0.1", 4000).get(2000)).toBe(t1); // the same server through another slot
    a.set(t2, 5000);
    expect(a.get(6000)).toBe(t2);
    expect(a.get(5000 + ADDRESS_TOKEN_REUSE_MS)).toBeUndefined();
    expect(ADDRESS_TOKEN_REUSE_MS).toBeLessThan(ADDRESS_TOKEN_LIFETIME_MS);
  });
});

describe("the server's address tokens", () => {
  test("valid for its address from its issued second until the lifetime has passed since it, for its server only", () => {
    const tokens = new AddressTokens(new Uint8Array(32).fill(1));
    const t = tokens.issue("::ffff:10.0.0.1", 10_500); // issued_s = 10
    expect(new DataView(t.buffer).getUint32(0)).toBe(10);
    expect(tokens.check(t, "::ffff:10.0.0.1", 10_000)).toBe(true);
    expect(tokens.check(t, "::ffff:10.0.0.1", 9_999)).toBe(false);
    expect(tokens.check(t, "::ffff:10.0.0.1", 10_000 + ADDRESS_TOKEN_LIFETIME_MS)).toBe(true);
    expect(tokens.check(t, "::ffff:10.0.0.1", 10_000 + ADDRESS_TOKEN_LIFETIME_MS + 1)).toBe(false);
    expect(tokens.check(t, "::ffff:10.0.0.2", 10_500)).toBe(false);
    expect(tokens.check(t, "10.0.0.1", 10_500)).toBe(false); // the socket's spelling, as it reports it
    expect(new AddressTokens(new Uint8Array(32).fill(2)).check(t, "::ffff:10.0.0.1", 10_500)).toBe(false);
    const later = t.slice();
    new DataView(later.buffer).setUint32(0, 11); // claiming another time breaks the tag
    expect(tokens.check(later, "::ffff:10.0.0.1", 11_000)).toBe(false);
    expect(tokens.check(undefined, "::ffff:10.0.0.1", 10_500)).toBe(false);
    expect(tokens.check(t.subarray(0, 19), "::ffff:10.0.0.1", 10_500)).toBe(false);
  });
});
