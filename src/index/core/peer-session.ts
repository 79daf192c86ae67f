import { formatAddress } from "../../net/address.ts";
import type { FrameOpener, FrameSealer } from "../../crypto/core/frame-seal.ts";
import { describeChannel, type ServerHandshake } from "./handshake.ts";
import { IndexErrorCode, MsgType, Role, type IndexMessage } from "./messages.ts";
import type { Registry } from "./registry.ts";

/**
 * One connection to the master, from the master's side, as a pure state machine: no sockets, no
 * timers, no clock. The TCP shell (master-server.ts) feeds it decoded messages with `handle(msg, now)`,
 * asks `pollTimeout()` when it next needs `handleTimeout(now)`, and carries out the effects it returns.
 *
 * The protocol is the table below (as h11 writes HTTP/1.1's): for each state, the messages it
 * accepts and the handler for each. Anything else is refused with an ERROR frame and a close.
 *
 *   awaiting-hello  --HELLO-->  awaiting-auth  --AUTH-->  file-server --ANNOUNCE--> announced
 *                                                    \->  client
 */
export type SessionState = "awaiting-hello" | "awaiting-auth" | "file-server" | "announced" | "client" | "closed";

export type SessionEffect =
  | { kind: "send"; msg: IndexMessage }
  /** Close once what was sent has gone out. */
  | { kind: "end" }
  /** Stream the answer to a LIST; call `listAnswered` when its LIST_END is out. */
  | { kind: "list"; requestId: number; pattern: string }
  /** From now on seal every frame sent (the handshake's CHALLENGE has gone out in clear before it). */
  | { kind: "seal"; sealer: FrameSealer }
  /** From the next frame on, open every frame received (the client's AUTH was the last in clear). */
  | { kind: "open"; opener: FrameOpener }
  /** `misbehaviour` names a kind of peer misbehaviour: the shell logs those rate-limited, per kind. */
  | { kind: "log"; level: "debug" | "info" | "warn"; text: string; misbehaviour?: string };

export interface SessionConfig {
  heartbeatTimeoutMs: number;
  /** From TCP accept to WELCOME. */
  handshakeTimeoutMs: number;
  /** A client with nothing asked and nothing sent for this long is closed. */
  clientIdleTimeoutMs: number;
}

/** Heartbeats go out three times per timeout, so two lost beats never evict a live server. */
const BEATS_PER_TIMEOUT = 3;
/** A client may pipeline this many LIST requests; each holds only its sorted name list while queued. */
export const MAX_QUEUED_LISTS = 64;

type Handler<T extends MsgType> = (s: PeerSession, msg: Extract<IndexMessage, { type: T }>, now: number) => void;
type Row = { [T in MsgType]?: Handler<T> };

/** At most this many FILE_REJECTED replies per FILES_ADD: the reason is the same for the rest. */
const MAX_REJECTIONS_TOLD = 100;

/** Why a message is refused in a state: what the peer is told. */
function refusalText(state: Exclude<SessionState, "closed">, type: MsgType): string {
  const what = MsgType[type] ?? `message type ${type}`;
  switch (state) {
    case "awaiting-hello":
      return "protocol error: expected HELLO";
    case "awaiting-auth":
      return "protocol error: expected AUTH";
    case "file-server":
      if (type === MsgType.FilesAdd) return "protocol error: FILES_ADD before ANNOUNCE";
      if (type === MsgType.FilesRemove) return "protocol error: FILES_REMOVE before ANNOUNCE";
      return `protocol error: unexpected ${what} from a file server`;
    case "announced":
      return `protocol error: unexpected ${what} from a file server`;
    case "client":
      return `protocol error: unexpected ${what} from a client`;
  }
}

export class PeerSession {
  state: SessionState = "awaiting-hello";
  role: Role = Role.Client;
  private readonly openedAt: number;
  private lastHeardAt: number;
  private listsInFlight = 0;
  private effects: SessionEffect[] = [];

  constructor(
    readonly peerId: number,
    /** The peer as logs show it (`127.0.0.1:5000`). */
    readonly remote: string,
    /** The peer's IP, for an ANNOUNCE that leaves its host to the master. */
    private readonly remoteHost: string,
    /** The key exchange and key confirmation (handshake.ts), with this connection's nonce and randomness. */
    private readonly handshake: ServerHandshake,
    private readonly registry: Registry,
    private readonly config: SessionConfig,
    now: number,
  ) {
    this.openedAt = now;
    this.lastHeardAt = now;
  }

  /** Which message each state accepts, and what it does. A message not in its state's row is refused. */
  static readonly TRANSITIONS: Record<Exclude<SessionState, "closed">, Row> = {
    "awaiting-hello": { [MsgType.Hello]: (s, m) => s.onHello(m) },
    "awaiting-auth": { [MsgType.Auth]: (s, m) => s.onAuth(m), [MsgType.Error]: (s, m) => s.onPeerError(m) },
    "file-server": { [MsgType.Ping]: (s, m) => s.onPing(m), [MsgType.Announce]: (s, m, now) => s.onAnnounce(m, now) },
    announced: {
      [MsgType.Ping]: (s, m) => s.onPing(m),
      [MsgType.Announce]: (s, m, now) => s.onAnnounce(m, now),
      [MsgType.FilesAdd]: (s, m, now) => s.onFilesAdd(m, now),
      [MsgType.FilesRemove]: (s, m, now) => s.registry.removeFiles(s.peerId, m.names, now),
    },
    client: { [MsgType.Ping]: (s, m) => s.onPing(m), [MsgType.List]: (s, m) => s.onList(m) },
  };

  /** One decoded message from the peer. */
  handle(msg: IndexMessage, now: number): SessionEffect[] {
    if (this.state === "closed") return [];
    this.lastHeardAt = now;
    if (this.state === "announced") this.registry.touch(this.peerId, now);
    const handler = PeerSession.TRANSITIONS[this.state][msg.type] as Handler<MsgType> | undefined;
    if (handler) handler(this, msg, now);
    else this.refuse(IndexErrorCode.Protocol, refusalText(this.state, msg.type));
    return this.takeEffects();
  }

  /** The peer sent bytes that can never be a frame. */
  handleProtocolError(message: string): SessionEffect[] {
    if (this.state === "closed") return [];
    this.log("warn", `protocol error from ${this.remote}: ${message}; closing`, "protocol-error");
    this.refuse(IndexErrorCode.Protocol, `protocol error: ${message}`);
    return this.takeEffects();
  }

  /** When `handleTimeout` should next be called for this session's own deadline (handshake or idle), or its lease's. */
  pollTimeout(): number | undefined {
    switch (this.state) {
      case "awaiting-hello":
      case "awaiting-auth":
        return this.openedAt + this.config.handshakeTimeoutMs;
      case "file-server":
        return this.lastHeardAt + this.config.heartbeatTimeoutMs;
      case "client":
        return this.listsInFlight > 0 ? undefined : this.lastHeardAt + this.config.clientIdleTimeoutMs;
      case "announced":
        return this.registry.leaseDeadline(this.peerId); // the registry's expire() decides
      case "closed":
        return undefined;
    }
  }

  handleTimeout(now: number): SessionEffect[] {
    const deadline = this.pollTimeout();
    if (deadline === undefined || now < deadline || this.state === "announced") return [];
    if (this.state === "awaiting-hello" || this.state === "awaiting-auth") {
      this.log("debug", `handshake timeout for ${this.remote}`, "handshake-timeout");
      this.refuse(IndexErrorCode.Timeout, "handshake timeout");
    } else this.refuse(IndexErrorCode.Timeout, "idle timeout");
    return this.takeEffects();
  }

  /** The registry dropped this server's lease (`Registry.expire`): tell it and close. */
  evict(): SessionEffect[] {
    if (this.state !== "announced") return [];
    this.state = "file-server"; // its files are gone already; nothing to remove on close
    this.log("warn", `file server ${this.remote} silent for ${this.config.heartbeatTimeoutMs / 1000}s; its files left the index`);
    this.refuse(IndexErrorCode.Timeout, "heartbeat timeout: evicted from the index, register again");
    return this.takeEffects();
  }

  /** The LIST_END of the oldest request in flight has been sent. */
  listAnswered(now: number): void {
    this.listsInFlight = Math.max(0, this.listsInFlight - 1);
    this.lastHeardAt = now;
  }

  /** The TCP connection is gone: an announced server's files leave the index at once. */
  handleClose(): SessionEffect[] {
    if (this.state === "announced") {
      this.registry.removeServer(this.peerId);
      this.log("info", `file server ${this.remote} disconnected; its files left the index`);
    }
    this.state = "closed";
    return this.takeEffects();
  }

  private send(msg: IndexMessage): void {
    this.effects.push({ kind: "send", msg });
  }

  private log(level: "debug" | "info" | "warn", text: string, misbehaviour?: string): void {
    this.effects.push(misbehaviour === undefined ? { kind: "log", level, text } : { kind: "log", level, text, misbehaviour });
  }

  private refuse(code: IndexErrorCode, message: string): void {
    if (this.state === "announced") this.registry.removeServer(this.peerId);
    this.state = "closed";
    this.effects.push({ kind: "send", msg: { type: MsgType.Error, code, message } }, { kind: "end" });
  }

  private takeEffects(): SessionEffect[] {
    const out = this.effects;
    this.effects = [];
    return out;
  }

  private onHello(msg: Extract<IndexMessage, { type: MsgType.Hello }>): void {
    const step = this.handshake.handleHello(msg);
    if (!step.ok) {
      if (step.code === IndexErrorCode.AuthFailed) this.log("warn", `authentication failed for ${this.remote}: ${step.message}`, "auth-failed");
      return this.refuse(step.code, step.message);
    }
    this.role = msg.role;
    this.state = "awaiting-auth";
    this.send(step.challenge);
    if (step.sealer) this.effects.push({ kind: "seal", sealer: step.sealer });
  }

  private onAuth(msg: Extract<IndexMessage, { type: MsgType.Auth }>): void {
    const { heartbeatTimeoutMs } = this.config;
    const step = this.handshake.handleAuth(msg);
    if (!step.ok) {
      this.log("warn", `authentication failed for ${this.remote} (${this.role === Role.FileServer ? "file server" : "client"})`, "auth-failed");
      return this.refuse(step.code, step.message);
    }
    if (step.opener) this.effects.push({ kind: "open", opener: step.opener });
    this.log("debug", `${this.remote}: ${describeChannel(step.info)}`);
    this.state = this.role === Role.FileServer ? "file-server" : "client";
    this.send({
      type: MsgType.Welcome,
      peerId: this.peerId,
      heartbeatIntervalMs: Math.max(100, Math.floor(heartbeatTimeoutMs / BEATS_PER_TIMEOUT)),
      heartbeatTimeoutMs,
    });
  }

  /** The client refused our CHALLENGE (its key confirmation failed: another token): log it, close. */
  private onPeerError(msg: Extract<IndexMessage, { type: MsgType.Error }>): void {
    if (msg.code === IndexErrorCode.AuthFailed) this.log("warn", `authentication failed for ${this.remote}: it does not share this master's token`, "auth-failed");
    this.state = "closed";
    this.effects.push({ kind: "end" });
  }

  private onPing(msg: Extract<IndexMessage, { type: MsgType.Ping }>): void {
    this.send({ type: MsgType.Pong, seq: msg.seq });
  }

  private onAnnounce(msg: Extract<IndexMessage, { type: MsgType.Announce }>, now: number): void {
    if (msg.port === 0) return this.refuse(IndexErrorCode.Protocol, "protocol error: announced UDP port 0");
    const address = formatAddress(msg.host === "" ? this.remoteHost : msg.host, msg.port);
    const refusal = this.registry.addServer(this.peerId, address, now);
    if (refusal) return this.refuse(IndexErrorCode.Limit, refusal);
    this.state = "announced";
    this.log("info", `file server ${this.remote} registered, serving at ${address}`);
  }

  private onFilesAdd(msg: Extract<IndexMessage, { type: MsgType.FilesAdd }>, now: number): void {
    const rejected = this.registry.addFiles(this.peerId, msg.files, now);
    for (const r of rejected.slice(0, MAX_REJECTIONS_TOLD)) this.send({ type: MsgType.FileRejected, name: r.name, reason: r.reason });
    if (rejected.length > 0) this.log("warn", `refused ${rejected.length} file(s) from ${this.remote}: ${rejected[0]!.reason}`, "files-refused");
  }

  private onList(msg: Extract<IndexMessage, { type: MsgType.List }>): void {
    if (this.listsInFlight >= MAX_QUEUED_LISTS) return this.refuse(IndexErrorCode.Limit, `more than ${MAX_QUEUED_LISTS} list requests in flight`);
    this.listsInFlight++;
    this.effects.push({ kind: "list", requestId: msg.requestId, pattern: msg.pattern });
  }
}
