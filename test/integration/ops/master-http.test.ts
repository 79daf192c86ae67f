import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connectToMaster, listFromMaster, type IndexSession } from "../../../src/index/index-client.ts";
import { MasterServer } from "../../../src/index/master-server.ts";
import { MsgType, Role } from "../../../src/index/core/messages.ts";
import { MasterHttp } from "../../../src/ops/master-http.ts";
import { statusFromMaster } from "../../../src/ops/status-client.ts";
import { toLsJson, toReport } from "../../../src/ops/status-report.ts";
import { parsePromText, promValue } from "../../support/prom-text-parser.ts";

const TOKEN = "ops-secret";
const SHA = "d".repeat(64);
const BEARER = { authorization: `Bearer ${TOKEN}` };

async function register(port: number, udpPort: number, files: { name: string; size: number }[]): Promise<IndexSession> {
  const s = await connectToMaster({ host: "127.0.0.1", port }, { role: Role.FileServer, token: TOKEN, timeoutMs: 3000 });
  s.send({ type: MsgType.Announce, host: "127.0.0.1", port: udpPort });
  s.send({ type: MsgType.FilesAdd, files: files.map((f) => ({ ...f, sha256: SHA })) });
  return s;
}

/** Reads server-sent events off a fetch body: `next(name)` waits for the next event of that name. */
function sse(body: ReadableStream<Uint8Array>) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  const queue: Array<{ event: string; data: any; at: number }> = [];
  return {
    async next(event: string, timeoutMs = 2000): Promise<{ data: any; at: number }> {
      const end = performance.now() + timeoutMs;
      for (;;) {
        const i = queue.findIndex((e) => e.event === event);
        if (i >= 0) return queue.splice(i, 1)[0]!;
        const left = end - performance.now();
        if (left <= 0) throw new Error(`no '${event}' event within ${timeoutMs} ms`);
        const chunk = await Promise.race([reader.read(), Bun.sleep(left).then(() => undefined)]);
        if (!chunk || chunk.done) continue;
        buf += decoder.decode(chunk.value, { stream: true });
        for (let cut = buf.indexOf("\n\n"); cut >= 0; cut = buf.indexOf("\n\n")) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const name = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (name && data) queue.push({ event: name, data: JSON.parse(data), at: performance.now() });
        }
      }
    },
    cancel: () => reader.cancel(),
  };
}

describe("master --http (in process, with a token)", () => {
  let master: MasterServer;
  let http: MasterHttp;
  let base: string;
  beforeAll(() => {
    master = MasterServer.start({ host: "127.0.0.1", port: 0, token: TOKEN, heartbeatTimeoutMs: 600 });
    http = MasterHttp.start({ listen: { host: "127.0.0.1", port: 0 }, token: TOKEN, master });
    base = `http://127.0.0.1:${http.port}`;
  });
  afterAll(() => {
    http.stop();
    master.stop();
  });

  test("nothing but the login form is reachable without the token; a wrong token or cookie is refused", async () => {
    const s = await register(master.port, 41001, [{ name: "secret-plans.txt", size: 10 }]);
    try {
      for (const path of ["/", "/?q=secret", "/metrics", "/api/servers", "/api/files", "/events", "/nope"]) {
        const attempts: Array<Record<string, string>> = [{}, { authorization: "Bearer wrong" }, { cookie: "ftx_session=00" }, { authorization: `Basic ${btoa(`x:${TOKEN}`)}` }];
        for (const headers of attempts) {
          const res = await fetch(base + path, { headers });
          const text = await res.text();
          expect({ path, headers, status: res.status }).toEqual({ path, headers, status: 401 });
          expect(text).not.toContain("secret-plans");
          expect(text).not.toContain("41001");
        }
      }
      const wrong = await fetch(`${base}/login`, { method: "POST", body: new URLSearchParams({ token: "wrong" }), redirect: "manual" });
      expect(wrong.status).toBe(401);
      expect(wrong.headers.get("set-cookie")).toBeNull();
      const login = await fetch(`${base}/login`, { method: "POST", body: new URLSearchParams({ token: TOKEN }), redirect: "manual" });
      expect(login.status).toBe(303);
      const cookie = login.headers.get("set-cookie")!;
      expect(cookie).toMatch(/^ftx_session=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Strict$/);
      expect(cookie).not.toContain(TOKEN);
      const page = await fetch(`${base}/`, { headers: { cookie: cookie.split(";")[0]! } });
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("secret-plans.txt");
      expect((await fetch(`${base}/api/servers`, { method: "POST", headers: BEARER })).status).toBe(405);
      expect((await fetch(`${base}/api/files?q=${"x".repeat(1025)}`, { headers: BEARER })).status).toBe(400);
      expect((await fetch(`${base}/api/files?q=${"x".repeat(1024)}`, { headers: BEARER })).status).toBe(200);
    } finally {
      s.close();
    }
  });

  test("/api/servers is status --json's shape and /api/files is ls --json's; status over the index protocol agrees", async () => {
    const a = await register(master.port, 41002, [
      { name: "docs/a.txt", size: 100 },
      { name: "docs/b.txt", size: 20 },
    ]);
    const b = await register(master.port, 41003, [{ name: "docs/a.txt", size: 100 }]);
    try {
      await Bun.sleep(100);
      const servers = (await (await fetch(`${base}/api/servers`, { headers: BEARER })).json()) as any;
      const status = toReport(await statusFromMaster([{ host: "127.0.0.1", port: master.port }], TOKEN));
      expect(servers.servers).toEqual(status.servers);
      expect(servers.servers.map((s: any) => [s.address, s.files, s.bytes])).toEqual([
        ["127.0.0.1:41002", 2, 120],
        ["127.0.0.1:41003", 1, 100],
      ]);
      expect(servers.master.id).toBe(status.master.id);
      expect(servers.master.counters.servers).toBe(2);
      expect(Date.parse(servers.servers[0].connectedSince)).toBeLessThanOrEqual(Date.parse(servers.servers[0].lastHeartbeat));
      const files = (await (await fetch(`${base}/api/files?q=docs/*`, { headers: BEARER })).json()) as any[];
      expect(files).toEqual(toLsJson(await listFromMaster({ host: "127.0.0.1", port: master.port }, "docs/*", TOKEN)));
      expect(files.map((f: any) => [f.name, f.servers])).toEqual([
        ["docs/a.txt", ["127.0.0.1:41002", "127.0.0.1:41003"]],
        ["docs/b.txt", ["127.0.0.1:41002"]],
      ]);
      expect(await (await fetch(`${base}/api/files?q=docs&limit=1`, { headers: BEARER })).json()).toHaveLength(1);
      const page = await (await fetch(`${base}/?q=b.txt`, { headers: BEARER })).text();
      expect(page).toContain("docs/b.txt");
      expect(page).not.toContain("docs/a.txt");
      expect(page).toContain('data-address="127.0.0.1:41003"');
    } finally {
      a.close();
      b.close();
    }
  });

  test("a STATUS without the token is refused like a LIST", async () => {
    await expect(statusFromMaster([{ host: "127.0.0.1", port: master.port }], "wrong")).rejects.toMatchObject({ code: "E_AUTH" });
  });

  test("events: a join, a leave on close and an eviction on silence each arrive within 1 s; /metrics counts them", async () => {
    const res = await fetch(`${base}/events`, { headers: BEARER });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const events = sse(res.body!);
    try {
      await events.next("hello");
      const before = parsePromText(await (await fetch(`${base}/metrics`, { headers: BEARER })).text());
      const t0 = performance.now();
      const s = await register(master.port, 41004, [{ name: "live.txt", size: 5 }]);
      const join = await events.next("join");
      expect(join.data).toMatchObject({ address: "127.0.0.1:41004" });
      expect(join.at - t0).toBeLessThan(1000);
      const update = await events.next("update");
      expect(update.data).toMatchObject({ address: "127.0.0.1:41004", files: 1, bytes: 5 });
      const t1 = performance.now();
      s.close();
      const leave = await events.next("leave");
      expect(leave.data).toMatchObject({ address: "127.0.0.1:41004", reason: "closed" });
      expect(leave.at - t1).toBeLessThan(1000);

      // A server that stops talking is evicted after the 600 ms lease.
      const quiet = await register(master.port, 41005, [{ name: "quiet.txt", size: 1 }]);
      quiet.onClose = () => {};
      expect((await events.next("join")).data.address).toBe("127.0.0.1:41005");
      const evicted = await events.next("leave", 2000);
      expect(evicted.data).toMatchObject({ address: "127.0.0.1:41005", reason: "evicted" });
      quiet.close();
      let counts = await events.next("counts");
      while (counts.data.servers !== 0) counts = await events.next("counts");
      expect(counts.data).toMatchObject({ servers: 0, files: 0 });

      // Lists move lists_total and lists_per_second on the stream.
      for (let i = 0; i < 3; i++) await listFromMaster({ host: "127.0.0.1", port: master.port }, "", TOKEN);
      let listed = await events.next("counts");
      while (listed.data.lists_total < counts.data.lists_total + 3) listed = await events.next("counts");
      expect(listed.data.lists_per_second).toBeGreaterThan(0);

      const after = parsePromText(await (await fetch(`${base}/metrics`, { headers: BEARER })).text());
      const delta = (name: string) => promValue(after, name)! - promValue(before, name)!;
      expect(delta("ftx_master_registrations_total")).toBe(2);
      expect(delta("ftx_master_departures_total")).toBe(1);
      expect(delta("ftx_master_evictions_total")).toBe(1);
      expect(delta("ftx_master_lists_total")).toBe(3);
      expect(promValue(after, "ftx_master_servers")).toBe(0);
      expect(after.get("ftx_master_lists_total")!.type).toBe("counter");
      expect(after.get("ftx_master_connections")!.type).toBe("gauge");
      expect(promValue(after, "ftx_master_http_event_streams")).toBe(1);
    } finally {
      await events.cancel();
    }
  });
});
