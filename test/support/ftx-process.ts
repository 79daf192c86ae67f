import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ImpairmentRelay } from "./impairment-relay.ts";

export const REPO = resolve(import.meta.dir, "../..");
export const CLI = join(REPO, "src/cli.ts");

/** Every process a test starts, so afterAll can stop exactly those (by PID) and nothing else. */
const started = new Set<FtxProcess>();

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export function ftxEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("FTX_")) env[k] = v;
  env.NO_COLOR = "1";
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Run `ftx ARGS` to completion. */
export async function runFtx(args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const proc = Bun.spawn(["bun", CLI, ...args], {
    env: ftxEnv(opts.env),
    cwd: opts.cwd ?? REPO,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { exitCode, stdout, stderr };
}

/** A long-running `ftx` (master, serve) whose stderr we watch for log lines. */
export class FtxProcess {
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  private stderrText = "";
  private waiters: Array<() => void> = [];

  constructor(args: string[], env: Record<string, string | undefined> = {}) {
    this.proc = Bun.spawn(["bun", CLI, ...args], { env: ftxEnv(env), cwd: REPO, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    started.add(this);
    void this.pump();
  }

  private async pump(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of this.proc.stderr as ReadableStream<Uint8Array>) {
      this.stderrText += decoder.decode(chunk, { stream: true });
      for (const w of this.waiters.splice(0)) w();
    }
    for (const w of this.waiters.splice(0)) w();
  }

  get stderr(): string {
    return this.stderrText;
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** Wait until stderr matches; returns the match. */
  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.stderrText.match(pattern);
      if (m) return m;
      if (this.proc.exitCode !== null || Date.now() > deadline)
        throw new Error(`timed out waiting for ${pattern} (exit ${this.proc.exitCode}); stderr so far:\n${this.stderrText}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  signal(sig: NodeJS.Signals): void {
    if (this.proc.exitCode === null) process.kill(this.proc.pid, sig);
  }

  async stop(sig: NodeJS.Signals = "SIGTERM"): Promise<number> {
    this.signal(sig);
    if (sig === "SIGSTOP") return -1;
    const code = await Promise.race([this.proc.exited, Bun.sleep(5000).then(() => undefined)]);
    if (code === undefined) {
      process.kill(this.proc.pid, "SIGKILL");
      return await this.proc.exited;
    }
    started.delete(this);
    return code;
  }
}

/** Stop every process this test file started that is still running. */
export async function stopAll(): Promise<void> {
  for (const p of [...started]) {
    if (p.proc.exitCode === null) {
      try {
        process.kill(p.pid, "SIGCONT");
        process.kill(p.pid, "SIGKILL");
      } catch {}
      await p.proc.exited;
    }
    started.delete(p);
  }
}

/** Start a master on a free port; returns it and its address. */
export async function startMaster(extraArgs: string[] = [], env: Record<string, string | undefined> = {}): Promise<{ master: FtxProcess; address: string; port: number }> {
  const master = new FtxProcess(["master", "--host", "127.0.0.1", "--port", "0", ...extraArgs], env);
  const m = await master.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
  const port = Number(m[1]);
  return { master, address: `127.0.0.1:${port}`, port };
}

export async function startServer(dir: string, masterAddress: string, extraArgs: string[] = [], env: Record<string, string | undefined> = {}): Promise<{ server: FtxProcess; udpPort: number }> {
  const server = new FtxProcess(["serve", dir, "--master", masterAddress, "--host", "127.0.0.1", ...extraArgs], env);
  const m = await server.waitFor(/over UDP on 127\.0\.0\.1:(\d+)/);
  return { server, udpPort: Number(m[1]) };
}

export interface ListedFile {
  name: string;
  size: number;
  sha256: string;
  servers: string[];
}

export async function lsJson(masterAddress: string, pattern?: string, env: Record<string, string | undefined> = {}): Promise<ListedFile[]> {
  const r = await runFtx(["ls", masterAddress, ...(pattern === undefined ? [] : [pattern]), "--json"], { env });
  if (r.exitCode !== 0) throw new Error(`ls failed (${r.exitCode}): ${r.stderr}`);
  return JSON.parse(r.stdout) as ListedFile[];
}

/** Poll until `check` returns true, or fail after timeoutMs; returns the elapsed ms. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await check()) return performance.now() - start;
    if (performance.now() - start > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await Bun.sleep(100);
  }
}

export function tempDir(prefix = "ftx-test-"): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Run `fn` with `count` fresh temporary folders (their paths), removed afterwards whatever happens. */
export async function withTempDirs<T>(count: number, fn: (...paths: string[]) => Promise<T>): Promise<T> {
  const dirs = Array.from({ length: count }, () => tempDir());
  try {
    return await fn(...dirs.map((d) => d.path));
  } finally {
    for (const d of dirs) d.cleanup();
  }
}

export function sha256Hex(data: string | Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

/** A UDP port free right now (the caller binds it next; a race only with other tests of ours). */
export async function freeUdpPort(): Promise<number> {
  const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  const port = s.port;
  s.close();
  return port;
}

/**
 * A file server whose clients reach it through an impairment relay: it binds a known port, the relay
 * forwards to that port, and the server advertises the relay's address to the master.
 */
export async function startServerBehindRelay(
  dir: string,
  masterAddress: string,
  impairments: Parameters<typeof ImpairmentRelay.start>[1] = {},
  extraArgs: string[] = [],
): Promise<{ server: FtxProcess; udpPort: number; relay: ImpairmentRelay; advertised: string }> {
  const udpPort = await freeUdpPort();
  const relay = await ImpairmentRelay.start({ host: "127.0.0.1", port: udpPort }, impairments);
  const advertised = `127.0.0.1:${relay.port}`;
  const { server } = await startServer(dir, masterAddress, ["--port", String(udpPort), "--advertise", advertised, ...extraArgs]);
  return { server, udpPort, relay, advertised };
}
