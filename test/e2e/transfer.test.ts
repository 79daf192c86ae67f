import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Impairment } from "../support/impairment-relay.ts";
import { residentBytes } from "../support/page-cache.ts";
import { Rng } from "../support/random.ts";
import { CLI, eventually, ftxEnv, lsJson, runFtx, sha256Hex, startMaster, startServer, startServerBehindRelay, stopAll, tempDir, withTempDirs } from "../support/ftx-process.ts";

afterAll(stopAll);

function makeFiles(dir: string, files: Record<string, number>, seed = 1): Record<string, string> {
  const rng = new Rng(seed);
  const hashes: Record<string, string> = {};
  for (const [name, size] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    const data = Buffer.from(rng.bytes(size));
    writeFileSync(join(dir, name), data);
    hashes[name] = sha256Hex(data);
  }
  return hashes;
}

function hashOf(path: string): string {
  return sha256Hex(readFileSync(path));
}

async function setup(files: Record<string, number>, serverArgs: string[] = []) {
  const share = tempDir("ftx-share-");
  const out = tempDir("ftx-out-");
  const hashes = makeFiles(share.path, files);
  const { address } = await startMaster();
  const { server, udpPort } = await startServer(share.path, address, serverArgs);
  await eventually(async () => (await lsJson(address)).length === Object.keys(files).length, 10_000, "all files listed");
  return { share, out, hashes, address, server, udpPort, cleanup: () => (share.cleanup(), out.cleanup()) };
}

describe("fetch over the UDP transfer protocol", () => {
  test("edge sizes arrive intact in one fetch: 0, 1, segment −1/exact/+1, several MiB, 64 MiB", async () => {
    const seg = 1024;
    const files = { empty: 0, one: 1, below: seg - 1, exact: seg, above: seg + 1, "dir/five-mib.bin": 5 << 20, "big/64mib.bin": 64 << 20 };
    const s = await setup(files);
    try {
      const r = await runFtx(["fetch", s.address, ...Object.keys(files).filter((n) => !n.includes("64")), "-o", s.out.path, "--segment-size", String(seg), "--json"]);
      expect(r.stderr).not.toMatch(/[\r\u001b]/); // not a TTY: no animation, no colour
      expect(r.exitCode).toBe(0);
      const results = JSON.parse(r.stdout) as Array<{ name: string; ok: boolean; bytes: number; sha256: string; seconds: number; error: null }>;
      expect(results.map((x) => x.name)).toEqual(Object.keys(files).filter((n) => !n.includes("64")));
      for (const res of results) {
        expect(res).toMatchObject({ ok: true, bytes: files[res.name as keyof typeof files], sha256: s.hashes[res.name], error: null });
        expect(typeof res.seconds).toBe("number");
        expect(hashOf(join(s.out.path, res.name))).toBe(s.hashes[res.name]!);
      }
      const big = await runFtx(["fetch", s.address, "big/64mib.bin", "-o", s.out.path]);
      expect(big.exitCode).toBe(0);
      // What was synced behind the hash frontier went back to the kernel (posix_fadvise): a large
      // download leaves a few MiB in the page cache, not all of itself. (Read before hashing it below.)
      const cached = residentBytes(join(s.out.path, "big/64mib.bin"));
      if (process.platform === "linux" && cached !== undefined) expect(cached).toBeLessThan(32 << 20);
      expect(hashOf(join(s.out.path, "big/64mib.bin"))).toBe(s.hashes["big/64mib.bin"]!);
      expect(readdirSync(join(s.out.path, "big"))).toEqual(["64mib.bin"]); // no part file left behind
    } finally {
      s.cleanup();
    }
  });

  test("1,400-byte datagrams go out in runs (UDP GSO) and are read coalesced (GRO); with FTX_NO_GSO=1 one by one; the same bytes either way", async () => {
    for (const noGso of [false, true]) {
      const env = { FTX_NO_GSO: noGso ? "1" : undefined };
      const share = tempDir("ftx-share-");
      const out = tempDir("ftx-out-");
      const hashes = makeFiles(share.path, { "g.bin": 8 << 20, "h.bin": 1374 * 50 + 7 });
      try {
        const { address } = await startMaster();
        const { server } = await startServer(share.path, address, ["--verbose"], env);
        await server.waitFor(noGso ? /UDP send: one datagram per system call \(FTX_NO_GSO=1\)/ : /UDP send: segmentation offload \(GSO\)/);
        await eventually(async () => (await lsJson(address)).length === 2, 10_000, "both files listed");
        const r = await runFtx(["fetch", address, "g.bin", "h.bin", "-o", out.path, "--segment-size", "1374", "--verbose"], { env });
        expect(r.exitCode).toBe(0);
        expect(r.stderr).toMatch(noGso ? /UDP receive, 1374-byte segments: one datagram per read/ : /UDP receive, 1374-byte segments: coalesced runs \(GRO\)/);
        for (const name of ["g.bin", "h.bin"]) expect(hashOf(join(out.path, name))).toBe(hashes[name]!);
        await server.stop();
      } finally {
        share.cleanup();
        out.cleanup();
      }
    }
  }, 60_000);

  test("resumes from a part file; a part holding other bytes is checked piece by piece and fetched again", async () => {
    const s = await setup({ "r.bin": 3 << 20 });
    try {
      const full = readFileSync(join(s.share.path, "r.bin"));
      writeFileSync(join(s.out.path, "r.bin.ftx-part"), full.subarray(0, 1 << 20));
      const r1 = await runFtx(["fetch", s.address, "r.bin", "-o", s.out.path]);
      expect(r1.exitCode).toBe(0);
      expect(r1.stderr).toContain("resuming with 1048576 of 3145728 bytes");
      expect(hashOf(join(s.out.path, "r.bin"))).toBe(s.hashes["r.bin"]!);
      expect(existsSync(join(s.out.path, "r.bin.ftx-part"))).toBe(false);

      writeFileSync(join(s.out.path, "r.bin.ftx-part"), Buffer.alloc(1 << 20, 0xee)); // wrong bytes
      writeFileSync(join(s.out.path, "r.bin"), "old content"); // replaced atomically at the end
      const r2 = await runFtx(["fetch", s.address, "r.bin", "-o", s.out.path]);
      expect(r2.exitCode).toBe(0);
      expect(r2.stderr).not.toContain("resuming"); // its one piece failed its hash: nothing was trusted
      expect(hashOf(join(s.out.path, "r.bin"))).toBe(s.hashes["r.bin"]!);
    } finally {
      s.cleanup();
    }
  });

  test("offsets beyond 4 GiB: resuming a sparse file of 4 GiB + 2 MiB fetches only its tail, intact", async () => {
    const share = tempDir("ftx-share-");
    const out = tempDir("ftx-out-");
    try {
      const size = 2 ** 32 + (2 << 20);
      const tail = Buffer.from(new Rng(77).bytes(1 << 20));
      const path = join(share.path, "huge.bin");
      const fd = openSync(path, "w");
      ftruncateSync(fd, size);
      writeSync(fd, tail, 0, tail.length, size - tail.length);
      closeSync(fd);
      const { address } = await startMaster();
      await startServer(share.path, address);
      // Hashing 4 GiB takes ~15 s on this machine; an `ls` every 100 ms would take a core from it.
      const listed = async () => {
        await Bun.sleep(1000);
        return (await lsJson(address)).length === 1;
      };
      await eventually(listed, 60_000, "4 GiB file hashed and listed");
      const sha = (await lsJson(address))[0]!.sha256;
      // Everything but the last MiB is already here (zeros, sparse). Pieces are 8 MiB at this size, so
      // the last piece (2 MiB) is incomplete and only it crosses the network.
      const part = openSync(join(out.path, "huge.bin.ftx-part"), "w");
      ftruncateSync(part, size - tail.length);
      closeSync(part);
      const r = await runFtx(["fetch", address, "huge.bin", "-o", out.path, "--json"], { timeoutMs: 90_000 });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain(`resuming with ${2 ** 32} of ${size} bytes`);
      expect(JSON.parse(r.stdout)[0]).toMatchObject({ ok: true, bytes: size, sha256: sha });
      const got = Buffer.alloc(tail.length);
      const rfd = openSync(join(out.path, "huge.bin"), "r");
      readSync(rfd, got, 0, got.length, size - tail.length);
      closeSync(rfd);
      expect(got.equals(tail)).toBe(true);
    } finally {
      share.cleanup();
      out.cleanup();
    }
  }, 120_000);

  test("bad names fail that FILE with a clear message (exit 1) while the others complete; nothing is written outside -o", async () => {
    const s = await setup({ "good.txt": 100 });
    try {
      const r = await runFtx(["fetch", s.address, "good.txt", "../x", "/etc/passwd", "a/../../x", "missing.txt", "good.txt", "-o", s.out.path, "--json"]);
      expect(r.exitCode).toBe(1);
      const results = JSON.parse(r.stdout) as Array<{ name: string; ok: boolean; error: string | null; bytes: null | number; sha256: null | string }>;
      expect(results.map((x) => [x.name, x.ok])).toEqual([
        ["good.txt", true],
        ["../x", false],
        ["/etc/passwd", false],
        ["a/../../x", false],
        ["missing.txt", false],
        ["good.txt", true], // named twice: fetched once, reported for each time it was named
      ]);
      expect(results[5]).toEqual(results[0]!);
      for (const bad of results.slice(1, 5)) {
        expect(bad.bytes).toBeNull();
        expect(bad.sha256).toBeNull();
        expect(r.stderr).toContain(bad.error!);
      }
      expect(r.stderr).toContain('"../x" is not a safe name');
      expect(r.stderr).toContain("missing.txt: not listed");
      expect(readdirSync(s.out.path)).toEqual(["good.txt"]);
    } finally {
      s.cleanup();
    }
  });

  test("a name listed with two different contents is refused, naming it", async () => {
    const a = tempDir();
    const b = tempDir();
    const out = tempDir();
    try {
      writeFileSync(join(a.path, "same-name.txt"), "version A");
      writeFileSync(join(b.path, "same-name.txt"), "version B");
      const { address } = await startMaster();
      await startServer(a.path, address);
      await startServer(b.path, address);
      await eventually(async () => (await lsJson(address)).length === 2, 5000, "both versions listed");
      const r = await runFtx(["fetch", address, "same-name.txt", "-o", out.path]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("same-name.txt: listed with 2 different contents");
    } finally {
      a.cleanup();
      b.cleanup();
      out.cleanup();
    }
  });

  test("20 concurrent fetch processes against one file server all get intact files", async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 20; i++) files[`c/${i}.bin`] = (1 << 20) + i * 997;
    const s = await setup(files);
    try {
      const runs = await Promise.all(Object.keys(files).map((name, i) => runFtx(["fetch", s.address, name, "-o", join(s.out.path, String(i))], { timeoutMs: 60_000 })));
      runs.forEach((r, i) => {
        expect(r.exitCode).toBe(0);
        const name = `c/${i}.bin`;
        expect(hashOf(join(s.out.path, String(i), name))).toBe(s.hashes[name]!);
      });
    } finally {
      s.cleanup();
    }
  }, 120_000);
});

describe("path probing", () => {
  // Without Don't Fragment, Linux fragments a 64 KiB probe over a 1500-byte link and the probe "succeeds".
  // A network namespace of our own whose loopback has that MTU is such a link (skipped where namespaces
  // cannot be made).
  const canUnshare = Bun.spawnSync(["unshare", "-n", "true"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  test.skipIf(!canUnshare)("over a link with a 1500-byte MTU the probe settles on whole 1400-byte datagrams after one round trip, not fragmented 64 KiB ones", async () => {
    await withTempDirs(2, async (share, out) => {
      const hashes = makeFiles(share, { "m.bin": 2 << 20 }, 9);
      const port = 20_000 + Math.floor(Math.random() * 20_000);
      const ftx = `bun ${CLI}`;
      // Everything runs inside the namespace, which vanishes with its last process; the script stops
      // what it started, and the test kills the script by PID if it overruns.
      const script = [
        "set -e",
        "ip link set lo mtu 1500 up",
        `${ftx} master --port ${port} --quiet & M=$!`,
        `${ftx} serve ${share} --master 127.0.0.1:${port} --quiet & S=$!`,
        "trap 'kill $S $M 2>/dev/null' EXIT",
        `for i in $(seq 100); do ${ftx} ls 127.0.0.1:${port} 2>/dev/null | grep -q m.bin && break; sleep 0.1; done`,
        `timeout 25 ${ftx} fetch 127.0.0.1:${port} m.bin -o ${out} --verbose`,
      ].join("\n");
      const proc = Bun.spawn(["unshare", "-n", "bash", "-c", script], { env: ftxEnv(), stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
      const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      clearTimeout(timer);
      // The kernel refuses every larger probe to send whole, so the answer is known once the small probe is answered.
      expect(stderr).toContain("the interface sends no datagram over 1400 bytes; 1350-byte segments");
      expect(code).toBe(0);
      expect(hashOf(join(out, "m.bin"))).toBe(hashes["m.bin"]!);
    });
  });

  test("on loopback the probe finds 64 KiB datagrams; behind a 1500-byte MTU it settles on 1400-byte ones", async () => {
    const share = tempDir("ftx-share-");
    const out = tempDir("ftx-out-");
    try {
      const hashes = makeFiles(share.path, { "p.bin": 3 << 20 }, 5);
      const { address } = await startMaster();
      const { server } = await startServer(share.path, address);
      await eventually(async () => (await lsJson(address)).length === 1, 5000, "listed");
      const direct = await runFtx(["fetch", address, "p.bin", "-o", join(out.path, "direct"), "--verbose"]);
      expect(direct.exitCode).toBe(0);
      expect(direct.stderr).toContain("datagrams of 65507 bytes arrive; 65457-byte segments");

      await server.stop();
      const { relay, advertised } = await startServerBehindRelay(share.path, address, { both: { mtu: 1500 } });
      await eventually(async () => (await lsJson(address))[0]?.servers[0] === advertised, 5000, "listed via relay");
      const narrow = await runFtx(["fetch", address, "p.bin", "-o", join(out.path, "narrow"), "--verbose"]);
      expect(narrow.exitCode).toBe(0);
      expect(narrow.stderr).toContain("datagrams of 1400 bytes arrive; 1350-byte segments");
      expect(hashOf(join(out.path, "narrow", "p.bin"))).toBe(hashes["p.bin"]!);
      relay.close();
    } finally {
      share.cleanup();
      out.cleanup();
    }
  }, 60_000);
});

describe("through the impairment relay", () => {
  const scenarios: Array<[string, Impairment, number]> = [
    ["5% loss", { loss: 0.05 }, 4 << 20],
    ["20% loss", { loss: 0.2 }, 1 << 20],
    ["5% duplication", { duplicate: 0.05 }, 4 << 20],
    ["reordering with delay and jitter", { reorder: 0.1, delayMs: 1, jitterMs: 2 }, 2 << 20],
    ["1% corruption", { corrupt: 0.01 }, 4 << 20],
    ["all at once", { loss: 0.05, duplicate: 0.05, reorder: 0.05, corrupt: 0.01, delayMs: 1, jitterMs: 1 }, 2 << 20],
  ];
  for (const [label, impairment, size] of scenarios) {
    test(`${label}: the file arrives intact`, async () => {
      const share = tempDir("ftx-share-");
      const out = tempDir("ftx-out-");
      const hashes = makeFiles(share.path, { "f.bin": size }, size);
      const { address } = await startMaster();
      const { relay, advertised } = await startServerBehindRelay(share.path, address, { both: impairment, seed: 42 });
      try {
        await eventually(async () => (await lsJson(address))[0]?.servers[0] === advertised, 5000, "listed via relay");
        const r = await runFtx(["fetch", address, "f.bin", "-o", out.path, "--json"], { timeoutMs: 90_000 });
        expect(r.exitCode).toBe(0);
        expect(hashOf(join(out.path, "f.bin"))).toBe(hashes["f.bin"]!);
        expect(relay.counters.toClient).toBeGreaterThan(0);
        if (impairment.loss) expect(relay.counters.dropped).toBeGreaterThan(0);
        if (impairment.corrupt) expect(relay.counters.corrupted).toBeGreaterThan(0);
        if (impairment.duplicate) expect(relay.counters.duplicated).toBeGreaterThan(0);
      } finally {
        relay.close();
        share.cleanup();
        out.cleanup();
      }
    }, 120_000);
  }
});

describe("many sessions at once", () => {
  test("100 concurrent sessions from five client addresses, all intact", async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 100; i++) files[`m/${i}.bin`] = 3 * 1024 * 1024 + i;
    const s = await setup(files);
    try {
      const names = Object.keys(files);
      // Five clients on five loopback addresses, 20 files each, all at once: 100 sessions in flight.
      const runs = await Promise.all(
        [0, 1, 2, 3, 4].map((c) =>
          // Small segments make each transfer long enough that all 100 overlap.
          runFtx(["fetch", s.address, ...names.slice(c * 20, c * 20 + 20), "-o", join(s.out.path, String(c)), "--parallel", "20", "--bind", `127.0.0.${c + 2}`, "--segment-size", "512", "--json"], { timeoutMs: 90_000 }),
        ),
      );
      runs.forEach((r, c) => {
        if (r.exitCode !== 0) console.error(r.stderr.split("\n").filter((l) => l.includes("ftx:")).slice(0, 5).join("\n"));
        expect(r.exitCode).toBe(0);
        for (const name of names.slice(c * 20, c * 20 + 20)) expect(hashOf(join(s.out.path, String(c), name))).toBe(s.hashes[name]!);
      });
      await s.server.stop("SIGTERM");
      const peak = Number(s.server.stderr.match(/peak (\d+) at once/)![1]);
      console.error(`peak concurrent sessions: ${peak}`);
      expect(peak).toBeGreaterThanOrEqual(80); // usually 100; process start-up is staggered on 2 cores
    } finally {
      s.cleanup();
    }
  }, 120_000);

  test("a server at its per-client cap answers busy; the client waits and retries instead of failing", async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 12; i++) files[`b/${i}.bin`] = 512 * 1024;
    const s = await setup(files, ["--max-sessions-per-client", "3"]);
    try {
      const r = await runFtx(["fetch", s.address, ...Object.keys(files), "-o", s.out.path, "--parallel", "12", "--verbose"], { timeoutMs: 60_000 });
      expect(r.exitCode).toBe(0);
      for (const name of Object.keys(files)) expect(hashOf(join(s.out.path, name))).toBe(s.hashes[name]!);
      await s.server.stop("SIGTERM");
      expect(Number(s.server.stderr.match(/peak (\d+) at once/)![1])).toBe(3);
    } finally {
      s.cleanup();
    }
  }, 90_000);
});
