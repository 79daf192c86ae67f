/**
 * Who gets a connection slot on the master when a new peer arrives: pure, so the rules are tested
 * alone. A full master (or a full address) makes room by closing an idle connection that has not
 * authenticated, the oldest first, then an idle client (nothing asked), the oldest first; file servers
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
  /** A client with no LIST in flight. */
  idleClient: boolean;
}

export type Admission = { kind: "admit" } | { kind: "evict-then-admit"; id: number; why: string } | { kind: "refuse"; why: string };

/** `conns` in the order they opened (oldest first). */
export function admit(conns: Iterable<ConnView>, address: string, limits: AdmissionLimits): Admission {
  let total = 0;
  let fromAddress = 0;
  let oldestUnauth: ConnView | undefined;
  let oldestUnauthHere: ConnView | undefined;
  let oldestIdle: ConnView | undefined;
  let oldestIdleHere: ConnView | undefined;
  for (const c of conns) {
    total++;
    const here = c.address === address;
    if (here) fromAddress++;
    if (c.unauthenticated) {
      oldestUnauth ??= c;
      if (here) oldestUnauthHere ??= c;
    } else if (c.idleClient) {
      oldestIdle ??= c;
      if (here) oldestIdleHere ??= c;
    }
  }
  if (fromAddress >= limits.maxConnectionsPerAddress) {
    const victim = oldestUnauthHere ?? oldestIdleHere;
    if (!victim) return { kind: "refuse", why: `${limits.maxConnectionsPerAddress} connections already open from ${address}` };
    return { kind: "evict-then-admit", id: victim.id, why: `${limits.maxConnectionsPerAddress} connections from ${address}` };
  }
  if (total >= limits.maxConnections) {
    const victim = oldestUnauth ?? oldestIdle;
    if (!victim) return { kind: "refuse", why: `${limits.maxConnections} connections already open` };
    return { kind: "evict-then-admit", id: victim.id, why: `${limits.maxConnections} connections open` };
  }
  return { kind: "admit" };
}
