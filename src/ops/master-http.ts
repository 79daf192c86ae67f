import type { Server } from "bun";
import { MAX_PATTERN_BYTES } from "../index/core/messages.ts";
import type { MasterServer } from "../index/master-server.ts";
import { silentLogger, type Logger } from "../log.ts";
import type { HostPort } from "../net/address.ts";
import { humanBytes } from "../util/format.ts";
import { esc, htmlResponse, jsonResponse, page, authGate } from "./html.ts";
import { HttpAuth } from "./http-auth.ts";
import { httpUrl, listenHttp } from "./listen-arg.ts";
import type { ObserverEvent } from "./master-observer.ts";
import { PromWriter, PROM_CONTENT_TYPE } from "./prom-text.ts";
import { buildStatus, toLsJson, toReport, type StatusReport } from "./status-report.ts";

export interface MasterHttpOptions {
  listen: HostPort;
  token?: string;
  master: MasterServer;
  logger?: Logger;
}

/** The page lists at most this many files; the search narrows them (the API has no such limit). */
const PAGE_FILES = 100;
/**
 * And at most this many servers (by address; a filter narrows them). A browser takes ~0.5 s to lay out a
 * table of 1,000 rows on a busy 2-core machine, against ~0.1 s for 100: the whole list is /api/servers.
 */
const PAGE_SERVERS = 100;
/** Count updates go out at most this often, however busy the master is (joins and leaves go at once). */
const COUNTS_EVERY_MS = 250;
/** A comment line this often keeps proxies and Bun's idle timeout from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;
/** `lists per second` is the count over this window. */
const RATE_WINDOW_MS = 5000;

type Row = StatusReport["servers"][number] & { peerId?: number };

/**
 * `ftx master --http HOST:PORT`: a read-only view of the index (Bun.serve, no framework).
 *   GET /              the page: counts, servers, files (search with ?q=, a plain GET form), live through /events
 *   GET /events        server-sent events: `hello` (servers now), `join`, `leave`, `update` (a server's files), `counts`
 *   GET /api/servers   `ftx status --json`'s shape
 *   GET /api/files     `ftx ls --json`'s shape (`?q=PATTERN`, `&limit=N`)
 *   GET /metrics       Prometheus text format
 * Everything but the login form is behind the token when the master has one.
 */
export class MasterHttp {
  private server!: Server<undefined>;
  private readonly auth: HttpAuth;
  private readonly logger: Logger;
  private readonly master: MasterServer;
  private readonly streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  private unsubscribe: (() => void) | undefined;
  private countsTimer: Timer | undefined;
  private keepalive: Timer | undefined;
  private readonly dirtyServers = new Set<number>();
  /** (time, lists_total) samples for the lists-per-second rate. */
  private readonly listSamples: Array<[number, number]> = [];
  private readonly encoder = new TextEncoder();

  private constructor(private readonly opts: MasterHttpOptions) {
    this.auth = new HttpAuth(opts.token);
    this.logger = opts.logger ?? silentLogger;
    this.master = opts.master;
  }

  static start(opts: MasterHttpOptions): MasterHttp {
    const http = new MasterHttp(opts);
    http.server = listenHttp(opts.listen, (req, server) => http.handle(req, server), 30);
    return http;
  }

  get port(): number {
    return this.server.port!;
  }

  get url(): string {
    return httpUrl(this.opts.listen, this.port);
  }

  stop(): void {
    this.detach();
    for (const c of this.streams) closeQuietly(c);
    this.streams.clear();
    this.server.stop(true);
  }

  private async handle(req: Request, server: Server<undefined>): Promise<Response> {
    const url = new URL(req.url);
    const gate = await authGate(req, url, this.auth, "ftx master");
    if (gate) return gate;
    if (req.method !== "GET" && req.method !== "HEAD") return new Response("read-only\n", { status: 405, headers: { allow: "GET, HEAD" } });
    // The same bound as a LIST's pattern on the index protocol.
    for (const key of ["q", "s"]) if (Buffer.byteLength(url.searchParams.get(key) ?? "") > MAX_PATTERN_BYTES) return new Response(`${key}: longer than ${MAX_PATTERN_BYTES} bytes\n`, { status: 400 });
    switch (url.pathname) {
      case "/":
        return htmlResponse(this.renderPage(url.searchParams.get("q") ?? "", url.searchParams.get("s") ?? ""));
      case "/events":
        server.timeout(req, 0);
        this.logger.debug(`web view: event stream opened (${this.streams.size + 1} open)`);
        return this.openStream();
      case "/api/servers":
        return jsonResponse(this.report());
      case "/api/files": {
        const limit = Number(url.searchParams.get("limit") ?? Infinity);
        return jsonResponse(toLsJson(this.files(url.searchParams.get("q") ?? "", Number.isFinite(limit) && limit >= 0 ? limit : Infinity).entries));
      }
      case "/metrics":
        return new Response(this.metrics(), { headers: { "content-type": PROM_CONTENT_TYPE } });
      default:
        return new Response("not found\n", { status: 404 });
    }
  }

  // ---- reading the index ----------------------------------------------------------------------

  private report(): StatusReport {
    return toReport(buildStatus(this.master.index, this.master.observer, this.master.connectionCount));
  }

  /** Matching entries, at most `limit` (whole names: a name's contents are not split), and how many names matched in all. */
  private files(pattern: string, limit: number) {
    const index = this.master.index;
    const { names, matched } = Number.isFinite(limit) ? index.firstNames(pattern, limit) : { names: index.matchingNames(pattern), matched: -1 };
    const entries = [];
    for (const name of names) {
      if (entries.length >= limit) break;
      for (const e of index.entriesFor(name)) entries.push(e);
    }
    return { entries: entries.slice(0, limit), matched: matched < 0 ? names.length : matched };
  }

  /**
   * The live counts. Files and bytes come from `sizes`, one entry per server kept current from the
   * observer's events while anyone watches (a server's entry is recomputed only when its list changed),
   * so a count update costs a sum over servers, not a walk over every file.
   */
  private counts(nowMs: number): Record<string, number> {
    const c = this.master.observer.counters;
    let files = 0;
    let bytes = 0;
    for (const s of this.sizes.values()) {
      files += s.files;
      bytes += s.bytes;
    }
    return {
      connections: this.master.connectionCount,
      servers: this.master.observer.serverCount,
      files,
      bytes,
      lists_total: c.listsTotal,
      lists_per_second: this.listRate(nowMs),
      registrations_total: c.registrationsTotal,
      evictions_total: c.evictionsTotal,
      departures_total: c.departuresTotal,
    };
  }

  private readonly sizes = new Map<number, { files: number; bytes: number }>();

  private resize(peerId: number): Row | undefined {
    const row = this.rowOf(peerId);
    if (row) this.sizes.set(peerId, { files: row.files, bytes: row.bytes });
    else this.sizes.delete(peerId);
    return row;
  }

  private listRate(nowMs: number): number {
    const total = this.master.observer.counters.listsTotal;
    const samples = this.listSamples;
    samples.push([nowMs, total]);
    while (samples.length > 2 && samples[1]![0] <= nowMs - RATE_WINDOW_MS) samples.shift();
    const [t0, n0] = samples[0]!;
    const spanMs = Math.max(1000, nowMs - t0);
    return Math.round(((total - n0) * 1000 * 10) / spanMs) / 10;
  }

  private metrics(): string {
    const r = buildStatus(this.master.index, this.master.observer, this.master.connectionCount);
    const c = Object.fromEntries(r.counters.map((x) => [x.name, x.value]));
    const now = Date.now();
    const w = new PromWriter()
      .gauge("ftx_master_connections", "TCP connections open now (file servers and clients).", c.connections!)
      .gauge("ftx_master_servers", "File servers in the index (this master's and, with a shared store, the others').", c.servers!)
      .gauge("ftx_master_files", "Files in the index, counted per server.", c.files!)
      .gauge("ftx_master_bytes", "Bytes of the files in the index, counted per server.", c.bytes!)
      .gauge("ftx_master_stale", "1 while the shared store is unreachable.", c.stale!)
      .gauge("ftx_master_start_time_seconds", "When this master started (Unix time).", r.startedAtMs / 1000)
      .counter("ftx_master_connections_total", "Connections accepted.", c.connections_total!)
      .counter("ftx_master_lists_total", "LIST requests answered.", c.lists_total!)
      .counter("ftx_master_status_total", "STATUS requests answered.", c.status_total!)
      .counter("ftx_master_registrations_total", "File servers registered.", c.registrations_total!)
      .counter("ftx_master_evictions_total", "File servers dropped for silence.", c.evictions_total!)
      .counter("ftx_master_departures_total", "File servers that left (connection closed).", c.departures_total!)
      .gauge("ftx_master_http_event_streams", "Browsers following /events.", this.streams.size);
    const mine = r.servers.filter((s) => s.lastHeartbeatMs > 0);
    w.gauge("ftx_master_server_files", "Files of one file server.", r.servers.map((s) => ({ labels: { server: s.address, master: s.master }, value: s.files })));
    w.gauge("ftx_master_server_bytes", "Bytes of one file server's files.", r.servers.map((s) => ({ labels: { server: s.address, master: s.master }, value: s.bytes })));
    w.gauge(
      "ftx_master_server_heartbeat_age_seconds",
      "Seconds since this master last heard from one of its file servers.",
      mine.map((s) => ({ labels: { server: s.address }, value: Math.max(0, now - s.lastHeartbeatMs) / 1000 })),
    );
    return w.text();
  }

  // ---- the page -------------------------------------------------------------------------------

  private renderPage(q: string, serverFilter: string): string {
    const report = this.report();
    const counts: Record<string, number> = { ...report.master.counters, lists_per_second: this.listRate(Date.now()) };
    const peerOf = new Map<string, number>();
    for (const p of this.master.observer.servers()) peerOf.set(p.address, p.peerId);
    const needle = serverFilter.toLowerCase();
    const matching = needle === "" ? report.servers : report.servers.filter((s) => s.address.toLowerCase().includes(needle) || s.master.includes(needle));
    const rows: Row[] = matching.slice(0, PAGE_SERVERS).map((s) => ({ ...s, peerId: s.master === report.master.id ? peerOf.get(s.address) : undefined }));
    // Joins are added live only when the table holds every server (no filter, not cut at PAGE_SERVERS).
    const complete = needle === "" && matching.length <= PAGE_SERVERS;
    const { entries, matched } = this.files(q, PAGE_FILES);
    const count = (key: string, label: string, text?: string) => `<div>${esc(label)}<b id="c-${key}">${esc(text ?? String(counts[key] ?? 0))}</b></div>`;
    const body =
      `<h1>ftx master <code>${esc(report.master.id)}</code></h1>` +
      `<p class="muted">up since ${esc(report.master.startedAt)} · <span id="live">static view</span> · <a href="/metrics">metrics</a> · <a href="/api/servers">servers JSON</a> · <a href="/api/files">files JSON</a></p>` +
      `<section class="counts">${count("connections", "connections")}${count("servers", "file servers")}${count("files", "files")}${count("bytes", "bytes", humanBytes(counts.bytes!))}` +
      `${count("lists_per_second", "lists / s")}${count("lists_total", "lists")}${count("registrations_total", "registrations")}${count("evictions_total", "evictions")}</section>` +
      `<h2>File servers</h2><table><thead><tr><th>server</th><th class="n">files</th><th class="n">bytes</th><th>connected since</th><th>last heard</th><th>master</th></tr></thead>` +
      `<tbody id="servers" data-complete="${complete ? 1 : 0}" data-limit="${PAGE_SERVERS}">${rows.map(serverRow).join("")}</tbody></table>` +
      `<p class="muted" id="servers-note">${complete ? "" : `${rows.length} of ${matching.length} server(s) shown${needle ? ` matching “${esc(serverFilter)}”` : ""}: all of them in <a href="/api/servers">/api/servers</a>`}</p>` +
      `<form method="get" action="/"><input name="s" type="search" value="${esc(serverFilter)}" placeholder="filter servers by address or master" size="40"><input type="hidden" name="q" value="${esc(q)}"> <button>Filter</button></form>` +
      `<h2>Files</h2><form method="get" action="/" role="search"><input id="q" name="q" type="search" value="${esc(q)}" placeholder="glob (* ? [) or part of a name" size="40"><input type="hidden" name="s" value="${esc(serverFilter)}"> <button>Search</button></form>` +
      `<p class="muted" id="files-note">${filesNote(entries.length, matched)}</p>` +
      `<table><thead><tr><th>name</th><th class="n">size</th><th>sha256</th><th>servers</th></tr></thead><tbody id="files">${entries.map(fileRow).join("")}</tbody></table>`;
    return page("ftx master", body, PAGE_SCRIPT);
  }

  // ---- live updates ---------------------------------------------------------------------------

  private openStream(): Response {
    let me: ReadableStreamDefaultController<Uint8Array>;
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        me = controller;
        this.streams.add(controller);
        this.attach();
        const servers = [...this.master.observer.servers()].map((p) => this.resize(p.peerId)).filter((r) => r !== undefined);
        this.sendTo(controller, "hello", { servers, counts: this.counts(Date.now()) });
      },
      cancel: () => {
        this.streams.delete(me);
        if (this.streams.size === 0) this.detach();
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no" } });
  }

  /** Listen to the master only while someone is watching: with no browser open, the hooks cost a size check. */
  private attach(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.master.observer.subscribe((ev) => this.onEvent(ev));
    this.sizes.clear();
    for (const p of this.master.observer.servers()) this.resize(p.peerId);
    this.keepalive = setInterval(() => this.broadcastRaw(": keepalive\n\n"), KEEPALIVE_MS);
    // The rate decays when nothing happens: refresh the counts once a second as long as anyone watches.
    this.countsTimer = setInterval(() => this.flushCounts(), 1000);
  }

  private detach(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.sizes.clear();
    clearInterval(this.keepalive);
    clearInterval(this.countsTimer);
    clearTimeout(this.pendingCounts);
    this.pendingCounts = undefined;
  }

  private pendingCounts: Timer | undefined;
  private lastCountsAt = 0;

  private onEvent(ev: ObserverEvent): void {
    switch (ev.type) {
      case "join": {
        const row = this.resize(ev.server.peerId) ?? { address: ev.server.address, files: 0, bytes: 0, connectedSince: iso(ev.server.connectedSinceMs), lastHeartbeat: iso(ev.server.lastHeartbeatMs), master: this.masterId(), peerId: ev.server.peerId };
        this.broadcast("join", row);
        break;
      }
      case "leave":
        this.dirtyServers.delete(ev.peerId);
        this.sizes.delete(ev.peerId);
        this.broadcast("leave", { peerId: ev.peerId, address: ev.address, reason: ev.reason });
        break;
      case "files":
        this.dirtyServers.add(ev.peerId);
        this.scheduleCounts();
        break;
      case "counts":
        this.scheduleCounts();
        break;
    }
  }

  private scheduleCounts(): void {
    if (this.pendingCounts) return;
    const wait = Math.max(0, this.lastCountsAt + COUNTS_EVERY_MS - performance.now());
    this.pendingCounts = setTimeout(() => {
      this.pendingCounts = undefined;
      this.flushCounts();
    }, wait);
  }

  private flushCounts(): void {
    this.lastCountsAt = performance.now();
    for (const peerId of this.dirtyServers) {
      const row = this.resize(peerId);
      if (row) this.broadcast("update", row);
    }
    this.dirtyServers.clear();
    this.broadcast("counts", this.counts(Date.now()));
  }

  private masterId(): string {
    return this.master.index.masterId ?? this.master.observer.localId;
  }

  private rowOf(peerId: number): Row | undefined {
    const p = this.master.observer.server(peerId);
    const s = this.master.index.serverSummary(peerId);
    if (!p || !s) return undefined;
    return { peerId, address: s.address, files: s.files, bytes: s.bytes, connectedSince: iso(p.connectedSinceMs), lastHeartbeat: iso(p.lastHeartbeatMs), master: this.masterId() };
  }

  private broadcast(event: string, data: unknown): void {
    if (this.streams.size === 0) return;
    this.broadcastRaw(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private broadcastRaw(text: string): void {
    const bytes = this.encoder.encode(text);
    for (const c of this.streams) {
      try {
        c.enqueue(bytes);
      } catch {
        this.streams.delete(c);
      }
    }
  }

  private sendTo(c: ReadableStreamDefaultController<Uint8Array>, event: string, data: unknown): void {
    c.enqueue(this.encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
  }
}

function closeQuietly(c: ReadableStreamDefaultController<Uint8Array>): void {
  try {
    c.close();
  } catch {}
}

const iso = (ms: number): string | null => (ms > 0 ? new Date(ms).toISOString() : null);

function serverRow(s: Row): string {
  const id = s.peerId === undefined ? "" : ` id="s-${s.peerId}"`;
  return (
    `<tr${id} data-address="${esc(s.address)}" data-sig="${s.files}/${s.bytes}"><td>${esc(s.address)}</td><td class="n">${s.files}</td><td class="n">${esc(humanBytes(s.bytes))}</td>` +
    `<td>${esc(s.connectedSince ?? "-")}</td><td>${esc(s.lastHeartbeat ?? "-")}</td><td><code>${esc(s.master)}</code></td></tr>`
  );
}

function fileRow(e: { name: string; size: number; sha256: string; servers: string[] }): string {
  return `<tr><td>${esc(e.name)}</td><td class="n">${esc(humanBytes(e.size))}</td><td><code>${esc(e.sha256.slice(0, 16))}</code></td><td>${esc(e.servers.join(", "))}</td></tr>`;
}

function filesNote(shown: number, matched: number): string {
  return matched === 0 ? "no files match" : shown < matched ? `first ${shown} of ${matched} names: search to narrow` : `${matched} name(s)`;
}

/**
 * The page's only script: follow /events (counts, servers joining, leaving, changing) and search files
 * as one types through /api/files. Without it the page still shows everything as of its load, and the
 * search form works as a plain GET.
 */
const PAGE_SCRIPT = `
(() => {
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
  const human = (n) => { if (n < 1024) return n + " B"; const u = ["B","KiB","MiB","GiB","TiB","PiB"]; let v = n, i = 0; while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; } return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + " " + u[i]; };
  const row = (s) => '<tr id="s-' + s.peerId + '" data-address="' + esc(s.address) + '" data-sig="' + s.files + '/' + s.bytes + '"><td>' + esc(s.address) + '</td><td class="n">' + s.files + '</td><td class="n">' + esc(human(s.bytes)) + '</td><td>' + esc(s.connectedSince || "-") + '</td><td>' + esc(s.lastHeartbeat || "-") + '</td><td><code>' + esc(s.master) + '</code></td></tr>';
  const table = $("servers");
  const put = (s) => {
    const old = $("s-" + s.peerId);
    if (old) { if (old.dataset.sig !== s.files + "/" + s.bytes) old.outerHTML = row(s); }
    else if (table.dataset.complete === "1") {
      table.insertAdjacentHTML("beforeend", row(s));
      if (table.rows.length > Number(table.dataset.limit)) table.dataset.complete = "0";
    }
  };
  const counts = (c) => { for (const [k, v] of Object.entries(c)) { const el = $("c-" + k); if (el) el.textContent = k === "bytes" ? human(v) : String(v); } };
  const es = new EventSource("/events");
  es.addEventListener("open", () => { $("live").textContent = "live"; });
  es.addEventListener("error", () => { $("live").textContent = "reconnecting…"; });
  es.addEventListener("hello", (e) => {
    const d = JSON.parse(e.data);
    const live = new Set(d.servers.map((s) => "s-" + s.peerId));
    for (const tr of [...$("servers").querySelectorAll("tr[id]")]) if (!live.has(tr.id)) tr.remove();
    d.servers.forEach(put); counts(d.counts);
  });
  es.addEventListener("join", (e) => put(JSON.parse(e.data)));
  es.addEventListener("update", (e) => put(JSON.parse(e.data)));
  es.addEventListener("leave", (e) => { const el = $("s-" + JSON.parse(e.data).peerId); if (el) el.remove(); });
  es.addEventListener("counts", (e) => counts(JSON.parse(e.data)));
  let timer, seq = 0;
  $("q").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 150); });
  async function search() {
    const q = $("q").value, mine = ++seq;
    const res = await fetch("/api/files?limit=${PAGE_FILES}&q=" + encodeURIComponent(q));
    if (!res.ok || mine !== seq) return;
    const files = await res.json();
    $("files").innerHTML = files.map((f) => '<tr><td>' + esc(f.name) + '</td><td class="n">' + esc(human(f.size)) + '</td><td><code>' + esc(f.sha256.slice(0, 16)) + '</code></td><td>' + esc(f.servers.join(", ")) + '</td></tr>').join("");
    $("files-note").textContent = files.length === 0 ? "no files match" : files.length + " shown";
    history.replaceState(null, "", q ? "/?q=" + encodeURIComponent(q) : "/");
  }
})();
`;
