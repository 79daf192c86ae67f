import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PieceHasher, piecesRootOf } from "../../src/files/core/pieces.ts";
import { connectToMaster } from "../../src/index/index-client.ts";
import { MsgType, Role } from "../../src/index/core/messages.ts";
import { HEADER_AT, MIN_REQUEST_BYTES, PacketType, readHeader, REQUEST_AT, seal } from "../../src/transfer/core/wire.ts";
import { Rng } from "../support/random.ts";
import { eventually, lsJson, runFtx, sha256Hex, startMaster, startServer, startServerBehindRelay, stopAll, tempDir } from "../support/ftx-process.ts";

afterAll(stopAll);

/**
 * Hostile peers on the file server's UDP port and the client's (issue #16), bounded and on loopback:
 * other 127.0.0.x addresses stand for forged sources (they never answer what they are sent).
 */

/** `size` bytes of random-looking content, quick to make: one random MiB repeated with the block number in it. */
function content(size: number, seed: number): Buffer {
  const block = Buffer.from(new Rng(seed).bytes(1 << 20));
  const out = Buffer.alloc(size);
  for (let at = 0, i = 0; at < size; at += block.byteLength, i++) {
    block.writeUInt32BE(i, 0);
    block.copy(out, at, 0, Math.min(block.byteLength, size - at));
  }
  return out;
}

async function udpAt(host: string) {
  const received = { datagrams: 0, bytes: 0, types: new Map<number, number>() };
  const socket = await Bun.udpSocket({
    hostname: host,
    port: 0,
    binaryType: "uint8array",
    socket: {
      data(_s, d) {
        received.datagrams++;
        received.bytes += d.byteLength;
        const type = d[3]!;
        received.types.set(type, (received.types.get(type) ?? 0) + 1);
      },
    },
  });
  return { socket, received };
}

describe("file server UDP under attack", () => {
  test("forged and replayed REQUESTs from 10 addresses at 800/s beside a legit 64 MiB fetch with --token: the fetch completes, the forgers get only small RETRYs", async () => {
    const share = tempDir();
    const out = tempDir();
    const TOKEN = "t0k3n";
    try {
      const data = content(64 << 20, 16);
      writeFileSync(join(share.path, "big.bin"), data);
      writeFileSync(join(share.path, "small.bin"), "sniff me");
      const { address } = await startMaster(["--token", TOKEN]);
      const { udpPort, relay } = await startServerBehindRelay(share.path, address, {}, ["--token", TOKEN]);
      const env = { FTX_TOKEN: TOKEN };
      await eventually(async () => (await lsJson(address, undefined, env)).length === 2, 15_000, "listed");

      // A REQUEST sniffed on the wire (sealed: it carries the client's address token and key share).
      let sniffed: Uint8Array | undefined;
      relay.dropToServer = (d) => {
        try {
          const h = readHeader(d);
          if (h.type === PacketType.Request && d.byteLength > MIN_REQUEST_BYTES) sniffed ??= d.slice();
        } catch {}
        return false;
      };
      expect((await runFtx(["fetch", address, "small.bin", "-o", out.path], { env })).exitCode).toBe(0);
      relay.dropToServer = undefined;
      expect(sniffed).toBeDefined();
      /** The sniffed REQUEST under another session id, with a guessed key share and confirmation. */
      const forge = (rng: Rng): Uint8Array => {
        const d = sniffed!.slice();
        const view = new DataView(d.buffer);
        view.setUint32(HEADER_AT.sessionId, rng.int(2 ** 32));
        d.set(rng.bytes(REQUEST_AT.body - REQUEST_AT.share), REQUEST_AT.share);
        seal(d, view, d.byteLength);
        return d;
      };

      // The flood: 10 "forged" sources, 800 REQUESTs a second in all, straight at the server's port.
      const flooders = await Promise.all(Array.from({ length: 10 }, (_, i) => udpAt(`127.0.0.${i + 2}`)));
      let sent = 0;
      let sentBytes = 0;
      let flooding = true;
      const rng = new Rng(5);
      const flood = (async () => {
        const started = performance.now();
        while (flooding) {
          const due = Math.floor(((performance.now() - started) / 1000) * 800);
          for (; sent < due; sent++) {
            const d =
              sent % 2 === 0
                ? sniffed! // replayed as is
                : forge(rng); // forged: another session, a key share and confirmation guessed
            flooders[sent % 10]!.socket.send(d, udpPort, "127.0.0.1");
            sentBytes += d.byteLength;
          }
          await Bun.sleep(5);
        }
      })();
      await Bun.sleep(500);
      const t0 = performance.now();
      const r = await runFtx(["fetch", address, "big.bin", "-o", out.path, "--json"], { env, timeoutMs: 60_000 });
      const fetchSeconds = (performance.now() - t0) / 1000;
      flooding = false;
      await flood;
      await Bun.sleep(200);
      expect(r.exitCode).toBe(0);
      expect(sha256Hex(readFileSync(join(out.path, "big.bin")))).toBe(sha256Hex(data));
      const answers = flooders.reduce((n, f) => n + f.received.datagrams, 0);
      const answerBytes = flooders.reduce((n, f) => n + f.received.bytes, 0);
      const types = new Set(flooders.flatMap((f) => [...f.received.types.keys()]));
      console.log(`flood: ${sent} REQUESTs (${sentBytes} bytes) from 10 addresses; answers ${answers} (${answerBytes} bytes), types ${[...types]}; legit 64 MiB fetch ${fetchSeconds.toFixed(2)} s`);
      expect(sent).toBeGreaterThan(400);
      expect([...types]).toEqual([PacketType.Retry]); // never an ACCEPT, DATA or ERROR: no session, no check
      expect(answerBytes).toBeLessThan(sentBytes);
      for (const f of flooders) f.socket.close();
    } finally {
      share.cleanup();
      out.cleanup();
    }
  }, 60_000);
});

describe("the client against an advertised address that never answers", () => {
  test("it sends there only a few small datagrams, gives up within 3 s, and the fetch completes from the real server", async () => {
    const share = tempDir();
    const out = tempDir();
    try {
      const data = content(8 << 20, 17);
      writeFileSync(join(share.path, "f.bin"), data);
      const { address, port } = await startMaster();
      await startServer(share.path, address);
      await eventually(async () => (await lsJson(address)).length === 1, 10_000, "listed");
      // A 111-byte-class registration: someone else's address (a socket that counts and never answers) for the same content.
      const victim = await udpAt("127.0.0.1");
      const hasher = new PieceHasher(data.byteLength);
      hasher.update(data);
      const session = await connectToMaster({ host: "127.0.0.1", port }, { role: Role.FileServer, timeoutMs: 3000 });
      session.send({ type: MsgType.Announce, host: "127.0.0.1", port: victim.socket.port });
      session.send({ type: MsgType.FilesAdd, files: [{ name: "f.bin", size: data.byteLength, sha256: sha256Hex(data), piecesRoot: piecesRootOf(hasher.pieceHashes) }] });
      await eventually(async () => (await lsJson(address))[0]?.servers.length === 2, 5000, "both listed");
      const t0 = performance.now();
      const r = await runFtx(["fetch", address, "f.bin", "-o", out.path, "--json"], { timeoutMs: 30_000 });
      const seconds = (performance.now() - t0) / 1000;
      await Bun.sleep(300);
      console.log(`unanswering advertised address: received ${victim.received.datagrams} datagrams, ${victim.received.bytes} bytes; fetch ${seconds.toFixed(2)} s`);
      expect(r.exitCode).toBe(0);
      expect(sha256Hex(readFileSync(join(out.path, "f.bin")))).toBe(sha256Hex(data));
      expect(victim.received.bytes).toBeLessThan(4096); // v2: ~500 KB of probes and padded REQUESTs
      expect(seconds).toBeLessThan(10);
      session.close();
      victim.socket.close();
    } finally {
      share.cleanup();
      out.cleanup();
    }
  }, 40_000);
});
