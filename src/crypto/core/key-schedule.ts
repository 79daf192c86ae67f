import { AEAD_KEY_BYTES, AEAD_NONCE_BYTES } from "./aead.ts";
import { hkdfExpand, hkdfExtract, hmac, label, sha256 } from "./hkdf.ts";
import { concat } from "../../util/bytes.ts";

/**
 * From one exchange's shared secret to the keys of a channel, bound to the whole handshake transcript:
 *
 *   PRK        = HKDF-Extract(salt = "ftx <channel> v<version>", IKM = shared secret)
 *   th         = SHA-256(transcript)                 (both hellos, shares and nonces, roles, flags)
 *   key_X      = HKDF-Expand(PRK, "X" ‖ th, n)       for X in: c2s key, c2s iv, s2c key, s2c iv,
 *                                                     c confirm, s confirm
 *   confirm_S  = HMAC(key_s confirm, th), confirm_C = HMAC(key_c confirm, th)
 *
 * A peer that derived other keys (wrong token, a man in the middle who changed a share or a flag) gets
 * other confirmation tags: the handshake fails before any application byte is sent.
 */
export interface ChannelKeys {
  c2sKey: Uint8Array;
  c2sIv: Uint8Array;
  s2cKey: Uint8Array;
  s2cIv: Uint8Array;
  /** The initiator's (client's) key confirmation tag. */
  clientConfirm: Uint8Array;
  /** The responder's (server's). */
  serverConfirm: Uint8Array;
}

export function deriveChannelKeys(salt: string, shared: Uint8Array, transcript: Uint8Array): ChannelKeys {
  const prk = hkdfExtract(label(salt), shared);
  const th = sha256(transcript);
  const expand = (what: string, n: number) => hkdfExpand(prk, concat(label(what), th), n);
  return {
    c2sKey: expand("c2s key", AEAD_KEY_BYTES),
    c2sIv: expand("c2s iv", AEAD_NONCE_BYTES),
    s2cKey: expand("s2c key", AEAD_KEY_BYTES),
    s2cIv: expand("s2c iv", AEAD_NONCE_BYTES),
    clientConfirm: hmac(expand("c confirm", 32), th),
    serverConfirm: hmac(expand("s confirm", 32), th),
  };
}

