/**
 * `bun bench/ops-cost.ts [--before CLI.ts] [--servers N]`: what the operators' view costs the index.
 * Starts masters as real processes, registers N file servers × 100 files through the real protocol,
 * then measures, in alternating rounds:
 *   - ls latency: a LIST of one server's 100 files (of N × 100), round trip on a fresh connection
 *   - heartbeat handling: a PING from every server, until all N PONGs are back
 *   - page load: GET / (with --http)
 * for (a) this tree's master without --http, (b) with --http and nobody watching, (c) with --http and a
 * browser-like event stream open,
 * and, given `--before PATH/src/cli.ts` (a checkout without the operators' hooks), (d) that master.
 * Medians; a shared machine is noisy, so rounds alternate between the masters.
 */
import { connectToMaster, listFromMaster, type IndexSession } from "../src/index/index-client.ts";
import { MsgType, Role } from "../src/index/core/messages.ts";
import { waitForStderr } from "./process-lines.ts";
import { median } from "./lib/measure.ts";

const argv = process.argv.slice(2);
const before = argv.includes("--before") ? argv[argv.indexOf("--before") + 1] : undefined;
const servers = argv.includes("--servers") ? Number(argv[argv.indexOf("--servers") + 1]) : 1000;
const FILES_EACH = 100;
const ROUNDS = 5;
const SHA = "ab".repeat(32);
const CLI = new URL("../src/cli.ts", import.meta.url).pathname;

interface Subject {
  name: string;
  proc: ReturnType<typeof Bun.spawn>;
  port: number;
  httpUrl?: string;
  sessions: IndexSession[];
  ls: number[];
  beat: number[];
  page: number[];
}

async function start(name: string, cli: string, http: boolean, watch = http): Promise<Subject> {
  const proc = Bun.spawn(["bun", cli, "master", "--host", "127.0.0.1", "--port", "0", "--heartbeat-timeout", "60", "--max-connections", "20000", ...(http ? ["--http", "127.0.0.1:0"] : [])], {
    stdout: "ignore",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1" },
  });
  const lines = await waitForStderr(proc.stderr as ReadableStream<Uint8Array>, http ? /web view on (http:\S+)/ : /listening on 127\.0\.0\.1:(\d+)/);
  const text = lines.input ?? "";
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(text)![1]);
  const httpUrl = http ? /web view on (http:\S+)/.exec(text)![1] : undefined;
  const sessions: IndexSession[] = [];
  for (let batch = 0; batch < servers; batch += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, servers - batch) }, async (_, k) => {
        const i = batch + k;
        const s = await connectToMaster({ host: "127.0.0.1", port }, { role: Role.FileServer, timeoutMs: 10_000 });
        s.send({ type: MsgType.Announce, host: "127.0.0.1", port: 10_000 + i });
        s.send({ type: MsgType.FilesAdd, files: Array.from({ length: FILES_EACH }, (_, j) => ({ name: `server-${i}/dir/file-${j}.dat`, size: j * 1000, sha256: SHA })) });
        sessions.push(s);
      }),
    );
  }
  while ((await listFromMaster({ host: "127.0.0.1", port }, `server-${servers - 1}/`, undefined)).length < FILES_EACH) await Bun.sleep(100);
  if (httpUrl && watch) {
    // A watcher, as a browser keeps one: the event stream open for the whole run.
    const res = await fetch(`${httpUrl}events`);
    const reader = res.body!.getReader();
    void (async () => {
      while (!(await reader.read()).done);
    })().catch(() => {});
  }
  return { name, proc, port, httpUrl, sessions, ls: [], beat: [], page: [] };
}

async function round(s: Subject): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await listFromMaster({ host: "127.0.0.1", port: s.port }, "server-5/", undefined);
    s.ls.push(performance.now() - t);
  }
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    await Promise.all(
      s.sessions.map(
        (session) =>
          new Promise<void>((resolve) => {
            session.onMessage = (m) => {
              if (m.type === MsgType.Pong) resolve();
            };
            session.send({ type: MsgType.Ping, seq: 1 });
          }),
      ),
    );
    s.beat.push(performance.now() - t);
  }
  if (s.httpUrl) {
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      await (await fetch(s.httpUrl)).text();
      s.page.push(performance.now() - t);
    }
  }
}

const subjects: Subject[] = [];
try {
  if (before) subjects.push(await start("before (no operators' view)", before, false));
  subjects.push(await start("this tree, no --http", CLI, false));
  subjects.push(await start("this tree, --http, unwatched", CLI, true, false));
  subjects.push(await start("this tree, --http + a watcher", CLI, true));
  for (let r = 0; r < ROUNDS; r++) for (const s of subjects) await round(s);
  console.log(`${servers} servers × ${FILES_EACH} files; medians of ${ROUNDS} alternating rounds`);
  for (const s of subjects)
    console.log(
      `  ${s.name.padEnd(32)} ls ${median(s.ls).toFixed(2)} ms · ${servers} heartbeats answered in ${median(s.beat).toFixed(1)} ms` + (s.page.length ? ` · page ${median(s.page).toFixed(1)} ms` : ""),
    );
} finally {
  for (const s of subjects) {
    for (const session of s.sessions) session.close();
    s.proc.kill("SIGKILL");
  }
}
process.exit(0);
