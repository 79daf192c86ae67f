import { afterAll, expect, test } from "bun:test";
import { connect as tcpConnect } from "node:net";
import { encodeMessage } from "../../src/index/core/codec.ts";
import { MsgType, Role } from "../../src/index/core/messages.ts";
import { MasterServer } from "../../src/index/master-server.ts";
import { RawIndexHandshake } from "../support/index-handshake.ts";

// Unencrypted frames after the handshake (--insecure-plaintext): these tests are about the master's
// output backlog, and 1.5 M sealed PINGs would cost the test ~10 s of AES alone.
const master = MasterServer.start({ host: "127.0.0.1", port: 0, heartbeatTimeoutMs: 6000, outputStallMs: 3000, allowPlaintext: true });

/** HELLO, wait for CHALLENGE, AUTH: a client in plaintext mode, ready to send frames in clear. */
async function handshake(sock: import("node:net").Socket, hs: RawIndexHandshake, received?: () => Uint8Array): Promise<void> {
  sock.write(hs.hello());
  for (let i = 0; i < 400; i++) {
    const challenge = (received ? hs.read(received()) : hs.messages.concat(hs.seenChallenge ?? [])).find((m) => m.type === MsgType.Challenge);
    if (challenge && challenge.type === MsgType.Challenge) {
      sock.write(hs.auth(challenge));
      return;
    }
    await Bun.sleep(5);
  }
  throw new Error("no CHALLENGE");
}
afterAll(() => master.stop());

test("a peer that stops reading is not read either; once it reads again it is served again, not dropped", async () => {
  const sock = tcpConnect({ host: "127.0.0.1", port: master.port });
  await new Promise<void>((r) => sock.once("connect", () => r()));
  const hs = new RawIndexHandshake(Role.Client, undefined, true);
  let pongs = 0;
  let welcomed = false;
  let closed = false;
  sock.on("data", (chunk: Uint8Array) => {
    for (const m of hs.feed(chunk)) {
      if (m.type === MsgType.Pong) pongs++;
      else if (m.type === MsgType.Welcome) welcomed = true;
    }
    hs.messages.length = 0; // counted: keep memory flat
  });
  sock.on("close", () => (closed = true));
  await handshake(sock, hs);
  for (let i = 0; i < 200 && !welcomed; i++) await Bun.sleep(5);
  expect(welcomed).toBe(true);
  sock.pause();
  // 1.5 M PINGs (13.5 MB): their PONGs overflow the kernel's buffers and pile up at the master.
  const PINGS = 1_500_000;
  const ping = encodeMessage({ type: MsgType.Ping, seq: 7 });
  const batch = new Uint8Array(ping.byteLength * 10_000);
  for (let i = 0; i < 10_000; i++) batch.set(ping, i * ping.byteLength);
  // Written without waiting for drain: the master stops reading us while we do not read it.
  for (let i = 0; i < PINGS / 10_000; i++) sock.write(batch);
  await Bun.sleep(1000);
  const heldAt = pongs;
  expect(heldAt).toBe(0);
  sock.resume();
  for (const end = performance.now() + 15_000; performance.now() < end && pongs < PINGS && !closed; ) await Bun.sleep(20);
  expect(closed).toBe(false);
  expect(pongs).toBe(PINGS);
  sock.destroy();
}, 30_000);

test("a peer that never reads its answers is dropped once its backlog has stayed over the hold mark for outputStallMs", async () => {
  const sock = tcpConnect({ host: "127.0.0.1", port: master.port });
  await new Promise<void>((r) => sock.once("connect", () => r()));
  let closed = false;
  sock.on("close", () => (closed = true));
  sock.on("error", () => {});
  const hs = new RawIndexHandshake(Role.Client, undefined, true);
  const chunks: Buffer[] = [];
  sock.on("data", (d) => chunks.push(d as Buffer));
  await handshake(sock, hs, () => Buffer.concat(chunks));
  sock.pause();
  const ping = encodeMessage({ type: MsgType.Ping, seq: 7 });
  const batch = new Uint8Array(ping.byteLength * 10_000);
  for (let i = 0; i < 10_000; i++) batch.set(ping, i * ping.byteLength);
  for (let i = 0; i < 150; i++) sock.write(batch);
  const t0 = performance.now();
  for (const end = t0 + 10_000; performance.now() < end && !closed; ) await Bun.sleep(50);
  expect(closed).toBe(true);
  expect(performance.now() - t0).toBeLessThan(3000 + 3000);
  expect(master.connectionCount).toBe(0);
}, 20_000);
