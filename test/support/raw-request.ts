import { DatagramSealer } from "../../src/transfer/core/datagram-aead.ts";
import { clientRequestKeys, kxKind, type RequestKeys, type TransferCrypto } from "../../src/transfer/core/session-keys.ts";
import { encodeBareRequest, encodeRequest, WIRE_VERSION, type Greeting, type RequestBody } from "../../src/transfer/core/wire.ts";
import { testCrypto } from "./transfer-crypto.ts";

/**
 * A REQUEST as a raw test client sends it: sealed in answer to `greeting` (from a PROBE_ACK or a
 * RETRY), with a fresh key share from `crypto` (X25519 by default; give one with a token for CPace); or
 * bare without a greeting. `kx` overrides the exchange the REQUEST claims (to test a mismatch).
 */
export function rawRequest(
  sessionId: number,
  fields: Partial<RequestBody> & { name: string; sha256: Uint8Array },
  greeting: Greeting | undefined,
  crypto: TransferCrypto = testCrypto({ seed: sessionId }),
): { bytes: Uint8Array; keys?: RequestKeys } {
  const body: RequestBody = { offset: 0, length: 0, segmentBytes: 1200, windowSegments: 64, ...fields };
  if (!greeting) return { bytes: encodeBareRequest(sessionId, 0, 0) };
  const made = clientRequestKeys(crypto, WIRE_VERSION, sessionId, greeting.epochId, greeting.share);
  if (!made) throw new Error("the greeting's share is not valid");
  const hello = { token: greeting.token, kx: kxKind(crypto.kx), epochId: greeting.epochId, share: made.share, confirm: made.keys.confirm };
  return { bytes: encodeRequest(sessionId, body, hello, new DatagramSealer(crypto.aead(made.keys.key), made.keys.iv), 0), keys: made.keys };
}
