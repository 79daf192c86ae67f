/** The few HTML pieces the operators' pages share: escaping, the frame of a page, the login form. */

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem;color:#222}
h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:1.5rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:2px 8px;border-bottom:1px solid #ddd}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.counts{display:flex;flex-wrap:wrap;gap:1rem}.counts div{background:#f4f4f4;padding:6px 10px;border-radius:4px}
.counts b{display:block;font-size:1.2rem}.muted{color:#777}code{font-size:12px}
`;

export function page(title: string, body: string, script = ""): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<title>${esc(title)}</title><style>${STYLE}</style></head><body>${body}${script ? `<script>${script}</script>` : ""}</body></html>`
  );
}

export function loginPage(what: string, failed: boolean): string {
  return page(
    `${what}: sign in`,
    `<h1>${esc(what)}</h1><p>This view needs the token the ${esc(what)} was started with.</p>` +
      (failed ? `<p role="alert"><b>Wrong token.</b></p>` : "") +
      `<form method="post" action="/login"><label>Token <input type="password" name="token" autofocus></label> <button>Sign in</button></form>`,
  );
}

export function htmlResponse(html: string, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(html, { status, headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", ...headers } });
}

export function jsonResponse(value: unknown): Response {
  return new Response(JSON.stringify(value), { headers: { "content-type": "application/json", "cache-control": "no-store" } });
}

/** What every operators' server answers before its own routes: login, and refusal without the token. */
export async function authGate(req: Request, url: URL, auth: import("./http-auth.ts").HttpAuth, what: string): Promise<Response | undefined> {
  if (url.pathname === "/login") {
    if (req.method === "POST") {
      const form = await req.formData().catch(() => undefined);
      const token = form?.get("token");
      if (!auth.required) return new Response(null, { status: 303, headers: { location: "/" } });
      if (typeof token === "string" && auth.checkToken(token)) return new Response(null, { status: 303, headers: { location: "/", "set-cookie": auth.sessionCookie() } });
      return htmlResponse(loginPage(what, true), 401);
    }
    return htmlResponse(loginPage(what, false), auth.required ? 200 : 200);
  }
  if (auth.allows(req)) return undefined;
  if (url.pathname === "/" && req.method === "GET") return htmlResponse(loginPage(what, false), 401);
  return new Response("authentication required: Authorization: Bearer TOKEN, or sign in at /login\n", {
    status: 401,
    headers: { "content-type": "text/plain; charset=utf-8", "www-authenticate": 'Bearer realm="ftx"' },
  });
}
