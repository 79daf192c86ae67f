import { readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Test vectors as docs/PROTOCOL.md writes them, in a fenced block under "### Test vectors":
 *
 *   # a comment (what the vector holds)
 *   NAME
 *     4658 01 01 …          hex, grouped by field; spaces are ignored
 *     (zeros to 1200 bytes) zero padding up to that length
 *
 * The unit tests keep the same text and check the codecs against it both ways; a test also checks
 * that the document's blocks are the tests' blocks, so the two cannot drift apart.
 */
export function parseVectors(text: string): Map<string, Uint8Array> {
  const out = new Map<string, number[]>();
  let current: number[] | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (line.trim() === "" || line.trimStart().startsWith("#")) continue;
    if (!/^\s/.test(line)) {
      if (out.has(line)) throw new Error(`vector ${line} given twice`);
      current = [];
      out.set(line, current);
      continue;
    }
    if (!current) throw new Error(`bytes before any vector name: ${line}`);
    const pad = /^\(zeros to (\d+) bytes\)$/.exec(line.trim());
    if (pad) {
      const to = Number(pad[1]);
      if (to < current.length) throw new Error(`padding to ${to} bytes, already ${current.length}`);
      while (current.length < to) current.push(0);
      continue;
    }
    const hex = line.replace(/\s+/g, "");
    if (!/^([0-9a-f]{2})+$/.test(hex)) throw new Error(`not hex bytes: ${line}`);
    for (let i = 0; i < hex.length; i += 2) current.push(parseInt(hex.slice(i, i + 2), 16));
  }
  return new Map([...out].map(([name, bytes]) => [name, Uint8Array.from(bytes)]));
}

/** The vectors block of a section of docs/PROTOCOL.md ("1." the index protocol, "2." the transfer protocol). */
export function documentedVectors(section: "1." | "2." | "4."): Map<string, Uint8Array> {
  const doc = readFileSync(join(import.meta.dir, "../../docs/PROTOCOL.md"), "utf8");
  const start = doc.indexOf(`\n## ${section} `);
  if (start < 0) throw new Error(`docs/PROTOCOL.md has no section ${section}`);
  const next = doc.indexOf("\n## ", start + 1);
  const body = doc.slice(start, next < 0 ? undefined : next);
  const heading = body.indexOf("\n### Test vectors");
  if (heading < 0) throw new Error(`section ${section} of docs/PROTOCOL.md has no "### Test vectors"`);
  const block = /\n```[^\n]*\n([\s\S]*?)\n```/.exec(body.slice(heading));
  if (!block) throw new Error(`no fenced block under "### Test vectors" in section ${section}`);
  return parseVectors(block[1]!);
}

export function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}
