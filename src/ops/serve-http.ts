import type { Server } from "bun";
import { formatAddress, unmapIPv4, type HostPort } from "../net/address.ts";
import type { ActiveSession, EndpointEvent } from "../transfer/core/server-endpoint.ts";
import type { FileService } from "../transfer/file-service.ts";
import { humanBytes, humanRate } from "../util/format.ts";
import { authGate, esc, htmlResponse, jsonResponse, page } from "./html.ts";
import { HttpAuth } from "./http-auth.ts";
import { httpUrl, listenHttp } from "./listen-arg.ts";
import { PromWriter, PROM_CONTENT_TYPE, type Sample } from "./prom-text.ts";

/**
 * What the file server has done, beyond the endpoint's own counters: retransmitted and repair bytes of
 * finished sessions (the endpoint reports each session's sender stats when it ends; open sessions are
 * read live), and bytes per client. Fed by FileService.onEvent.
 */
export class ServeTally {
  retransmittedBytes = 0;
  repairBytes = 0;
  private readonly segmentBytesOf = new Map<string, number>();

  onEvent(ev: EndpointEvent): void {
    if (!("sessionId" in ev)) return;
    const key = `${ev.address}|${ev.port}|${ev.sessionId}`;
    if (ev.type === "opened") this.segmentBytesOf.set(key, ev.segmentBytes);
    else if (ev.type === "completed" || ev.type === "failed") {
      const segmentBytes = this.segmentBytesOf.get(key) ?? 0;
      this.segmentBytesOf.delete(key);
      this.retransmittedBytes += ev.stats.retransmitted * segmentBytes;
      this.repairBytes += ev.stats.repairs * segmentBytes;
    } else if (ev.type === "cancelled") this.segmentBytesOf.delete(key);
  }
}

export interface ServeHttpOptions {
  listen: HostPort;
  token?: string;
  service: FileService;
  /** What the page's title says: the folder served. */
  root: string;
}

export interface TransferRow {
  client: string;
  name: string;
  bytes: number;
  ackedBytes: number;
  rateBytesPerSecond: number;
  srttMs: number;
  minRttMs: number;
  retransmitted: number;
  repairs: number;
  ageSeconds: number;
}

/**
 * `ftx serve --http HOST:PORT`: the file server's /metrics (Prometheus text), /api/transfers (JSON) and a
 * page of its active transfers (refreshes itself every 2 s, no script). Behind the token when there is one.
 */
export class ServeHttp {
  private server!: Server<undefined>;
  private readonly auth: HttpAuth;
  readonly tally = new ServeTally();

  private constructor(private readonly opts: ServeHttpOptions) {
    this.auth = new HttpAuth(opts.token);
    opts.service.onEvent = (ev) => this.tally.onEvent(ev);
  }

  static start(opts: ServeHttpOptions): ServeHttp {
    const http = new ServeHttp(opts);
    http.server = listenHttp(opts.listen, (req) => http.handle(req));
    return http;
  }

  get port(): number {
    return this.server.port!;
  }

  get url(): string {
    return httpUrl(this.opts.listen, this.port);
  }

  stop(): void {
    this.opts.service.onEvent = undefined;
    this.server.stop(true);
  }

  private async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const gate = await authGate(req, url, this.auth, "ftx serve");
    if (gate) return gate;
    if (req.method !== "GET" && req.method !== "HEAD") return new Response("read-only\n", { status: 405, headers: { allow: "GET, HEAD" } });
    switch (url.pathname) {
      case "/":
        return htmlResponse(this.renderPage());
      case "/api/transfers":
        return jsonResponse(this.transfers());
      case "/metrics":
        return new Response(this.metrics(), { headers: { "content-type": PROM_CONTENT_TYPE } });
      default:
        return new Response("not found\n", { status: 404 });
    }
  }

  transfers(): TransferRow[] {
    const now = performance.now();
    return this.opts.service.activeSessions().map((s) => toRow(s, now));
  }

  private metrics(): string {
    const c = this.opts.service.counters;
    const active = this.opts.service.activeSessions();
    let retransmitted = this.tally.retransmittedBytes;
    let repair = this.tally.repairBytes;
    const perClient = new Map<string, { sessions: number; rate: number; srttMs: number; minRttMs: number }>();
    for (const s of active) {
      retransmitted += s.stats.retransmitted * s.segmentBytes;
      repair += s.stats.repairs * s.segmentBytes;
      const client = formatAddress(unmapIPv4(s.address), s.port);
      const p = perClient.get(client) ?? { sessions: 0, rate: 0, srttMs: 0, minRttMs: Infinity };
      p.sessions++;
      p.rate += rateOf(s);
      p.srttMs = Math.max(p.srttMs, s.stats.srttMs);
      if (s.stats.minRttMs > 0) p.minRttMs = Math.min(p.minRttMs, s.stats.minRttMs);
      perClient.set(client, p);
    }
    const each = (f: (p: { sessions: number; rate: number; srttMs: number; minRttMs: number }) => number): Sample[] =>
      [...perClient].map(([client, p]) => ({ labels: { client }, value: f(p) }));
    return new PromWriter()
      .gauge("ftx_serve_sessions", "Transfer sessions open now.", active.length)
      .counter("ftx_serve_sessions_total", "Transfer sessions accepted.", c.sessions)
      .counter("ftx_serve_sessions_completed_total", "Sessions that delivered everything.", c.completed)
      .counter("ftx_serve_sessions_failed_total", "Sessions that ended without delivering everything.", c.failed)
      .gauge("ftx_serve_sessions_peak", "Most sessions open at once.", c.peakConcurrent)
      .counter("ftx_serve_dropped_datagrams_total", "Datagrams that failed validation.", c.dropped)
      .counter("ftx_serve_sent_bytes_total", "DATA bytes handed to the socket.", c.bytesSent)
      .counter("ftx_serve_retransmitted_bytes_total", "DATA bytes sent again (segments × segment size).", retransmitted)
      .counter("ftx_serve_repair_bytes_total", "REPAIR (FEC) bytes sent (datagrams × segment size).", repair)
      .gauge("ftx_serve_client_sessions", "Open sessions per client address.", each((p) => p.sessions))
      .gauge("ftx_serve_client_rate_bytes_per_second", "Delivery rate per client (the rate controller's bandwidth estimate, summed over its sessions).", each((p) => p.rate))
      .gauge("ftx_serve_client_srtt_seconds", "Smoothed round-trip time of the path to each client (the largest of its sessions').", each((p) => p.srttMs / 1000))
      .gauge("ftx_serve_client_min_rtt_seconds", "Smallest round-trip time seen on the path to each client.", each((p) => (Number.isFinite(p.minRttMs) ? p.minRttMs / 1000 : 0)))
      .text();
  }

  private renderPage(): string {
    const rows = this.transfers();
    const c = this.opts.service.counters;
    const body =
      `<h1>ftx serve <code>${esc(this.opts.root)}</code></h1>` +
      `<p class="muted">refreshes every 2 s · <a href="/metrics">metrics</a> · <a href="/api/transfers">transfers JSON</a></p>` +
      `<section class="counts"><div>open<b id="c-sessions">${rows.length}</b></div><div>sessions<b>${c.sessions}</b></div><div>completed<b>${c.completed}</b></div>` +
      `<div>failed<b>${c.failed}</b></div><div>sent<b>${esc(humanBytes(c.bytesSent))}</b></div></section>` +
      `<h2>Active transfers</h2>` +
      (rows.length === 0
        ? `<p class="muted" id="none">no transfer open</p>`
        : `<table><thead><tr><th>client</th><th>file</th><th class="n">done</th><th class="n">rate</th><th class="n">srtt</th><th class="n">resent</th><th class="n">repairs</th></tr></thead><tbody id="transfers">` +
          rows
            .map(
              (r) =>
                `<tr><td>${esc(r.client)}</td><td>${esc(r.name)}</td><td class="n">${esc(humanBytes(r.ackedBytes))} / ${esc(humanBytes(r.bytes))}</td>` +
                `<td class="n">${esc(humanRate(r.rateBytesPerSecond))}</td><td class="n">${r.srttMs.toFixed(1)} ms</td><td class="n">${r.retransmitted}</td><td class="n">${r.repairs}</td></tr>`,
            )
            .join("") +
          `</tbody></table>`);
    return page("ftx serve", body).replace("<head>", `<head><meta http-equiv="refresh" content="2">`);
  }
}

/** The rate controller's bandwidth estimate is in segments per ms. */
function rateOf(s: ActiveSession): number {
  return s.stats.bandwidth * s.segmentBytes * 1000;
}

function toRow(s: ActiveSession, nowMs: number): TransferRow {
  const bytes = s.end - s.offset;
  return {
    client: formatAddress(unmapIPv4(s.address), s.port),
    name: s.pieceHashes ? `${s.name} (piece hashes)` : s.name,
    bytes,
    ackedBytes: Math.min(bytes, s.stats.acked * s.segmentBytes),
    rateBytesPerSecond: rateOf(s),
    srttMs: s.stats.srttMs,
    minRttMs: s.stats.minRttMs,
    retransmitted: s.stats.retransmitted,
    repairs: s.stats.repairs,
    ageSeconds: (nowMs - s.createdAt) / 1000,
  };
}
