import { constantTimeEqual, hmacSha256 } from "../util/crypto.ts";
import { MAC_BYTES } from "./core/wire.ts";

/**
 * With a token, a REQUEST carries HMAC-SHA256(token, label | session id | offset | length | sha256 | name):
 * a file server only serves clients that know the token, and the token never crosses the wire.
 */
const LABEL = Buffer.from("ftx-transfer-v1");

export function requestMac(token: string, sessionId: number, offset: number, length: number, sha256: Uint8Array, name: string): Uint8Array {
  const fields = Buffer.alloc(4 + 8 + 8);
  fields.writeUInt32BE(sessionId, 0);
  fields.writeBigUInt64BE(BigInt(offset), 4);
  fields.writeBigUInt64BE(BigInt(length), 12);
  const h = hmacSha256(token);
  h.update(LABEL);
  h.update(fields);
  h.update(sha256);
  h.update(Buffer.from(name, "utf8"));
  return (h.digest() as Uint8Array).subarray(0, MAC_BYTES);
}

export function verifyRequestMac(token: string, sessionId: number, offset: number, length: number, sha256: Uint8Array, name: string, mac: Uint8Array | undefined): boolean {
  if (!mac || mac.byteLength !== MAC_BYTES) return false;
  return constantTimeEqual(requestMac(token, sessionId, offset, length, sha256, name), mac);
}
