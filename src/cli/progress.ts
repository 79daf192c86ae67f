import type { FileResult, ProgressSink } from "../fetch/fetch-files.ts";
import { humanBytes, humanDuration, humanRate } from "../util/format.ts";
import { escapeControl } from "../util/terminal-text.ts";

interface Row {
  name: string;
  size: number;
  bytes: number;
  startBytes: number;
  startedAt: number;
  done?: FileResult;
}

/**
 * Progress for `ftx fetch` on stderr. On a terminal: live lines per file and a total (bytes, rate,
 * ETA), redrawn in place. Anywhere else: no animation, no carriage returns, no colour — one plain line
 * per finished file.
 */
export class FetchProgress implements ProgressSink {
  private readonly rows = new Map<string, Row>();
  private timer: Timer | undefined;
  private drawnLines = 0;
  private readonly startedAt = performance.now();

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly live: boolean,
    private readonly quiet: boolean,
  ) {
    if (live) this.timer = setInterval(() => this.draw(), 100);
  }

  begin(name: string, size: number, alreadyHave: number): void {
    this.rows.set(name, { name, size, bytes: alreadyHave, startBytes: alreadyHave, startedAt: performance.now() });
  }

  update(name: string, bytes: number): void {
    const row = this.rows.get(name);
    if (row) row.bytes = bytes;
  }

  end(result: FileResult): void {
    const row = this.rows.get(result.name);
    if (row) row.done = result;
    if (this.live || this.quiet) return;
    if (result.ok) {
      const rate = result.seconds > 0 ? ` (${humanRate((result.bytes ?? 0) / result.seconds)})` : "";
      const from = result.servers > 1 ? ` from ${result.servers} servers` : "";
      this.out.write(`fetched ${escapeControl(result.name)}: ${humanBytes(result.bytes ?? 0)} in ${result.seconds.toFixed(2)}s${rate}${from}\n`);
    }
  }

  private line(row: Row, now: number): string {
    const elapsed = (now - row.startedAt) / 1000;
    const rate = elapsed > 0 ? (row.bytes - row.startBytes) / elapsed : 0;
    const pct = row.size > 0 ? Math.floor((100 * row.bytes) / row.size) : 100;
    if (row.done) return `${row.done.ok ? "✔" : "✖"} ${escapeControl(row.name)}  ${row.done.ok ? humanBytes(row.size) : escapeControl(row.done.error ?? "")}`;
    const eta = rate > 0 ? humanDuration((row.size - row.bytes) / rate) : "--:--";
    return `  ${escapeControl(row.name)}  ${String(pct).padStart(3)}%  ${humanBytes(row.bytes)}/${humanBytes(row.size)}  ${humanRate(rate)}  ETA ${eta}`;
  }

  private draw(): void {
    const now = performance.now();
    const rows = [...this.rows.values()];
    const total = rows.reduce((n, r) => n + r.size, 0);
    const done = rows.reduce((n, r) => n + r.bytes, 0);
    const fresh = rows.reduce((n, r) => n + (r.bytes - r.startBytes), 0);
    const elapsed = (now - this.startedAt) / 1000;
    const rate = elapsed > 0 ? fresh / elapsed : 0;
    const eta = rate > 0 ? humanDuration((total - done) / rate) : "--:--";
    const width = this.out.columns !== undefined && this.out.columns >= 40 ? this.out.columns : 120; // a pty may report 0
    const lines = [...rows.map((r) => this.line(r, now)), `total  ${humanBytes(done)}/${humanBytes(total)}  ${humanRate(rate)}  ETA ${eta}`].map((l) => l.slice(0, width - 1));
    let buf = this.drawnLines > 0 ? `\u001b[${this.drawnLines}F` : "";
    for (const l of lines) buf += `\u001b[2K${l}\n`;
    this.out.write(buf);
    this.drawnLines = lines.length;
  }

  stop(): void {
    if (this.timer) {
      clearInterval(this.timer);
      this.draw();
    }
  }
}
