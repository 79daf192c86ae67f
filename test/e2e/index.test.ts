import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, symlinkSync, writeFileSync, appendFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, REPO, eventually, ftxEnv, lsJson, runFtx, sha256Hex, startMaster, startServer, stopAll, tempDir, FtxProcess, type RunResult } from "../support/ftx-process.ts";

afterAll(stopAll);

function populate(dir: string, files: Record<string, string>): void {
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
}

describe("master + file servers + ls, as real processes", () => {
  test("two servers: one entry per content, every server listed; table and JSON", async () => {
    const a = tempDir();
    const b = tempDir();
    const outside = tempDir();
    try {
      populate(a.path, { "shared.txt": "same", "docs/a.txt": "alpha", ".hidden": "dot", "skip.ftx-part": "partial" });
      populate(b.path, { "shared.txt": "same", "only-b.txt": "bee" });
      writeFileSync(join(outside.path, "secret"), "secret");
      symlinkSync(join(outside.path, "secret"), join(a.path, "escape"));
      symlinkSync("docs/a.txt", join(a.path, "inside-link"));
      const { address } = await startMaster();
      const sa = await startServer(a.path, address);
      const sb = await startServer(b.path, address);
      await eventually(async () => (await lsJson(address)).length === 5, 5000, "both servers listed");
      const listed = await lsJson(address);
      expect(listed).toEqual([
        { name: ".hidden", size: 3, sha256: sha256Hex("dot"), servers: [`127.0.0.1:${sa.udpPort}`] },
        { name: "docs/a.txt", size: 5, sha256: sha256Hex("alpha"), servers: [`127.0.0.1:${sa.udpPort}`] },
        { name: "inside-link", size: 5, sha256: sha256Hex("alpha"), servers: [`127.0.0.1:${sa.udpPort}`] },
        { name: "only-b.txt", size: 3, sha256: sha256Hex("bee"), servers: [`127.0.0.1:${sb.udpPort}`] },
        { name: "shared.txt", size: 4, sha256: sha256Hex("same"), servers: [`127.0.0.1:${sa.udpPort}`, `127.0.0.1:${sb.udpPort}`].sort() },
      ]);
      const table = await runFtx(["ls", address, "TXT"]);
      expect(table.exitCode).toBe(0);
      expect(table.stdout).toMatch(/^NAME\s+SIZE\s+SHA256\s+SERVERS/);
      expect(table.stdout).toContain("docs/a.txt");
      expect(table.stdout).toContain(sha256Hex("alpha").slice(0, 12));
      expect(table.stdout).not.toContain(".hidden");
      expect(await lsJson(address, "docs/*")).toHaveLength(1);
      const none = await runFtx(["ls", address, "nothing-like-this", "--json"]);
      expect(none).toMatchObject({ exitCode: 0, stdout: "[]\n" });

      // SIGKILL: the connection closes, its files leave at once.
      await sb.server.stop("SIGKILL");
      const gone = await eventually(async () => !(await lsJson(address)).some((f) => f.name === "only-b.txt"), 2000, "killed server's files gone");
      expect(gone).toBeLessThan(1000);
      expect((await lsJson(address, "shared.txt"))[0]!.servers).toEqual([`127.0.0.1:${sa.udpPort}`]);
    } finally {
      a.cleanup();
      b.cleanup();
      outside.cleanup();
    }
  });

  test("folder changes reach the index within 3 s: add, modify, delete", async () => {
    const d = tempDir();
    try {
      populate(d.path, { "keep.txt": "keep", "change.txt": "v1", "remove.txt": "bye" });
      const { address } = await startMaster();
      const { server } = await startServer(d.path, address);
      await eventually(async () => (await lsJson(address)).length === 3, 5000, "initial listing");
      const t0 = performance.now();
      populate(d.path, { "new/added.txt": "hello" });
      appendFileSync(join(d.path, "change.txt"), "-v2");
      rmSync(join(d.path, "remove.txt"));
      await eventually(
        async () => {
          const byName = new Map((await lsJson(address)).map((f) => [f.name, f.sha256]));
          return byName.get("new/added.txt") === sha256Hex("hello") && byName.get("change.txt") === sha256Hex("v1-v2") && !byName.has("remove.txt") && byName.has("keep.txt");
        },
        3000,
        "changes listed",
      );
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(await server.stop("SIGTERM")).toBe(0); // the contract: SIGTERM ends a file server with exit 0
    } finally {
      d.cleanup();
    }
  });

  test("a silent (SIGSTOPped) server leaves within the heartbeat timeout + 2 s, and registers again when it wakes", async () => {
    const d = tempDir();
    try {
      populate(d.path, { "x.txt": "x" });
      const { address } = await startMaster(["--heartbeat-timeout", "2"]);
      const { server } = await startServer(d.path, address);
      await eventually(async () => (await lsJson(address)).length === 1, 5000, "listed");
      server.signal("SIGSTOP");
      const evicted = await eventually(async () => (await lsJson(address)).length === 0, 6000, "evicted");
      expect(evicted).toBeLessThan(4000);
      server.signal("SIGCONT");
      await eventually(async () => (await lsJson(address)).length === 1, 5000, "registered again after waking");
    } finally {
      d.cleanup();
    }
  });

  test("after a master restart on the same port, files are listed again within 5 s", async () => {
    const d = tempDir();
    try {
      populate(d.path, { "x.txt": "x" });
      const first = await startMaster();
      await startServer(d.path, first.address);
      await eventually(async () => (await lsJson(first.address)).length === 1, 5000, "listed");
      expect(await first.master.stop("SIGTERM")).toBe(0);
      await Bun.sleep(1500); // the server is retrying meanwhile
      const again = new FtxProcess(["master", "--host", "127.0.0.1", "--port", String(first.port)]);
      await again.waitFor(/listening/);
      const back = await eventually(async () => (await lsJson(first.address)).length === 1, 6000, "listed after restart");
      expect(back).toBeLessThan(5000);
    } finally {
      d.cleanup();
    }
  });
});

describe("tokens", () => {
  test("right token via flag or FTX_TOKEN works; wrong token: authentication failed, non-zero exit", async () => {
    const d = tempDir();
    try {
      populate(d.path, { "t.txt": "t" });
      const { address, master } = await startMaster(["--token", "s3cret"]);
      await startServer(d.path, address, [], { FTX_TOKEN: "s3cret" });
      await eventually(async () => (await lsJson(address, undefined, { FTX_TOKEN: "s3cret" })).length === 1, 5000, "listed with token");
      const wrong = await runFtx(["ls", address, "--token", "nope"], { env: { FTX_TOKEN: "s3cret" } });
      expect(wrong.exitCode).not.toBe(0);
      expect(wrong.stderr).toContain("authentication failed");
      expect(wrong.stderr).not.toContain("    at ");
      const missing = await runFtx(["ls", address]);
      expect(missing.exitCode).not.toBe(0);
      expect(missing.stderr).toContain("authentication failed");
      const t0 = performance.now();
      const badServer = await runFtx(["serve", d.path, "--master", address, "--token", "wrong"], { timeoutMs: 10_000 });
      expect(performance.now() - t0).toBeLessThan(5000);
      expect(badServer.exitCode).not.toBe(0);
      expect(badServer.stderr).toContain("authentication failed");
      expect(master.proc.exitCode).toBeNull();
      expect(await lsJson(address, undefined, { FTX_TOKEN: "s3cret" })).toHaveLength(1);
    } finally {
      d.cleanup();
    }
  });
});

describe("usage and errors", () => {
  test("--help and --version print to stdout and exit 0", async () => {
    const v = await runFtx(["--version"]);
    expect(v).toMatchObject({ exitCode: 0, stderr: "" });
    expect(v.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    for (const args of [["--help"], ["master", "--help"], ["serve", "--help"], ["ls", "--help"], ["fetch", "--help"]]) {
      const r = await runFtx(args);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain("USAGE");
    }
  });

  test("bad usage: one line and a hint on stderr, exit 2", async () => {
    const cases = [[], ["bogus"], ["ls"], ["master", "--port", "abc"], ["master", "--bogus"], ["serve"], ["fetch", "127.0.0.1:1"], ["ls", "nohost"], ["master", "--heartbeat-timeout", "x"]];
    for (const args of cases) {
      const r = await runFtx(args);
      expect({ args, exitCode: r.exitCode }).toEqual({ args, exitCode: 2 });
      expect(r.stderr).toContain("--help");
      expect(r.stderr.trim().split("\n")).toHaveLength(2);
      expect(r.stdout).toBe("");
    }
  });

  test("an unreachable master is reported within 5 s, naming HOST:PORT as given", async () => {
    // A port nobody listens on: refused at once.
    const refused = await runFtx(["ls", "127.0.0.1:1"]);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toContain("127.0.0.1:1");
    const fetch = await runFtx(["fetch", "127.0.0.1:1", "a", "b", "--json", "-o", "/tmp/ftx-never-written"]);
    expect(fetch.exitCode).toBe(1);
    expect(fetch.stderr.trim().split("\n")).toEqual(["ftx: cannot reach master 127.0.0.1:1: connection refused (is `ftx master` running there?)"]);
    expect(JSON.parse(fetch.stdout).map((r: { name: string; ok: boolean }) => [r.name, r.ok])).toEqual([
      ["a", false],
      ["b", false],
    ]);
    // A listener that accepts and never answers: our handshake deadline.
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const t0 = performance.now();
      const r = await runFtx(["ls", `localhost:${silent.port}`]);
      expect(performance.now() - t0).toBeLessThan(5000);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toContain(`localhost:${silent.port}`);
    } finally {
      silent.stop(true);
    }
  });

  test("a DIR that does not exist is a clear error, exit 1, and is not created", async () => {
    const d = tempDir();
    try {
      const missing = join(d.path, "nope");
      const r = await runFtx(["serve", missing, "--master", "127.0.0.1:1"]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("does not exist");
      expect(await Bun.file(missing).exists()).toBe(false);
    } finally {
      d.cleanup();
    }
  });

  test("IPv6: a master on [::1] and a server that advertises [::1]", async () => {
    const d = tempDir();
    try {
      populate(d.path, { "six.txt": "6" });
      const master = new FtxProcess(["master", "--host", "::1", "--port", "0"]);
      const port = Number((await master.waitFor(/listening on \[::1\]:(\d+)/))[1]);
      const server = new FtxProcess(["serve", d.path, "--master", `[::1]:${port}`, "--host", "::1", "--advertise", "[::1]:9999"]);
      await server.waitFor(/over UDP/);
      await eventually(async () => (await lsJson(`[::1]:${port}`)).length === 1, 5000, "listed over IPv6");
      expect((await lsJson(`[::1]:${port}`))[0]!.servers).toEqual(["[::1]:9999"]);
    } finally {
      d.cleanup();
    }
  });
});

/**
 * A master whose host drops every packet (a firewall, a dead machine): in a network namespace of our
 * own, 10.99.0.2 is a neighbour that takes frames and answers nothing, so SYNs go unanswered. The
 * contract wants the message and the process gone within 5 s; the kernel would wait 2 min 13 s.
 */
const NETNS = `ftx-e2e-${process.pid}`;
const netns = (() => {
  if (Bun.spawnSync(["ip", "netns", "add", NETNS], { stderr: "ignore" }).exitCode !== 0) return false;
  const run = (...args: string[]) => {
    const r = Bun.spawnSync(["ip", "netns", "exec", NETNS, ...args], { stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${args.join(" ")}: ${r.stderr.toString()}`);
    return r.stdout.toString().trim();
  };
  run("ip", "link", "set", "lo", "up");
  run("ip", "link", "add", "ftx0", "type", "veth", "peer", "name", "ftx1");
  run("ip", "link", "set", "ftx0", "up");
  run("ip", "link", "set", "ftx1", "up");
  run("ip", "addr", "add", "10.99.0.1/24", "dev", "ftx0");
  // ftx1 has no address: what reaches it for 10.99.0.2 is dropped without a word.
  run("ip", "neigh", "replace", "10.99.0.2", "lladdr", run("cat", "/sys/class/net/ftx1/address"), "dev", "ftx0", "nud", "permanent");
  return true;
})();
afterAll(() => {
  if (netns) Bun.spawnSync(["ip", "netns", "del", NETNS]);
});

async function runInNetns(args: string[], timeoutMs = 20_000): Promise<RunResult & { seconds: number }> {
  const t0 = performance.now();
  const proc = Bun.spawn(["ip", "netns", "exec", NETNS, "bun", CLI, ...args], { env: ftxEnv(), cwd: REPO, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { exitCode, stdout, stderr, seconds: (performance.now() - t0) / 1000 };
}

describe.skipIf(!netns)("a master that drops every packet", () => {
  test("ls, ls --json and fetch report it naming HOST:PORT and exit within 5 s", async () => {
    const out = tempDir();
    try {
      const runs = await Promise.all([
        runInNetns(["ls", "10.99.0.2:7700"]),
        runInNetns(["ls", "10.99.0.2:7700", "--json"]),
        runInNetns(["fetch", "10.99.0.2:7700", "a.txt", "--json", "-o", out.path]),
      ]);
      for (const r of runs) {
        expect(r.stderr).toContain("cannot reach master 10.99.0.2:7700: timed out");
        expect(r.exitCode).toBe(1);
        expect(r.seconds).toBeLessThan(5);
      }
      expect(JSON.parse(runs[2]!.stdout)).toMatchObject([{ name: "a.txt", ok: false }]);
    } finally {
      out.cleanup();
    }
  }, 30_000);

  test("a file server retrying such a master leaves no connection attempt behind", async () => {
    const dir = tempDir();
    const proc = Bun.spawn(["ip", "netns", "exec", NETNS, "bun", CLI, "serve", dir.path, "--master", "10.99.0.2:7700", "--host", "127.0.0.1"], {
      env: ftxEnv(),
      cwd: REPO,
      stdout: "ignore",
      stderr: "ignore",
      stdin: "ignore",
    });
    try {
      // Three connect timeouts of 3 s each: before the fix, one SYN-SENT socket stayed per attempt.
      await Bun.sleep(10_000);
      const synSent = Bun.spawnSync(["ip", "netns", "exec", NETNS, "ss", "-Htn", "state", "syn-sent"]).stdout.toString().trim();
      expect(synSent.split("\n").filter((l) => l.includes("10.99.0.2:7700")).length).toBeLessThanOrEqual(1);
      expect(proc.exitCode).toBeNull();
    } finally {
      proc.kill("SIGKILL");
      await proc.exited;
      dir.cleanup();
    }
  }, 30_000);
});
