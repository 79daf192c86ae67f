/**
 * Bun 1.4.5 calls a UDP socket's `error` handler with the error as its *first* argument, although
 * its typings say `(socket, error)`. Accept either, so a typings fix upstream cannot break us.
 */
export function udpErrorOf(first: unknown, second: unknown): Error & { code?: string } {
  const candidate = second instanceof Error ? second : first instanceof Error ? first : undefined;
  return candidate ?? new Error("unknown socket error");
}
