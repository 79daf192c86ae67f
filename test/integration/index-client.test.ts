import { describe, expect, test } from "bun:test";
import { FtxError } from "../../src/errors.ts";
import { connectToAnyMaster, connectToMaster } from "../../src/index/index-client.ts";
import { Role } from "../../src/index/core/messages.ts";

/** A loopback port nobody listens on (bound, read back and closed again). */
function closedPort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

async function rejection(p: Promise<unknown>): Promise<FtxError> {
  try {
    await p;
  } catch (err) {
    return err as FtxError;
  }
  throw new Error("it connected");
}

describe("unreachable masters", () => {
  test("one master: E_UNREACHABLE, with the reason apart from the address", async () => {
    const port = closedPort();
    const e = await rejection(connectToMaster({ host: "127.0.0.1", port }, { role: Role.Client, timeoutMs: 2000 }));
    expect(e.code).toBe("E_UNREACHABLE");
    expect(e.detail).toBeDefined();
    expect(e.detail).not.toContain(String(port));
  });

  test("a list of masters: E_UNREACHABLE naming each one once, with its reason", async () => {
    const ports = [closedPort(), closedPort()];
    const e = await rejection(connectToAnyMaster(ports.map((port) => ({ host: "127.0.0.1", port })), { role: Role.Client, timeoutMs: 2000 }));
    expect(e.code).toBe("E_UNREACHABLE");
    for (const port of ports) expect(e.message.split(`127.0.0.1:${port}`).length - 1).toBe(2); // in the list, and before its reason
    expect(e.message).not.toContain("cannot reach master ");
  });
});
