/**
 * `bun run demo`: the whole system on this machine — a master on a free port, a file server sharing a
 * folder of generated files and a second one mirroring the largest, `ftx ls`, then `ftx fetch` of
 * everything (the large file from both servers at once), with the hashes checked. Stops every process
 * it started.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { waitForStderr } from "./process-lines.ts";

const cli = resolve(import.meta.dir, "../src/cli.ts");
const work = mkdtempSync(join(tmpdir(), "ftx-demo-"));
const share = join(work, "share");
const out = join(work, "downloads");
mkdirSync(join(share, "docs"), { recursive: true });
writeFileSync(join(share, "docs/readme.txt"), "Hello from ftx.\n");
writeFileSync(join(share, "small.bin"), crypto.getRandomValues(new Uint8Array(1 << 16)).map((b, i) => b ^ i));
const big = Buffer.alloc(64 << 20);
for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
writeFileSync(join(share, "sixty-four-mib.bin"), big);
const mirror = join(work, "mirror");
mkdirSync(mirror);
writeFileSync(join(mirror, "sixty-four-mib.bin"), big);

const procs: ReturnType<typeof Bun.spawn>[] = [];
function start(args: string[]) {
  const p = Bun.spawn(["bun", cli, ...args], { stdout: "inherit", stderr: "pipe" });
  procs.push(p);
  return p;
}
const waitFor = (p: ReturnType<typeof start>, re: RegExp) => waitForStderr(p.stderr as ReadableStream<Uint8Array>, re);
const sh = (args: string[]) => Bun.spawnSync(["bun", cli, ...args], { stdout: "inherit", stderr: "inherit" });

let ok = false;
try {
  const master = start(["master", "--host", "127.0.0.1", "--port", "0"]);
  const port = (await waitFor(master, /listening on 127\.0\.0\.1:(\d+)/))[1];
  const address = `127.0.0.1:${port}`;
  console.log(`master at ${address}`);
  const server = start(["serve", share, "--master", address, "--host", "127.0.0.1"]);
  const second = start(["serve", mirror, "--master", address, "--host", "127.0.0.1"]);
  await Promise.all([waitFor(server, /registered with master/), waitFor(second, /registered with master/)]);
  for (let i = 0; i < 50; i++) {
    const r = Bun.spawnSync(["bun", cli, "ls", address, "--json"]);
    const listed = JSON.parse(r.stdout.toString()) as Array<{ servers: string[] }>;
    if (listed.length === 3 && listed.reduce((n, e) => n + e.servers.length, 0) === 4) break;
    await Bun.sleep(100);
  }
  console.log(`\n$ ftx ls ${address}`);
  sh(["ls", address]);
  console.log(`\n$ ftx fetch ${address} docs/readme.txt small.bin sixty-four-mib.bin -o ${out}`);
  const fetch = sh(["fetch", address, "docs/readme.txt", "small.bin", "sixty-four-mib.bin", "-o", out]);
  ok = fetch.exitCode === 0;
  for (const name of ["docs/readme.txt", "small.bin", "sixty-four-mib.bin"]) {
    const same = Buffer.compare(readFileSync(join(share, name)), readFileSync(join(out, name))) === 0;
    console.log(`${same ? "✔ identical" : "✖ DIFFERENT"}  ${name}`);
    ok &&= same;
  }
} finally {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => p.exited));
  rmSync(work, { recursive: true, force: true });
}
console.log(ok ? "\ndemo ok" : "\ndemo FAILED");
process.exit(ok ? 0 : 1);
