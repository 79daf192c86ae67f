/**
 * An ephemeral key exchange as the handshake cores see it (given by the shell, so the cores import no
 * native or third-party crypto). Both kinds have 32-byte shares and a 32-byte shared secret:
 * - X25519 (RFC 7748) without a token: unauthenticated ephemeral Diffie–Hellman;
 * - CPace on ristretto255 (draft-irtf-cfrg-cpace) with a token: a balanced PAKE whose generator is
 *   derived from the token, so a share can only be completed by a peer that knows the token, and a
 *   transcript lets no one test token guesses offline.
 */
export const SHARE_BYTES = 32;

export interface KeyExchange {
  readonly name: string;
  /** True when completing it proves the peer knows the token. */
  readonly authenticated: boolean;
  /**
   * The public share for the private `secret` (64 random bytes from the shell). `sid` is the session
   * id both sides know before the first share (the initiator's nonce).
   */
  share(secret: Uint8Array, sid: Uint8Array): Uint8Array;
  /** The shared secret, or undefined when the peer's share is not valid (not on the curve, identity, low order). */
  complete(secret: Uint8Array, sid: Uint8Array, peerShare: Uint8Array): Uint8Array | undefined;
}

/** Which exchange a handshake runs, as both wire protocols name it (the index's HELLO, the transfers' greeting). */
export enum KxKind {
  X25519 = 0,
  CPace = 1,
}

/** The wire name of an exchange: CPace is the one that authenticates. */
export function kxKind(kx: KeyExchange): KxKind {
  return kx.authenticated ? KxKind.CPace : KxKind.X25519;
}

/** Bytes of private randomness the shell draws for one exchange. */
export const SECRET_BYTES = 64;
