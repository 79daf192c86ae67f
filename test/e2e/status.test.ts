import { afterAll, describe, expect, test } from "bun:test";
import { runFtx, startMaster, stopAll } from "../support/ftx-process.ts";

afterAll(stopAll);

describe("ftx status: the contract's manners", () => {
  test("a master with no file servers: counters, no servers; --json parses", async () => {
    const { address } = await startMaster();
    const text = await runFtx(["status", address]);
    expect(text).toMatchObject({ exitCode: 0, stderr: "" });
    expect(text.stdout).toContain("0 file server(s)");
    expect(text.stdout).toContain("no file servers registered");
    const json = await runFtx(["status", address, "--json"]);
    const report = JSON.parse(json.stdout);
    expect(report.servers).toEqual([]);
    expect(report.master.counters).toMatchObject({ servers: 0, files: 0, status_total: 1 });
    expect(Date.parse(report.master.startedAt)).toBeLessThanOrEqual(Date.now());
  });

  test("an unreachable master is named within 5 s; bad usage exits 2 with a hint", async () => {
    const started = performance.now();
    const down = await runFtx(["status", "127.0.0.1:1"]);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(down.exitCode).not.toBe(0);
    expect(down.stderr).toContain("127.0.0.1:1");
    const missing = await runFtx(["status"]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain("ftx status --help");
    for (const args of [["master", "--port", "0", "--http", "nonsense"], ["master", "--port", "0", "--http", "::1:80"], ["serve", ".", "--http", "1.2.3.4:99999"]]) {
      const bad = await runFtx(args);
      expect({ args, exitCode: bad.exitCode }).toEqual({ args, exitCode: 2 });
      expect(bad.stderr).toContain("--http");
    }
  });
});
