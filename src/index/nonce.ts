import { randomBytes } from "../util/random.ts";
import { NONCE_BYTES } from "./core/messages.ts";

/** A fresh handshake nonce (the shells draw it; the pure connection state machine is given it). */
export function newNonce(): Uint8Array {
  return randomBytes(NONCE_BYTES);
}
