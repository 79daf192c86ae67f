import { describe, expect, test } from "bun:test";
import { createCipheriv } from "node:crypto";
import { aes256gcmInPlace } from "../../../src/crypto/aes-gcm.ts";
import { loadNativeAes256Gcm } from "../../../src/crypto/aes-gcm-native.ts";
import { counterNonce, MAX_SEQ, type InPlaceAeadFactory } from "../../../src/crypto/core/aead.ts";
import { DATAGRAM_OVERHEAD_BYTES, DatagramOpener, DatagramSealer, PN_BYTES, REPLAY_WINDOW, ReplayWindow } from "../../../src/transfer/core/datagram-aead.ts";
import { mutate, Rng } from "../../support/random.ts";

const KEY = new Uint8Array(32).fill(9);
const IV = new Uint8Array(12).fill(3);
/** The aad: a header's worth of bytes (the datagram sealer does not read them; wire.ts gives it the real header). */
const AAD_BYTES = 26;

/** node:crypto's in-place AEAD always; OpenSSL's through bun:ffi where it loads (the one the transfers use). */
const IMPLEMENTATIONS: [string, InPlaceAeadFactory][] = [["node:crypto", aes256gcmInPlace]];
const native = loadNativeAes256Gcm();
if (native) IMPLEMENTATIONS.push(["libcrypto", native]);

/** aad (bytes 10..13 carry `seq`, so datagrams differ), then `body`, then room for pn and tag: sealed in place. */
function sealed(sealer: DatagramSealer, seq: number, body: Uint8Array): Uint8Array {
  const buf = new Uint8Array(AAD_BYTES + body.byteLength + DATAGRAM_OVERHEAD_BYTES);
  new DataView(buf.buffer).setUint32(10, seq);
  buf.set(body, AAD_BYTES);
  expect(sealer.sealInPlace(buf, AAD_BYTES, AAD_BYTES + body.byteLength)).toBe(buf.byteLength);
  return buf;
}

/** Opens a copy (opening writes the clear body over the ciphertext): the clear body, or the refusal. */
function open(opener: DatagramOpener, datagram: Uint8Array): { body: Uint8Array } | { refused: string | undefined } {
  const copy = datagram.slice();
  const end = opener.openInPlace(copy, AAD_BYTES);
  return end < 0 ? { refused: opener.lastRefusal } : { body: copy.subarray(AAD_BYTES, end) };
}

function reference(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Buffer {
  const c = createCipheriv("aes-256-gcm", KEY, nonce);
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

for (const [name, aead] of IMPLEMENTATIONS) {
  const pair = () => ({ sealer: new DatagramSealer(aead(KEY), IV), opener: new DatagramOpener(aead(KEY), IV) });

  describe(`datagram AEAD (${name})`, () => {
    test("sealed in place: aad ‖ ciphertext ‖ pn ‖ tag, node:crypto's AES-256-GCM under iv XOR pn; each datagram its own pn; 24 bytes of overhead", () => {
      const { sealer, opener } = pair();
      const payload = new Uint8Array(1374).fill(0xab);
      const d0 = sealed(sealer, 5, payload);
      const d1 = sealed(sealer, 5, payload); // a retransmission: same aad, new pn, other bytes
      expect(DATAGRAM_OVERHEAD_BYTES).toBe(PN_BYTES + 16);
      expect(DATAGRAM_OVERHEAD_BYTES).toBe(24);
      expect(d0.byteLength).toBe(AAD_BYTES + 1374 + DATAGRAM_OVERHEAD_BYTES);
      expect(sealer.nextPn).toBe(2);
      expect(sealer.sealed).toBe(2);
      expect(Buffer.from(d0).equals(Buffer.from(d1))).toBe(false);
      // The pn in clear after the body, big-endian; the aad untouched; no run of the payload left.
      const bodyEnd = AAD_BYTES + 1374;
      expect(Buffer.from(d1.subarray(bodyEnd, bodyEnd + PN_BYTES)).toString("hex")).toBe("0000000000000001");
      expect(new DataView(d1.buffer).getUint32(10)).toBe(5);
      expect(Buffer.from(d0).includes(Buffer.alloc(16, 0xab))).toBe(false);
      // ciphertext ‖ tag is what node:crypto makes of it (the pn in between is not in the aad).
      const ct1 = Buffer.concat([d1.subarray(AAD_BYTES, bodyEnd), d1.subarray(bodyEnd + PN_BYTES)]);
      expect(ct1.toString("hex")).toBe(reference(counterNonce(IV, 1), d1.subarray(0, AAD_BYTES), payload).toString("hex"));
      const r0 = open(opener, d0);
      const r1 = open(opener, d1);
      expect("body" in r0 && Buffer.from(r0.body).equals(Buffer.from(payload))).toBe(true);
      expect("body" in r1 && Buffer.from(r1.body).equals(Buffer.from(payload))).toBe(true);
      expect(opener.stats).toEqual({ opened: 2, tampered: 0, replayed: 0, tooOld: 0, malformed: 0 });
    });

    test("opened in place: the datagram's first bodyEnd bytes read as the clear datagram did; an empty body carries only pn and tag", () => {
      const { sealer, opener } = pair();
      const body = new TextEncoder().encode("in place");
      const d = sealed(sealer, 1, body);
      const clear = d.slice(0, AAD_BYTES);
      expect(opener.openInPlace(d, AAD_BYTES)).toBe(AAD_BYTES + body.byteLength);
      expect(Buffer.from(d.subarray(0, AAD_BYTES)).equals(Buffer.from(clear))).toBe(true);
      expect(new TextDecoder().decode(d.subarray(AAD_BYTES, AAD_BYTES + body.byteLength))).toBe("in place");
      const empty = sealed(sealer, 2, new Uint8Array(0));
      expect(empty.byteLength).toBe(AAD_BYTES + DATAGRAM_OVERHEAD_BYTES);
      expect(opener.openInPlace(empty, AAD_BYTES)).toBe(AAD_BYTES);
    });

    test("tampered aad, ciphertext, pn or tag: refused and counted, never delivered; forgeries do not move the window", () => {
      const { sealer, opener } = pair();
      const body = new TextEncoder().encode("secret content");
      const d = sealed(sealer, 1, body);
      const bodyEnd = AAD_BYTES + body.byteLength;
      for (const at of [0, AAD_BYTES - 1, AAD_BYTES, bodyEnd - 1, bodyEnd + PN_BYTES - 1, d.byteLength - 1]) {
        const bad = d.slice();
        bad[at]! ^= 0x01;
        expect({ at, r: open(opener, bad) }).toEqual({ at, r: { refused: "tampered" } });
      }
      // A forged pn far ahead: refused, and the window stays where it was.
      const ahead = d.slice();
      ahead[bodyEnd + 2] = 0x7f;
      expect(open(opener, ahead)).toEqual({ refused: "tampered" });
      expect(opener.stats.tampered).toBe(7);
      expect("body" in open(opener, d)).toBe(true);
      // Another key, or the other direction's iv: tampered too.
      expect(open(new DatagramOpener(aead(new Uint8Array(32).fill(1)), IV), d)).toEqual({ refused: "tampered" });
      expect(open(new DatagramOpener(aead(KEY), new Uint8Array(12).fill(4)), d)).toEqual({ refused: "tampered" });
      // Opened under a different aad length (a REQUEST's clear fields taken as body): tampered.
      const copy = d.slice();
      expect(new DatagramOpener(aead(KEY), IV).openInPlace(copy, AAD_BYTES - 1)).toBe(-1);
    });

    test("replayed: refused and counted; reordered within the window: accepted once each", () => {
      const { sealer, opener } = pair();
      const ds = Array.from({ length: 10 }, (_, i) => sealed(sealer, i, Uint8Array.of(i)));
      for (const i of [0, 3, 1, 2, 9, 4, 8, 5, 7, 6]) expect(open(opener, ds[i]!)).toEqual({ body: Uint8Array.of(i) });
      for (const i of [0, 9, 5]) expect(open(opener, ds[i]!)).toEqual({ refused: "replayed" });
      expect(opener.stats).toMatchObject({ opened: 10, replayed: 3 });
    });

    test(`older than the window (${REPLAY_WINDOW} packet numbers): refused as too old, even if never seen`, () => {
      const { sealer, opener } = pair();
      const first = sealed(sealer, 0, Uint8Array.of(0));
      const second = sealed(sealer, 1, Uint8Array.of(0));
      let last: Uint8Array | undefined;
      for (let i = 2; i <= REPLAY_WINDOW; i++) last = sealed(sealer, i, Uint8Array.of(1));
      expect("body" in open(opener, last!)).toBe(true); // pn = REPLAY_WINDOW
      expect(open(opener, first)).toEqual({ refused: "too-old" });
      expect("body" in open(opener, second)).toBe(true); // pn 1: the window's last slot
      expect(opener.stats.tooOld).toBe(1);
    });

    test("malformed (shorter than aad + pn + tag, or a pn of 2^48 or more): refused, counted", () => {
      const { sealer, opener } = pair();
      expect(opener.openInPlace(new Uint8Array(AAD_BYTES + DATAGRAM_OVERHEAD_BYTES - 1), AAD_BYTES)).toBe(-1);
      expect(opener.lastRefusal).toBe("malformed");
      const d = sealed(sealer, 0, Uint8Array.of(1, 2, 3));
      d[AAD_BYTES + 3 + 1] = 0x01; // pn 2^48
      expect(open(opener, d)).toEqual({ refused: "malformed" });
      expect(opener.stats.malformed).toBe(2);
    });

    test("a sealer may start at any pn (an ACCEPT is pn 0 of the server's direction); past 2^48 − 1 it refuses to seal", () => {
      const sealer = new DatagramSealer(aead(KEY), IV, 7);
      const d = sealed(sealer, 0, Uint8Array.of(1));
      expect(Buffer.from(d.subarray(AAD_BYTES + 1, AAD_BYTES + 1 + PN_BYTES)).toString("hex")).toBe("0000000000000007");
      expect("body" in open(new DatagramOpener(aead(KEY), IV), d)).toBe(true);
      const last = new DatagramSealer(aead(KEY), IV, MAX_SEQ);
      expect("body" in open(new DatagramOpener(aead(KEY), IV), sealed(last, 0, Uint8Array.of(1)))).toBe(true);
      expect(() => last.sealInPlace(new Uint8Array(AAD_BYTES + 1 + DATAGRAM_OVERHEAD_BYTES), AAD_BYTES, AAD_BYTES + 1)).toThrow(RangeError);
    });

    test("fuzz: 20,000 mutated and random datagrams: the opener never throws, delivers only intact originals (each once), counts the rest", () => {
      const rng = new Rng(Number(process.env.FUZZ_SEED ?? 17));
      const { sealer, opener } = pair();
      const good = Array.from({ length: 50 }, (_, i) => sealed(sealer, i, rng.bytes(rng.int(200))));
      let delivered = 0;
      for (let i = 0; i < 20_000; i++) {
        const input = rng.chance(0.8) ? mutate(rng, rng.pick(good)) : rng.bytes(rng.int(300));
        const original = input.slice();
        if (opener.openInPlace(input, AAD_BYTES) >= 0) {
          // Only an unmutated original may open (a mutation can leave it intact), and only once.
          expect(good.some((g) => Buffer.from(g).equals(Buffer.from(original)))).toBe(true);
          delivered++;
        }
      }
      expect(delivered).toBeLessThanOrEqual(good.length);
      const s = opener.stats;
      expect(s.opened).toBe(delivered);
      expect(s.opened + s.tampered + s.replayed + s.tooOld + s.malformed).toBe(20_000);
      expect(s.tampered).toBeGreaterThan(0);
      expect(s.malformed).toBeGreaterThan(0);
    });
  });
}

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

  test("a window that is not a multiple of 32 is refused", () => {
    expect(() => new ReplayWindow(100)).toThrow(RangeError);
  });
});
