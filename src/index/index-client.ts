import { lookup } from "node:dns/promises";
import { connect as tcpConnect, type Socket as NetSocket } from "node:net";
import { ipVersion } from "../net/ip.ts";
import { FtxError, type ProtocolError } from "../errors.ts";
import { formatAddress, type HostPort } from "../net/address.ts";
import { FramedPeer, type ByteStream } from "./framed-peer.ts";
import { newNonce } from "./nonce.ts";
import { IndexErrorCode, MsgType, Role, type IndexMessage, type ListEntry } from "./core/messages.ts";
import { aes256gcm } from "../crypto/aes-gcm.ts";
import { SECRET_BYTES, type KeyExchange } from "../crypto/core/key-exchange.ts";
import { keyExchangeFor } from "../crypto/load.ts";
import { randomBytes } from "../util/random.ts";
import { ClientHandshake, type ChannelInfo } from "./core/handshake.ts";

export interface ConnectOptions {
  role: Role;
  token?: string;
  /** --insecure-plaintext: ask for unencrypted frames after the handshake (the master must allow it). */
  plaintext?: boolean;
  /** Told once the handshake is through: the cipher and whether the master was authenticated (--verbose). */
  onSecured?: (info: ChannelInfo, master: string) => void;
  /** Covers DNS, TCP connect and the handshake: the contract reports an unreachable master within 5 s. */
  timeoutMs: number;
  /**
   * Messages to send right behind AUTH, without waiting for WELCOME: the master handles frames in
   * order, so a client's LISTs ride (sealed) with its key confirmation and save a round trip (50 ms on
   * a 50 ms path). If authentication fails the master answers ERROR and ignores them.
   */
  pipelined?: IndexMessage[];
}

export interface Welcome {
  peerId: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
}

/**
 * The process's choices for every index connection it makes where the caller says nothing: the commands
 * set them once from `--insecure-plaintext` and `--verbose` (commands/shared-args.ts), so the library
 * paths between a command and its connections (fetch, registration, status) need not carry them.
 */
export const indexSecurityDefaults: Pick<ConnectOptions, "plaintext" | "onSecured"> = { plaintext: false };

/**
 * One authenticated connection to a master, from the file server's or the client's side. After
 * `connectToMaster` resolves, messages arrive through `onMessage` and the end through `onClose`.
 */
export class IndexSession {
  /** Messages that came before anyone listened (answers to pipelined requests, in the WELCOME's chunk). */
  private early: IndexMessage[] = [];
  onMessage: (msg: IndexMessage) => void = (msg) => this.early.push(msg);
  onClose: (reason: string) => void = () => {};
  closed = false;
  closeReason = "connection closed by the master";
  localAddress = "";

  constructor(
    readonly peer: FramedPeer,
    readonly welcome: Welcome,
    readonly master: string,
  ) {}

  send(msg: IndexMessage): void {
    this.peer.send(msg);
  }

  /** Listen from now on, first hearing what came before. */
  listen(handler: (msg: IndexMessage) => void): void {
    this.onMessage = handler;
    const early = this.early;
    this.early = [];
    for (const msg of early) handler(msg);
  }

  close(): void {
    this.peer.destroy(true);
  }

  /** Bytes written but not yet accepted by the kernel: registration uses it to avoid buffering a huge list. */
  get pendingBytes(): number {
    return this.peer.pendingBytes;
  }
}

async function resolveAll(host: string): Promise<string[]> {
  if (ipVersion(host)) return [host];
  const results = await lookup(host, { all: true });
  return results.map((r) => r.address);
}

/** Connect, prove the token and wait for WELCOME, all within `timeoutMs`. */
export async function connectToMaster(target: HostPort, opts: ConnectOptions): Promise<IndexSession> {
  const display = formatAddress(target.host, target.port);
  const deadline = performance.now() + opts.timeoutMs;
  // With a token the curve library loads (~15 ms) while the name resolves.
  const kxLoading = keyExchangeFor(opts.token, "ftx-index");
  let addresses: string[];
  try {
    addresses = await withDeadline(resolveAll(target.host), deadline, display);
  } catch (err) {
    if (err instanceof FtxError) throw err;
    throw unreachable(display, `cannot resolve '${target.host}'`);
  }
  const kx = await kxLoading;
  let lastError: FtxError | undefined;
  for (const address of addresses) {
    try {
      return await attempt(address, target.port, display, opts, kx, deadline);
    } catch (err) {
      lastError = err as FtxError;
      // Authentication and protocol refusals are answers, not reachability problems: don't try other addresses.
      if (lastError.code !== "E_UNREACHABLE") throw lastError;
      if (performance.now() >= deadline) break;
    }
  }
  throw lastError ?? unreachable(display, "its name resolves to no address");
}

/** The master did not answer; `detail` is why, for a caller that names the master itself. */
function unreachable(display: string, why: string): FtxError {
  return new FtxError("E_UNREACHABLE", `cannot reach master ${display}: ${why}`, { detail: why });
}

function withDeadline<T>(p: Promise<T>, deadline: number, display: string): Promise<T> {
  const remaining = Math.max(0, deadline - performance.now());
  let timer: Timer | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(unreachable(display, "timed out")), remaining);
    }),
  ]);
}

/**
 * A `node:net` socket as FramedPeer's byte stream. `Bun.connect` gives no handle until the connection
 * is open, so a connect whose SYNs go unanswered (a firewall, a dead host) cannot be abandoned: it
 * keeps the process alive until the kernel gives up, 2 min 13 s later. A `node:net` socket is a
 * handle from the start, and destroying it ends the attempt at once.
 */
function streamOf(sock: NetSocket): ByteStream {
  return {
    write(bytes) {
      // node:net buffers whatever it is given; refuse while it is above its mark, so that FramedPeer
      // queues the rest and its pendingBytes tells producers (registration) to wait.
      if (sock.writableNeedDrain) return 0;
      sock.write(bytes);
      return bytes.byteLength;
    },
    // Once written out, close: the FIN goes after the data, and no wait on the peer's own FIN holds us.
    end: () => sock.end(() => sock.destroy()),
    terminate: () => sock.destroy(),
  };
}

function attempt(host: string, port: number, display: string, opts: ConnectOptions, kx: KeyExchange, deadline: number): Promise<IndexSession> {
  return new Promise<IndexSession>((resolve, reject) => {
    const plaintext = opts.plaintext ?? indexSecurityDefaults.plaintext ?? false;
    const onSecured = opts.onSecured ?? indexSecurityDefaults.onSecured;
    const handshake = new ClientHandshake(opts.role, { kx, aead: aes256gcm }, plaintext, newNonce(), randomBytes(SECRET_BYTES));
    let settled = false;
    let connected = false;
    let session: IndexSession | undefined;

    const onMessage = (msg: IndexMessage) => {
      if (session) return session.onMessage(msg);
      switch (msg.type) {
        case MsgType.Challenge: {
          const step = handshake.handleChallenge(msg);
          if (!step.ok) {
            // Tell the master why we leave (in clear: no keys are shared), so it logs the failed token.
            if (step.code === "E_AUTH") peer.send({ type: MsgType.Error, code: IndexErrorCode.AuthFailed, message: "authentication failed: key confirmation" });
            return fail(new FtxError(step.code, `master ${display}: ${step.message}`, { detail: step.message }));
          }
          if (step.opener) peer.openWith(step.opener);
          peer.send(step.auth);
          if (step.sealer) peer.sealWith(step.sealer);
          for (const m of opts.pipelined ?? []) peer.send(m);
          onSecured?.(step.info, display);
          return;
        }
        case MsgType.Welcome: {
          settled = true;
          clearTimeout(timer);
          const welcome = { peerId: msg.peerId, heartbeatIntervalMs: msg.heartbeatIntervalMs, heartbeatTimeoutMs: msg.heartbeatTimeoutMs };
          session = new IndexSession(peer, welcome, display);
          session.localAddress = sock.localAddress ?? "";
          resolve(session);
          return;
        }
        case MsgType.Error:
          // A protocol ERROR before CHALLENGE is what a master older than this ftx says to its HELLO (it
          // cannot read the key share; a current one answers a version mismatch with a VERSION error
          // that names the fix itself): name the fix.
          if (handshake.state === "sent-hello" && msg.code === IndexErrorCode.Protocol)
            return fail(
              new FtxError("E_PROTOCOL", `master ${display} speaks an older index protocol (it said: ${msg.message}); upgrade it to this ftx's version`, {
                detail: "older index protocol: upgrade the master",
              }),
            );
          return fail(errorFromMaster(msg.code, msg.message, display));
        default:
          return fail(new FtxError("E_PROTOCOL", `master ${display} sent ${MsgType[msg.type] ?? "an unknown message"} during the handshake`));
      }
    };
    const onProtocolError = (err: ProtocolError) => {
      const reason = `protocol error from master ${display}: ${err.message}`;
      if (session) {
        session.closeReason = reason;
        peer.destroy();
      } else fail(new FtxError("E_PROTOCOL", `${display} does not speak the ftx index protocol (is it an ftx master?): ${err.message}`));
    };

    const sock = tcpConnect({ host, port });
    const peer = new FramedPeer(streamOf(sock), { onMessage, onProtocolError });
    // Every way out of the handshake but WELCOME closes the socket: nothing is left pending.
    const fail = (err: FtxError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      peer.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(unreachable(display, `timed out after ${(opts.timeoutMs / 1000).toFixed(0)}s`)),
      Math.max(0, deadline - performance.now()),
    );

    sock.on("connect", () => {
      connected = true;
      if (settled) return;
      sock.setNoDelay(true);
      // The key share goes at once; AUTH and the pipelined requests follow the master's CHALLENGE.
      peer.send(handshake.hello());
    });
    sock.on("data", (chunk: Uint8Array) => peer.receive(chunk));
    sock.on("drain", () => peer.flush());
    sock.on("error", (err: Error) => {
      if (!connected) fail(unreachable(display, describeConnectError(err)));
      else if (session) session.closeReason = `connection to master ${display} failed: ${err.message}`;
    });
    sock.on("close", () => {
      peer.closed = true;
      if (session && !session.closed) {
        session.closed = true;
        session.onClose(session.closeReason);
      } else fail(unreachable(display, "connection closed during the handshake"));
    });
  });
}

function describeConnectError(err: Error): string {
  const code = (err as { code?: string }).code;
  if (code === "ECONNREFUSED") return "connection refused (is `ftx master` running there?)";
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH") return "host unreachable";
  return err.message;
}

export function errorFromMaster(code: number, message: string, display: string): FtxError {
  const ftxCode =
    code === IndexErrorCode.AuthFailed ? "E_AUTH" : code === IndexErrorCode.Limit ? "E_LIMIT" : code === IndexErrorCode.Timeout ? "E_TIMEOUT" : "E_PROTOCOL";
  return new FtxError(ftxCode, `master ${display}: ${message}`, { detail: message });
}

/**
 * Connect to the first master of a list that answers, all within one `timeoutMs` budget (the
 * contract's 5 s): each master gets an equal share of what is left, so a dead first one cannot use
 * up the time of the others.
 */
export async function connectToAnyMaster(targets: HostPort[], opts: ConnectOptions): Promise<IndexSession> {
  const deadline = performance.now() + opts.timeoutMs;
  const failures: string[] = [];
  for (let i = 0; i < targets.length; i++) {
    const remaining = deadline - performance.now();
    if (remaining <= 0) break;
    const share = Math.max(250, remaining / (targets.length - i));
    const target = targets[i]!;
    try {
      return await connectToMaster(target, { ...opts, timeoutMs: Math.min(remaining, share) });
    } catch (err) {
      const e = err as FtxError;
      if (e.code !== "E_UNREACHABLE" || targets.length === 1) throw e;
      failures.push(`${formatAddress(target.host, target.port)}: ${e.detail ?? e.message}`);
    }
  }
  const names = targets.map((t) => formatAddress(t.host, t.port)).join(", ");
  throw new FtxError("E_UNREACHABLE", `cannot reach any master (${names}): ${failures.join("; ") || "timed out"}`);
}

/**
 * What a client takes from a master for one query, whatever the master does: a master that sends
 * WELCOME and then trickles (or nothing, or a flood) must not keep `ls` or `fetch` running or
 * swelling (one kept them running past 90 s; one flooding entries took `ls` to 5.2 GB in 15 s).
 */
export interface AnswerLimits {
  /** From WELCOME to the last LIST_END, whatever arrives meanwhile. */
  deadlineMs: number;
  /** Entries over all the query's answers. */
  maxEntries: number;
  /** Bytes of those entries as decoded (names, hashes, addresses, ~64 bytes of record each). */
  maxBytes: number;
}

export const DEFAULT_ANSWER_LIMITS: AnswerLimits = { deadlineMs: 15_000, maxEntries: 500_000, maxBytes: 48 << 20 };

/** The size an entry is counted at against AnswerLimits.maxBytes. */
function entryBytes(e: ListEntry): number {
  let n = 64 + e.name.length + e.sha256.length;
  for (const s of e.servers) n += 16 + s.length;
  return n;
}

export interface ListAnswer {
  entries: ListEntry[];
  /** The master could not reach its shared store: the answer may be out of date. */
  stale: boolean;
}

/** One LIST round trip on a fresh client connection: what `ls` asks the index. */
export async function listFromMaster(target: HostPort | HostPort[], pattern: string, token: string | undefined, timeoutMs = 4000, limits?: Partial<AnswerLimits>): Promise<ListEntry[]> {
  return (await queryMaster(Array.isArray(target) ? target : [target], [pattern], token, timeoutMs, limits))[0]!.entries;
}

/**
 * Several LIST requests pipelined on one connection; answers come back in request order. A master that
 * makes no progress for `timeoutMs` (hung, gone, or sending anything but the answers), that has not
 * finished within `limits.deadlineMs`, or whose answers exceed `limits.maxEntries` / `maxBytes` fails
 * the query (E_TIMEOUT, E_LIMIT) rather than hold or swell the caller.
 */
export async function queryMaster(targets: HostPort[], patterns: string[], token: string | undefined, timeoutMs = 4000, limitsGiven?: Partial<AnswerLimits>): Promise<ListAnswer[]> {
  const limits = { ...DEFAULT_ANSWER_LIMITS, ...limitsGiven };
  const lists = patterns.map((pattern, requestId) => ({ type: MsgType.List as const, requestId, pattern }));
  const session = await connectToAnyMaster(targets, { role: Role.Client, token, timeoutMs, pipelined: lists });
  let silence: Timer | undefined;
  let overall: Timer | undefined;
  try {
    return await new Promise<ListAnswer[]>((resolve, reject) => {
      const results: ListAnswer[] = patterns.map(() => ({ entries: [], stale: false }));
      let remaining = patterns.length;
      if (remaining === 0) return resolve(results);
      let done = false;
      const fail = (err: FtxError) => {
        if (done) return;
        done = true;
        session.close();
        reject(err);
      };
      const expectWordWithin = () => {
        clearTimeout(silence);
        silence = setTimeout(() => fail(new FtxError("E_TIMEOUT", `master ${session.master} stopped answering: no progress for ${(timeoutMs / 1000).toFixed(0)}s before the listing was complete`)), timeoutMs);
      };
      overall = setTimeout(
        () => fail(new FtxError("E_TIMEOUT", `master ${session.master} did not finish its answer within ${(limits.deadlineMs / 1000).toFixed(0)}s`)),
        limits.deadlineMs,
      );
      session.onClose = (reason) => fail(new FtxError("E_CLOSED", `${reason} before the listing was complete`));
      expectWordWithin();
      let entries = 0;
      let bytes = 0;
      // The LISTs went with AUTH; their answers may already be here.
      session.listen((msg) => {
        if (done) return;
        if (msg.type === MsgType.ListEntries && msg.requestId < patterns.length) {
          // Only answers count as progress: a master trickling PINGs or stray frames does not hold us.
          expectWordWithin();
          entries += msg.entries.length;
          for (const e of msg.entries) bytes += entryBytes(e);
          if (entries > limits.maxEntries || bytes > limits.maxBytes)
            return fail(
              new FtxError(
                "E_LIMIT",
                `master ${session.master} sent more than ${entries > limits.maxEntries ? `${limits.maxEntries} entries` : `${limits.maxBytes >> 20} MiB`} of listing; narrow it with a PATTERN`,
              ),
            );
          const into = results[msg.requestId]!.entries;
          for (const e of msg.entries) into.push(e);
        } else if (msg.type === MsgType.ListEnd && msg.requestId < patterns.length) {
          expectWordWithin();
          results[msg.requestId]!.stale = msg.stale;
          if (--remaining === 0) {
            done = true;
            resolve(results);
          }
        } else if (msg.type === MsgType.Error) fail(errorFromMaster(msg.code, msg.message, session.master));
      });
    });
  } finally {
    clearTimeout(silence);
    clearTimeout(overall);
    session.close();
  }
}
