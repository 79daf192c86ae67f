import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * The operators' pages sit behind the same token as the index. A request proves it either with
 * `Authorization: Bearer TOKEN` (scripts, Prometheus' `authorization` setting) or with the cookie the
 * login form sets: HMAC-SHA256(token, "ftx-http-session-v1"), so the token itself is never stored in
 * the browser, HttpOnly and SameSite=Strict. Without a token everything is open, as the index is.
 */
export const SESSION_COOKIE = "ftx_session";

export class HttpAuth {
  private readonly tokenDigest: Buffer | undefined;
  private readonly cookieValue: string | undefined;

  constructor(token: string | undefined) {
    this.tokenDigest = token === undefined ? undefined : digest(token);
    this.cookieValue = token === undefined ? undefined : createHmac("sha256", token).update("ftx-http-session-v1").digest("hex");
  }

  get required(): boolean {
    return this.tokenDigest !== undefined;
  }

  /** Whether this token is the right one (constant time). */
  checkToken(candidate: string): boolean {
    return this.tokenDigest !== undefined && timingSafeEqual(digest(candidate), this.tokenDigest);
  }

  allows(req: Request): boolean {
    if (!this.tokenDigest) return true;
    const auth = req.headers.get("authorization");
    if (auth?.startsWith("Bearer ") && this.checkToken(auth.slice(7))) return true;
    const cookie = readCookie(req.headers.get("cookie"), SESSION_COOKIE);
    return cookie !== undefined && timingSafeEqual(digest(cookie), digest(this.cookieValue!));
  }

  /** The Set-Cookie header of a successful login. */
  sessionCookie(): string {
    return `${SESSION_COOKIE}=${this.cookieValue}; Path=/; HttpOnly; SameSite=Strict`;
  }
}

function digest(s: string): Buffer {
  return createHmac("sha256", "ftx-http-compare").update(s).digest();
}

function readCookie(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
