import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { encodeMessage } from "../../src/index/codec.ts";
import { authMac, newNonce } from "../../src/index/auth.ts";
import { connectToMaster, listFromMaster } from "../../src/index/index-client.ts";
import { MasterServer } from "../../src/index/master-server.ts";
import { MsgType, Role } from "../../src/index/messages.ts";
import { mutate, Rng } from "../support/random.ts";

const SHA = "c".repeat(64);

async function eventually(check: () => boolean, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(20);
  }
}

/** Raw TCP, for sending what a real peer never would. */
function raw(port: number): Promise<{ sock: Socket; received: () => Buffer; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = connect(port, "127.0.0.1");
    const closed = new Promise<void>((r) => sock.on("close", () => r()));
    sock.on("data", (d) => chunks.push(d as Buffer));
    sock.on("error", () => {});
    sock.on("connect", () => resolve({ sock, received: () => Buffer.concat(chunks), closed }));
    sock.on("error", reject);
  });
}

async function registerServer(port: number, files: { name: string; size: number; sha256: string }[], token?: string) {
  const session = await connectToMaster({ host: "127.0.0.1", port }, { role: Role.FileServer, token, timeoutMs: 3000 });
  const refusals: string[] = [];
  session.onMessage = (m) => {
    if (m.type === MsgType.FileRejected) refusals.push(`${m.name}: ${m.reason}`);
  };
  session.send({ type: MsgType.Announce, host: "127.0.0.1", port: 4000 + session.welcome.peerId });
  session.send({ type: MsgType.FilesAdd, files });
  return { session, refusals };
}

describe("master (in process)", () => {
  let master: MasterServer;
  beforeAll(() => {
    master = MasterServer.start({ host: "127.0.0.1", port: 0, heartbeatTimeoutMs: 6000, handshakeTimeoutMs: 800, clientIdleTimeoutMs: 800, maxConnections: 64 });
  });
  afterAll(() => master.stop());

  test("a registered server's files are listed, and leave at once when its connection closes", async () => {
    const { session } = await registerServer(master.port, [{ name: "one.txt", size: 3, sha256: SHA }]);
    await Bun.sleep(50);
    const listed = await listFromMaster({ host: "127.0.0.1", port: master.port }, "one", undefined);
    expect(listed).toEqual([{ name: "one.txt", size: 3, sha256: SHA, servers: [`127.0.0.1:${4000 + session.welcome.peerId}`] }]);
    session.close();
    await Bun.sleep(100);
    expect(await listFromMaster({ host: "127.0.0.1", port: master.port }, "one", undefined)).toEqual([]);
  });

  test("the master tells file servers to beat three times per timeout", async () => {
    const { session } = await registerServer(master.port, []);
    expect(session.welcome.heartbeatTimeoutMs).toBe(6000);
    expect(session.welcome.heartbeatIntervalMs).toBe(2000);
    session.close();
  });

  test("names with .., a leading /, NUL or control characters are refused with a reason", async () => {
    const { session, refusals } = await registerServer(master.port, [
      { name: "../up", size: 1, sha256: SHA },
      { name: "/abs", size: 1, sha256: SHA },
      { name: "nul\u0000", size: 1, sha256: SHA },
      { name: "bell\u0007", size: 1, sha256: SHA },
      { name: "good", size: 1, sha256: SHA },
    ]);
    await Bun.sleep(100);
    expect(refusals).toEqual(["../up: '..' segment in name", "/abs: absolute name", "nul\u0000: control character in name", "bell\u0007: control character in name"]);
    const names = (await listFromMaster({ host: "127.0.0.1", port: master.port }, "", undefined)).map((e) => e.name);
    expect(names).toContain("good");
    expect(names.some((n) => n.includes("up") || n.includes("abs"))).toBe(false);
    session.close();
  });

  test("a file server announcing a million files gets the excess refused with a reason; the master stays responsive", async () => {
    const session = await connectToMaster({ host: "127.0.0.1", port: master.port }, { role: Role.FileServer, timeoutMs: 3000 });
    const refusals: string[] = [];
    session.onMessage = (m) => {
      if (m.type === MsgType.FileRejected) refusals.push(m.reason);
    };
    session.send({ type: MsgType.Announce, host: "127.0.0.1", port: 9 });
    const batch = 10_000;
    for (let start = 0; start < 1_000_000; start += batch) {
      session.send({ type: MsgType.FilesAdd, files: Array.from({ length: batch }, (_, i) => ({ name: `million/${start + i}`, size: 1, sha256: SHA })) });
      while (session.pendingBytes > 0) await Bun.sleep(1);
    }
    await eventually(() => refusals.length > 0, 10_000);
    expect(refusals[0]).toBe("more than 200000 files from one server");
    const t0 = performance.now();
    const listed = await listFromMaster({ host: "127.0.0.1", port: master.port }, "million/", undefined, 20_000);
    expect(listed.length).toBe(200_000);
    expect(performance.now() - t0).toBeLessThan(10_000);
    session.close();
    await Bun.sleep(100);
    expect(await listFromMaster({ host: "127.0.0.1", port: master.port }, "million/", undefined)).toEqual([]);
  }, 60_000);

  test("a client that dribbles its handshake is cut off; one that sends nothing too", async () => {
    const slow = await raw(master.port);
    const hello = encodeMessage({ type: MsgType.Hello, version: 1, role: Role.Client, nonce: newNonce() });
    slow.sock.write(hello.subarray(0, 1));
    const silent = await raw(master.port);
    const started = performance.now();
    await Promise.all([slow.closed, silent.closed]);
    expect(performance.now() - started).toBeLessThan(3000);
  });

  test("an oversized frame and garbage get a protocol error and a close", async () => {
    const big = await raw(master.port);
    big.sock.write(Uint8Array.of(0x7f, 0xff, 0xff, 0xff, 1, 2, 3));
    await big.closed;
    expect(big.received().toString()).toContain("exceeds");
    const junk = await raw(master.port);
    junk.sock.write("GET / HTTP/1.1\r\n\r\n");
    await junk.closed;
  });

  test("a wrong version is refused with a message saying so", async () => {
    const c = await raw(master.port);
    c.sock.write(encodeMessage({ type: MsgType.Hello, version: 99, role: Role.Client, nonce: newNonce() }));
    await c.closed;
    expect(c.received().toString()).toContain("unsupported protocol version 99");
  });

  test("a flood of connections beyond the cap is refused while a well-behaved client still lists", async () => {
    const flood = await Promise.all(Array.from({ length: 80 }, () => raw(master.port)));
    await Bun.sleep(100);
    expect(master.connectionCount).toBeLessThanOrEqual(64);
    const refused = flood.filter((f) => f.received().toString().includes("too many connections"));
    expect(refused.length).toBeGreaterThan(0);
    for (const f of flood) f.sock.destroy();
    await Bun.sleep(100);
    await listFromMaster({ host: "127.0.0.1", port: master.port }, "", undefined);
  });

  test("fuzz: 10,000 random and mutated frames at a live master; a good client keeps getting the right list", async () => {
    const { session } = await registerServer(master.port, [{ name: "steady.bin", size: 10, sha256: SHA }]);
    const rng = new Rng(Number(process.env.FUZZ_SEED ?? 99));
    const validStreams = [
      encodeMessage({ type: MsgType.Hello, version: 1, role: Role.Client, nonce: newNonce() }),
      encodeMessage({ type: MsgType.Hello, version: 1, role: Role.FileServer, nonce: newNonce() }),
      encodeMessage({ type: MsgType.Auth, mac: new Uint8Array(32) }),
      encodeMessage({ type: MsgType.Announce, host: "1.2.3.4", port: 5 }),
      encodeMessage({ type: MsgType.FilesAdd, files: [{ name: "x/y", size: 1, sha256: SHA }] }),
      encodeMessage({ type: MsgType.List, requestId: 1, pattern: "*" }),
    ];
    let frames = 0;
    const batches = 50;
    for (let b = 0; b < batches; b++) {
      const conns = await Promise.all(Array.from({ length: 4 }, () => raw(master.port)));
      for (const c of conns) {
        for (let i = 0; i < 50; i++) {
          const input = rng.chance(0.3) ? rng.bytes(rng.int(80)) : mutate(rng, rng.pick(validStreams));
          c.sock.write(input);
          frames++;
        }
      }
      const listed = await listFromMaster({ host: "127.0.0.1", port: master.port }, "steady", undefined);
      expect(listed.map((e) => e.name)).toEqual(["steady.bin"]);
      for (const c of conns) c.sock.destroy();
    }
    expect(frames).toBe(10_000);
    session.close();
  });
});

describe("master with a token", () => {
  let master: MasterServer;
  beforeAll(() => {
    master = MasterServer.start({ host: "127.0.0.1", port: 0, heartbeatTimeoutMs: 6000, token: "s3cret" });
  });
  afterAll(() => master.stop());

  test("the right token is admitted; a wrong or missing one fails authentication, and others carry on", async () => {
    const target = { host: "127.0.0.1", port: master.port };
    expect(await listFromMaster(target, "", "s3cret")).toEqual([]);
    await expect(listFromMaster(target, "", "wrong")).rejects.toMatchObject({ code: "E_AUTH", message: expect.stringContaining("authentication failed") });
    await expect(listFromMaster(target, "", undefined)).rejects.toMatchObject({ code: "E_AUTH" });
    await expect(registerServer(master.port, [], "nope")).rejects.toMatchObject({ code: "E_AUTH" });
    expect(await listFromMaster(target, "", "s3cret")).toEqual([]);
  });

  test("the token never crosses the wire, and a MAC is bound to its nonces", () => {
    const c = newNonce();
    const s = newNonce();
    const mac = authMac("s3cret", Role.Client, c, s);
    expect(Buffer.from(mac).includes(Buffer.from("s3cret"))).toBe(false);
    expect(Buffer.from(authMac("s3cret", Role.Client, c, newNonce())).equals(Buffer.from(mac))).toBe(false);
    expect(Buffer.from(authMac("s3cret", Role.FileServer, c, s)).equals(Buffer.from(mac))).toBe(false);
  });
});
