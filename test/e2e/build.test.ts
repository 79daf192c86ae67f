import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually, ftxEnv, REPO, stopAll, tempDir } from "../support/ftx-process.ts";

/**
 * `bun run build` makes one executable that runs from an empty folder with no Bun on PATH and ignores
 * a stray .env there.
 */
let work: { path: string; cleanup: () => void };
let exe: string;

beforeAll(async () => {
  const build = Bun.spawnSync(["bun", "run", "build"], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
  expect(build.exitCode).toBe(0);
  work = tempDir("ftx-build-");
  exe = join(work.path, "ftx");
  copyFileSync(join(REPO, "dist/ftx"), exe);
}, 120_000);

afterAll(async () => {
  await stopAll();
  work?.cleanup();
});

function run(args: string[], cwd: string) {
  // PATH without Bun's folder: the executable must not need it.
  const env = ftxEnv({ PATH: "/usr/bin:/bin" });
  return Bun.spawnSync([exe, ...args], { cwd, env, stdout: "pipe", stderr: "pipe" });
}

test("the executable runs on its own and ignores .env in its working folder", async () => {
  const empty = join(work.path, "empty");
  Bun.spawnSync(["mkdir", "-p", join(empty, "share")]);
  writeFileSync(join(empty, ".env"), "FTX_TOKEN=from-dotenv\nFTX_MASTER=127.0.0.1:1\n");
  writeFileSync(join(empty, "share", "f.txt"), "binary");

  const version = run(["--version"], empty);
  expect(version.exitCode).toBe(0);
  expect(version.stdout.toString()).toMatch(/^\d+\.\d+\.\d+\n$/);

  const env = ftxEnv({ PATH: "/usr/bin:/bin" });
  const master = Bun.spawn([exe, "master", "--host", "127.0.0.1", "--port", "0", "--token", "from-dotenv"], { cwd: empty, env, stderr: "pipe", stdout: "ignore" });
  const reader = master.stderr.getReader();
  let log = "";
  while (!/listening on 127\.0\.0\.1:(\d+)/.test(log)) log += new TextDecoder().decode((await reader.read()).value);
  const port = Number(log.match(/listening on 127\.0\.0\.1:(\d+)/)![1]);
  try {
    // Had .env been loaded, FTX_TOKEN would match and ls would succeed.
    const ls = run(["ls", `127.0.0.1:${port}`], empty);
    expect(ls.exitCode).not.toBe(0);
    expect(ls.stderr.toString()).toContain("authentication failed");

    const server = Bun.spawn([exe, "serve", "share", "--master", `127.0.0.1:${port}`, "--token", "from-dotenv"], { cwd: empty, env, stderr: "pipe", stdout: "ignore" });
    try {
      await eventually(() => run(["ls", `127.0.0.1:${port}`, "--json", "--token", "from-dotenv"], empty).stdout.toString().includes("f.txt"), 5000, "listed via the executable");
      // A download exercises the part-file writer thread, a second entry point of the bundle.
      const fetched = run(["fetch", `127.0.0.1:${port}`, "f.txt", "-o", "got", "--token", "from-dotenv"], empty);
      expect(fetched.exitCode).toBe(0);
      expect(readFileSync(join(empty, "got", "f.txt"), "utf8")).toBe("binary");
    } finally {
      server.kill("SIGKILL");
      await server.exited;
    }
  } finally {
    master.kill("SIGKILL");
    await master.exited;
  }
});
