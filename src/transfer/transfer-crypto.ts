import { bestInPlaceAead } from "../crypto/aes-gcm-native.ts";
import { keyExchangeFor } from "../crypto/load.ts";
import type { TransferCrypto } from "./core/session-keys.ts";

/**
 * The transfer's crypto for this process (docs/PROTOCOL.md §4 "Datagrams"): CPace on the token (channel
 * "ftx-transfer") or X25519 without one; AES-256-GCM in place, through OpenSSL's libcrypto when it
 * loads (one reused cipher context per key: ~0.7 µs per 1,400-byte datagram) and node:crypto otherwise
 * (a cipher object per datagram: about twice that); the system's random source.
 */
export async function transferCrypto(token: string | undefined): Promise<TransferCrypto> {
  const kx = await keyExchangeFor(token, "ftx-transfer");
  const { factory } = bestInPlaceAead();
  const probe = factory(new Uint8Array(32));
  const aeadName = probe.name;
  probe.dispose?.();
  return {
    kx,
    aead: factory,
    aeadName,
    randomBytes: (n) => crypto.getRandomValues(new Uint8Array(n)),
  };
}

/**
 * `--insecure-plaintext` for the transfers of this process: sessions ask for their datagrams in clear
 * after the ACCEPT (a file server must allow it with the same flag). Set once by the command's flags
 * (commands/shared-args.ts), as the index connections' defaults are.
 */
export const transferSecurityDefaults = { plaintext: false };
