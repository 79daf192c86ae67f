import { constantTimeEqual, hmacSha256 } from "../../util/crypto.ts";
import { MAC_BYTES, type Role } from "./messages.ts";

/**
 * Challenge–response: a peer proves it knows the token without sending it. Both nonces and the role
 * are bound into the MAC, so a captured answer cannot be replayed on another connection or as the
 * other role.
 */
const AUTH_LABEL = Buffer.from("ftx-index-auth-v1");

export function authMac(token: string, role: Role, clientNonce: Uint8Array, serverNonce: Uint8Array): Uint8Array {
  const hmac = hmacSha256(token);
  hmac.update(AUTH_LABEL);
  hmac.update(Uint8Array.of(role));
  hmac.update(clientNonce);
  hmac.update(serverNonce);
  return hmac.digest() as Uint8Array;
}

/** The MAC a peer without a token sends: it can never verify, since HMAC output is never all zeros in practice. */
export const NO_TOKEN_MAC = new Uint8Array(MAC_BYTES);

export function verifyMac(token: string, role: Role, clientNonce: Uint8Array, serverNonce: Uint8Array, mac: Uint8Array): boolean {
  const expected = authMac(token, role, clientNonce, serverNonce);
  return constantTimeEqual(mac, expected);
}
