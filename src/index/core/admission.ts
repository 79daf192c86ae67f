/**
 * Who gets a connection slot on the master when a new peer arrives: pure, so the rules are tested
 * alone. A full master (or a full address) makes room by closing an idle connection that has not
 * authenticated — first one that has sent nothing at all, then one stuck in its handshake, the oldest
 * first (a newcomer that is a legit client proves itself within a round trip, so it outlives sockets
 * that just sit there) — then an idle client (nothing asked), the oldest first; file servers
 * and clients with a question in flight are never closed for a newcomer. Only when nothing can go is
 * the newcomer refused ("master busy").
 */
export interface AdmissionLimits {
  maxConnections: number;
  maxConnectionsPerAddress: number;
}

export const DEFAULT_ADMISSION_LIMITS: AdmissionLimits = { maxConnections: 4096, maxConnectionsPerAddress: 1024 };

export interface ConnView {
  id: number;
  address: string;
  /** Still in its handshake (no WELCOME yet). */
  unauthenticated: boolean;
  /** It has sent no complete frame yet. */
  silent: boolean;
  /** A client with no LIST in flight. */
  idleClient: boolean;
}

export type Admission = { kind: "admit" } | { kind: "evict-then-admit"; id: number; why: string } | { kind: "refuse"; why: string };

/** `conns` in the order they opened (oldest first). */
export function admit(conns: Iterable<ConnView>, address: string, limits: AdmissionLimits): Admission {
  let total = 0;
  let fromAddress = 0;
  // Candidates in order of preference, anywhere and from this address: [silent, handshaking, idle client].
  const anywhere: (ConnView | undefined)[] = [undefined, undefined, undefined];
  const here: (ConnView | undefined)[] = [undefined, undefined, undefined];
  for (const c of conns) {
    total++;
    const local = c.address === address;
    if (local) fromAddress++;
    const rank = c.unauthenticated ? (c.silent ? 0 : 1) : c.idleClient ? 2 : -1;
    if (rank < 0) continue;
    anywhere[rank] ??= c;
    if (local) here[rank] ??= c;
  }
  if (fromAddress >= limits.maxConnectionsPerAddress) {
    const victim = here.find((c) => c !== undefined);
    if (!victim) return { kind: "refuse", why: `${limits.maxConnectionsPerAddress} connections already open from ${address}` };
    return { kind: "evict-then-admit", id: victim.id, why: `${limits.maxConnectionsPerAddress} connections from ${address}` };
  }
  if (total >= limits.maxConnections) {
    const victim = anywhere.find((c) => c !== undefined);
    if (!victim) return { kind: "refuse", why: `${limits.maxConnections} connections already open` };
    return { kind: "evict-then-admit", id: victim.id, why: `${limits.maxConnections} connections open` };
  }
  return { kind: "admit" };
}
