import { describe, expect, test } from "bun:test";
import { createCipheriv } from "node:crypto";
import { join } from "node:path";
import { aes256gcmInPlace } from "../../../src/crypto/aes-gcm.ts";
import { bestInPlaceAead, liveNativeAeadContexts, loadNativeAes256Gcm } from "../../../src/crypto/aes-gcm-native.ts";
import { AEAD_TAG_BYTES, type InPlaceAead, type InPlaceAeadFactory } from "../../../src/crypto/core/aead.ts";
import { Rng } from "../../support/random.ts";

const KEY = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
const NONCE = Uint8Array.from({ length: 12 }, (_, i) => 0xc0 + i);
const SIZES = [0, 1, 15, 16, 17, 1374, 8192, 65_000];
const NATIVE_MODULE = join(import.meta.dir, "../../../src/crypto/aes-gcm-native.ts");

/** AES-256-GCM straight from node:crypto's one-shot API: ciphertext ‖ tag. */
function reference(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Buffer {
  const c = createCipheriv("aes-256-gcm", key, nonce);
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

interface Layout {
  buf: Uint8Array;
  aadAt: number;
  aadLength: number;
  at: number;
  length: number;
  tagAt: number;
}

/**
 * A buffer of random bytes, larger than the regions, with aad, body and tag at random offsets and in
 * a random order (none overlapping), the aad and body filled with `aad` and `plaintext`.
 */
function layout(rng: Rng, aad: Uint8Array, plaintext: Uint8Array): Layout {
  const parts = [
    { name: "aad", bytes: aad.byteLength },
    { name: "body", bytes: plaintext.byteLength },
    { name: "tag", bytes: AEAD_TAG_BYTES },
  ];
  for (let i = parts.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [parts[i], parts[j]] = [parts[j]!, parts[i]!];
  }
  const at: Record<string, number> = {};
  let cursor = rng.int(40);
  for (const p of parts) {
    at[p.name] = cursor;
    cursor += p.bytes + rng.int(40);
  }
  const buf = rng.bytes(cursor + rng.int(40)).slice();
  buf.set(aad, at.aad!);
  buf.set(plaintext, at.body!);
  return { buf, aadAt: at.aad!, aadLength: aad.byteLength, at: at.body!, length: plaintext.byteLength, tagAt: at.tag! };
}

function seal(aead: InPlaceAead, nonce: Uint8Array, l: Layout): void {
  aead.sealInPlace(nonce, l.buf, l.aadAt, l.aadLength, l.at, l.length, l.tagAt);
}

function open(aead: InPlaceAead, nonce: Uint8Array, l: Layout, buf = l.buf): boolean {
  return aead.openInPlace(nonce, buf, l.aadAt, l.aadLength, l.at, l.length, l.tagAt);
}

/** The bytes of `buf` outside the aad, body and tag. */
function outside(l: Layout, buf = l.buf): number[] {
  const out: number[] = [];
  for (let i = 0; i < buf.byteLength; i++) {
    const inAad = i >= l.aadAt && i < l.aadAt + l.aadLength;
    const inBody = i >= l.at && i < l.at + l.length;
    const inTag = i >= l.tagAt && i < l.tagAt + AEAD_TAG_BYTES;
    if (!inAad && !inBody && !inTag) out.push(buf[i]!);
  }
  return out;
}

const native = loadNativeAes256Gcm();

test("the native loader gives a working factory on this machine (CI and scripts/setup.sh provide libcrypto.so.3)", () => {
  expect(native).not.toBeUndefined();
  expect(native!(KEY).name).toMatch(/^AES-256-GCM \(OpenSSL libcrypto 3\.\d+\.\d+\)$/);
  expect(bestInPlaceAead().native).toBe(true);
  expect(aes256gcmInPlace(KEY).name).toBe("AES-256-GCM (node:crypto)");
});

const IMPLEMENTATIONS: [string, InPlaceAeadFactory | undefined][] = [
  ["node:crypto", aes256gcmInPlace],
  ["native libcrypto", native],
];

describe.each(IMPLEMENTATIONS)("%s", (_, factory) => {
  const make = (key = KEY): InPlaceAead => factory!(key);

  test("seals as node:crypto's one-shot createCipheriv does, at sizes 0…65,000 with random aad and offsets; opens back; leaves every other byte alone", () => {
    const rng = new Rng(17);
    const aead = make();
    for (const size of SIZES) {
      for (let round = 0; round < 4; round++) {
        const aad = rng.bytes(rng.pick([0, 1, 26, 34, 100])).slice();
        const plaintext = rng.bytes(size).slice();
        const nonce = rng.bytes(12).slice();
        const l = layout(rng, aad, plaintext);
        const before = outside(l);
        seal(aead, nonce, l);
        const sealed = Buffer.concat([l.buf.subarray(l.at, l.at + l.length), l.buf.subarray(l.tagAt, l.tagAt + AEAD_TAG_BYTES)]);
        expect(sealed.equals(reference(KEY, nonce, aad, plaintext))).toBe(true);
        expect(Buffer.from(l.buf.subarray(l.aadAt, l.aadAt + l.aadLength)).equals(aad)).toBe(true);
        expect(outside(l)).toEqual(before);

        expect(open(aead, nonce, l)).toBe(true);
        expect(Buffer.from(l.buf.subarray(l.at, l.at + l.length)).equals(plaintext)).toBe(true);
        expect(outside(l)).toEqual(before);
      }
    }
  });

  test("one flipped bit anywhere in aad, ciphertext or tag, a wrong nonce or another key: open says false, and leaves the bytes outside the regions alone", () => {
    const rng = new Rng(29);
    const aead = make();
    for (const size of [0, 1, 17, 1374]) {
      const l = layout(rng, rng.bytes(26).slice(), rng.bytes(size).slice());
      seal(aead, NONCE, l);
      const sealed = l.buf.slice();
      const positions = [
        ...Array.from({ length: l.aadLength }, (_, i) => l.aadAt + i),
        ...Array.from({ length: Math.min(l.length, 64) }, (_, i) => l.at + i),
        ...(l.length > 64 ? [l.at + l.length - 1] : []),
        ...Array.from({ length: AEAD_TAG_BYTES }, (_, i) => l.tagAt + i),
      ];
      for (const p of positions) {
        const tampered = sealed.slice();
        tampered[p]! ^= 1 << rng.int(8);
        expect(open(aead, NONCE, l, tampered)).toBe(false);
        expect(outside(l, tampered)).toEqual(outside(l, sealed));
      }
      const otherNonce = NONCE.slice();
      otherNonce[11]! ^= 1;
      expect(open(aead, otherNonce, l, sealed.slice())).toBe(false);
      expect(open(make(KEY.map((b) => b ^ 0x80)), NONCE, l, sealed.slice())).toBe(false);
      // The context is fine after all those failures: the intact datagram still opens.
      expect(open(aead, NONCE, l, sealed.slice())).toBe(true);
    }
  });

  test("garbage in every region never throws, only fails to open", () => {
    const rng = new Rng(31);
    const aead = make();
    for (let i = 0; i < 500; i++) {
      const buf = rng.bytes(16 + rng.int(2000)).slice();
      const tagAt = rng.int(buf.byteLength - 15);
      const length = Math.min(rng.int(2000), tagAt);
      expect(aead.openInPlace(rng.bytes(12).slice(), buf, 0, 0, tagAt - length, length, tagAt)).toBe(false);
    }
  });

  test("sealed by one implementation, opened by the other", () => {
    const other = factory === aes256gcmInPlace ? native! : aes256gcmInPlace;
    const rng = new Rng(37);
    for (const size of SIZES) {
      const plaintext = rng.bytes(size).slice();
      const l = layout(rng, rng.bytes(34).slice(), plaintext);
      seal(make(), NONCE, l);
      expect(open(other(KEY), NONCE, l)).toBe(true);
      expect(Buffer.from(l.buf.subarray(l.at, l.at + l.length)).equals(plaintext)).toBe(true);
    }
  });

  test("a region outside the buffer, overlapping regions, fractional offsets or a short nonce: RangeError, and nothing written", () => {
    const aead = make();
    const buf = new Uint8Array(100).fill(7);
    const bad: [Uint8Array, number, number, number, number, number][] = [
      [NONCE, 0, 10, 10, 80, 90], // tag runs past the end
      [NONCE, 0, 10, 10, 91, 84], // body runs past the end
      [NONCE, -1, 10, 10, 20, 40], // negative offset
      [NONCE, 0, 10, 5, 20, 40], // aad and body overlap
      [NONCE, 0, 10, 10, 20, 25], // body and tag overlap
      [NONCE, 0, 10, 10, 20, 5], // tag and aad overlap
      [NONCE, 0, 10, 10.5, 20, 40], // not a whole byte
      [NONCE, 0, 10, 10, Number.NaN, 40],
      [NONCE.subarray(0, 8), 0, 10, 10, 20, 40],
    ];
    for (const [nonce, aadAt, aadLength, at, length, tagAt] of bad) {
      expect(() => aead.sealInPlace(nonce, buf, aadAt, aadLength, at, length, tagAt)).toThrow(RangeError);
      expect(() => aead.openInPlace(nonce, buf, aadAt, aadLength, at, length, tagAt)).toThrow(RangeError);
    }
    expect(buf.every((b) => b === 7)).toBe(true);
    expect(() => factory!(new Uint8Array(16))).toThrow(RangeError);
  });

  test("after dispose() both directions throw a plain Error", () => {
    const aead = make();
    const buf = new Uint8Array(64);
    aead.sealInPlace(NONCE, buf, 0, 8, 8, 40, 48);
    expect(aead.openInPlace(NONCE, buf, 0, 8, 8, 40, 48)).toBe(true);
    aead.dispose!();
    aead.dispose!(); // twice is harmless
    expect(() => aead.sealInPlace(NONCE, buf, 0, 8, 8, 40, 48)).toThrow(/used after dispose/);
    expect(() => aead.openInPlace(NONCE, buf, 0, 8, 8, 40, 48)).toThrow(/used after dispose/);
  });
});

test("native: dispose frees the two contexts at once, and the collector frees those of one never disposed", async () => {
  const before = liveNativeAeadContexts();
  const kept = native!(KEY);
  expect(liveNativeAeadContexts()).toBe(before + 1);
  kept.dispose!();
  expect(liveNativeAeadContexts()).toBe(before);

  (() => {
    for (let i = 0; i < 200; i++) native!(KEY).sealInPlace(NONCE, new Uint8Array(32), 0, 0, 0, 16, 16);
  })();
  expect(liveNativeAeadContexts()).toBe(before + 200);
  for (let i = 0; i < 50 && liveNativeAeadContexts() > before + 20; i++) {
    Bun.gc(true);
    await Bun.sleep(10);
  }
  // Conservative stack scanning may keep a few alive; the rest must have been freed.
  expect(liveNativeAeadContexts()).toBeLessThanOrEqual(before + 20);
});

test("FTX_NO_NATIVE_AEAD=1: the loader says undefined and bestInPlaceAead falls back to node:crypto (in a child bun, as the flag is read per process)", () => {
  const script = `const m = await import(${JSON.stringify(NATIVE_MODULE)}); const f = m.loadNativeAes256Gcm(); const b = m.bestInPlaceAead(); console.log(f === undefined ? "undefined" : f(new Uint8Array(32)).name, b.native, b.factory(new Uint8Array(32)).name);`;
  const run = (env: Record<string, string | undefined>) => {
    const child = Bun.spawnSync([process.execPath, "-e", script], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
    return { stdout: child.stdout.toString().trim(), stderr: child.stderr.toString(), exitCode: child.exitCode };
  };
  expect(run({ FTX_NO_NATIVE_AEAD: "1" })).toEqual({ stdout: "undefined false AES-256-GCM (node:crypto)", stderr: "", exitCode: 0 });
  const plain = run({ FTX_NO_NATIVE_AEAD: undefined });
  expect(plain.exitCode).toBe(0);
  expect(plain.stdout).toMatch(/^AES-256-GCM \(OpenSSL libcrypto 3\.\d+\.\d+\) true AES-256-GCM \(OpenSSL libcrypto 3\.\d+\.\d+\)$/);
});
