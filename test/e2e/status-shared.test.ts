import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually, FtxProcess, runFtx, startServer, stopAll, tempDir } from "../support/ftx-process.ts";
import { RedisProcess } from "../support/redis-process.ts";

/** `ftx status` on masters sharing one index through a real redis-server: who registered through whom. */
const redisList: RedisProcess[] = [];
afterAll(async () => {
  await stopAll();
  for (const r of redisList) await r.kill();
});

async function sharedMaster(redis: RedisProcess): Promise<string> {
  const master = new FtxProcess(["master", "--host", "127.0.0.1", "--port", "0", "--store", redis.url]);
  return `127.0.0.1:${(await master.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]}`;
}

type Report = { master: { id: string }; servers: Array<{ address: string; files: number; connectedSince: string | null; lastHeartbeat: string | null; master: string }> };

describe("ftx status with a shared index", () => {
  test("each master lists both servers and names the master each registered through", async () => {
    const redis = await RedisProcess.start();
    redisList.push(redis);
    const d1 = tempDir();
    const d2 = tempDir();
    writeFileSync(join(d1.path, "one.txt"), "1");
    writeFileSync(join(d2.path, "two.txt"), "22");
    writeFileSync(join(d2.path, "three.txt"), "333");
    const a = await sharedMaster(redis);
    const b = await sharedMaster(redis);
    const s1 = await startServer(d1.path, a);
    const s2 = await startServer(d2.path, b);
    const status = async (m: string): Promise<Report> => JSON.parse((await runFtx(["status", m, "--json"])).stdout);
    await eventually(async () => (await status(a)).servers.length === 2 && (await status(b)).servers.length === 2, 5000, "both masters see both servers");
    await eventually(async () => (await status(a)).servers.every((s) => s.files > 0), 5000, "file counts through Redis");
    const ra = await status(a);
    const rb = await status(b);
    expect(ra.master.id).not.toBe(rb.master.id);
    const one = `127.0.0.1:${s1.udpPort}`;
    const two = `127.0.0.1:${s2.udpPort}`;
    // Its own servers first, with times; the other master's after, without (it cannot know them).
    expect(ra.servers.map((s) => [s.address, s.files, s.master, s.connectedSince !== null])).toEqual([
      [one, 1, ra.master.id, true],
      [two, 2, rb.master.id, false],
    ]);
    expect(rb.servers.map((s) => [s.address, s.master])).toEqual([
      [two, rb.master.id],
      [one, ra.master.id],
    ]);
    const text = await runFtx(["status", a]);
    expect(text.stdout).toMatch(/SERVER\s+FILES\s+BYTES\s+CONNECTED SINCE\s+LAST HEARD\s+MASTER/);
    expect(text.stdout).toContain(`${ra.master.id} (this)`);
    d1.cleanup();
    d2.cleanup();
  }, 30_000);
});
