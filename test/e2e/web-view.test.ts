import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import puppeteer, { type Browser } from "puppeteer-core";
import { REPO, runFtx, startMaster, startServer, stopAll, tempDir } from "../support/ftx-process.ts";
import { parsePromText, promValue } from "../support/prom-text-parser.ts";

/**
 * The operators' view end to end: real `ftx master --http` and `ftx serve --http` processes, a real
 * headless Chromium (Debian's, installed by scripts/setup.sh) driven by puppeteer-core. The screenshot
 * is kept in test-artifacts/ (gitignored).
 */
/** The page's own globals, in the functions puppeteer runs there (the project's types have no DOM). */
declare const document: any;

const TOKEN = "web-view-secret";
const ARTIFACTS = join(REPO, "test-artifacts");
let browser: Browser | undefined;

afterAll(async () => {
  await browser?.close();
  await stopAll();
});

function chromiumPath(): string {
  const path = Bun.which("chromium") ?? Bun.which("chromium-browser");
  if (!path) throw new Error("chromium is not installed: run scripts/setup.sh");
  return path;
}

describe("web view in a real browser", () => {
  test("sign in; a server that joins shows, a file is found by search, the server drops when it dies; status and serve --http agree", async () => {
    const { master, address } = await startMaster(["--token", TOKEN, "--http", "127.0.0.1:0"]);
    const base = (await master.waitFor(/web view on (http:\/\/127\.0\.0\.1:\d+\/)/))[1]!;
    browser = await puppeteer.launch({ executablePath: chromiumPath(), headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 800 });

    // Without the token: the login form, and nothing else.
    const first = await page.goto(base);
    expect(first!.status()).toBe(401);
    expect(await page.$("#servers")).toBeNull();
    await page.type("input[name=token]", TOKEN);
    await Promise.all([page.waitForNavigation(), page.click("button")]);
    await page.waitForFunction(() => document.getElementById("live")?.textContent === "live", { timeout: 5000 });
    expect(await page.$$eval("#servers tr", (rows) => rows.length)).toBe(0);

    // A file server joins: its row appears within 1 s of the master knowing it.
    const dir = tempDir();
    mkdirSync(join(dir.path, "reports"));
    writeFileSync(join(dir.path, "reports/needle-2026.txt"), "find me");
    writeFileSync(join(dir.path, "haystack.bin"), new Uint8Array(300_000).fill(7));
    const { server, udpPort } = await startServer(dir.path, address, ["--token", TOKEN, "--http", "127.0.0.1:0"]);
    const row = `#servers tr[data-address="127.0.0.1:${udpPort}"]`;
    const [knownAt, shownAt] = await Promise.all([
      master.waitFor(new RegExp(`registered, serving at 127\\.0\\.0\\.1:${udpPort}`)).then(() => performance.now()),
      page.waitForSelector(row, { timeout: 5000 }).then(() => performance.now()),
    ]);
    expect(shownAt - knownAt).toBeLessThan(1000);
    await page.waitForFunction((sel: string) => document.querySelector(sel)?.children[1]?.textContent === "2", { timeout: 5000 }, row);
    await page.waitForFunction(() => document.getElementById("c-servers")?.textContent === "1", { timeout: 1000 });

    // Search as one types (the script asks /api/files).
    await page.type("#q", "needle");
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("#files tr")] as Array<{ textContent: string }>;
      return rows.length === 1 && rows[0]!.textContent.includes("reports/needle-2026.txt");
    }, { timeout: 5000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "master-web-view.png"), fullPage: true });

    // The static page works without JavaScript: the search is a plain GET form.
    const cookies = await browser.cookies();
    expect(cookies.map((c) => c.name)).toContain("ftx_session");
    const noJs = await browser.newPage();
    await noJs.setJavaScriptEnabled(false);
    await noJs.goto(`${base}?q=haystack`);
    const staticFiles = await noJs.$$eval("#files tr", (rows) => rows.map((r) => r.children[0]!.textContent));
    expect(staticFiles).toEqual(["haystack.bin"]);
    expect(await noJs.$(row)).not.toBeNull();
    await noJs.close();

    // ftx status sees the same server as the page's API.
    const status = await runFtx(["status", address, "--json", "--token", TOKEN]);
    expect(status.exitCode).toBe(0);
    const report = JSON.parse(status.stdout);
    expect(report.servers.map((s: { address: string; files: number; bytes: number }) => [s.address, s.files, s.bytes])).toEqual([[`127.0.0.1:${udpPort}`, 2, 300_007]]);
    const api = (await (await fetch(`${base}api/servers`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as typeof report;
    expect(Object.keys(api)).toEqual(Object.keys(report));
    expect(api.servers.map((s: { address: string }) => s.address)).toEqual([`127.0.0.1:${udpPort}`]);
    const text = await runFtx(["status", address, "--token", TOKEN]);
    expect(text.stdout).toMatch(/^SERVER\s+FILES\s+BYTES\s+CONNECTED SINCE\s+LAST HEARD$/m);
    expect(text.stdout).toContain(`127.0.0.1:${udpPort}`);
    const refused = await runFtx(["status", address, "--token", "wrong"]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain("authentication failed");

    // The file server's own view: a fetch, then its /metrics.
    const serveBase = (await server.waitFor(/web view on (http:\/\/127\.0\.0\.1:\d+\/)/))[1]!;
    expect((await fetch(`${serveBase}metrics`)).status).toBe(401);
    const out = tempDir();
    const fetched = await runFtx(["fetch", address, "haystack.bin", "-o", out.path, "--token", TOKEN]);
    expect(fetched.exitCode).toBe(0);
    const metrics = parsePromText(await (await fetch(`${serveBase}metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text());
    expect(promValue(metrics, "ftx_serve_sessions_total")).toBeGreaterThanOrEqual(1);
    expect(promValue(metrics, "ftx_serve_sessions_completed_total")).toBeGreaterThanOrEqual(1);
    expect(promValue(metrics, "ftx_serve_sent_bytes_total")).toBeGreaterThanOrEqual(300_000);
    expect(metrics.get("ftx_serve_retransmitted_bytes_total")!.type).toBe("counter");
    expect(metrics.get("ftx_serve_client_rate_bytes_per_second")!.type).toBe("gauge");
    const servePage = await browser.newPage();
    await servePage.setExtraHTTPHeaders({ authorization: `Bearer ${TOKEN}` });
    await servePage.goto(serveBase);
    expect(await servePage.$eval("h2", (e) => e.textContent)).toBe("Active transfers");
    await servePage.close();

    // The server dies: its row goes within 1 s (the connection closes; the master drops it at once).
    const killedAt = performance.now();
    await server.stop("SIGKILL");
    await page.waitForSelector(row, { hidden: true, timeout: 3000 });
    expect(performance.now() - killedAt).toBeLessThan(1000);
    // Counts follow at most 250 ms behind (they are coalesced).
    await page.waitForFunction(() => document.getElementById("c-servers")?.textContent === "0", { timeout: 1000 });
    dir.cleanup();
    out.cleanup();
  }, 30_000);
});
