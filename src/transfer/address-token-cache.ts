import type { Greeting } from "./core/wire.ts";

/**
 * The client's side of address validation (docs/PROTOCOL.md §2): the newest greeting (address token
 * and key share) each file server gave this process (in a PROBE_ACK or a RETRY), so every session
 * after the first REQUESTs with it and skips the RETRY round trip. A greeting is used for REUSE_MS after
 * it arrived, well inside the server's 30 s; past that the REQUEST goes without one and the server's
 * RETRY brings a new one.
 */
export const ADDRESS_TOKEN_REUSE_MS = 20_000;

export interface AddressTokenSlot {
  /** A greeting to answer, if one is fresh. */
  get(now: number): Greeting | undefined;
  /** The server gave a new one. */
  set(greeting: Greeting, now: number): void;
}

export class AddressTokenCache {
  private readonly tokens = new Map<string, { greeting: Greeting; at: number }>();

  /** The slot of the server at `ip`, `port`. */
  slot(ip: string, port: number): AddressTokenSlot {
    const key = `${ip}|${port}`;
    return {
      get: (now) => {
        const t = this.tokens.get(key);
        if (t && now - t.at < ADDRESS_TOKEN_REUSE_MS) return t.greeting;
        if (t) this.tokens.delete(key);
        return undefined;
      },
      set: (greeting, now) => {
        this.tokens.set(key, { greeting, at: now });
      },
    };
  }
}
