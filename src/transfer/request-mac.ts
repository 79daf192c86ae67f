import { constantTimeEqual, hmacSha256 } from "../util/crypto.ts";
import { ADDRESS_TOKEN_BYTES, FLAG_PIECE_HASHES, MAC_BYTES, type RequestBody } from "./core/wire.ts";

/**
 * With a token, a REQUEST carries
 *
 *   HMAC-SHA256(token, "ftx-transfer-v3" ‖ session id u32 ‖ what u8 ‖ offset u64 ‖ length u64 ‖
 *               address token (20 bytes) ‖ sha256 ‖ name)
 *
 * (`what`: 0x02, the piece-hash flag, when it asks for the piece-hash list, else 0): a file server only serves clients that know the token,
 * and the token never crosses the wire. The address token is the server's (core/address-token.ts):
 * bound to the client's address and the server's clock, and checked before the MAC, so a REQUEST
 * sniffed on the wire is refused when replayed from another address, or once the address token has
 * expired (30 s); the replayer cannot make a MAC over a new one.
 */
const LABEL = Buffer.from("ftx-transfer-v3");

export type MacFields = Pick<RequestBody, "offset" | "length" | "sha256" | "name" | "pieceHashes" | "token">;

export function requestMac(token: string, sessionId: number, r: MacFields): Uint8Array {
  const fields = Buffer.alloc(4 + 1 + 8 + 8 + ADDRESS_TOKEN_BYTES);
  fields.writeUInt32BE(sessionId, 0);
  fields[4] = r.pieceHashes ? FLAG_PIECE_HASHES : 0;
  fields.writeBigUInt64BE(BigInt(r.offset), 5);
  fields.writeBigUInt64BE(BigInt(r.length), 13);
  if (r.token) fields.set(r.token.subarray(0, ADDRESS_TOKEN_BYTES), 21);
  const h = hmacSha256(token);
  h.update(LABEL);
  h.update(fields);
  h.update(r.sha256);
  h.update(Buffer.from(r.name, "utf8"));
  return (h.digest() as Uint8Array).subarray(0, MAC_BYTES);
}

export function verifyRequestMac(token: string, sessionId: number, r: MacFields & Pick<RequestBody, "mac">): boolean {
  if (!r.mac || r.mac.byteLength !== MAC_BYTES) return false;
  return constantTimeEqual(requestMac(token, sessionId, r), r.mac);
}
