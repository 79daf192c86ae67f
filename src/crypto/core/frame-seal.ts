import { ProtocolError } from "../../errors.ts";
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES, counterNonce, MAX_SEQ, type Aead } from "./aead.ts";

/**
 * Sealing for a reliable, ordered byte stream (the index's TCP connection): each frame
 * `u32 length ‖ body` goes out as `u32 length' ‖ AEAD(body)` with length' = length + 16, the 4-byte
 * length prefix as associated data, and the nonce from a per-direction counter. TCP delivers in order,
 * so the receiver's counter is implicit: a frame dropped, replayed, reordered or cut by anyone on the
 * path fails its tag, and the connection closes.
 */
export const FRAME_OVERHEAD_BYTES = AEAD_TAG_BYTES;

export class FrameSealer {
  private seq = 0;
  private readonly nonce = new Uint8Array(AEAD_NONCE_BYTES);
  constructor(
    private readonly aead: Aead,
    private readonly iv: Uint8Array,
  ) {}

  get cipher(): string {
    return this.aead.name;
  }

  /** A whole frame (u32 length ‖ body) in, the sealed frame out. */
  seal(frame: Uint8Array): Uint8Array {
    if (this.seq > MAX_SEQ) throw new RangeError("frame counter exhausted: reconnect");
    const body = frame.subarray(4);
    const out = new Uint8Array(4 + body.byteLength + AEAD_TAG_BYTES);
    new DataView(out.buffer).setUint32(0, body.byteLength + AEAD_TAG_BYTES);
    const sealed = this.aead.seal(counterNonce(this.iv, this.seq++, this.nonce), out.subarray(0, 4), body);
    out.set(sealed, 4);
    return out;
  }
}

export class FrameOpener {
  private seq = 0;
  private readonly nonce = new Uint8Array(AEAD_NONCE_BYTES);
  private readonly aad = new Uint8Array(4);
  /** Frames whose tag failed (there is at most one: the stream closes on it). */
  refused = 0;
  constructor(
    private readonly aead: Aead,
    private readonly iv: Uint8Array,
  ) {}

  /** The sealed body of one frame (its length prefix already read) in, the plaintext body out. */
  open(sealedBody: Uint8Array): Uint8Array {
    if (sealedBody.byteLength <= AEAD_TAG_BYTES) {
      this.refused++;
      throw new ProtocolError("encrypted frame too short");
    }
    new DataView(this.aad.buffer).setUint32(0, sealedBody.byteLength);
    const body = this.aead.open(counterNonce(this.iv, this.seq, this.nonce), this.aad, sealedBody);
    if (body === undefined) {
      this.refused++;
      throw new ProtocolError("encrypted frame failed authentication (tampered, replayed or reordered)");
    }
    this.seq++;
    return body;
  }
}
