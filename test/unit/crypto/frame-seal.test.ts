import { expect, test } from "bun:test";
import { ProtocolError } from "../../../src/errors.ts";
import { aes256gcm } from "../../../src/crypto/aes-gcm.ts";
import { FrameOpener, FrameSealer } from "../../../src/crypto/core/frame-seal.ts";
import { encodeMessage } from "../../../src/index/core/codec.ts";
import { MsgType } from "../../../src/index/core/messages.ts";
import { mutate, Rng } from "../../support/random.ts";

const KEY = new Uint8Array(32).fill(5);
const IV = new Uint8Array(12).fill(6);

test("fuzz: 5,000 mutated and random sealed bodies: the opener raises only ProtocolError, and opens none but the intact next frame", () => {
  const rng = new Rng(Number(process.env.FUZZ_SEED ?? 23));
  const sealer = new FrameSealer(aes256gcm(KEY), IV);
  const frames = Array.from({ length: 20 }, (_, i) => sealer.seal(encodeMessage({ type: MsgType.List, requestId: i, pattern: "secret/name" })));
  let opened = 0;
  let refused = 0;
  for (let i = 0; i < 5_000; i++) {
    // A fresh opener expects frame 0: anything else (a mutation, noise, a later frame) must fail.
    const opener = new FrameOpener(aes256gcm(KEY), IV);
    const input = rng.chance(0.7) ? mutate(rng, rng.pick(frames)).subarray(4) : rng.bytes(rng.int(100));
    try {
      opener.open(input);
      expect(Buffer.from(input).equals(Buffer.from(frames[0]!.subarray(4)))).toBe(true);
      opened++;
    } catch (err) {
      expect(err).toBeInstanceOf(ProtocolError);
      refused++;
    }
  }
  expect(opened + refused).toBe(5_000);
  expect(refused).toBeGreaterThan(4_500);
  // No sealed frame shows its pattern.
  for (const f of frames) expect(Buffer.from(f).includes(Buffer.from("secret"))).toBe(false);
});
