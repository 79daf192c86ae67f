import { ristretto255, ristretto255_hasher } from "@noble/curves/ed25519.js";
import { sha512 } from "@noble/hashes/sha2.js";
import type { KeyExchange } from "./core/key-exchange.ts";
import { concat } from "../util/bytes.ts";

/**
 * CPace (draft-irtf-cfrg-cpace; its ristretto255 test vectors hold, test/unit/crypto/cpace.test.ts) on ristretto255 with SHA-512, from @noble/curves (audited, pinned in
 * package.json). Loaded only when a token is given (src/crypto/load.ts): the library costs ~25 ms to load.
 *
 *   g = derive_to_group(SHA-512(lv(DSI) ‖ lv(PRS) ‖ lv(zero pad) ‖ lv(CI) ‖ lv(sid)))   (RFC 9496 §4.3.4)
 *   Y = y·g for a scalar y from 64 random bytes;  K = y·Y_peer, refused when it is the identity.
 *
 * PRS is the token, CI the channel identifier ("ftx-index" or "ftx-transfer"), sid the initiator's
 * nonce. A passive observer sees y_a·g and y_b·g for an unknown g: testing a token guess needs the
 * discrete log. An active attacker completes the exchange for one guess per connection at most.
 */
const DSI = new TextEncoder().encode("CPaceRistretto255");
const S_IN_BYTES = 128; // SHA-512's block: the zero pad fills the generator string's first block
const ORDER = ristretto255.Point.Fn.ORDER;

function lv(b: Uint8Array): Uint8Array[] {
  // leb128 length (all our fields are < 128 bytes except long tokens: encode in full)
  const len: number[] = [];
  let n = b.byteLength;
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n > 0) byte |= 0x80;
    len.push(byte);
  } while (n > 0);
  return [Uint8Array.from(len), b];
}


export function generator(prs: Uint8Array, ci: Uint8Array, sid: Uint8Array) {
  const zpadLen = Math.max(0, S_IN_BYTES - 1 - DSI.byteLength - 1 - prs.byteLength - 1);
  const genString = concat(...lv(DSI), ...lv(prs), ...lv(new Uint8Array(zpadLen)), ...lv(ci), ...lv(sid));
  return ristretto255_hasher.deriveToCurve!(sha512(genString));
}

/** The scalar from the shell's random bytes, read little-endian (as the draft's vectors give ya, yb) mod the order. */
function scalarOf(secret: Uint8Array): bigint {
  let v = 0n;
  for (let i = secret.byteLength - 1; i >= 0; i--) v = (v << 8n) | BigInt(secret[i]!);
  const s = v % ORDER;
  return s === 0n ? 1n : s;
}

export function cpace(token: string, channel: string): KeyExchange {
  const prs = new TextEncoder().encode(token);
  const ci = new TextEncoder().encode(channel);
  return {
    name: "CPace-ristretto255",
    authenticated: true,
    share(secret, sid) {
      return generator(prs, ci, sid).multiply(scalarOf(secret)).toBytes();
    },
    complete(secret, _sid, peerShare) {
      try {
        const peer = ristretto255.Point.fromBytes(peerShare);
        if (peer.is0()) return undefined;
        const k = peer.multiply(scalarOf(secret));
        return k.is0() ? undefined : k.toBytes();
      } catch {
        return undefined;
      }
    },
  };
}
