import type { InPlaceAeadFactory } from "../../crypto/core/aead.ts";
import { KxKind, kxKind, SECRET_BYTES, SHARE_BYTES, type KeyExchange } from "../../crypto/core/key-exchange.ts";
import { deriveChannelKeys } from "../../crypto/core/key-schedule.ts";
import { concat } from "../../util/bytes.ts";
import { DatagramOpener, DatagramSealer } from "./datagram-aead.ts";

/**
 * The keys of a transfer session (docs/PROTOCOL.md §4 "Datagrams"), sans-IO: the key exchange, the
 * AEAD and the random source are given by the shell.
 *
 * A file server keeps one ephemeral key share per **epoch** (EPOCH_MS, the address token's lifetime),
 * and sends it with every address token (PROBE_ACK, RETRY) in a **greeting**: token ‖ kx ‖ epoch id ‖
 * share. A client makes a fresh share per REQUEST, completes the exchange against the greeting's
 * share, and seals the REQUEST's body (which names the file) under a key only the two of them can
 * derive: the first flight is private, and no round trip is added. The server's answer (ACCEPT) adds a
 * fresh nonce of its own, so every session's keys are new even when a REQUEST is replayed; from there
 * on each direction seals its datagrams under the session's keys. An epoch's private share is
 * forgotten two epochs after it was made (≤ 60 s), and the client's when its session ends: a later
 * leak of the token, or of the server's memory, opens no earlier capture.
 *
 * With a token the exchange is CPace (its generator derived from the token and the epoch id), and the
 * REQUEST carries a key confirmation (an HMAC, which commits to its key: a REQUEST cannot be made to
 * check out under several guessed keys at once, as an AES-GCM tag could be). Without one, X25519.
 */
export { KxKind, kxKind };

/** How long one server share is handed out; it is accepted one epoch longer. */
export const EPOCH_MS = 30_000;
export const EPOCH_ID_BYTES = 16;
export const SERVER_NONCE_BYTES = 16;
export const CONFIRM_BYTES = 16;
export { SHARE_BYTES };

export interface TransferCrypto {
  kx: KeyExchange;
  aead: InPlaceAeadFactory;
  /** The AEAD's name as `--verbose` prints it. */
  aeadName: string;
  randomBytes: (n: number) => Uint8Array;
}

/** The keys of the REQUEST (its sealed body and the client's key confirmation). */
export interface RequestKeys {
  shared: Uint8Array;
  transcript: Uint8Array;
  key: Uint8Array;
  iv: Uint8Array;
  confirm: Uint8Array;
}

/**
 * What both sides bind the keys to: the version, the exchange, the session id, the epoch, both shares.
 */
export function requestTranscript(version: number, kx: KxKind, sessionId: number, epochId: Uint8Array, serverShare: Uint8Array, clientShare: Uint8Array): Uint8Array {
  const head = new Uint8Array(10);
  head.set([0x46, 0x54, 0x58, 0x54, version, kx]); // "FTXT"
  new DataView(head.buffer).setUint32(6, sessionId >>> 0);
  return concat(head, epochId, serverShare, clientShare);
}

export function requestKeys(shared: Uint8Array, transcript: Uint8Array): RequestKeys {
  const k = deriveChannelKeys("ftx transfer request v4", shared, transcript);
  return { shared, transcript, key: k.c2sKey, iv: k.c2sIv, confirm: k.clientConfirm.subarray(0, CONFIRM_BYTES) };
}

/** One side's keys for a session: its sealer, and its opener of the peer's datagrams. */
export interface SessionCipher {
  /** The server's nonce the keys were made with (the ACCEPT carries it). */
  serverNonce: Uint8Array;
  sealer: DatagramSealer;
  opener: DatagramOpener;
  dispose(): void;
}

/**
 * The session's keys once the server's nonce is known: the REQUEST's transcript and that nonce.
 * `firstServerPn` is where the server's packet numbers start (the ACCEPT is its pn 0).
 */
export function sessionCipher(aead: InPlaceAeadFactory, request: RequestKeys, serverNonce: Uint8Array, role: "client" | "server"): SessionCipher {
  const k = deriveChannelKeys("ftx transfer v4", request.shared, concat(request.transcript, serverNonce));
  const c2s = aead(k.c2sKey);
  const s2c = aead(k.s2cKey);
  const [out, outIv, inn, innIv] = role === "client" ? [c2s, k.c2sIv, s2c, k.s2cIv] : [s2c, k.s2cIv, c2s, k.c2sIv];
  return {
    serverNonce,
    sealer: new DatagramSealer(out, outIv),
    opener: new DatagramOpener(inn, innIv),
    dispose() {
      c2s.dispose?.();
      s2c.dispose?.();
    },
  };
}

/** Constant-time comparison of two confirmations. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let d = 0;
  for (let i = 0; i < a.byteLength; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

interface Epoch {
  id: Uint8Array;
  secret: Uint8Array;
  share: Uint8Array;
  startedAt: number;
}

/** The server's side: its epoch shares, and completing a client's exchange against one. */
export class ServerShares {
  private current: Epoch | undefined;
  private previous: Epoch | undefined;

  constructor(
    private readonly crypto: TransferCrypto,
    private readonly epochMs = EPOCH_MS,
  ) {}

  get kxKind(): KxKind {
    return kxKind(this.crypto.kx);
  }

  /** The epoch handed out now (a new one when the current is EPOCH_MS old). */
  epoch(now: number): { id: Uint8Array; share: Uint8Array } {
    if (!this.current || now - this.current.startedAt >= this.epochMs || now < this.current.startedAt) {
      this.previous = this.current;
      const id = this.crypto.randomBytes(EPOCH_ID_BYTES);
      const secret = this.crypto.randomBytes(SECRET_BYTES);
      this.current = { id, secret, share: this.crypto.kx.share(secret, id), startedAt: now };
    }
    return this.current;
  }

  /**
   * The REQUEST keys for a client's share made against epoch `epochId`: "stale" when that epoch is not
   * (or no longer) known (answer with a RETRY carrying the current one), "invalid" when the share is
   * not valid, or the confirmation does not check (a wrong token, a tampered REQUEST).
   */
  complete(version: number, sessionId: number, epochId: Uint8Array, clientShare: Uint8Array, confirm: Uint8Array, now: number): RequestKeys | "stale" | "invalid" {
    this.epoch(now); // rotates, so an old epoch ages out even when nobody asked for a greeting
    const e = this.current && sameBytes(this.current.id, epochId) ? this.current : this.previous && sameBytes(this.previous.id, epochId) && now - this.previous.startedAt < 2 * this.epochMs ? this.previous : undefined;
    if (!e) return "stale";
    const shared = this.crypto.kx.complete(e.secret, e.id, clientShare);
    if (!shared) return "invalid";
    const keys = requestKeys(shared, requestTranscript(version, kxKind(this.crypto.kx), sessionId, e.id, e.share, clientShare));
    return sameBytes(keys.confirm, confirm) ? keys : "invalid";
  }
}

/** The client's side of one REQUEST: a fresh share against the greeting's, and the keys. */
export function clientRequestKeys(crypto: TransferCrypto, version: number, sessionId: number, epochId: Uint8Array, serverShare: Uint8Array): { share: Uint8Array; keys: RequestKeys } | undefined {
  const secret = crypto.randomBytes(SECRET_BYTES);
  const share = crypto.kx.share(secret, epochId);
  const shared = crypto.kx.complete(secret, epochId, serverShare);
  secret.fill(0);
  if (!shared) return undefined;
  return { share, keys: requestKeys(shared, requestTranscript(version, kxKind(crypto.kx), sessionId, epochId, serverShare, share)) };
}

