import { DatagramOpener, type DatagramSealer } from "../../src/transfer/core/datagram-aead.ts";
import { kxKind, ServerShares, sessionCipher, SERVER_NONCE_BYTES, type RequestKeys, type SessionCipher, type TransferCrypto } from "../../src/transfer/core/session-keys.ts";
import {
  ACK_AT,
  decodeRequestBody,
  decodeRequestHello,
  encodeAccept,
  encodeData,
  encodeError,
  encodeRepair,
  HEADER_BYTES,
  openBody,
  readHeader,
  REQUEST_AT,
  WIRE_VERSION,
  type AcceptBody,
  type ErrorBody,
  type Greeting,
  type RequestBody,
} from "../../src/transfer/core/wire.ts";
import type { AddressTokenSlot } from "../../src/transfer/address-token-cache.ts";
import { testCrypto } from "./transfer-crypto.ts";

/**
 * The server's side of one session, for unit tests that feed a client Download datagrams by hand: it
 * greets (so the Download's first REQUEST is sealed), opens that REQUEST with the real key schedule,
 * and seals the ACCEPT, DATA, REPAIR and ERROR it is asked for under the session's keys, as the file
 * server's endpoint does.
 */
export class SessionServer {
  readonly crypto: TransferCrypto;
  private readonly shares: ServerShares;
  private keys: RequestKeys | undefined;
  cipher: SessionCipher | undefined;
  /** The REQUEST's body, once one was opened. */
  request: RequestBody | undefined;

  constructor(readonly token?: string) {
    this.crypto = testCrypto({ token, seed: 77 });
    this.shares = new ServerShares(this.crypto);
  }

  greeting(now = 0): Greeting {
    const e = this.shares.epoch(now);
    return { token: new Uint8Array(20).fill(1), kx: kxKind(this.crypto.kx), epochId: e.id, share: e.share };
  }

  /** An address-token slot that always holds this server's greeting: the Download's first REQUEST is sealed. */
  slot(): AddressTokenSlot {
    return { get: (now) => this.greeting(now), set() {} };
  }

  /** Opens a REQUEST the Download sent (a copy: the Download may send the same bytes again). */
  openRequest(bytes: Uint8Array, now = 0): RequestBody {
    const d = bytes.slice();
    const header = readHeader(d);
    const hello = decodeRequestHello(d);
    if (!hello) throw new Error("a bare REQUEST");
    const keys = this.shares.complete(WIRE_VERSION, header.sessionId, hello.epochId, hello.share, hello.confirm, now);
    if (typeof keys === "string") throw new Error(`REQUEST keys: ${keys}`);
    const end = openBody(d, REQUEST_AT.body, new DatagramOpener(this.crypto.aead(keys.key), keys.iv));
    if (end < 0) throw new Error("the REQUEST does not open");
    this.keys = keys;
    this.request = decodeRequestBody(d.subarray(0, end), header);
    return this.request;
  }

  /** The sealed ACCEPT for the REQUEST opened last (a fresh server nonce each time it is called). */
  accept(sessionId: number, body: AcceptBody, ts = 0): Uint8Array {
    if (!this.keys) throw new Error("no REQUEST opened yet");
    this.cipher?.dispose();
    this.cipher = sessionCipher(this.crypto.aead, this.keys, this.crypto.randomBytes(SERVER_NONCE_BYTES), "server");
    return encodeAccept(sessionId, body, this.cipher.serverNonce, this.cipher.sealer, ts);
  }

  /** The session's sealer: undefined (clear) when the REQUEST asked for --insecure-plaintext. */
  private get sealer(): DatagramSealer | undefined {
    if (!this.cipher) throw new Error("no ACCEPT made yet");
    return this.request?.plaintext ? undefined : this.cipher.sealer;
  }

  data(sessionId: number, seq: number, flags: number, payload: Uint8Array, ts = 0): Uint8Array {
    return encodeData(sessionId, seq, flags, payload, ts, this.sealer);
  }

  repair(sessionId: number, blockStart: number, j: number, payload: Uint8Array, ts = 0): Uint8Array {
    return encodeRepair(sessionId, blockStart, j, payload, ts, this.sealer);
  }

  error(sessionId: number, body: ErrorBody, ts = 0): Uint8Array {
    return encodeError(sessionId, body, ts, this.sealer);
  }

  /** An ACK (or FIN, or ERROR) the Download sent, opened: its clear bytes (a copy), or undefined when it does not open. */
  open(bytes: Uint8Array): Uint8Array | undefined {
    if (!this.cipher) throw new Error("no ACCEPT made yet");
    if (this.request?.plaintext) return bytes.slice();
    const d = bytes.slice();
    const end = openBody(d, HEADER_BYTES, this.cipher.opener);
    return end < 0 ? undefined : d.subarray(0, end);
  }
}

/** ACK fields the tests read (from an opened ACK). */
export function ackWindow(clear: Uint8Array): number {
  return new DataView(clear.buffer, clear.byteOffset).getUint32(ACK_AT.windowSegments);
}
