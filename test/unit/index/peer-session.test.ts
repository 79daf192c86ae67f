import { describe, expect, test } from "bun:test";
import { aes256gcm } from "../../../src/crypto/aes-gcm.ts";
import { cpace } from "../../../src/crypto/cpace.ts";
import { x25519 } from "../../../src/crypto/x25519.ts";
import { ClientHandshake, ServerHandshake } from "../../../src/index/core/handshake.ts";
import { MemoryStore } from "../../../src/index/memory-store.ts";
import { INDEX_VERSION, IndexErrorCode, KxKind, MsgType, Role, type IndexMessage } from "../../../src/index/core/messages.ts";
import { MAX_QUEUED_LISTS, PeerSession, type SessionEffect, type SessionState } from "../../../src/index/core/peer-session.ts";
import { Registry } from "../../../src/index/core/registry.ts";

const SHA = "a".repeat(64);
const CLIENT_NONCE = new Uint8Array(16).fill(1);
const SERVER_NONCE = new Uint8Array(16).fill(2);
const CONFIG = { heartbeatTimeoutMs: 6000, handshakeTimeoutMs: 5000, clientIdleTimeoutMs: 30_000 };
const CLIENT_SECRET = new Uint8Array(64).fill(3);
const SERVER_SECRET = new Uint8Array(64).fill(4);
const kxFor = (token: string | undefined) => (token === undefined ? x25519 : cpace(token, "ftx-index"));
const serverHandshake = (token?: string) => new ServerHandshake({ kx: kxFor(token), aead: aes256gcm }, false, SERVER_NONCE, SERVER_SECRET);
const clientHandshake = (role: Role, token?: string) => new ClientHandshake(role, { kx: kxFor(token), aead: aes256gcm }, false, CLIENT_NONCE, CLIENT_SECRET);

/** One message of every type, valid in its own right. */
const SAMPLES: Record<MsgType, IndexMessage> = {
  [MsgType.Hello]: clientHandshake(Role.Client).hello(),
  [MsgType.Challenge]: { type: MsgType.Challenge, version: INDEX_VERSION, kx: KxKind.X25519, plaintext: false, nonce: SERVER_NONCE, share: new Uint8Array(32), confirm: new Uint8Array(32) },
  [MsgType.Auth]: { type: MsgType.Auth, mac: new Uint8Array(32) },
  [MsgType.Welcome]: { type: MsgType.Welcome, peerId: 1, heartbeatIntervalMs: 2000, heartbeatTimeoutMs: 6000 },
  [MsgType.Error]: { type: MsgType.Error, code: IndexErrorCode.Protocol, message: "x" },
  [MsgType.Ping]: { type: MsgType.Ping, seq: 7 },
  [MsgType.Pong]: { type: MsgType.Pong, seq: 7 },
  [MsgType.Announce]: { type: MsgType.Announce, host: "", port: 4000 },
  [MsgType.FilesAdd]: { type: MsgType.FilesAdd, files: [{ name: "f", size: 1, sha256: SHA }] },
  [MsgType.FilesRemove]: { type: MsgType.FilesRemove, names: ["f"] },
  [MsgType.FileRejected]: { type: MsgType.FileRejected, name: "f", reason: "r" },
  [MsgType.List]: { type: MsgType.List, requestId: 0, pattern: "" },
  [MsgType.ListEntries]: { type: MsgType.ListEntries, requestId: 0, entries: [] },
  [MsgType.ListEnd]: { type: MsgType.ListEnd, requestId: 0, total: 0, stale: false },
  // STATUS is answered by the master's shell (src/ops), not by the session: the session refuses it.
  [MsgType.Status]: { type: MsgType.Status, requestId: 0 },
  [MsgType.StatusServers]: { type: MsgType.StatusServers, requestId: 0, servers: [] },
  [MsgType.StatusEnd]: { type: MsgType.StatusEnd, requestId: 0, format: 1, masterId: "m", startedAtMs: 0, counters: [] },
};
const ALL_TYPES = Object.keys(SAMPLES).map(Number) as MsgType[];

function sent(effects: SessionEffect[]): IndexMessage[] {
  return effects.flatMap((e) => (e.kind === "send" ? [e.msg] : []));
}

/** A fresh session driven into `state` at time 0, with its registry. */
function sessionIn(state: Exclude<SessionState, "closed">, token?: string): { s: PeerSession; registry: Registry } {
  const registry = new Registry(new MemoryStore(), CONFIG.heartbeatTimeoutMs);
  const s = new PeerSession(1, "10.0.0.9:5555", "10.0.0.9", serverHandshake(token), registry, CONFIG, 0);
  const role = state === "client" ? Role.Client : Role.FileServer;
  const client = clientHandshake(role, token);
  if (state !== "awaiting-hello") {
    const effects = s.handle(client.hello(), 0);
    if (state !== "awaiting-auth") {
      const challenge = sent(effects)[0]!;
      if (challenge.type !== MsgType.Challenge) throw new Error("no CHALLENGE");
      const step = client.handleChallenge(challenge);
      if (!step.ok) throw new Error(step.message);
      const welcomed = s.handle(step.auth, 0);
      expect(sent(welcomed)[0]!.type).toBe(MsgType.Welcome);
      // The client's frames are opened from now on: the session tells the shell so before WELCOME.
      expect(welcomed.map((e) => e.kind).slice(0, 1)).toEqual(["open"]);
    }
  }
  if (state === "announced") s.handle(SAMPLES[MsgType.Announce], 0);
  expect(s.state).toBe(state);
  return { s, registry };
}

describe("the master's per-connection protocol, as a table", () => {
  const expectedRefusal: Record<Exclude<SessionState, "closed">, (t: MsgType) => string> = {
    "awaiting-hello": () => "protocol error: expected HELLO",
    "awaiting-auth": () => "protocol error: expected AUTH",
    "file-server": (t) =>
      t === MsgType.FilesAdd ? "protocol error: FILES_ADD before ANNOUNCE" : t === MsgType.FilesRemove ? "protocol error: FILES_REMOVE before ANNOUNCE" : `protocol error: unexpected ${MsgType[t]} from a file server`,
    announced: (t) => `protocol error: unexpected ${MsgType[t]} from a file server`,
    client: (t) => `protocol error: unexpected ${MsgType[t]} from a client`,
  };

  for (const state of Object.keys(PeerSession.TRANSITIONS) as Array<Exclude<SessionState, "closed">>) {
    test(`${state}: every message outside its row is refused with a PROTOCOL error and a close`, () => {
      const allowed = Object.keys(PeerSession.TRANSITIONS[state]).map(Number);
      const refused = ALL_TYPES.filter((t) => !allowed.includes(t));
      expect(refused.length).toBeGreaterThan(0);
      for (const type of refused) {
        const { s, registry } = sessionIn(state);
        const effects = s.handle(SAMPLES[type], 1);
        expect(effects.filter((e) => e.kind !== "log")).toEqual([{ kind: "send", msg: { type: MsgType.Error, code: IndexErrorCode.Protocol, message: expectedRefusal[state](type) } }, { kind: "end" }]);
        expect(s.state).toBe("closed");
        expect(registry.hasServer(1)).toBe(false); // an announced server refused leaves the index
        expect(s.handle(SAMPLES[MsgType.Ping], 2)).toEqual([]); // nothing more from a closed session
      }
    });
  }

  test("the rows: what each state accepts", () => {
    const rows = Object.fromEntries(Object.entries(PeerSession.TRANSITIONS).map(([state, row]) => [state, Object.keys(row).map((t) => MsgType[Number(t)])]));
    expect(rows).toEqual({
      "awaiting-hello": ["Hello"],
      "awaiting-auth": ["Auth", "Error"],
      "file-server": ["Ping", "Announce"],
      announced: ["Ping", "Announce", "FilesAdd", "FilesRemove"],
      client: ["Ping", "List"],
    });
  });

  test("HELLO of another version: a VERSION error naming it", () => {
    const { s } = sessionIn("awaiting-hello");
    expect(sent(s.handle({ ...SAMPLES[MsgType.Hello], version: 2 } as IndexMessage, 0))).toEqual([
      { type: MsgType.Error, code: IndexErrorCode.Version, message: "unsupported protocol version 2 (this master speaks 4); this peer's ftx is older: upgrade it" },
    ]);
    expect(s.state).toBe("closed");
  });

  test("with a token: the right key confirmation is welcomed; a wrong token, a wrong confirmation or no token gets AUTH_FAILED", () => {
    expect(sessionIn("client", "s3cret").s.state).toBe("client");
    const fresh = () => new PeerSession(1, "r", "10.0.0.9", serverHandshake("s3cret"), new Registry(new MemoryStore(), 6000), CONFIG, 0);
    // A client without a token offers X25519: refused at HELLO.
    const none = fresh();
    expect(sent(none.handle(clientHandshake(Role.Client).hello(), 0))[0]).toMatchObject({ type: MsgType.Error, code: IndexErrorCode.AuthFailed });
    expect(none.state).toBe("closed");
    // A wrong token: CPace completes, but the master's confirmation does not verify at the client, and
    // the client's AUTH (whatever it sends) does not verify at the master.
    const wrong = fresh();
    const client = clientHandshake(Role.Client, "wrong");
    const challenge = sent(wrong.handle(client.hello(), 0))[0]!;
    expect(challenge.type).toBe(MsgType.Challenge);
    if (challenge.type !== MsgType.Challenge) return;
    expect(client.handleChallenge(challenge)).toMatchObject({ ok: false, code: "E_AUTH" });
    for (const mac of [new Uint8Array(32), challenge.confirm]) {
      const s = fresh();
      s.handle(clientHandshake(Role.Client, "wrong").hello(), 0);
      expect(sent(s.handle({ type: MsgType.Auth, mac }, 0))[0]).toMatchObject({ type: MsgType.Error, code: IndexErrorCode.AuthFailed });
      expect(s.state).toBe("closed");
    }
  });

  test("a file server announces (its host defaults to the connection's), adds files, is answered PONG; closing removes its files", () => {
    const { s, registry } = sessionIn("announced");
    expect(registry.list("")).toEqual([]);
    expect(s.handle(SAMPLES[MsgType.FilesAdd], 1)).toEqual([]);
    expect(registry.list("")).toEqual([{ name: "f", size: 1, sha256: SHA, servers: ["10.0.0.9:4000"] }]);
    expect(sent(s.handle(SAMPLES[MsgType.Ping], 2))).toEqual([{ type: MsgType.Pong, seq: 7 }]);
    s.handleClose();
    expect(registry.list("")).toEqual([]);
  });

  test("ANNOUNCE of port 0 is a PROTOCOL error", () => {
    const { s } = sessionIn("file-server");
    expect(sent(s.handle({ type: MsgType.Announce, host: "", port: 0 }, 0))[0]).toMatchObject({ code: IndexErrorCode.Protocol, message: "protocol error: announced UDP port 0" });
  });

  test(`a client may have ${MAX_QUEUED_LISTS} lists in flight; one more is a LIMIT error`, () => {
    const { s } = sessionIn("client");
    for (let i = 0; i < MAX_QUEUED_LISTS; i++) expect(s.handle({ type: MsgType.List, requestId: i, pattern: "x" }, 0)).toEqual([{ kind: "list", requestId: i, pattern: "x" }]);
    expect(sent(s.handle({ type: MsgType.List, requestId: 99, pattern: "x" }, 0))[0]).toMatchObject({ code: IndexErrorCode.Limit });
  });

  test("deadlines: the handshake's, a client's idleness (not while its list is being answered), an unannounced server's silence", () => {
    const hello = sessionIn("awaiting-hello").s;
    expect(hello.pollTimeout()).toBe(5000);
    expect(hello.handleTimeout(4999)).toEqual([]);
    expect(sent(hello.handleTimeout(5000))).toEqual([{ type: MsgType.Error, code: IndexErrorCode.Timeout, message: "handshake timeout" }]);

    const { s: client } = sessionIn("client");
    expect(client.pollTimeout()).toBe(30_000);
    client.handle({ type: MsgType.List, requestId: 0, pattern: "" }, 100);
    expect(client.pollTimeout()).toBeUndefined();
    client.listAnswered(40_000);
    expect(client.pollTimeout()).toBe(70_000);
    expect(sent(client.handleTimeout(70_000))).toEqual([{ type: MsgType.Error, code: IndexErrorCode.Timeout, message: "idle timeout" }]);

    const { s: server } = sessionIn("file-server");
    expect(server.pollTimeout()).toBe(6000);
  });

  test("an announced server's deadline is its lease; when the registry expires it, it is told and closed", () => {
    const { s, registry } = sessionIn("announced");
    s.handle(SAMPLES[MsgType.Ping], 1000);
    expect(s.pollTimeout()).toBe(7000);
    expect(registry.pollTimeout()).toBe(7000);
    expect(s.handleTimeout(7000)).toEqual([]); // the registry decides, not the session
    expect(registry.expire(7000)).toEqual([1]);
    expect(sent(s.evict())).toEqual([{ type: MsgType.Error, code: IndexErrorCode.Timeout, message: "heartbeat timeout: evicted from the index, register again" }]);
    expect(s.state).toBe("closed");
  });
});
