import { describe, expect, test } from "bun:test";
import { aes256gcm } from "../../../src/crypto/aes-gcm.ts";
import { DATAGRAM_OVERHEAD_BYTES, DatagramOpener, DatagramSealer, REPLAY_WINDOW, ReplayWindow } from "../../../src/transfer/core/datagram-aead.ts";
import { mutate, Rng } from "../../support/random.ts";

const KEY = new Uint8Array(32).fill(9);
const IV = new Uint8Array(12).fill(3);
const HEADER_BYTES = 26;

function pair() {
  return { sealer: new DatagramSealer(aes256gcm(KEY), IV), opener: new DatagramOpener(aes256gcm(KEY), IV) };
}

function header(seq: number): Uint8Array {
  const h = new Uint8Array(HEADER_BYTES);
  new DataView(h.buffer).setUint32(10, seq);
  return h;
}

describe("datagram AEAD", () => {
  test("sealed datagrams open to their payload, each with its own packet number; overhead is 24 bytes", () => {
    const { sealer, opener } = pair();
    const payload = new Uint8Array(1374).fill(0xab);
    const d0 = sealer.seal(header(5), payload);
    const d1 = sealer.seal(header(5), payload); // a retransmission: same header, new pn, other bytes
    expect(d0.byteLength).toBe(HEADER_BYTES + 1374 + DATAGRAM_OVERHEAD_BYTES);
    expect(DATAGRAM_OVERHEAD_BYTES).toBe(24);
    expect(Buffer.from(d0).equals(Buffer.from(d1))).toBe(false);
    // No run of the payload survives in the ciphertext.
    expect(Buffer.from(d0).includes(Buffer.alloc(16, 0xab))).toBe(false);
    const r0 = opener.open(d0, HEADER_BYTES);
    const r1 = opener.open(d1, HEADER_BYTES);
    expect(r0.ok && r0.pn).toBe(0);
    expect(r1.ok && r1.pn).toBe(1);
    expect(r0.ok && Buffer.from(r0.payload).equals(Buffer.from(payload))).toBe(true);
    expect(opener.stats).toEqual({ opened: 2, tampered: 0, replayed: 0, tooOld: 0, malformed: 0 });
  });

  test("tampered header, packet number, ciphertext or tag: refused and counted, never delivered", () => {
    const { sealer, opener } = pair();
    const d = sealer.seal(header(1), new TextEncoder().encode("secret content"));
    for (const at of [0, HEADER_BYTES - 1, HEADER_BYTES + 7, HEADER_BYTES + 8, d.byteLength - 1]) {
      const bad = d.slice();
      bad[at]! ^= 0x01;
      expect({ at, r: opener.open(bad, HEADER_BYTES) }).toEqual({ at, r: { ok: false, why: "tampered" } });
    }
    expect(opener.stats.tampered).toBe(5);
    // The original still opens: forgeries did not move the window.
    expect(opener.open(d, HEADER_BYTES).ok).toBe(true);
    // Another key: tampered too.
    const other = new DatagramOpener(aes256gcm(new Uint8Array(32).fill(1)), IV);
    expect(other.open(d, HEADER_BYTES)).toEqual({ ok: false, why: "tampered" });
  });

  test("replayed: refused and counted; reordered within the window: accepted once each", () => {
    const { sealer, opener } = pair();
    const ds = Array.from({ length: 10 }, (_, i) => sealer.seal(header(i), Uint8Array.of(i)));
    for (const i of [0, 3, 1, 2, 9, 4, 8, 5, 7, 6]) expect(opener.open(ds[i]!, HEADER_BYTES).ok).toBe(true);
    for (const i of [0, 9, 5]) expect(opener.open(ds[i]!, HEADER_BYTES)).toEqual({ ok: false, why: "replayed" });
    expect(opener.stats).toMatchObject({ opened: 10, replayed: 3 });
  });

  test(`older than the window (${REPLAY_WINDOW} packet numbers): refused as too old, even if never seen`, () => {
    const { sealer, opener } = pair();
    const first = sealer.seal(header(0), Uint8Array.of(0));
    let last: Uint8Array | undefined;
    for (let i = 1; i <= REPLAY_WINDOW; i++) last = sealer.seal(header(i), Uint8Array.of(1));
    expect(opener.open(last!, HEADER_BYTES).ok).toBe(true); // pn = REPLAY_WINDOW
    expect(opener.open(first, HEADER_BYTES)).toEqual({ ok: false, why: "too-old" });
    expect(opener.stats.tooOld).toBe(1);
  });

  test("malformed (shorter than header + pn + tag): refused, counted", () => {
    const { opener } = pair();
    expect(opener.open(new Uint8Array(HEADER_BYTES + DATAGRAM_OVERHEAD_BYTES - 1), HEADER_BYTES)).toEqual({ ok: false, why: "malformed" });
    expect(opener.stats.malformed).toBe(1);
  });

  test("fuzz: 20,000 mutated and random datagrams: the opener never throws, delivers only intact originals (each once), counts the rest", () => {
    const rng = new Rng(Number(process.env.FUZZ_SEED ?? 17));
    const { sealer, opener } = pair();
    const good = Array.from({ length: 50 }, (_, i) => sealer.seal(header(i), rng.bytes(rng.int(200))));
    let delivered = 0;
    for (let i = 0; i < 20_000; i++) {
      const input = rng.chance(0.8) ? mutate(rng, rng.pick(good)) : rng.bytes(rng.int(300));
      const r = opener.open(input, HEADER_BYTES);
      if (r.ok) {
        // Only an unmutated original may open (a mutation can leave it intact), and only once.
        expect(good.some((g) => Buffer.from(g).equals(Buffer.from(input)))).toBe(true);
        delivered++;
      }
    }
    expect(delivered).toBeLessThanOrEqual(good.length);
    const s = opener.stats;
    expect(s.opened + s.tampered + s.replayed + s.tooOld + s.malformed).toBe(20_000);
  });
});

describe("replay window", () => {
  test("slides: a jump of more than a window forgets everything below it", () => {
    const w = new ReplayWindow(64);
    w.accept(3);
    expect(w.check(3)).toBe("seen");
    w.accept(1000);
    expect(w.check(3)).toBe("too-old");
    expect(w.check(999)).toBe("new");
    expect(w.check(1000 - 64)).toBe("too-old");
    expect(w.check(1000 - 63)).toBe("new");
    w.accept(1000 - 63);
    expect(w.check(1000 - 63)).toBe("seen");
    w.accept(1001); // slides by one: 1000 − 63 falls out of the window
    expect(w.check(1000 - 63)).toBe("too-old");
    expect(w.check(1000)).toBe("seen");
  });
});
