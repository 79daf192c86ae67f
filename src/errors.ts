/**
 * One root error for everything ftx reports to a user. The `code` says what kind of failure it is
 * (so tests and callers branch on it, not on message text); the message is one line a user can act on.
 */
export type FtxErrorCode =
  | "E_USAGE" // bad command line: exit 2
  | "E_NOT_FOUND"
  | "E_AUTH"
  | "E_PROTOCOL" // the peer sent something malformed
  | "E_TIMEOUT"
  | "E_UNREACHABLE"
  | "E_IO"
  | "E_NO_SPACE" // the disk (or the user's quota) is full: free some and run again
  | "E_UNSAFE_NAME"
  | "E_AMBIGUOUS"
  | "E_INTEGRITY"
  | "E_CHANGED" // a file server's copy is no longer the content asked for
  | "E_LIMIT"
  | "E_CLOSED";

export interface FtxErrorOptions {
  cause?: unknown;
  /**
   * The failure without naming what it happened to, where the message names it (`cannot reach master
   * HOST:PORT: connection refused` has the detail `connection refused`). A caller that names the
   * subject its own way composes its message from this, never by cutting up `message`.
   */
  detail?: string;
}

export class FtxError extends Error {
  readonly code: FtxErrorCode;
  /** See FtxErrorOptions.detail; undefined when the message stands alone. */
  readonly detail: string | undefined;
  constructor(code: FtxErrorCode, message: string, options?: FtxErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "FtxError";
    this.code = code;
    this.detail = options?.detail;
  }
}

/** Bad command-line usage. Always exits 2 with a hint to `--help`. */
export class UsageError extends FtxError {
  constructor(message: string) {
    super("E_USAGE", message);
    this.name = "UsageError";
  }
}

/**
 * A decoder found bytes that cannot be a valid message (as opposed to "incomplete": wait for more).
 * Shells drop the datagram or close the peer; nothing else may be thrown by a decoder.
 */
export class ProtocolError extends FtxError {
  constructor(message: string) {
    super("E_PROTOCOL", message);
    this.name = "ProtocolError";
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
