import type { Subprocess } from "bun";

/** A redis-server of the test's own on a free loopback port, nothing persisted; stopped by PID. */
export class RedisProcess {
  private constructor(
    readonly port: number,
    private proc: Subprocess,
  ) {}

  static available(): boolean {
    return Bun.which("redis-server") !== null;
  }

  /** Fails (a test never skips for it) where redis-server is missing: scripts/setup.sh installs it. */
  static async start(port?: number): Promise<RedisProcess> {
    if (!RedisProcess.available()) throw new Error("redis-server is not installed: run scripts/setup.sh (it installs Debian's package)");
    const p = port ?? (await freePort());
    const proc = Bun.spawn(["redis-server", "--port", String(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdout: "ignore", stderr: "ignore" });
    const r = new RedisProcess(p, proc);
    await r.waitReady();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private async waitReady(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      try {
        const c = await Bun.connect({ hostname: "127.0.0.1", port: this.port, socket: { data() {} } });
        c.end();
        return;
      } catch {
        await Bun.sleep(50);
      }
    }
    throw new Error(`redis-server did not start on port ${this.port}`);
  }

  async kill(): Promise<void> {
    this.proc.kill("SIGKILL");
    await this.proc.exited;
  }

  /** Start again on the same port (empty, as after a crash without persistence). */
  async restart(): Promise<void> {
    const again = await RedisProcess.start(this.port);
    this.proc = again.proc;
  }
}

export async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}
