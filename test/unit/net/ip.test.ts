import { describe, expect, test } from "bun:test";
import { isIP } from "node:net";
import { ipBytes, ipVersion } from "../../../src/net/ip.ts";
import { Rng } from "../../support/random.ts";

const CASES: [string, 0 | 4 | 6][] = [
  ["127.0.0.1", 4],
  ["0.0.0.0", 4],
  ["255.255.255.255", 4],
  ["256.1.1.1", 0],
  ["1.2.3", 0],
  ["1.2.3.4.5", 0],
  ["01.2.3.4", 0],
  ["1.2.3.-4", 0],
  ["::", 6],
  ["::1", 6],
  ["1::", 6],
  ["fe80::1%eth0", 6],
  ["fe80::1%", 0],
  ["::ffff:10.0.0.1", 6],
  ["1:2:3:4:5:6:7:8", 6],
  ["1:2:3:4:5:6:7:8:9", 0],
  ["1:2:3:4:5:6:7", 0],
  ["1:2:3:4:5:6:1.2.3.4", 6],
  ["1:2:3:4:5:6:7:1.2.3.4", 0],
  ["1::2::3", 0],
  ["12345::", 0],
  [":1:2:3:4:5:6:7", 0],
  ["1:2:3:4:5:6:7:", 0],
  ["1.2.3.4::", 0],
  ["[::1]", 0],
  ["localhost", 0],
  ["", 0],
];

describe("ipVersion", () => {
  test("known literals", () => {
    for (const [text, version] of CASES) expect([text, ipVersion(text)]).toEqual([text, version]);
  });

  test("agrees with node:net isIP on 20,000 random and mutated strings", () => {
    const rng = new Rng(7);
    const alphabet = "0123456789abcdefABCDEF:.%g-x ";
    const seeds = CASES.map(([t]) => t);
    for (let i = 0; i < 20_000; i++) {
      let text: string;
      if (rng.chance(0.5)) {
        const chars = [...seeds[rng.int(seeds.length)]!];
        for (let m = rng.int(3); m >= 0; m--) {
          const at = rng.int(chars.length + 1);
          if (rng.chance(0.5)) chars.splice(at, 1);
          else chars.splice(at, 0, alphabet[rng.int(alphabet.length)]!);
        }
        text = chars.join("");
      } else {
        text = Array.from({ length: rng.int(20) }, () => alphabet[rng.int(alphabet.length)]).join("");
      }
      expect([text, ipVersion(text)]).toEqual([text, isIP(text) as 0 | 4 | 6]);
    }
  });
});

describe("ipBytes", () => {
  test("IPv4 and IPv6 literals to their bytes, as the socket address needs them; anything else undefined", () => {
    expect(ipBytes("198.18.0.2")).toEqual(Uint8Array.from([198, 18, 0, 2]));
    expect(ipBytes("::1")).toEqual(Uint8Array.from([...new Array(15).fill(0), 1]));
    expect(ipBytes("::ffff:10.0.0.1")).toEqual(Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]));
    expect(ipBytes("2001:db8::8:800:200c:417a")).toEqual(Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 8, 8, 0, 0x20, 0x0c, 0x41, 0x7a]));
    expect(ipBytes("fe80::1%eth0")).toEqual(Uint8Array.from([0xfe, 0x80, ...new Array(13).fill(0), 1]));
    expect(ipBytes("1:2:3:4:5:6:7:8")).toEqual(Uint8Array.from([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]));
    for (const bad of ["", "localhost", "1.2.3", "::1::", "256.0.0.1"]) expect(ipBytes(bad)).toBeUndefined();
  });
});
