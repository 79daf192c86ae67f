import { DatagramSealer } from "../../src/transfer/core/datagram-aead.ts";
import { clientRequestKeys, kxKind, requestKeys, SHARE_BYTES, sessionCipher, type RequestKeys, type SessionCipher, type TransferCrypto } from "../../src/transfer/core/session-keys.ts";
import type { Transmit } from "../../src/transfer/core/server-endpoint.ts";
import {
  ACCEPT_AT,
  acceptNonce,
  ACK_BYTES,
  DATAGRAM_OVERHEAD_BYTES,
  decodeAccept,
  encodeBareRequest,
  encodeError,
  encodeFin,
  encodeRequest,
  FLAG_PIECE_HASHES,
  FLAG_PLAINTEXT,
  FLAG_SEALED,
  HEADER_AT,
  HEADER_BYTES,
  openBody,
  PacketType,
  readHeader,
  REQUEST_AT,
  seal,
  timestampUs,
  VersionError,
  WIRE_VERSION,
  writeAck,
  type AcceptBody,
  type ErrorBody,
  type Greeting,
  type Header,
  type RequestBody,
} from "../../src/transfer/core/wire.ts";

/**
 * The client's side of wire v4 (docs/PROTOCOL.md §4) for tests that build a file server's datagrams
 * by hand: what `Download` does, without its engine, so a test can still say "an ACK for segment 3
 * with this cookie" and look at clear bytes.
 *
 * - `request` answers a greeting (by default `ep.greeting(address, at)`, as a PROBE_ACK would carry;
 *   a RETRY's with `greeting`) with a sealed REQUEST, and remembers its keys under its session id;
 *   `token` puts another address token in it, `bare` sends none (it draws a RETRY).
 * - `open` (and `drain`, which polls the endpoint and opens everything) takes an ACCEPT's nonce and
 *   keeps the session's cipher per (address, port, session id), then opens that session's sealed
 *   DATA, REPAIR and ERROR. Each datagram is seen with its wire bytes (`raw`) and its clear ones (`bytes`).
 * - `ack`, `fin` and `error` seal what the client sends (in clear for a FLAG_PLAINTEXT session).
 *
 * A datagram that should open and does not is a test failure: it throws.
 */
export interface Seen {
  /** The datagram as the endpoint sent it. */
  raw: Uint8Array;
  /** Opened: the clear datagram up to its body's end (no pn, no tag); `raw` itself when it came in clear. */
  bytes: Uint8Array;
  header: Header;
  address: string;
  port: number;
}

export interface PeerRequest extends Partial<RequestBody> {
  /** The client's address, the token's (default "10.0.0.1"). */
  address?: string;
  /** When the endpoint makes the greeting (default 0). */
  at?: number;
  /** Answer this greeting (a RETRY's or PROBE_ACK's) instead of asking the endpoint for one. */
  greeting?: Greeting;
  /** Another address token in place of the greeting's (stale, another address's, another server's). */
  token?: Uint8Array;
  /** No token at all: a bare REQUEST, which names nothing. */
  bare?: boolean;
}

/** A served file as a REQUEST names it. */
export interface Named {
  name: string;
  size: number;
  sha256: string;
}

export interface PeerSession {
  cipher: SessionCipher;
  plaintext: boolean;
  accept: AcceptBody;
}

export class SessionPeer {
  /** REQUEST keys by session id, newest last: an ACCEPT opens under one of them. */
  private readonly requests = new Map<number, { keys: RequestKeys; plaintext: boolean }[]>();
  private readonly sessions = new Map<string, PeerSession>();

  constructor(
    private readonly ep: { greeting(address: string, now: number): Greeting },
    readonly crypto: TransferCrypto,
  ) {}

  /** A REQUEST for `file` (all of it unless the options say otherwise), sealed unless `bare`. */
  request(file: Named, sessionId: number, o: PeerRequest = {}): Uint8Array {
    const { address = "10.0.0.1", at = 0, greeting, token, bare, ...fields } = o;
    const body: RequestBody = { offset: 0, length: file.size, segmentBytes: 1000, windowSegments: 64, name: file.name, sha256: Buffer.from(file.sha256, "hex"), ...fields };
    if (bare) return encodeBareRequest(sessionId, (body.plaintext ? FLAG_PLAINTEXT : 0) | (body.pieceHashes ? FLAG_PIECE_HASHES : 0), timestampUs(at));
    const g = greeting ?? this.ep.greeting(address, at);
    // Our own exchange, whatever the greeting says (a client with no token answers a CPace server with X25519).
    // When the server's share is not a share of our exchange, no keys come of it: seal under random ones.
    const made = clientRequestKeys(this.crypto, WIRE_VERSION, sessionId, g.epochId, g.share) ?? { share: this.crypto.randomBytes(SHARE_BYTES), keys: requestKeys(this.crypto.randomBytes(32), new Uint8Array(0)) };
    const list = this.requests.get(sessionId) ?? [];
    list.push({ keys: made.keys, plaintext: body.plaintext === true });
    this.requests.set(sessionId, list);
    const aead = this.crypto.aead(made.keys.key);
    try {
      const hello = { token: token ?? g.token, kx: kxKind(this.crypto.kx), epochId: g.epochId, share: made.share, confirm: made.keys.confirm };
      return encodeRequest(sessionId, body, hello, new DatagramSealer(aead, made.keys.iv), timestampUs(at));
    } finally {
      aead.dispose?.();
    }
  }

  /** The session the peer holds with (address, port, session id), once its ACCEPT opened. */
  session(address: string, port: number, sessionId: number): PeerSession | undefined {
    return this.sessions.get(key(address, port, sessionId));
  }

  /**
   * The clear bytes of a datagram the endpoint sent to (address, port) (a copy; `raw` is not written):
   * an ACCEPT opens under the REQUEST keys of its session id (and its session's keys are kept, unless
   * it is a repeat of the one already opened); sealed DATA, REPAIR and ERROR under their session's.
   */
  open(raw: Uint8Array, header: Header, address: string, port: number): Uint8Array {
    const id = header.sessionId;
    switch (header.type) {
      case PacketType.Accept:
        return this.openAccept(raw, address, port, id);
      case PacketType.Data:
      case PacketType.Repair:
      case PacketType.Error: {
        if (header.type === PacketType.Error && (header.flags & FLAG_SEALED) === 0) return raw;
        const s = this.session(address, port, id);
        if (!s) throw new Error(`${PacketType[header.type]} for session ${id} at ${address}:${port}, whose ACCEPT the peer has not seen`);
        if (s.plaintext && header.type !== PacketType.Error) return raw;
        const copy = raw.slice();
        const end = openBody(copy, HEADER_BYTES, s.cipher.opener);
        if (end < 0) throw new Error(`${PacketType[header.type]} ${header.seq} of session ${id} does not open (${s.cipher.opener.lastRefusal})`);
        return copy.subarray(0, end);
      }
      default:
        return raw;
    }
  }

  private openAccept(raw: Uint8Array, address: string, port: number, id: number): Uint8Array {
    const nonce = acceptNonce(raw).slice();
    for (const r of [...(this.requests.get(id) ?? [])].reverse()) {
      const cipher = sessionCipher(this.crypto.aead, r.keys, nonce, "client");
      const copy = raw.slice();
      const end = openBody(copy, ACCEPT_AT.body, cipher.opener);
      if (end < 0) {
        cipher.dispose();
        continue;
      }
      const clear = copy.subarray(0, end);
      const k = key(address, port, id);
      const held = this.sessions.get(k);
      if (held && Buffer.from(held.cipher.serverNonce).equals(Buffer.from(nonce))) cipher.dispose(); // a repeated ACCEPT: keep the replay state
      else {
        held?.cipher.dispose();
        this.sessions.set(k, { cipher, plaintext: r.plaintext, accept: decodeAccept(clear) });
      }
      return clear;
    }
    throw new Error(`ACCEPT for session ${id} at ${address}:${port} opens under none of its REQUESTs' keys`);
  }

  /** Everything the endpoint has to send now (at most `max`), each datagram of a run apart, opened. */
  drain(ep: { pollTransmit(now: number): Transmit | undefined }, now: number, max = Infinity): Seen[] {
    const out: Seen[] = [];
    for (let t = out.length < max ? ep.pollTransmit(now) : undefined; t; t = out.length < max ? ep.pollTransmit(now) : undefined) {
      for (let i = 0; i < t.count; i++) out.push(this.see(t.bytes.slice(i * t.datagramBytes, Math.min((i + 1) * t.datagramBytes, t.bytes.byteLength)), t.address, t.port));
    }
    return out;
  }

  /** One datagram the endpoint sent (a copy of its bytes), read and opened; another version's (an upgrade ERROR) as it is. */
  see(raw: Uint8Array, address: string, port: number): Seen {
    let header: Header;
    try {
      header = readHeader(raw);
    } catch (err) {
      if (!(err instanceof VersionError)) throw err;
      return { raw, bytes: raw, header: { type: raw[HEADER_AT.type]!, flags: raw[HEADER_AT.flags]!, sessionId: 0, seq: 0, timestampUs: 0 }, address, port };
    }
    return { raw, bytes: this.open(raw, header, address, port), header, address, port };
  }

  /** An ACK of the session at (address, port), sealed under its keys (clear for a plaintext session). */
  ack(address: string, port: number, sessionId: number, cumulative: number, cookie: number, now: number, o: { windowSegments?: number; received?: number; gap?: boolean } = {}): Uint8Array {
    const sealer = this.sealerOf(address, port, sessionId);
    const buf = new Uint8Array(ACK_BYTES + (sealer ? DATAGRAM_OVERHEAD_BYTES : 0));
    const body = { windowSegments: o.windowSegments ?? 64, echoTimestampUs: timestampUs(now), ackDelayUs: 0, received: o.received ?? cumulative, gap: o.gap };
    writeAck(buf, new DataView(buf.buffer), sessionId, cumulative, body, cookie, timestampUs(now), sealer);
    return buf;
  }

  fin(address: string, port: number, sessionId: number, now: number): Uint8Array {
    return encodeFin(sessionId, timestampUs(now), this.sealerOf(address, port, sessionId));
  }

  error(address: string, port: number, sessionId: number, body: ErrorBody, now: number): Uint8Array {
    return encodeError(sessionId, body, timestampUs(now), this.sealerOf(address, port, sessionId));
  }

  private sealerOf(address: string, port: number, sessionId: number): DatagramSealer | undefined {
    const s = this.session(address, port, sessionId);
    if (!s) throw new Error(`no session ${sessionId} at ${address}:${port}: the peer has not seen its ACCEPT (drain first)`);
    return s.plaintext ? undefined : s.cipher.sealer;
  }
}

function key(address: string, port: number, sessionId: number): string {
  return `${address}|${port}|${sessionId}`;
}

/**
 * A captured REQUEST with another address token (and session id) spliced in, its checksum made right:
 * what a replayer sends, and what the server turns away before any key exchange when the token is not
 * the sender's (the token and the session id are in the sealed body's aad: it no longer opens either).
 */
export function splice(request: Uint8Array, token: Uint8Array, sessionId?: number): Uint8Array {
  const out = request.slice();
  const view = new DataView(out.buffer);
  out.set(token, REQUEST_AT.token);
  if (sessionId !== undefined) view.setUint32(HEADER_AT.sessionId, sessionId);
  seal(out, view, out.byteLength);
  return out;
}

/** A received datagram with bit `bit` of byte `at` flipped and its checksum made right again: only the AEAD can tell. */
export function tamper(datagram: Uint8Array, at: number, bit = 0): Uint8Array {
  const out = datagram.slice();
  out[at]! ^= 1 << bit;
  seal(out, new DataView(out.buffer), out.byteLength);
  return out;
}
