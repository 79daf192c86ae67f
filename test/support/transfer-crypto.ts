import { bestInPlaceAead } from "../../src/crypto/aes-gcm-native.ts";
import { cpace } from "../../src/crypto/cpace.ts";
import { x25519 } from "../../src/crypto/x25519.ts";
import type { TransferCrypto } from "../../src/transfer/core/session-keys.ts";
import { Rng } from "./random.ts";

/**
 * The transfer crypto for tests and simulations: the real key exchanges and AEAD (the fastest this
 * machine has), with random bytes from a seeded generator, so a seed replays a run exactly.
 */
export function testCrypto(o: { token?: string; seed?: number } = {}): TransferCrypto {
  const rng = new Rng(o.seed ?? 1);
  const { factory } = bestInPlaceAead();
  return {
    kx: o.token === undefined ? x25519 : cpace(o.token, "ftx-transfer"),
    aead: factory,
    aeadName: "AES-256-GCM",
    randomBytes: (n) => rng.bytes(n).slice(),
  };
}
