import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually, FtxProcess, lsJson, runFtx, startServer, stopAll, tempDir } from "../support/ftx-process.ts";
import { freePort, RedisProcess } from "../support/redis-process.ts";

/**
 * Several masters sharing one index through a real redis-server (started by the test on a free port).
 * scripts/setup.sh installs redis-server; without it these tests fail (they are never skipped).
 */

const redisList: RedisProcess[] = [];
afterAll(async () => {
  await stopAll();
  for (const r of redisList) await r.kill();
});

async function startSharedMaster(redis: RedisProcess, extra: string[] = []): Promise<{ master: FtxProcess; address: string; port: number }> {
  const master = new FtxProcess(["master", "--host", "127.0.0.1", "--port", "0", "--store", redis.url, ...extra]);
  const port = Number((await master.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
  return { master, address: `127.0.0.1:${port}`, port };
}

describe("masters sharing one index through Redis", () => {
  test("register via A, list via B; kill A and the server moves to B; kill the server and it is gone from both", async () => {
    const redis = await RedisProcess.start();
    redisList.push(redis);
    const d = tempDir();
    try {
      writeFileSync(join(d.path, "shared.txt"), "through redis");
      const other = tempDir();
      writeFileSync(join(other.path, "other.txt"), "a second server");
      const a = await startSharedMaster(redis, ["--heartbeat-timeout", "2"]);
      const b = await startSharedMaster(redis, ["--heartbeat-timeout", "2"]);
      const { server } = await startServer(d.path, `${a.address},${b.address}`);
      const second = await startServer(other.path, a.address);
      await server.waitFor(new RegExp(`registered with master ${a.address.replace(/\./g, "\\.")}`));
      await eventually(async () => (await lsJson(b.address)).length === 2, 3000, "both listed via B");
      expect((await lsJson(a.address)).map((f) => f.name)).toEqual(["other.txt", "shared.txt"]);

      // A file server killed while both masters are up leaves both lists.
      await second.server.stop("SIGKILL");
      other.cleanup();
      const left = await eventually(
        async () => (await lsJson(a.address)).length === 1 && (await lsJson(b.address)).length === 1,
        5000,
        "killed server gone from A and B",
      );
      expect(left).toBeLessThan(2000 + 2000);

      const killedAt = performance.now();
      await a.master.stop("SIGKILL");
      await server.waitFor(new RegExp(`registered with master ${b.address.replace(/\./g, "\\.")}`), 6000);
      expect(performance.now() - killedAt).toBeLessThan(5000);
      // Listed throughout through B, and with one address, not two.
      for (let i = 0; i < 6; i++) {
        const listed = await lsJson(b.address);
        expect(listed.map((f) => f.servers.length)).toEqual([1]);
        await Bun.sleep(250);
      }

      await server.stop("SIGKILL");
      const gone = await eventually(async () => (await lsJson(b.address)).length === 0, 5000, "killed server gone");
      expect(gone).toBeLessThan(4000);
    } finally {
      d.cleanup();
    }
  }, 60_000);

  test("a server whose master dies expires from the shared index within the lease, with no master noticing", async () => {
    const redis = await RedisProcess.start();
    redisList.push(redis);
    const d = tempDir();
    try {
      writeFileSync(join(d.path, "lonely.txt"), "x");
      const a = await startSharedMaster(redis, ["--heartbeat-timeout", "2"]);
      const b = await startSharedMaster(redis, ["--heartbeat-timeout", "2"]);
      const { server } = await startServer(d.path, a.address); // knows only A
      await eventually(async () => (await lsJson(b.address)).length === 1, 3000, "listed via B");
      server.signal("SIGSTOP"); // it cannot re-register anywhere
      await a.master.stop("SIGKILL");
      const expired = await eventually(async () => (await lsJson(b.address)).length === 0, 6000, "expired from the shared index");
      expect(expired).toBeLessThan(2000 + 2000 + 500);
      server.signal("SIGCONT");
    } finally {
      d.cleanup();
    }
  }, 60_000);

  test("Redis restarted: masters say so, answer stale, and recover by themselves", async () => {
    const redis = await RedisProcess.start();
    redisList.push(redis);
    const d = tempDir();
    try {
      writeFileSync(join(d.path, "persist.txt"), "y");
      const a = await startSharedMaster(redis);
      const b = await startSharedMaster(redis);
      await startServer(d.path, a.address);
      await eventually(async () => (await lsJson(b.address)).length === 1, 3000, "listed via B");
      await redis.kill();
      await b.master.waitFor(/lost the shared store/, 5000);
      const during = await runFtx(["ls", b.address, "--json"]);
      expect(during.exitCode).toBe(0);
      expect(JSON.parse(during.stdout)).toHaveLength(1); // what it last knew
      expect(during.stderr).toContain("may be out of date");
      await redis.restart();
      await b.master.waitFor(/shared store .* is back/, 5000);
      // A republishes its server in full into the empty Redis; B sees it again, not stale.
      await eventually(async () => {
        const r = await runFtx(["ls", b.address, "--json"]);
        return r.exitCode === 0 && JSON.parse(r.stdout).length === 1 && !r.stderr.includes("out of date");
      }, 5000, "recovered");
    } finally {
      d.cleanup();
    }
  }, 60_000);

  test("Redis unreachable at start: a clear error, non-zero exit, within 5 s", async () => {
    const port = await freePort();
    const t0 = performance.now();
    const r = await runFtx(["master", "--port", "0", "--store", `redis://127.0.0.1:${port}`]);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`cannot reach the shared store redis://127.0.0.1:${port}`);
    const bad = await runFtx(["master", "--store", "http://x"]);
    expect(bad.exitCode).toBe(2);
  });

  test("clients and servers take a list of masters and skip the dead ones", async () => {
    const redis = await RedisProcess.start();
    redisList.push(redis);
    const d = tempDir();
    try {
      writeFileSync(join(d.path, "f.txt"), "z");
      const dead = `127.0.0.1:${await freePort()}`;
      const b = await startSharedMaster(redis);
      await startServer(d.path, `${dead},${b.address}`);
      await eventually(async () => (await lsJson(`${dead},${b.address}`)).length === 1, 5000, "listed through the list");
      const out = tempDir();
      try {
        const r = await runFtx(["fetch", `${dead},${b.address}`, "f.txt", "-o", out.path]);
        expect(r.exitCode).toBe(0);
      } finally {
        out.cleanup();
      }
      const none = await runFtx(["ls", `${dead},127.0.0.1:${await freePort()}`]);
      expect(none.exitCode).not.toBe(0);
      expect(none.stderr).toContain(`cannot reach any master (${dead}, 127.0.0.1:`);
    } finally {
      d.cleanup();
    }
  }, 60_000);
});
