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
  | "E_UNSAFE_NAME"
  | "E_AMBIGUOUS"
  | "E_INTEGRITY"
  | "E_LIMIT"
  | "E_CLOSED";

export class FtxError extends Error {
  readonly code: FtxErrorCode;
  constructor(code: FtxErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FtxError";
    this.code = code;
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
