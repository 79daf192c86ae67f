import { aes256gcm } from "../../src/crypto/aes-gcm.ts";
import { cpace } from "../../src/crypto/cpace.ts";
import type { FrameOpener, FrameSealer } from "../../src/crypto/core/frame-seal.ts";
import { x25519 } from "../../src/crypto/x25519.ts";
import { decodeBody, encodeMessage, FrameDecoder } from "../../src/index/core/codec.ts";
import { ClientHandshake } from "../../src/index/core/handshake.ts";
import { MsgType, type IndexMessage, type Role } from "../../src/index/core/messages.ts";
import { newNonce } from "../../src/index/nonce.ts";
import { randomBytes } from "../../src/util/random.ts";

/**
 * A raw index client for tests that send what a real one never would: it does the v3 handshake by
 * hand (HELLO, then AUTH from the CHALLENGE), then seals what the test writes and opens what the master
 * sends, so the test's bytes reach the master's parser rather than dying at the AEAD.
 */
export class RawIndexHandshake {
  private readonly hs: ClientHandshake;
  private sealer: FrameSealer | undefined;
  private opener: FrameOpener | undefined;
  private readonly decoder = new FrameDecoder();
  private consumed = 0;
  readonly messages: IndexMessage[] = [];

  constructor(role: Role, token?: string, plaintext = false) {
    this.hs = new ClientHandshake(role, { kx: token === undefined ? x25519 : cpace(token, "ftx-index"), aead: aes256gcm }, plaintext, newNonce(), randomBytes(64));
    this.decoder.maxFrameBytes = (1 << 20) + 16;
  }

  /** The HELLO frame. */
  hello(): Uint8Array {
    return encodeMessage(this.hs.hello());
  }

  /** The AUTH frame answering `challenge`; from now on `seal` seals and `read` opens. */
  auth(challenge: Extract<IndexMessage, { type: MsgType.Challenge }>): Uint8Array {
    const step = this.hs.handleChallenge(challenge);
    if (!step.ok) throw new Error(step.message);
    this.opener = step.opener;
    this.sealer = step.sealer;
    this.plaintextAfter = step.opener === undefined;
    return encodeMessage(step.auth);
  }

  /** A whole frame (length ‖ body) as the master must get it after AUTH. */
  seal(frame: Uint8Array): Uint8Array {
    return this.sealer ? this.sealer.seal(frame) : frame;
  }

  /** Everything received so far on the connection (cumulative); returns the messages decoded so far. */
  read(received: Uint8Array): IndexMessage[] {
    this.feed(received.subarray(this.consumed));
    this.consumed = received.byteLength;
    return this.messages;
  }

  /** One chunk as it arrives; returns the messages it completed. */
  feed(chunk: Uint8Array): IndexMessage[] {
    this.decoder.push(chunk);
    const out: IndexMessage[] = [];
    for (;;) {
      // The master seals from the frame after CHALLENGE: those wait until AUTH has been made.
      if (this.challenged && !this.opener && !this.plaintextAfter) break;
      const body = this.decoder.nextBody();
      if (!body) break;
      const msg = decodeBody(this.challenged && this.opener ? this.opener.open(body) : body);
      if (msg.type === MsgType.Challenge) {
        this.challenged = true;
        this.seenChallenge = msg;
      }
      this.messages.push(msg);
      out.push(msg);
    }
    return out;
  }

  private challenged = false;
  /** The CHALLENGE, once it came (kept when `messages` is cleared). */
  seenChallenge: IndexMessage | undefined;
  private plaintextAfter = false;
}
