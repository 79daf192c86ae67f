import type { AeadFactory } from "../../crypto/core/aead.ts";
import { FrameOpener, FrameSealer } from "../../crypto/core/frame-seal.ts";
import { deriveChannelKeys, type ChannelKeys } from "../../crypto/core/key-schedule.ts";
import { concat } from "../../util/bytes.ts";
import { kxKind, type KeyExchange } from "../../crypto/core/key-exchange.ts";
import { constantTimeEqual } from "../../util/crypto.ts";
import { INDEX_MAGIC, INDEX_VERSION, IndexErrorCode, KxKind, MsgType, type IndexMessage, type Role } from "./messages.ts";

/**
 * The index connection's handshake, both roles, as pure state machines (docs/PROTOCOL.md, "Encryption"):
 *
 *   client → HELLO      version, role, key exchange (X25519 | CPace), flags, nonce_c, share_c
 *   master → CHALLENGE  version, key exchange, flags, nonce_s, share_s, confirm_s     [then sealed s→c]
 *   client → AUTH       confirm_c                                                     [then sealed c→s]
 *   master → WELCOME …  (sealed)
 *
 * Keys come from the exchange's shared secret through HKDF with the transcript (both hellos) bound in;
 * each side checks the other's confirmation before it trusts a byte. With a token the exchange is CPace
 * (a PAKE), so the confirmations prove knowledge of the token and a transcript tests no guess offline.
 * The shells draw the nonces and the exchange's private randomness and give them in.
 */
export interface HandshakeCrypto {
  kx: KeyExchange;
  aead: AeadFactory;
}

/** What the channel is, once the handshake is through: for `--verbose` and the logs. */
export interface ChannelInfo {
  /** "AES-256-GCM", or "none" with --insecure-plaintext. */
  cipher: string;
  keyExchange: string;
  /** True when the peer proved knowledge of the token (CPace); false: anyone could be at the other end. */
  authenticated: boolean;
}

export function describeChannel(info: ChannelInfo): string {
  const auth = info.authenticated ? "peer authenticated by the token" : "peer NOT authenticated (no token)";
  return `${info.cipher === "none" ? "unencrypted (--insecure-plaintext)" : info.cipher}, ${info.keyExchange}, ${auth}`;
}

type Hello = Extract<IndexMessage, { type: MsgType.Hello }>;
type Challenge = Extract<IndexMessage, { type: MsgType.Challenge }>;
type Auth = Extract<IndexMessage, { type: MsgType.Auth }>;

const SALT = `ftx index v${INDEX_VERSION}`;


/** The bytes both sides hash into the key schedule: every field of both hellos but the confirmation. */
export function indexTranscript(hello: Hello, challenge: Omit<Challenge, "confirm">): Uint8Array {
  const head = new Uint8Array(4 + 4);
  new DataView(head.buffer).setUint32(0, INDEX_MAGIC);
  head.set([hello.version, hello.role, hello.kx, hello.plaintext ? 1 : 0], 4);
  const mid = Uint8Array.of(challenge.version, challenge.kx, challenge.plaintext ? 1 : 0);
  return concat(head, hello.nonce, hello.share, mid, challenge.nonce, challenge.share);
}

function channelInfo(crypto: HandshakeCrypto, plaintext: boolean, keys: ChannelKeys): { info: ChannelInfo; keys: ChannelKeys } {
  const cipher = plaintext ? "none" : crypto.aead(keys.c2sKey).name;
  return { info: { cipher, keyExchange: crypto.kx.name, authenticated: crypto.kx.authenticated }, keys };
}

export type ClientStep =
  | { ok: true; auth: Auth; sealer: FrameSealer | undefined; opener: FrameOpener | undefined; info: ChannelInfo }
  | { ok: false; code: "E_AUTH" | "E_PROTOCOL"; message: string };

export class ClientHandshake {
  state: "start" | "sent-hello" | "done" | "failed" = "start";
  private helloMsg: Hello | undefined;

  constructor(
    private readonly role: Role,
    private readonly crypto: HandshakeCrypto,
    private readonly plaintext: boolean,
    private readonly nonce: Uint8Array,
    private readonly secret: Uint8Array,
  ) {}

  hello(): Hello {
    const share = this.crypto.kx.share(this.secret, this.nonce);
    this.helloMsg = { type: MsgType.Hello, version: INDEX_VERSION, role: this.role, kx: kxKind(this.crypto.kx), plaintext: this.plaintext, nonce: this.nonce, share };
    this.state = "sent-hello";
    return this.helloMsg;
  }

  handleChallenge(msg: Challenge): ClientStep {
    const fail = (code: "E_AUTH" | "E_PROTOCOL", message: string): ClientStep => {
      this.state = "failed";
      return { ok: false, code, message };
    };
    if (this.state !== "sent-hello" || !this.helloMsg) return fail("E_PROTOCOL", "CHALLENGE before HELLO");
    if (msg.version !== INDEX_VERSION)
      return fail("E_PROTOCOL", `the master speaks index protocol v${msg.version}, this ftx v${INDEX_VERSION}: upgrade ${msg.version < INDEX_VERSION ? "the master" : "this ftx"}`);
    if (msg.kx !== this.helloMsg.kx) return fail("E_PROTOCOL", "the master answered with another key exchange than offered");
    if (msg.plaintext !== this.plaintext) return fail("E_PROTOCOL", "the master changed the encryption flag");
    const shared = this.crypto.kx.complete(this.secret, this.nonce, msg.share);
    if (shared === undefined) return fail("E_AUTH", "authentication failed: the master's key share is invalid");
    const { info, keys } = channelInfo(this.crypto, this.plaintext, deriveChannelKeys(SALT, shared, indexTranscript(this.helloMsg, msg)));
    if (!constantTimeEqual(keys.serverConfirm, msg.confirm)) {
      return fail(
        "E_AUTH",
        this.crypto.kx.authenticated
          ? "authentication failed: the master does not know this token (wrong token, or someone in between)"
          : "authentication failed: key confirmation failed (someone in between changed the handshake)",
      );
    }
    this.state = "done";
    return {
      ok: true,
      auth: { type: MsgType.Auth, mac: keys.clientConfirm },
      sealer: this.plaintext ? undefined : new FrameSealer(this.crypto.aead(keys.c2sKey), keys.c2sIv),
      opener: this.plaintext ? undefined : new FrameOpener(this.crypto.aead(keys.s2cKey), keys.s2cIv),
      info,
    };
  }
}

export type ServerHelloStep =
  | { ok: true; challenge: Challenge; sealer: FrameSealer | undefined }
  | { ok: false; code: IndexErrorCode; message: string };
export type ServerAuthStep = { ok: true; opener: FrameOpener | undefined; info: ChannelInfo } | { ok: false; code: IndexErrorCode; message: string };

export const WRONG_TOKEN_TEXT = "authentication failed: wrong or missing token (--token / FTX_TOKEN)";

export class ServerHandshake {
  state: "awaiting-hello" | "awaiting-auth" | "done" | "failed" = "awaiting-hello";
  private keys: ChannelKeys | undefined;
  private info: ChannelInfo | undefined;
  private plaintext = false;

  constructor(
    private readonly crypto: HandshakeCrypto,
    /** The master was started with --insecure-plaintext: a peer may ask for unencrypted frames. */
    private readonly allowPlaintext: boolean,
    private readonly nonce: Uint8Array,
    private readonly secret: Uint8Array,
  ) {}

  handleHello(msg: Hello): ServerHelloStep {
    const fail = (code: IndexErrorCode, message: string): ServerHelloStep => {
      this.state = "failed";
      return { ok: false, code, message };
    };
    if (msg.version !== INDEX_VERSION) {
      const who = msg.version < INDEX_VERSION ? "this peer's ftx is older: upgrade it" : "this master is older: upgrade it";
      return fail(IndexErrorCode.Version, `unsupported protocol version ${msg.version} (this master speaks ${INDEX_VERSION}); ${who}`);
    }
    const wanted = kxKind(this.crypto.kx);
    if (msg.kx !== wanted) {
      return fail(
        IndexErrorCode.AuthFailed,
        wanted === KxKind.CPace ? WRONG_TOKEN_TEXT : "authentication failed: this master has no token; run without --token / FTX_TOKEN",
      );
    }
    if (msg.plaintext && !this.allowPlaintext) return fail(IndexErrorCode.EncryptionRequired, "this master requires encryption: run without --insecure-plaintext");
    const shared = this.crypto.kx.complete(this.secret, msg.nonce, msg.share);
    if (shared === undefined) return fail(IndexErrorCode.Protocol, "protocol error: invalid key share");
    this.plaintext = msg.plaintext;
    const partial = { type: MsgType.Challenge as const, version: INDEX_VERSION, kx: wanted, plaintext: msg.plaintext, nonce: this.nonce, share: this.crypto.kx.share(this.secret, msg.nonce) };
    ({ info: this.info, keys: this.keys } = channelInfo(this.crypto, msg.plaintext, deriveChannelKeys(SALT, shared, indexTranscript(msg, partial))));
    this.state = "awaiting-auth";
    return {
      ok: true,
      challenge: { ...partial, confirm: this.keys.serverConfirm },
      sealer: msg.plaintext ? undefined : new FrameSealer(this.crypto.aead(this.keys.s2cKey), this.keys.s2cIv),
    };
  }

  handleAuth(msg: Auth): ServerAuthStep {
    if (this.state !== "awaiting-auth" || !this.keys || !this.info) return { ok: false, code: IndexErrorCode.Protocol, message: "protocol error: expected HELLO" };
    if (!constantTimeEqual(msg.mac, this.keys.clientConfirm)) {
      this.state = "failed";
      return { ok: false, code: IndexErrorCode.AuthFailed, message: WRONG_TOKEN_TEXT };
    }
    this.state = "done";
    return { ok: true, opener: this.plaintext ? undefined : new FrameOpener(this.crypto.aead(this.keys.c2sKey), this.keys.c2sIv), info: this.info };
  }
}
