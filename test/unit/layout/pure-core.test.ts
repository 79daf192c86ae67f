import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

/**
 * The protocol's decisions live in pure modules: datagrams, messages, events and `now` in; what to send
 * and when to wake out. They sit in `core/` folders (src/transfer/core, src/index/core, src/fetch/core,
 * src/files/core) beside the shells that do the I/O, and may import only one another and a few pure
 * leaves. This test fails when one of them reaches for I/O, a timer, the clock or randomness. Bun's
 * pure computations (its CRC-32, SHA-256 hasher and glob matcher) are allowed: they touch nothing.
 */
const SRC = resolve(import.meta.dir, "../../../src");
/** Pure modules outside core/ folders that core modules may use. */
const PURE_LEAVES = ["errors.ts", "util/bytes.ts", "util/crypto.ts", "net/address.ts", "net/ip.ts"].map((f) => join(SRC, f));
const FORBIDDEN: [RegExp, string][] = [
  [/\bfrom\s+["']node:/, "imports node:*"],
  [/\bfrom\s+["']bun["']/, "imports bun"],
  [/\bimport\(\s*["']node:/, "imports node:*"],
  [/\bBun\.(?!hash\b|CryptoHasher\b|Glob\b)\w+/, "uses Bun's I/O"],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\s*\(/, "starts a timer"],
  [/\bperformance\.now\b|\bDate\.now\b|\bnew Date\(/, "reads the clock"],
  [/\bMath\.random\b|\bgetRandomValues\b/, "draws randomness"],
  [/\bprocess\.\w+/, "touches the process"],
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

/** The code without its comments (a comment may name what the code must not do). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

function relativeImports(text: string): string[] {
  const found: string[] = [];
  for (const re of [/\bfrom\s+["'](\.[^"']+)["']/g, /\bimport\s+["'](\.[^"']+)["']/g, /\bimport\(\s*["'](\.[^"']+)["']\s*\)/g]) for (const m of text.matchAll(re)) found.push(m[1]!);
  return found;
}

const all = sourceFiles(SRC);
const core = all.filter((f) => relative(SRC, f).split("/").includes("core"));
const pure = new Set([...core, ...PURE_LEAVES]);

test("the core folders hold the protocol's state machines", () => {
  const names = core.map((f) => relative(SRC, f));
  for (const expected of [
    "transfer/core/gbn-sender.ts",
    "transfer/core/gbn-receiver.ts",
    "transfer/core/bbr.ts",
    "transfer/core/rtt-estimator.ts",
    "transfer/core/server-endpoint.ts",
    "transfer/core/wire.ts",
    "transfer/core/fec/block-code.ts",
    "index/core/registry.ts",
    "index/core/peer-session.ts",
    "index/core/codec.ts",
    "fetch/core/piece-planner.ts",
    "fetch/core/source-book.ts",
  ])
    expect(names).toContain(expected);
});

test("no pure module does I/O, reads the clock, starts a timer or draws randomness, or imports one that does", () => {
  const problems: string[] = [];
  for (const file of pure) {
    const text = code(readFileSync(file, "utf8"));
    for (const [re, what] of FORBIDDEN) if (re.test(text)) problems.push(`${relative(SRC, file)} ${what}: ${text.match(re)![0]}`);
    for (const spec of relativeImports(text)) {
      const target = resolve(dirname(file), spec);
      if (!pure.has(target)) problems.push(`${relative(SRC, file)} imports ${relative(SRC, target)}, which is not pure`);
    }
  }
  expect(problems).toEqual([]);
});

test("the check sees what it must refuse", () => {
  const bad = code(`import { lookup } from "node:dns";\nconst t = performance.now();\nsetTimeout(() => {}, 1);\nconst r = Math.random();\nBun.file("x");\n// Date.now() in a comment is fine\n`);
  const hits = FORBIDDEN.filter(([re]) => re.test(bad)).map(([, what]) => what);
  expect(hits).toEqual(["imports node:*", "uses Bun's I/O", "starts a timer", "reads the clock", "draws randomness"]);
  expect(FORBIDDEN.some(([re]) => re.test(code("const c = Bun.hash.crc32(x); // Date.now()")))).toBe(false);
});
