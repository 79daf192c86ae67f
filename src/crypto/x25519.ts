import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto";
import type { KeyExchange } from "./core/key-exchange.ts";

/** DER wrappers for a raw X25519 key (RFC 8410): node:crypto takes keys only as objects. */
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

function privateKey(secret: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secret.subarray(0, 32)]), format: "der", type: "pkcs8" });
}

/**
 * Ephemeral X25519 (RFC 7748) from Bun's native crypto: the key exchange without a token. Its first 32
 * bytes of `secret` are the private scalar (clamped by X25519 itself).
 */
export const x25519: KeyExchange = {
  name: "X25519",
  authenticated: false,
  share(secret) {
    const pub = createPublicKey(privateKey(secret)).export({ format: "der", type: "spki" });
    return new Uint8Array(pub.subarray(SPKI_PREFIX.byteLength));
  },
  complete(secret, _sid, peerShare) {
    if (peerShare.byteLength !== 32) return undefined;
    try {
      const publicKey = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, peerShare]), format: "der", type: "spki" });
      const shared = new Uint8Array(diffieHellman({ privateKey: privateKey(secret), publicKey }));
      // A low-order share gives the all-zero secret (RFC 7748 §6.1): refuse it.
      return shared.every((b) => b === 0) ? undefined : shared;
    } catch {
      return undefined;
    }
  },
};
