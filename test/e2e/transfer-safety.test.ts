import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connectToMaster } from "../../src/index/index-client.ts";
import { MsgType, Role } from "../../src/index/core/messages.ts";
import { ACK_BYTES, DATAGRAM_OVERHEAD_BYTES, decodeError, decodeProbeAck, encodeProbe, HEADER_BYTES, MIN_PROBE_BYTES, PacketType, readHeader, RETRY_BYTES, TransferErrorCode, type Greeting } from "../../src/transfer/core/wire.ts";
import { KxKind } from "../../src/transfer/core/session-keys.ts";
import { rawRequest } from "../support/raw-request.ts";
import { testCrypto } from "../support/transfer-crypto.ts";
import { VALIDATED_REQUEST_CREDIT_BYTES } from "../../src/transfer/core/server-endpoint.ts";
import { mutate, Rng } from "../support/random.ts";
import { eventually, lsJson, runFtx, sha256Hex, startMaster, startServer, startServerBehindRelay, stopAll, tempDir } from "../support/ftx-process.ts";

afterAll(stopAll);

/** A raw UDP client for sending what ftx fetch never would. */
async function rawClient() {
  const received: Uint8Array[] = [];
  const socket = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, binaryType: "uint8array", socket: { data: (_s, d) => void received.push(d.slice()) } });
  return { socket, received, bytes: () => received.reduce((n, d) => n + d.byteLength, 0) };
}

/** A REQUEST (sealed with `greeting`, bare without) from the raw client. */
function request(name: string, sha256: string, sessionId = 0x1234, offset = 0, greeting?: Greeting, crypto = testCrypto({ seed: sessionId })) {
  return rawRequest(sessionId, { offset, length: 0, segmentBytes: 16384, windowSegments: 64, sha256: Buffer.from(sha256, "hex"), name }, greeting, crypto).bytes;
}

/** The server's greeting (address token and key share) for the raw client, as ftx fetch gets it: from the answer to a small PROBE. */
async function addressToken(c: Awaited<ReturnType<typeof rawClient>>, udpPort: number): Promise<Greeting> {
  c.socket.send(encodeProbe(0x77, MIN_PROBE_BYTES, 0), udpPort, "127.0.0.1");
  await eventually(() => c.received.length > 0, 2000, "PROBE_ACK");
  return decodeProbeAck(c.received.shift()!).greeting;
}

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(status.match(/VmRSS:\s+(\d+)/)![1]);
}

describe("file server safety", () => {
  test("anti-amplification: a request without an address token gets only a RETRY no larger than it; with one, an address that never acks gets at most 3 × 1200 bytes", async () => {
    const share = tempDir();
    try {
      writeFileSync(join(share.path, "big.bin"), Buffer.alloc(8 << 20, 1));
      const sha = sha256Hex(readFileSync(join(share.path, "big.bin")));
      const { address } = await startMaster();
      const { udpPort } = await startServer(share.path, address);
      await eventually(async () => (await lsJson(address)).length === 1, 5000, "listed");
      const c = await rawClient();
      const bare = request("big.bin", sha);
      c.socket.send(bare, udpPort, "127.0.0.1");
      await eventually(() => c.received.length > 0, 2000, "RETRY");
      await Bun.sleep(200);
      expect(c.received.map((d) => readHeader(d).type)).toEqual([PacketType.Retry]);
      expect(RETRY_BYTES).toBeLessThan(bare.byteLength);
      c.received.length = 0;
      const token = await addressToken(c, udpPort);
      const req = request("big.bin", sha, 0x1234, 0, token);
      c.socket.send(req, udpPort, "127.0.0.1");
      await Bun.sleep(2500);
      expect(c.received.length).toBeGreaterThan(0); // it did answer (ACCEPT)
      expect(readHeader(c.received[0]!).type).toBe(PacketType.Accept);
      expect(c.bytes()).toBeLessThanOrEqual(3 * Math.max(req.byteLength, VALIDATED_REQUEST_CREDIT_BYTES));
      c.socket.close();
    } finally {
      share.cleanup();
    }
  });

  test("a session whose first ACKs are all lost does not deadlock at the anti-amplification limit", async () => {
    const share = tempDir();
    const out = tempDir();
    try {
      const content = Buffer.from(new Rng(31).bytes(4 << 20));
      writeFileSync(join(share.path, "f.bin"), content);
      const { address } = await startMaster();
      const { relay, advertised } = await startServerBehindRelay(share.path, address);
      await eventually(async () => (await lsJson(address))[0]?.servers[0] === advertised, 5000, "listed via relay");
      // Lose the first four ACKs (ACK_BYTES each): the server, unvalidated, may send only ~3× the
      // REQUEST, and the client has everything it was sent. Only the client's ACK probe unblocks it.
      let acksDropped = 0;
      relay.dropToServer = (d) => d.byteLength === ACK_BYTES + DATAGRAM_OVERHEAD_BYTES && acksDropped++ < 4;
      const t0 = performance.now();
      const r = await runFtx(["fetch", address, "f.bin", "-o", out.path, "--segment-size", "1024"]);
      expect(r.exitCode).toBe(0);
      expect(acksDropped).toBeGreaterThanOrEqual(4);
      expect(performance.now() - t0).toBeLessThan(5000); // not the 10 s idle timeout
      expect(sha256Hex(readFileSync(join(out.path, "f.bin")))).toBe(sha256Hex(content));
      relay.close();
    } finally {
      share.cleanup();
      out.cleanup();
    }
  });

  test("requests for a changed or unknown file, with a wrong token or none, get typed errors that name no file", async () => {
    const share = tempDir();
    try {
      writeFileSync(join(share.path, "f.txt"), "content");
      const sha = sha256Hex("content");
      const { address } = await startMaster(["--token", "t0k"]);
      const { udpPort } = await startServer(share.path, address, ["--token", "t0k"]);
      await eventually(async () => (await lsJson(address, undefined, { FTX_TOKEN: "t0k" })).length === 1, 5000, "listed");
      const c = await rawClient();
      const greeting = await addressToken(c, udpPort);
      expect(greeting.kx).toBe(KxKind.CPace);
      // CPace with a wrong token: the key confirmation fails. X25519 against a server with a token: refused as such.
      c.socket.send(request("f.txt", sha, 1, 0, greeting, testCrypto({ token: "wrong", seed: 1 })), udpPort, "127.0.0.1");
      c.socket.send(request("f.txt", sha, 2, 0, greeting, testCrypto({ seed: 2 })), udpPort, "127.0.0.1");
      await eventually(() => c.received.length === 2, 2000, "answers");
      const bySession = new Map(c.received.map((d) => [readHeader(d).sessionId, decodeError(d)]));
      expect(bySession.get(1)).toEqual({ code: TransferErrorCode.Forbidden, text: "authentication failed: wrong or missing token" });
      expect(bySession.get(2)).toEqual({ code: TransferErrorCode.Forbidden, text: "authentication failed: this file server needs a token (--token)" });
      c.socket.close();
      const wrong = await runFtx(["fetch", address, "f.txt", "-o", join(share.path, "out"), "--token", "nope"]);
      expect(wrong.exitCode).toBe(1);
      expect(wrong.stderr).toContain("authentication failed");
    } finally {
      share.cleanup();
    }
    const open = tempDir();
    try {
      writeFileSync(join(open.path, "f.txt"), "content");
      const { address } = await startMaster();
      const { udpPort } = await startServer(open.path, address);
      await eventually(async () => (await lsJson(address)).length === 1, 5000, "listed");
      const c = await rawClient();
      const token = await addressToken(c, udpPort);
      c.socket.send(request("f.txt", sha256Hex("other content"), 2, 0, token), udpPort, "127.0.0.1");
      c.socket.send(request("nope.txt", sha256Hex("x"), 3, 0, token), udpPort, "127.0.0.1");
      await eventually(() => c.received.length === 2, 2000, "two answers");
      const errors = c.received.map((d) => decodeError(d)).sort((a, b) => a.code - b.code);
      expect(errors).toEqual([
        { code: TransferErrorCode.NotFound, text: "not served here" },
        { code: TransferErrorCode.Changed, text: "has changed since it was listed" },
      ]);
      c.socket.close();
    } finally {
      open.cleanup();
    }
  });

  test("fuzz: 10,000 random and mutated datagrams; the server stays up, memory stays bounded, a fetch alongside is intact", async () => {
    const share = tempDir();
    const out = tempDir();
    try {
      const content = Buffer.from(new Rng(3).bytes(6 << 20));
      writeFileSync(join(share.path, "target.bin"), content);
      const sha = sha256Hex(content);
      const { address } = await startMaster();
      const { server, udpPort } = await startServer(share.path, address);
      await eventually(async () => (await lsJson(address)).length === 1, 5000, "listed");
      const rssBefore = rssKiB(server.pid);
      const rng = new Rng(Number(process.env.FUZZ_SEED ?? 7));
      const fuzzer = await rawClient();
      const greeting = await addressToken(fuzzer, udpPort);
      const seeds = [request("target.bin", sha, 77, 0, greeting), request("../../etc/passwd", sha, 78, 0, greeting), request("target.bin", sha, 79)];
      // Valid ACK/FIN/DATA shapes too, so mutations reach every decoder.
      const ack = new Uint8Array(ACK_BYTES + DATAGRAM_OVERHEAD_BYTES);
      ack.set(seeds[0]!.subarray(0, HEADER_BYTES));
      ack[3] = PacketType.Ack;
      seeds.push(ack);
      const fetching = runFtx(["fetch", address, "target.bin", "-o", out.path], { timeoutMs: 60_000 });
      for (let i = 0; i < 10_000; i++) {
        const d = rng.chance(0.3) ? rng.bytes(rng.int(1500)) : mutate(rng, rng.pick(seeds));
        if (d.byteLength > 0) fuzzer.socket.send(d, udpPort, "127.0.0.1");
        if (i % 200 === 0) await Bun.sleep(1);
      }
      const r = await fetching;
      expect(r.exitCode).toBe(0);
      expect(sha256Hex(readFileSync(join(out.path, "target.bin")))).toBe(sha);
      expect(server.proc.exitCode).toBeNull();
      expect(rssKiB(server.pid) - rssBefore).toBeLessThan(64 * 1024);
      // And it still serves afterwards.
      const again = await runFtx(["fetch", address, "target.bin", "-o", join(out.path, "again")]);
      expect(again.exitCode).toBe(0);
      fuzzer.socket.close();
    } finally {
      share.cleanup();
      out.cleanup();
    }
  }, 90_000);

  test("a file changed on disk mid-transfer is refused as changed, never delivered mixed; the next fetch gets the new content", async () => {
    const share = tempDir();
    const out = tempDir();
    try {
      const v1 = Buffer.from(new Rng(21).bytes(12 << 20));
      const v2 = Buffer.from(new Rng(22).bytes(12 << 20));
      writeFileSync(join(share.path, "moving.bin"), v1);
      const { address } = await startMaster();
      const { relay, advertised } = await startServerBehindRelay(share.path, address, { toClient: { bytesPerSecond: 6e6 } });
      await eventually(async () => (await lsJson(address))[0]?.servers[0] === advertised, 5000, "listed via relay");
      const fetching = runFtx(["fetch", address, "moving.bin", "-o", out.path, "--retry-for", "2"], { timeoutMs: 60_000 });
      await eventually(() => relay.counters.bytesToClient > 1 << 20, 10_000, "transfer under way");
      writeFileSync(join(share.path, "moving.bin"), v2); // same inode, new bytes
      const r = await fetching;
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/changed/);
      expect(existsSync(join(out.path, "moving.bin"))).toBe(false);
      await eventually(async () => (await lsJson(address))[0]?.sha256 === sha256Hex(v2), 5000, "new content listed");
      const again = await runFtx(["fetch", address, "moving.bin", "-o", out.path], { timeoutMs: 60_000 });
      expect(again.exitCode).toBe(0);
      expect(sha256Hex(readFileSync(join(out.path, "moving.bin")))).toBe(sha256Hex(v2));
      relay.close();
    } finally {
      share.cleanup();
      out.cleanup();
    }
  }, 90_000);

  test("a listed server whose port is closed is given up on at once (ICMP unreachable), not after timeouts", async () => {
    const out = tempDir();
    try {
      const { address, port } = await startMaster();
      // A file server that registers and then has no UDP socket at all: its port answers ICMP unreachable.
      const closed = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
      const deadPort = closed.port;
      closed.close();
      const session = await connectToMaster({ host: "127.0.0.1", port }, { role: Role.FileServer, timeoutMs: 3000 });
      session.send({ type: MsgType.Announce, host: "127.0.0.1", port: deadPort });
      session.send({ type: MsgType.FilesAdd, files: [{ name: "ghost.bin", size: 10, sha256: sha256Hex("0123456789") }] });
      await eventually(async () => (await lsJson(address)).length === 1, 5000, "ghost listed");
      const t0 = performance.now();
      // --retry-for 1: with no other holder, it asks the index again for a second, then gives up.
      const r = await runFtx(["fetch", address, "ghost.bin", "-o", out.path, "--retry-for", "1"]);
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`file server 127.0.0.1:${deadPort} is gone (ECONNREFUSED)`);
      session.close();
    } finally {
      out.cleanup();
    }
  });

  test("failover: when the serving file server dies mid-transfer, the fetch carries on from another", async () => {
    const a = tempDir();
    const b = tempDir();
    const out = tempDir();
    try {
      const content = Buffer.from(new Rng(11).bytes(24 << 20));
      writeFileSync(join(a.path, "shared.bin"), content);
      writeFileSync(join(b.path, "shared.bin"), content);
      const { address } = await startMaster();
      // Both servers sit behind rate-capped relays so the transfer takes a few seconds.
      const va = await startServerBehindRelay(a.path, address, { toClient: { bytesPerSecond: 8e6 } });
      const vb = await startServerBehindRelay(b.path, address, { toClient: { bytesPerSecond: 8e6 } });
      const [ra, rb] = [va.relay, vb.relay];
      await eventually(async () => (await lsJson(address))[0]?.servers.length === 2, 5000, "both listed");
      const fetching = runFtx(["fetch", address, "shared.bin", "-o", out.path, "--json", "--idle-timeout", "2", "--verbose"], { timeoutMs: 90_000 });
      // Kill whichever server is sending once the transfer is under way (2 MiB of 24: mid-range whatever the segment size).
      await eventually(() => ra.counters.bytesToClient + rb.counters.bytesToClient > 2 << 20, 10_000, "transfer started");
      const victim = ra.counters.toClient > rb.counters.toClient ? va : vb;
      await victim.server.stop("SIGKILL");
      const r = await fetching;
      expect(r.exitCode).toBe(0);
      expect(sha256Hex(readFileSync(join(out.path, "shared.bin")))).toBe(sha256Hex(content));
      // Either its session fails (a warning) or, first, the other server takes its range over when it
      // finishes its own and finds the dead one's rate fallen to nothing (said at --verbose).
      expect(r.stderr).toMatch(/carrying on with the other servers|is far slower; the rest of its range goes to|made no progress; the rest of its range goes to/);
      ra.close();
      rb.close();
    } finally {
      a.cleanup();
      b.cleanup();
      out.cleanup();
    }
  }, 120_000);
});

describe("names at the limits", () => {
  test("a 246-byte last segment in a 1024-byte name is listed and fetched intact; longer ones are not advertised", async () => {
    const share = tempDir();
    const out = tempDir();
    try {
      const dirs = ["d".repeat(246), "e".repeat(246), "f".repeat(246)].join("/"); // 740 bytes
      const longest = `${dirs}/${"g".repeat(1024 - 741 - 37)}/${"s".repeat(36)}`; // 1024 bytes in all
      const lastSegment = `top/${"é".repeat(123)}`; // a 246-byte segment, in two-byte letters
      const tooLongSegment = `top/${"x".repeat(247)}`;
      const tooLongName = `${dirs}/${"h".repeat(246)}/${"i".repeat(39)}`; // 1027 bytes
      expect([Buffer.byteLength(longest), Buffer.byteLength(lastSegment.split("/")[1]!), Buffer.byteLength(tooLongName)]).toEqual([1024, 246, 1027]);
      for (const [name, content] of [[longest, "longest"], [lastSegment, "last segment"], [tooLongSegment, "x"], [tooLongName, "y"]] as const) {
        mkdirSync(join(share.path, name, ".."), { recursive: true });
        writeFileSync(join(share.path, name), content);
      }
      const { address } = await startMaster();
      const { server } = await startServer(share.path, address);
      await eventually(async () => (await lsJson(address)).length === 2, 5000, "two files listed");
      expect((await lsJson(address)).map((f) => f.name).sort()).toEqual([longest, lastSegment].sort());
      expect(server.stderr).toContain("path segment of 247 bytes, longer than 246");
      expect(server.stderr).toContain("name of 1027 bytes, longer than 1024");

      const r = await runFtx(["fetch", address, longest, lastSegment, "-o", out.path, "--json"]);
      expect(r.exitCode).toBe(0);
      expect(JSON.parse(r.stdout).map((f: { ok: boolean }) => f.ok)).toEqual([true, true]);
      expect(readFileSync(join(out.path, longest), "utf8")).toBe("longest");
      expect(readFileSync(join(out.path, lastSegment), "utf8")).toBe("last segment");

      // Asked for anyway: refused before any traffic, with the reason.
      const refused = await runFtx(["fetch", address, tooLongSegment, "-o", out.path]);
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toContain("is not a safe name (path segment of 247 bytes, longer than 246");
    } finally {
      share.cleanup();
      out.cleanup();
    }
  }, 30_000);
});
