/**
 * Issue #17, the index half: a capture of the index connections (file server ⇄ master and ls ⇄ master,
 * both directions, recorded by a TCP relay in the test) holds no file name and no token-derived value,
 * with a token and without; a peer with the wrong token fails with the authentication message; and
 * `--insecure-plaintext` (allowed by the master) really is plaintext, so the check can see names when
 * they are there.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash, createHmac } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import { eventually, runFtx, startMaster, startServer, stopAll, tempDir } from "../support/ftx-process.ts";

afterAll(stopAll);

const TOKEN = "index-privacy-token-0123456789";
const NAMES = ["quarterly-secret-report.pdf", "nested/dir/very-private-notes.txt"];

/** A TCP relay to `targetPort` that keeps a copy of every byte, both directions. */
function recordingRelay(targetPort: number): { relay: TCPSocketListener<{ up?: Socket<{ down: Socket<unknown> }>; pending: Uint8Array[] }>; captured: () => Buffer; stop: () => void } {
  const chunks: Buffer[] = [];
  const relay = Bun.listen<{ up?: Socket<{ down: Socket<unknown> }>; pending: Uint8Array[] }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      binaryType: "uint8array",
      open(down) {
        down.data = { pending: [] };
        void Bun.connect<{ down: Socket<unknown> }>({
          hostname: "127.0.0.1",
          port: targetPort,
          data: { down: down as Socket<unknown> },
          socket: {
            binaryType: "uint8array",
            open(up) {
              down.data.up = up;
              for (const p of down.data.pending.splice(0)) up.write(p);
            },
            data(up, chunk) {
              chunks.push(Buffer.from(chunk));
              up.data.down.write(chunk);
            },
            close(up) {
              up.data.down.end();
            },
          },
        }).catch(() => down.end());
      },
      data(down, chunk) {
        chunks.push(Buffer.from(chunk));
        if (down.data.up) down.data.up.write(chunk);
        else down.data.pending.push(chunk.slice());
      },
      close(down) {
        down.data.up?.end();
      },
    },
  });
  return { relay, captured: () => Buffer.concat(chunks), stop: () => relay.stop(true) };
}

/** What must not appear: the names (and their last segments), the token, and values derived from it the obvious ways. */
function forbidden(): Buffer[] {
  const out: Array<Buffer | string> = [];
  for (const n of NAMES) out.push(Buffer.from(n), Buffer.from(n.split("/").pop()!));
  out.push(Buffer.from(TOKEN), Buffer.from(TOKEN.slice(0, 12)));
  out.push(createHash("sha256").update(TOKEN).digest(), Buffer.from(createHash("sha256").update(TOKEN).digest("hex")));
  out.push(Buffer.from(TOKEN).toString("base64"));
  // v2's proof: HMAC-SHA256 keyed by the token. Any 8-byte run of the key's own HMAC of the label would do.
  out.push(createHmac("sha256", TOKEN).update("ftx-index-auth-v1").digest().subarray(0, 8));
  return out.map((b) => (typeof b === "string" ? Buffer.from(b) : b));
}

function populate(dir: string): void {
  for (const n of NAMES) {
    mkdirSync(join(dir, n, ".."), { recursive: true });
    writeFileSync(join(dir, n), `content of ${n}`);
  }
}

describe("a capture of the index connections", () => {
  for (const withToken of [true, false]) {
    test(`${withToken ? "with" : "without"} a token: no file name${withToken ? ", no token-derived value" : ""}; ls still lists them`, async () => {
      const d = tempDir();
      try {
        populate(d.path);
        const tokenArgs = withToken ? ["--token", TOKEN] : [];
        const { port } = await startMaster(tokenArgs);
        const { relay, captured, stop } = recordingRelay(port);
        try {
          const via = `127.0.0.1:${relay.port}`;
          await startServer(d.path, via, tokenArgs);
          let listed = "";
          await eventually(
            async () => {
              const r = await runFtx(["ls", via, "--json", ...tokenArgs, "-V"]);
              listed = r.stdout;
              return NAMES.every((n) => r.stdout.includes(n));
            },
            8000,
            "both files listed through the relay",
          );
          const capture = captured();
          expect(capture.byteLength).toBeGreaterThan(500);
          for (const needle of forbidden()) expect({ needle: needle.toString("hex"), found: capture.includes(needle) }).toEqual({ needle: needle.toString("hex"), found: false });
          expect(JSON.parse(listed).map((e: { name: string }) => e.name).sort()).toEqual([...NAMES].sort());
          // --verbose names the cipher and whether the master was authenticated.
          const verbose = await runFtx(["ls", via, ...tokenArgs, "-V"]);
          expect(verbose.stderr).toContain(withToken ? "AES-256-GCM, CPace-ristretto255, peer authenticated by the token" : "AES-256-GCM, X25519, peer NOT authenticated");
        } finally {
          stop();
        }
      } finally {
        d.cleanup();
      }
    }, 30_000);
  }

  test("a peer with the wrong token, through the same relay: 'authentication failed', exit 1, and the master logs it", async () => {
    const { master, port } = await startMaster(["--token", TOKEN]);
    const { relay, captured, stop } = recordingRelay(port);
    try {
      const r = await runFtx(["ls", `127.0.0.1:${relay.port}`, "--token", "a-wrong-token-of-decent-length"]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("authentication failed");
      expect(r.stderr).not.toContain("    at ");
      await master.waitFor(/authentication failed for 127\.0\.0\.1/);
      for (const needle of forbidden()) expect(captured().includes(needle)).toBe(false);
    } finally {
      stop();
    }
  }, 20_000);

  test("the check sees names when they are there: with --insecure-plaintext on both sides the capture holds them", async () => {
    const d = tempDir();
    try {
      populate(d.path);
      const { port } = await startMaster(["--insecure-plaintext"]);
      const { relay, captured, stop } = recordingRelay(port);
      try {
        const via = `127.0.0.1:${relay.port}`;
        await startServer(d.path, via, ["--insecure-plaintext"]);
        await eventually(async () => (await runFtx(["ls", via, "--insecure-plaintext"])).stdout.includes(NAMES[0]!), 8000, "listed in plaintext");
        expect(captured().includes(Buffer.from(NAMES[0]!))).toBe(true);
        // A client asking for plaintext from a master that does not allow it gets a clear refusal.
      } finally {
        stop();
      }
      const { address } = await startMaster([]);
      const refused = await runFtx(["ls", address, "--insecure-plaintext"]);
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toContain("requires encryption");
    } finally {
      d.cleanup();
    }
  }, 30_000);
});
