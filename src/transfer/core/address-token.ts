import { constantTimeEqual } from "../../util/crypto.ts";
import { ADDRESS_TOKEN_AT, ADDRESS_TOKEN_BYTES, ADDRESS_TOKEN_TAG_BYTES } from "./wire.ts";

/**
 * Address tokens (docs/PROTOCOL.md §2 "Address validation"), as QUIC's Retry and NEW_TOKEN tokens or
 * DTLS's HelloVerifyRequest cookie: the file server keeps no state for an address until it has shown
 * that it receives what is sent to it. A token is
 *
 *   issued_s u32 ‖ first 16 bytes of HMAC-SHA256(secret, "ftx-address-token-v1" ‖ address ‖ issued_s)
 *
 * where `address` is the client's IP as the server's socket reports it and `issued_s` the server's
 * clock in whole seconds. Only the server can make one (the secret is its own, drawn at start); a
 * client gets one in a RETRY or a PROBE_ACK, which go to the address the datagram came from, so
 * holding one proves that address receives. It is bound to the IP and not the port, because each
 * download has a socket (a port) of its own: one token serves every session of a fetch. Checking
 * costs one HMAC and keeps nothing.
 */
export const ADDRESS_TOKEN_LIFETIME_MS = 30_000;
const LABEL = new TextEncoder().encode("ftx-address-token-v1");
const encoder = new TextEncoder();

export class AddressTokens {
  private readonly issuedField = new Uint8Array(4);
  private readonly issuedView = new DataView(this.issuedField.buffer);

  constructor(
    /** The server's secret, random per process: a restart invalidates every token (a RETRY renews it). */
    private readonly secret: Uint8Array,
    readonly lifetimeMs = ADDRESS_TOKEN_LIFETIME_MS,
  ) {}

  /** A token for `address`, made at `now` (ms, the endpoint's clock). */
  issue(address: string, now: number): Uint8Array {
    const issuedS = Math.floor(now / 1000) >>> 0;
    const token = new Uint8Array(ADDRESS_TOKEN_BYTES);
    new DataView(token.buffer).setUint32(ADDRESS_TOKEN_AT.issuedS, issuedS);
    token.set(this.tag(address, issuedS), ADDRESS_TOKEN_AT.tag);
    return token;
  }

  /** `token` was made by this server for `address`, its `issued_s` at most `lifetimeMs` before `now` (and not after it). */
  check(token: Uint8Array | undefined, address: string, now: number): boolean {
    if (!token || token.byteLength !== ADDRESS_TOKEN_BYTES) return false;
    const issuedS = new DataView(token.buffer, token.byteOffset, token.byteLength).getUint32(ADDRESS_TOKEN_AT.issuedS);
    const ageMs = now - issuedS * 1000;
    if (ageMs < 0 || ageMs > this.lifetimeMs) return false; // from issued_s: 29–30 s after it was made
    return constantTimeEqual(this.tag(address, issuedS), token.subarray(ADDRESS_TOKEN_AT.tag, ADDRESS_TOKEN_AT.end));
  }

  private tag(address: string, issuedS: number): Uint8Array {
    const h = new Bun.CryptoHasher("sha256", this.secret);
    h.update(LABEL);
    h.update(encoder.encode(address));
    this.issuedView.setUint32(0, issuedS);
    h.update(this.issuedField);
    return (h.digest() as Uint8Array).subarray(0, ADDRESS_TOKEN_TAG_BYTES);
  }
}
