/**
 * Hostile peers against the index (issue #16), scaled down and bounded: each attack runs beside legit
 * traffic (a real file server with a 2 s heartbeat timeout, a legit client listing) and asserts a bound —
 * master RSS, a legit `ls` answering within 1 s, no file server evicted, clients exiting within their
 * deadline with bounded memory, control characters escaped on the terminal.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect as tcpConnect, type Socket as NetSocket } from "node:net";
import type { TCPSocketListener } from "bun";
import { listFromMaster } from "../../src/index/index-client.ts";
import { encodeMessage, FrameDecoder } from "../../src/index/core/codec.ts";
import { MsgType, Role, type FileRecord, type IndexMessage, type ListEntry } from "../../src/index/core/messages.ts";
import { ServerHandshake } from "../../src/index/core/handshake.ts";
import { newNonce } from "../../src/index/nonce.ts";
import { aes256gcm } from "../../src/crypto/aes-gcm.ts";
import { x25519 } from "../../src/crypto/x25519.ts";
import { randomBytes } from "../../src/util/random.ts";
import { RawIndexHandshake } from "../support/index-handshake.ts";
import { CLI, ftxEnv, REPO, runFtx, startMaster, startServer, stopAll, tempDir, type FtxProcess } from "../support/ftx-process.ts";

const TOKEN = "hostile-suite-token";
const SHA = "ab".repeat(32);

/** A peer speaking the index protocol by hand (its handshake, then sealed frames), to misbehave at will. */
class RawPeer {
  readonly sock: NetSocket;
  readonly messages: IndexMessage[] = [];
  private hs: RawIndexHandshake | undefined;
  private pending: Uint8Array[] = [];
  closed = false;
  private readonly opened: Promise<void>;

  constructor(port: number) {
    this.sock = tcpConnect({ host: "127.0.0.1", port });
    this.opened = new Promise((resolve) => this.sock.once("connect", () => resolve()));
    this.sock.on("data", (chunk: Uint8Array) => {
      if (!this.hs) return void this.pending.push(chunk);
      try {
        for (const m of this.hs.feed(chunk)) this.messages.push(m);
      } catch {}
    });
    this.sock.on("error", () => {});
    this.sock.on("close", () => (this.closed = true));
  }

  ready(): Promise<void> {
    return this.opened;
  }

  send(msg: IndexMessage): boolean {
    const frame = encodeMessage(msg);
    return this.sock.write(this.hs ? this.hs.seal(frame) : frame);
  }

  async waitFor(pred: (m: IndexMessage) => boolean, timeoutMs = 5000): Promise<IndexMessage> {
    for (const end = performance.now() + timeoutMs; performance.now() < end; await Bun.sleep(5)) {
      const m = this.messages.find(pred);
      if (m) return m;
      if (this.closed) break;
    }
    throw new Error(`expected message not received (closed: ${this.closed})`);
  }

  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    for (const end = performance.now() + timeoutMs; performance.now() < end && !this.closed; await Bun.sleep(5));
    return this.closed;
  }

  /** HELLO, then AUTH with the suite's token (CPace), then WELCOME; what it sends after is sealed. */
  async authenticate(role: Role): Promise<void> {
    await this.ready();
    const hs = new RawIndexHandshake(role, TOKEN);
    this.sock.write(hs.hello());
    this.hs = hs;
    for (const chunk of this.pending.splice(0)) for (const m of hs.feed(chunk)) this.messages.push(m);
    const challenge = (await this.waitFor((m) => m.type === MsgType.Challenge)) as Extract<IndexMessage, { type: MsgType.Challenge }>;
    this.sock.write(hs.auth(challenge));
    for (const m of hs.feed(new Uint8Array(0))) this.messages.push(m);
    await this.waitFor((m) => m.type === MsgType.Welcome);
  }

  destroy(): void {
    this.sock.destroy();
  }
}

function rssMiB(pid: number): number {
  const status = require("node:fs").readFileSync(`/proc/${pid}/status`, "utf8") as string;
  return Number(status.match(/VmRSS:\s+(\d+)/)![1]) / 1024;
}

let master: FtxProcess;
let masterAddress: string;
let masterPort: number;
let legitServerPort: number;
const legitDir = tempDir("ftx-hostile-");
const attackers: RawPeer[] = [];

/** A legit client lists the legit file within 1 s, from the legit server: the service is up for others. */
async function legitListWithinOneSecond(): Promise<number> {
  const t0 = performance.now();
  const entries = await listFromMaster({ host: "127.0.0.1", port: masterPort }, "legit.txt", TOKEN, 4000);
  const ms = performance.now() - t0;
  expect(entries.map((e) => [e.name, e.servers])).toEqual([["legit.txt", [`127.0.0.1:${legitServerPort}`]]]);
  expect(ms).toBeLessThan(1000);
  return ms;
}

/** The legit file server was never evicted (attackers that stop beating may be: that is right). */
function noEviction(): void {
  const remote = master.stderr.match(new RegExp(`file server (\\S+) registered, serving at 127\\.0\\.0\\.1:${legitServerPort}`))![1]!;
  expect(master.stderr).not.toContain(`file server ${remote} silent`);
}

beforeAll(async () => {
  writeFileSync(join(legitDir.path, "legit.txt"), "legit content");
  ({ master, address: masterAddress, port: masterPort } = await startMaster(["--token", TOKEN, "--heartbeat-timeout", "2"]));
  legitServerPort = (await startServer(legitDir.path, masterAddress, ["--token", TOKEN])).udpPort;
  for (const end = performance.now() + 5000; performance.now() < end; await Bun.sleep(50)) {
    if ((await listFromMaster({ host: "127.0.0.1", port: masterPort }, "legit.txt", TOKEN)).length === 1) break;
  }
});

afterAll(async () => {
  for (const a of attackers) a.destroy();
  await stopAll();
  legitDir.cleanup();
});

describe("the master under attack, beside legit traffic", () => {
  test("frames before authentication are tiny: 300 peers announcing 1 MiB − 1 are cut off at once", async () => {
    const before = rssMiB(master.pid);
    const peers = Array.from({ length: 300 }, () => new RawPeer(masterPort));
    await Promise.all(peers.map((p) => p.ready()));
    const junk = new Uint8Array(64 * 1024);
    new DataView(junk.buffer).setUint32(0, (1 << 20) - 1);
    for (const p of peers) p.sock.write(junk);
    const closed = await Promise.all(peers.map((p) => p.waitClosed(5000)));
    expect(closed.every(Boolean)).toBe(true);
    await legitListWithinOneSecond();
    expect(rssMiB(master.pid) - before).toBeLessThan(64);
    noEviction();
  }, 15_000);

  test("a file server's list is budgeted in bytes: ~90 MB of 1 KiB names is cut at 64 MiB, RSS stays bounded", async () => {
    const peer = new RawPeer(masterPort);
    attackers.push(peer);
    await peer.authenticate(Role.FileServer);
    peer.send({ type: MsgType.Announce, host: "127.0.0.1", port: 9 });
    const long = "n".repeat(200) + "/" + "m".repeat(200) + "/" + "o".repeat(200) + "/" + "p".repeat(200) + "/";
    let sent = 0;
    for (let frame = 0; frame < 90; frame++) {
      const files: FileRecord[] = [];
      for (let i = 0; i < 900; i++) files.push({ name: `${long}${String(sent++).padStart(8, "0")}`, size: 1, sha256: SHA });
      if (!peer.send({ type: MsgType.FilesAdd, files })) await new Promise((r) => peer.sock.once("drain", r));
    }
    const rejected = (await peer.waitFor((m) => m.type === MsgType.FileRejected, 20_000)) as Extract<IndexMessage, { type: MsgType.FileRejected }>;
    expect(rejected.reason).toContain("MiB of the index");
    await legitListWithinOneSecond();
    expect(rssMiB(master.pid)).toBeLessThan(512);
    noEviction();
  }, 30_000);

  test("a pathological pattern ([a-z]* × 170) and pipelined LISTs never read: heartbeats and a legit ls carry on", async () => {
    // The index now holds ~60,000 long names (the test above). Four clients each pipeline the costly
    // pattern and 60 full listings, and never read.
    const greedy = Array.from({ length: 4 }, () => new RawPeer(masterPort));
    attackers.push(...greedy);
    for (const g of greedy) {
      await g.authenticate(Role.Client);
      g.sock.pause();
      g.send({ type: MsgType.List, requestId: 0, pattern: "[a-z]*".repeat(170) });
      for (let i = 1; i <= 60; i++) g.send({ type: MsgType.List, requestId: i, pattern: "" });
    }
    let worstMs = 0;
    for (const end = performance.now() + 5000; performance.now() < end; await Bun.sleep(250)) worstMs = Math.max(worstMs, await legitListWithinOneSecond());
    expect(worstMs).toBeLessThan(1000);
    expect(rssMiB(master.pid)).toBeLessThan(512);
    noEviction();
    for (const g of greedy) g.destroy();
  }, 30_000);

  test("1,100 idle sockets from one address, reopened as they close: every legit ls gets in; the log stays short", async () => {
    const logBefore = master.stderr.length;
    // The attacker is a process of its own, as it would be: its event loop is not the legit client's.
    const attacker = Bun.spawn(
      [
        "bun",
        "-e",
        `const net = require("node:net");
         const open = () => { const s = net.connect(${masterPort}, "127.0.0.1"); s.on("error", () => {}); s.on("close", open); };
         for (let i = 0; i < 1100; i++) open();`,
      ],
      { stdin: "ignore", stdout: "ignore", stderr: "ignore" },
    );
    try {
      await Bun.sleep(1000);
      for (let i = 0; i < 8; i++) await legitListWithinOneSecond();
    } finally {
      attacker.kill("SIGKILL");
      await attacker.exited;
    }
    noEviction();
    // One line per kind per 10 s, not one per socket.
    expect(master.stderr.length - logBefore).toBeLessThan(2000);
  }, 20_000);
});

/**
 * A fake master: the real handshake, then whatever `behave` does with each LIST. It lets its clients ask
 * for plaintext (they run with --insecure-plaintext), so `behave` writes frames as they are: these
 * tests are about the client's limits, not the cipher.
 */
function fakeMaster(behave: (sock: import("bun").Socket<{ d: FrameDecoder; hs: ServerHandshake }>, list: Extract<IndexMessage, { type: MsgType.List }>) => void): TCPSocketListener<{ d: FrameDecoder; hs: ServerHandshake }> {
  return Bun.listen<{ d: FrameDecoder; hs: ServerHandshake }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      binaryType: "uint8array",
      open(s) {
        s.data = { d: new FrameDecoder(), hs: new ServerHandshake({ kx: x25519, aead: aes256gcm }, true, newNonce(), randomBytes(64)) };
      },
      data(s, chunk) {
        s.data.d.push(chunk);
        for (let m = s.data.d.next(); m; m = s.data.d.next()) {
          if (m.type === MsgType.Hello) {
            const step = s.data.hs.handleHello(m);
            if (step.ok) s.write(encodeMessage(step.challenge));
          } else if (m.type === MsgType.Auth) {
            if (s.data.hs.handleAuth(m).ok) s.write(encodeMessage({ type: MsgType.Welcome, peerId: 1, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 }));
          } else if (m.type === MsgType.List) behave(s, m);
        }
      },
    },
  });
}

/** Run `ftx ARGS`, sampling its peak RSS (VmHWM) while it runs. */
async function runMeasured(args: string[], timeoutMs: number): Promise<{ exitCode: number; stdout: string; stderr: string; seconds: number; peakMiB: number }> {
  const t0 = performance.now();
  const proc = Bun.spawn(["bun", CLI, ...args], { env: ftxEnv(), cwd: REPO, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  let peakMiB = 0;
  const sampler = setInterval(() => {
    try {
      const status = require("node:fs").readFileSync(`/proc/${proc.pid}/status`, "utf8") as string;
      peakMiB = Math.max(peakMiB, Number(status.match(/VmHWM:\s+(\d+)/)?.[1] ?? 0) / 1024);
    } catch {}
  }, 50);
  const killer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(killer);
  clearInterval(sampler);
  return { exitCode, stdout, stderr, seconds: (performance.now() - t0) / 1000, peakMiB };
}

const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

describe("clients against a hostile master", () => {
  let listeners: TCPSocketListener<{ d: FrameDecoder }>[] = [];
  afterAll(() => {
    for (const l of listeners) l.stop(true);
    listeners = [];
  });

  test("WELCOME, then only PINGs and never LIST_END: ls and fetch --retry-for 5 --idle-timeout 5 exit with one clear line", async () => {
    const pings = new Set<Timer>();
    const fake = fakeMaster((s) => {
      const t = setInterval(() => s.write(encodeMessage({ type: MsgType.Ping, seq: 1 })), 500);
      pings.add(t);
    });
    listeners.push(fake);
    const address = `127.0.0.1:${fake.port}`;
    const out = tempDir();
    try {
      const [ls, fetch] = await Promise.all([
        runMeasured(["ls", address, "--insecure-plaintext"], 30_000),
        runMeasured(["fetch", address, "x.bin", "-o", out.path, "--retry-for", "5", "--idle-timeout", "5", "--insecure-plaintext"], 30_000),
      ]);
      for (const r of [ls, fetch]) {
        expect(r.exitCode).toBe(1);
        expect(r.seconds).toBeLessThan(8);
        expect(r.stderr).toContain("stopped answering");
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
      }
    } finally {
      for (const t of pings) clearInterval(t);
      out.cleanup();
    }
  }, 30_000);

  test("a master flooding entries: ls stops at its buffer cap with an E_LIMIT line and bounded RSS", async () => {
    const entries: ListEntry[] = Array.from({ length: 2000 }, (_, i) => ({ name: `${"f".repeat(400)}/${i}`, size: 1, sha256: SHA, servers: ["127.0.0.1:9"] }));
    const frame = encodeMessage({ type: MsgType.ListEntries, requestId: 0, entries });
    const pumps = new Set<Timer>();
    const fake = fakeMaster((s) => {
      let rest: Uint8Array = frame;
      const pump = () => {
        for (let round = 0; round < 64; round++) {
          const n = s.write(rest);
          if (n < 0) return;
          rest = n === rest.byteLength ? frame : rest.subarray(n);
          if (n === 0) return;
        }
      };
      pumps.add(setInterval(pump, 1));
    });
    listeners.push(fake);
    const r = await runMeasured(["ls", `127.0.0.1:${fake.port}`, "--insecure-plaintext"], 30_000);
    for (const t of pumps) clearInterval(t);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/sent more than .* of listing; narrow it with a PATTERN/);
    expect(r.seconds).toBeLessThan(15);
    expect(r.peakMiB).toBeLessThan(256);
  }, 30_000);

  test("names and error texts with escape sequences reach the terminal escaped (ls table, fetch failure line, master ERROR)", async () => {
    const evil = "evil\u001b]0;owned\u0007\u001b[2J\u009b.txt";
    const fake = fakeMaster((s, list) => {
      if (list.pattern === "boom") {
        s.write(encodeMessage({ type: MsgType.Error, code: 2, message: "bad\u001b[2J\u0007 thing" }));
        return;
      }
      // Two contents under one name: fetch refuses it, naming it on its failure line.
      const e = (sha: string): ListEntry => ({ name: evil, size: 5, sha256: sha, servers: ["127.0.0.1:9"] });
      s.write(encodeMessage({ type: MsgType.ListEntries, requestId: list.requestId, entries: [e(SHA), e("cd".repeat(32))] }));
      s.write(encodeMessage({ type: MsgType.ListEnd, requestId: list.requestId, total: 2, stale: false }));
    });
    listeners.push(fake);
    const address = `127.0.0.1:${fake.port}`;
    const out = tempDir();
    try {
      const ls = await runFtx(["ls", address, "--insecure-plaintext"]);
      expect(ls.exitCode).toBe(0);
      expect(ls.stdout).toContain("evil\\e]0;owned\\x07\\e[2J\\u{9b}.txt");
      expect(ls.stdout).not.toMatch(CONTROL);
      const json = await runFtx(["ls", address, "--json", "--insecure-plaintext"]);
      expect(JSON.parse(json.stdout)[0].name).toBe(evil); // JSON stays exact (it escapes by itself)
      const fetch = await runFtx(["fetch", address, evil, "-o", out.path, "--insecure-plaintext"]);
      expect(fetch.exitCode).toBe(1);
      expect(fetch.stderr).toContain("owned");
      expect(fetch.stderr).not.toMatch(CONTROL);
      const boom = await runFtx(["ls", address, "boom", "--insecure-plaintext"]);
      expect(boom.exitCode).toBe(1);
      expect(boom.stderr).toContain("bad\\e[2J\\x07 thing");
      expect(boom.stderr).not.toMatch(CONTROL);
    } finally {
      out.cleanup();
    }
  }, 30_000);
});
