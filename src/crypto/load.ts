import type { KeyExchange } from "./core/key-exchange.ts";
import { x25519 } from "./x25519.ts";

/**
 * The key exchange for a channel: CPace with a token (its curve library loaded only then), X25519
 * without. `channel` separates the index's exchanges from the transfers' ("ftx-index", "ftx-transfer").
 */
export async function keyExchangeFor(token: string | undefined, channel: string): Promise<KeyExchange> {
  if (token === undefined) return x25519;
  const { cpace } = await import("./cpace.ts");
  return cpace(token, channel);
}
