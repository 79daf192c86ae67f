import { describe, expect, test } from "bun:test";
import { aes256gcm } from "../../../src/crypto/aes-gcm.ts";
import { cpace } from "../../../src/crypto/cpace.ts";
import type { KeyExchange } from "../../../src/crypto/core/key-exchange.ts";
import { x25519 } from "../../../src/crypto/x25519.ts";
import { encodeMessage } from "../../../src/index/core/codec.ts";
import { ClientHandshake, describeChannel, ServerHandshake } from "../../../src/index/core/handshake.ts";
import { INDEX_VERSION, IndexErrorCode, KxKind, MsgType, Role, type IndexMessage } from "../../../src/index/core/messages.ts";

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const kx = (token?: string): KeyExchange => (token === undefined ? x25519 : cpace(token, "ftx-index"));
const client = (token?: string, plaintext = false, seed = 1) => new ClientHandshake(Role.Client, { kx: kx(token), aead: aes256gcm }, plaintext, bytes(16, seed), bytes(64, seed + 1));
const server = (token?: string, allowPlaintext = false, seed = 9) => new ServerHandshake({ kx: kx(token), aead: aes256gcm }, allowPlaintext, bytes(16, seed), bytes(64, seed + 1));
type Challenge = Extract<IndexMessage, { type: MsgType.Challenge }>;

/** Both roles through the handshake; then a frame each way through the sealers. */
function run(c: ClientHandshake, s: ServerHandshake) {
  const hello = c.hello();
  const sh = s.handleHello(hello);
  if (!sh.ok) return { at: "hello" as const, sh };
  const ch = c.handleChallenge(sh.challenge);
  if (!ch.ok) return { at: "challenge" as const, ch, challenge: sh.challenge };
  const sa = s.handleAuth(ch.auth);
  return { at: "auth" as const, sh, ch, sa };
}

describe("index handshake (both roles)", () => {
  for (const token of [undefined, "a long enough token"]) {
    test(`${token ? "with" : "without"} a token: keys agree, frames seal and open both ways, --verbose says ${token ? "authenticated" : "not authenticated"}`, () => {
      const r = run(client(token), server(token));
      if (r.at !== "auth" || !r.sa.ok) throw new Error(`failed at ${r.at}`);
      const ping = encodeMessage({ type: MsgType.Ping, seq: 42 });
      // client → master
      expect(r.sa.opener!.open(r.ch.sealer!.seal(ping).subarray(4))).toEqual(ping.subarray(4));
      // master → client
      expect(r.ch.opener!.open(r.sh.sealer!.seal(ping).subarray(4))).toEqual(ping.subarray(4));
      expect(r.ch.info).toEqual(r.sa.info);
      expect(r.ch.info).toEqual({ cipher: "AES-256-GCM", keyExchange: token ? "CPace-ristretto255" : "X25519", authenticated: token !== undefined });
      expect(describeChannel(r.ch.info)).toContain(token ? "peer authenticated by the token" : "peer NOT authenticated");
      // The handshake frames carry no token-derived bytes but the shares and confirmations.
      if (token) for (const frame of [encodeMessage(r.sh.challenge), encodeMessage(r.ch.auth)]) expect(Buffer.from(frame).includes(Buffer.from(token))).toBe(false);
    });
  }

  test("a wrong token: the client refuses the master's confirmation (E_AUTH), and a forged AUTH is refused by the master", () => {
    const s = server("right token right token");
    const r = run(client("wrong token wrong token"), s);
    expect(r.at).toBe("challenge");
    if (r.at !== "challenge") return;
    expect(r.ch).toMatchObject({ ok: false, code: "E_AUTH", message: expect.stringContaining("does not know this token") });
    // Whatever it sends as AUTH, the master refuses it.
    expect(s.handleAuth({ type: MsgType.Auth, mac: r.challenge.confirm })).toMatchObject({ ok: false, code: IndexErrorCode.AuthFailed });
  });

  test("a token on one side only: refused at HELLO with AUTH_FAILED, either way round", () => {
    expect(run(client(undefined), server("tok tok tok tok tok"))).toMatchObject({ at: "hello", sh: { ok: false, code: IndexErrorCode.AuthFailed } });
    expect(run(client("tok tok tok tok tok"), server(undefined))).toMatchObject({ at: "hello", sh: { ok: false, code: IndexErrorCode.AuthFailed, message: expect.stringContaining("no token") } });
  });

  test("a middleman without the token who swaps in his own shares cannot complete either side", () => {
    const token = "the shared token, 24 ch";
    const c = client(token);
    const s = server(token);
    const mallory = client("mallory's guess", false, 50); // Mallory plays client towards the master…
    const hello = c.hello();
    const mHello = mallory.hello();
    const sh = s.handleHello({ ...hello, share: mHello.share });
    if (!sh.ok) throw new Error("master refused");
    // …and passes the master's answer on: the client's check of the confirmation fails.
    expect(c.handleChallenge(sh.challenge)).toMatchObject({ ok: false, code: "E_AUTH" });
    expect(mallory.handleChallenge(sh.challenge)).toMatchObject({ ok: false, code: "E_AUTH" });
  });

  test("without a token a middleman is possible (documented): the same swap passes, with keys the middleman holds", () => {
    const c = client();
    const s = server();
    const mallory = server(undefined, false, 70);
    // Mallory answers the client with his own CHALLENGE: the client cannot tell.
    const hello = c.hello();
    const fake = mallory.handleHello(hello);
    expect(fake.ok && c.handleChallenge(fake.challenge).ok).toBe(true);
    expect(s.state).toBe("awaiting-hello");
  });

  test("a flipped plaintext flag or kx in CHALLENGE is refused by the client; a changed share fails the confirmation", () => {
    const mk = () => {
      const c = client();
      const sh = server().handleHello(c.hello());
      if (!sh.ok) throw new Error("refused");
      return { c, challenge: sh.challenge };
    };
    let { c, challenge } = mk();
    expect(c.handleChallenge({ ...challenge, plaintext: true })).toMatchObject({ ok: false, code: "E_PROTOCOL" });
    ({ c, challenge } = mk());
    expect(c.handleChallenge({ ...challenge, kx: KxKind.CPace })).toMatchObject({ ok: false, code: "E_PROTOCOL" });
    ({ c, challenge } = mk());
    const share = challenge.share.slice();
    share[0]! ^= 0x40;
    expect(c.handleChallenge({ ...challenge, share } as Challenge)).toMatchObject({ ok: false, code: "E_AUTH" });
  });

  test("--insecure-plaintext: refused unless the master allows it; when allowed, authenticated but no sealers", () => {
    expect(run(client(undefined, true), server(undefined, false))).toMatchObject({ at: "hello", sh: { ok: false, code: IndexErrorCode.EncryptionRequired } });
    const r = run(client("tok tok tok tok tok", true), server("tok tok tok tok tok", true));
    if (r.at !== "auth" || !r.sa.ok) throw new Error(`failed at ${r.at}`);
    expect([r.ch.sealer, r.ch.opener, r.sh.sealer, r.sa.opener]).toEqual([undefined, undefined, undefined, undefined]);
    expect(r.sa.info).toMatchObject({ cipher: "none", authenticated: true });
  });

  test("another version: the master says which side to upgrade; the client says so of a CHALLENGE", () => {
    const s = server();
    const hello = client().hello();
    expect(s.handleHello({ ...hello, version: 2 })).toMatchObject({ ok: false, code: IndexErrorCode.Version, message: expect.stringContaining("this peer's ftx is older: upgrade it") });
    expect(server().handleHello({ ...hello, version: INDEX_VERSION + 1 })).toMatchObject({ ok: false, code: IndexErrorCode.Version, message: expect.stringContaining("this master is older") });
    const c = client();
    c.hello();
    const sh = server().handleHello(client().hello());
    if (!sh.ok) throw new Error("refused");
    expect(c.handleChallenge({ ...sh.challenge, version: 2 })).toMatchObject({ ok: false, code: "E_PROTOCOL", message: expect.stringContaining("upgrade the master") });
  });

  test("invalid shares: the all-zero X25519 share and a non-canonical ristretto255 encoding are refused", () => {
    expect(server().handleHello({ ...client().hello(), share: new Uint8Array(32) })).toMatchObject({ ok: false, code: IndexErrorCode.Protocol });
    expect(server("tok tok tok tok tok").handleHello({ ...client("tok tok tok tok tok").hello(), share: new Uint8Array(32).fill(0xff) })).toMatchObject({ ok: false, code: IndexErrorCode.Protocol });
  });
});
