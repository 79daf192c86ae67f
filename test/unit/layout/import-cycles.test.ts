import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

/**
 * The layers of src/ import one another in one direction only (fetch → index → files → util, and so
 * on): a cycle between folders means two of them can no longer be understood, tested or moved apart.
 */
const SRC = resolve(import.meta.dir, "../../../src");
const LAYERED = ["index", "net", "files", "transfer", "fetch", "util"];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

/** Relative specifiers of every static, side-effect, re-export and literal dynamic import. */
function relativeImports(text: string): string[] {
  const found: string[] = [];
  const patterns = [/\bfrom\s+["'](\.[^"']+)["']/g, /\bimport\s+["'](\.[^"']+)["']/g, /\bimport\(\s*["'](\.[^"']+)["']\s*\)/g];
  for (const re of patterns) for (const m of text.matchAll(re)) found.push(m[1]!);
  return found;
}

function folderOf(file: string): string {
  return relative(SRC, file).split("/")[0]!;
}

/** Folder → folders it imports from (only the layered ones). */
function folderGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>(LAYERED.map((f) => [f, new Map()]));
  for (const file of sourceFiles(SRC)) {
    const from = folderOf(file);
    if (!graph.has(from)) continue;
    for (const spec of relativeImports(readFileSync(file, "utf8"))) {
      const to = folderOf(resolve(dirname(file), spec));
      if (to !== from && graph.has(to) && !graph.get(from)!.has(to)) graph.get(from)!.set(to, `${relative(SRC, file)} imports ${spec}`);
    }
  }
  return graph;
}

/** Every cycle reachable in the graph, each as the path of folders with the import that closes each edge. */
function cycles(graph: Map<string, Map<string, string>>): string[] {
  const found: string[] = [];
  const visit = (path: string[]) => {
    const here = path[path.length - 1]!;
    for (const [next] of graph.get(here)!) {
      const at = path.indexOf(next);
      if (at >= 0) {
        const loop = [...path.slice(at), next];
        if (loop[0] === [...loop].slice(0, -1).sort()[0]) found.push(loop.map((f, i) => (i + 1 < loop.length ? `${f} (${graph.get(f)!.get(loop[i + 1]!)})` : f)).join(" → "));
      } else visit([...path, next]);
    }
  };
  for (const start of graph.keys()) visit([start]);
  return [...new Set(found)];
}

test("the import parser sees static, re-export, side-effect and dynamic imports", () => {
  const text = `import { a } from "./a.ts";\nimport type {\n  B,\n} from "../b/b.ts";\nexport { c } from "./c.ts";\nimport "./d.ts";\nconst e = await import("./e.ts");\nimport x from "node:fs";`;
  expect(relativeImports(text).sort()).toEqual(["../b/b.ts", "./a.ts", "./c.ts", "./d.ts", "./e.ts"]);
});

test("the cycle finder reports a folder cycle with the imports that make it", () => {
  const graph = new Map([
    ["a", new Map([["b", "a/x.ts imports ../b/y.ts"]])],
    ["b", new Map([["a", "b/y.ts imports ../a/x.ts"]])],
    ["c", new Map([["a", "c/z.ts imports ../a/x.ts"]])],
  ]);
  expect(cycles(graph)).toEqual(["a (a/x.ts imports ../b/y.ts) → b (b/y.ts imports ../a/x.ts) → a"]);
});

test(`no import cycle between the folders ${LAYERED.map((f) => `src/${f}`).join(", ")}`, () => {
  expect(cycles(folderGraph())).toEqual([]);
});
