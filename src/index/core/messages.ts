import { KxKind } from "../../crypto/core/key-exchange.ts";
/**
 * The index protocol's messages (master ⇄ file servers and clients, over TCP).
 * docs/PROTOCOL.md describes each one byte by byte; codec.ts is the only code that reads or writes them.
 */
import type { FileRecord } from "../../files/core/file-record.ts";
import { MAX_NAME_BYTES } from "../../files/core/name-limits.ts";
import { SHA256_BYTES } from "../../util/crypto.ts";

export type { FileRecord };
export { MAX_NAME_BYTES, SHA256_BYTES };

export const INDEX_MAGIC = 0x46545849; // "FTXI"
/**
 * 3: encrypted by default (ephemeral X25519, or CPace with a token) and AES-256-GCM frames; docs/PROTOCOL.md "Encryption".
 * 4: no change on this connection; the transfers' wire version 4 (sealed datagrams) cannot talk to 3's,
 *    so an older file server or client is told here, at its first connection, to upgrade (rather than
 *    its UDP probes going unanswered).
 */
export const INDEX_VERSION = 4;
/** A frame is at most this long (type + payload), so one peer cannot make us buffer without bound. */
export const MAX_FRAME_BYTES = 1 << 20;
/**
 * Until WELCOME the master takes frames of at most this size: HELLO and AUTH are a few dozen bytes,
 * and a client's LISTs pipelined behind AUTH (a pattern ≤ MAX_PATTERN_BYTES) arrive once it has
 * authenticated. 1,000 peers each sending 1 MiB − 1 before authenticating cost the master 2 GB.
 */
export const MAX_PREAUTH_FRAME_BYTES = 4096;
/** `ftx fetch` asks for a name with a LIST pattern: a pattern carries at least a whole name. */
export const MAX_PATTERN_BYTES = MAX_NAME_BYTES;
export const MAX_ERROR_TEXT_BYTES = 1024;
export const MAX_ADDRESS_BYTES = 255;
export const NONCE_BYTES = 16;
/** A key-confirmation tag (HMAC-SHA256, src/crypto/core/key-schedule.ts). */
export const MAC_BYTES = SHA256_BYTES;
/** An X25519 public key or a ristretto255 element. */
export const SHARE_BYTES = 32;

/** Which key exchange a HELLO offers: X25519 without a token, CPace (a PAKE) with one. */
export { KxKind };
/** HELLO/CHALLENGE flags: bit 0, the frames after the handshake go unencrypted (--insecure-plaintext). */
export const FLAG_PLAINTEXT = 1;

export enum Role {
  FileServer = 1,
  Client = 2,
}

export enum MsgType {
  Hello = 0x01,
  Challenge = 0x02,
  Auth = 0x03,
  Welcome = 0x04,
  Error = 0x05,
  Ping = 0x06,
  Pong = 0x07,
  Announce = 0x10,
  FilesAdd = 0x11,
  FilesRemove = 0x12,
  FileRejected = 0x13,
  List = 0x20,
  ListEntries = 0x21,
  ListEnd = 0x22,
  // Operators' view (`ftx status`, issue 18): a client asks, the master answers in bounded frames.
  Status = 0x23,
  StatusServers = 0x24,
  StatusEnd = 0x25,
}

export enum IndexErrorCode {
  AuthFailed = 1,
  Protocol = 2,
  Limit = 3,
  Version = 4,
  Timeout = 5,
  Busy = 6,
  /** The peer asked for --insecure-plaintext and the master does not allow it. */
  EncryptionRequired = 7,
}

/** STATUS_END's format: a reader that knows an older one still reads the named counters it gets. */
export const STATUS_FORMAT_VERSION = 1;
/** At most this many servers per STATUS_SERVERS frame (each ≤ 349 bytes: well under MAX_FRAME_BYTES). */
export const MAX_STATUS_SERVERS_PER_FRAME = 2000;
export const MAX_STATUS_COUNTERS = 64;
export const MAX_COUNTER_NAME_BYTES = 64;
/** A master's id in a shared index (12 hex digits today). */
export const MAX_MASTER_ID_BYTES = 64;

/** One file server as `ftx status` shows it; times are epoch ms, 0 when this master cannot know them. */
export interface StatusServer {
  address: string;
  files: number;
  bytes: number;
  connectedSinceMs: number;
  lastHeartbeatMs: number;
  /** The id of the master it registered through (several masters may share one Redis). */
  master: string;
}

export interface ListEntry extends FileRecord {
  servers: string[]; // advertised addresses, formatted as HOST:PORT
}

export type IndexMessage =
  /** The client's first frame: its key share. A HELLO of another version is read only up to its version. */
  | { type: MsgType.Hello; version: number; role: Role; kx: KxKind; plaintext: boolean; nonce: Uint8Array; share: Uint8Array }
  /** The master's answer: its share and its key confirmation (the master's frames after it are sealed). */
  | { type: MsgType.Challenge; version: number; kx: KxKind; plaintext: boolean; nonce: Uint8Array; share: Uint8Array; confirm: Uint8Array }
  /** The client's key confirmation (the client's frames after it are sealed). */
  | { type: MsgType.Auth; mac: Uint8Array }
  | { type: MsgType.Welcome; peerId: number; heartbeatIntervalMs: number; heartbeatTimeoutMs: number }
  | { type: MsgType.Error; code: IndexErrorCode; message: string }
  | { type: MsgType.Ping; seq: number }
  | { type: MsgType.Pong; seq: number }
  | { type: MsgType.Announce; host: string; port: number }
  | { type: MsgType.FilesAdd; files: FileRecord[] }
  | { type: MsgType.FilesRemove; names: string[] }
  | { type: MsgType.FileRejected; name: string; reason: string }
  | { type: MsgType.List; requestId: number; pattern: string }
  | { type: MsgType.ListEntries; requestId: number; entries: ListEntry[] }
  | { type: MsgType.ListEnd; requestId: number; total: number; stale: boolean }
  | { type: MsgType.Status; requestId: number }
  | { type: MsgType.StatusServers; requestId: number; servers: StatusServer[] }
  | {
      type: MsgType.StatusEnd;
      requestId: number;
      format: number;
      masterId: string;
      startedAtMs: number;
      /** Named counters (`connections`, `lists_total`, …): a newer master may send more. */
      counters: Array<{ name: string; value: number }>;
    };
