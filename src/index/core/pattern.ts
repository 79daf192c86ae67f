/**
 * The `ls` PATTERN: with `*`, `?` or `[` it is a glob over the whole name (`*` within one folder, `**`
 * across folders); otherwise a case-insensitive substring. An empty pattern matches everything.
 *
 * The glob is matched without backtracking, so a hostile pattern cannot make the master spin
 * (`[a-z]*` × 170 against 200,000 names took Bun.Glob ~50 s). The pattern is cut at `/` into segment
 * patterns, and each segment pattern at `*` into chunks of single-character tokens (literal, `?`,
 * class). Between two wildcards every chunk (and every run of segments between two `**`) has a fixed
 * length, so its leftmost place is the only one worth trying: a later place leaves less to the rest.
 * Each chunk is found by one forward scan; the work is at most (name length × pattern length) steps,
 * and in practice a few per character. `steps` counts it, so a caller can slice a big listing and
 * give up on one that costs too much.
 *
 * Semantics (those of Bun.Glob on the names ftx lists, checked by a randomised test):
 * `*` any run of characters but `/`; `**` as a whole segment any number of whole segments (at the end
 * of the pattern, at least one), elsewhere as `*`; `?` one character but `/`; `[abc]`, `[a-z]`,
 * `[!a]`/`[^a]` one character of (or not of) the class, never `/` (a `]` first in a class is literal;
 * a `[` with no closing `]` is literal); `\x` the character x; `{a,b}` alternatives (at most
 * MAX_ALTERNATIVES after expansion, beyond which the pattern is refused).
 */

/** A brace expansion that yields more patterns than this is refused, not expanded. */
export const MAX_ALTERNATIVES = 64;

export class PatternError extends Error {}

export interface Matcher {
  matches(name: string): boolean;
  /** Work done so far, in character comparisons (roughly); the caller may reset it. */
  steps: number;
}

export function compilePattern(pattern: string): Matcher {
  if (pattern === "") {
    // Every name matches; it still counts one step a name, so a listing of everything is sliced too.
    const all: Matcher = {
      steps: 0,
      matches() {
        all.steps++;
        return true;
      },
    };
    return all;
  }
  if (/[*?[]/.test(pattern)) return new GlobMatcher(pattern);
  const needle = pattern.toLowerCase();
  // An ASCII needle is found by a case-insensitive regex, without a lowercased copy of every name (3×
  // faster); a name with other characters is also checked the exact way, so the two never differ.
  const ascii = /^[\x00-\x7f]*$/.test(needle) ? new RegExp(needle.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"), "i") : undefined;
  const m: Matcher = {
    steps: 0,
    matches(name) {
      m.steps += name.length + 1;
      if (ascii) {
        if (ascii.test(name)) return true;
        if (!NON_ASCII.test(name)) return false;
      }
      return name.toLowerCase().includes(needle);
    },
  };
  return m;
}

// ---- compiled form --------------------------------------------------------------------------------

const SLASH = 0x2f;
const NON_ASCII = /[^\x00-\x7f]/;

/** One character of a name: a code point, or a class, or any (`?`). */
type CharToken = { kind: "lit"; cp: number } | { kind: "any" } | { kind: "class"; negated: boolean; ranges: number[] };

/** One segment's pattern: chunks separated by `*`; `anchoredStart`/`End` say whether a `*` leads or trails. */
interface SegmentPattern {
  chunks: CharToken[][];
  leadingStar: boolean;
  trailingStar: boolean;
}

/** A segment pattern, or `**` (any number of whole segments). */
type SegmentToken = SegmentPattern | "globstar";

class GlobMatcher implements Matcher {
  steps = 0;
  /** One list of segment tokens per brace alternative. */
  private readonly alternatives: SegmentToken[][];

  constructor(pattern: string) {
    this.alternatives = expandBraces(pattern).map(compileGlob);
  }

  matches(name: string): boolean {
    const cps: number[] = [];
    for (const ch of name) cps.push(ch.codePointAt(0)!);
    // Segment boundaries: segment i is cps[starts[i], ends[i]).
    const starts = [0];
    const ends: number[] = [];
    for (let i = 0; i < cps.length; i++)
      if (cps[i] === SLASH) {
        ends.push(i);
        starts.push(i + 1);
      }
    ends.push(cps.length);
    this.steps += cps.length + 1;
    for (const alt of this.alternatives) if (this.matchSegments(alt, cps, starts, ends)) return true;
    return false;
  }

  /** The segment tokens against the name's segments: runs between `**` are placed leftmost. */
  private matchSegments(tokens: SegmentToken[], cps: number[], starts: number[], ends: number[]): boolean {
    const runs: SegmentPattern[][] = [[]];
    for (const t of tokens) {
      if (t === "globstar") runs.push([]);
      else runs[runs.length - 1]!.push(t);
    }
    const n = starts.length;
    if (runs.length === 1) {
      const run = runs[0]!;
      return run.length === n && this.runAt(run, 0, cps, starts, ends);
    }
    const first = runs[0]!;
    const last = runs[runs.length - 1]!;
    if (!this.runAt(first, 0, cps, starts, ends)) return false;
    let at = first.length;
    const lastAt = n - last.length;
    if (lastAt < at) return false;
    for (let r = 1; r < runs.length - 1; r++) {
      const run = runs[r]!;
      let found = -1;
      for (let s = at; s + run.length <= lastAt; s++) {
        if (this.runAt(run, s, cps, starts, ends)) {
          found = s;
          break;
        }
      }
      if (found < 0) return false;
      at = found + run.length;
    }
    return this.runAt(last, lastAt, cps, starts, ends);
  }

  private runAt(run: SegmentPattern[], at: number, cps: number[], starts: number[], ends: number[]): boolean {
    if (at + run.length > starts.length) return false;
    for (let i = 0; i < run.length; i++) if (!this.segmentMatches(run[i]!, cps, starts[at + i]!, ends[at + i]!)) return false;
    return true;
  }

  /** One segment pattern against cps[from, to): chunks placed leftmost between the stars. */
  private segmentMatches(p: SegmentPattern, cps: number[], from: number, to: number): boolean {
    const { chunks } = p;
    if (!p.leadingStar && !p.trailingStar && chunks.length === 1) {
      const c = chunks[0]!;
      return c.length === to - from && this.chunkAt(c, cps, from);
    }
    let lo = from;
    let hi = to;
    let first = 0;
    let last = chunks.length;
    if (!p.leadingStar) {
      const c = chunks[0]!;
      if (c.length > hi - lo || !this.chunkAt(c, cps, lo)) return false;
      lo += c.length;
      first = 1;
    }
    if (!p.trailingStar && last > first) {
      const c = chunks[last - 1]!;
      if (c.length > hi - lo || !this.chunkAt(c, cps, hi - c.length)) return false;
      hi -= c.length;
      last--;
    }
    for (let k = first; k < last; k++) {
      const c = chunks[k]!;
      let found = -1;
      for (let s = lo; s + c.length <= hi; s++) {
        if (this.chunkAt(c, cps, s)) {
          found = s;
          break;
        }
      }
      if (found < 0) return false;
      lo = found + c.length;
    }
    return true;
  }

  private chunkAt(chunk: CharToken[], cps: number[], at: number): boolean {
    for (let i = 0; i < chunk.length; i++) {
      this.steps++;
      if (!tokenMatches(chunk[i]!, cps[at + i]!)) return false;
    }
    return true;
  }
}

function tokenMatches(t: CharToken, cp: number): boolean {
  switch (t.kind) {
    case "lit":
      return t.cp === cp;
    case "any":
      return cp !== SLASH;
    case "class": {
      if (cp === SLASH) return false;
      let inside = false;
      for (let i = 0; i < t.ranges.length; i += 2)
        if (cp >= t.ranges[i]! && cp <= t.ranges[i + 1]!) {
          inside = true;
          break;
        }
      return inside !== t.negated;
    }
  }
}

/** `{a,b}c` → `ac`, `bc` (nested braces too); a brace with no comma or no closing `}` is literal. */
function expandBraces(pattern: string): string[] {
  let done: string[] = [];
  let todo = [pattern];
  while (todo.length > 0) {
    const p = todo.pop()!;
    const group = firstBraceGroup(p);
    if (!group) {
      done.push(p);
    } else {
      for (const option of group.options) todo.push(p.slice(0, group.open) + option + p.slice(group.close + 1));
    }
    if (done.length + todo.length > MAX_ALTERNATIVES) throw new PatternError(`pattern expands to more than ${MAX_ALTERNATIVES} alternatives`);
  }
  done = [...new Set(done)];
  return done;
}

/** The first `{…}` holding a top-level comma, outside classes and escapes. */
function firstBraceGroup(p: string): { open: number; close: number; options: string[] } | undefined {
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "[") {
      const end = classEnd(p, i);
      if (end > 0) i = end;
      continue;
    }
    if (c !== "{") continue;
    let depth = 0;
    const commas: number[] = [];
    for (let j = i; j < p.length; j++) {
      const d = p[j];
      if (d === "\\") {
        j++;
        continue;
      }
      if (d === "{") depth++;
      else if (d === "}") {
        depth--;
        if (depth === 0) {
          if (commas.length === 0) break; // `{x}`: literal
          const options: string[] = [];
          let from = i + 1;
          for (const comma of commas) {
            options.push(p.slice(from, comma));
            from = comma + 1;
          }
          options.push(p.slice(from, j));
          return { open: i, close: j, options };
        }
      } else if (d === "," && depth === 1) commas.push(j);
    }
  }
  return undefined;
}

/** Index of the `]` closing a class opened at `open`, or -1 when it does not close (then `[` is literal). */
function classEnd(p: string, open: number): number {
  let i = open + 1;
  if (p[i] === "!" || p[i] === "^") i++;
  if (p[i] === "]") i++;
  for (; i < p.length; i++) {
    if (p[i] === "\\") i++;
    else if (p[i] === "]") return i;
  }
  return -1;
}

function compileGlob(pattern: string): SegmentToken[] {
  const segments = splitSegments(pattern);
  const tokens: SegmentToken[] = [];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg === "**") {
      if (tokens[tokens.length - 1] === "globstar") continue; // `**/**` is `**`
      tokens.push("globstar");
      // A trailing `**` matches at least one segment: `**` then one segment of anything.
      if (i === segments.length - 1) tokens.push({ chunks: [[]], leadingStar: true, trailingStar: true });
    } else tokens.push(compileSegment(seg));
  }
  return tokens;
}

/** Split at `/`, leaving escaped characters and classes whole. */
function splitSegments(pattern: string): string[] {
  const out: string[] = [];
  let from = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") i++;
    else if (c === "[") {
      const end = classEnd(pattern, i);
      if (end > 0 && !pattern.slice(i, end).includes("/")) i = end;
    } else if (c === "/") {
      out.push(pattern.slice(from, i));
      from = i + 1;
    }
  }
  out.push(pattern.slice(from));
  return out;
}

function compileSegment(seg: string): SegmentPattern {
  const chunks: CharToken[][] = [[]];
  let leadingStar = false;
  let trailingStar = false;
  const cps = Array.from(seg);
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i]!;
    trailingStar = false;
    if (c === "*") {
      while (cps[i + 1] === "*") i++;
      if (i === 0 || (cps.slice(0, i).every((x) => x === "*") && chunks.length === 1 && chunks[0]!.length === 0)) leadingStar = true;
      else chunks.push([]);
      trailingStar = true;
      continue;
    }
    const chunk = chunks[chunks.length - 1]!;
    if (c === "\\" && i + 1 < cps.length) {
      chunk.push({ kind: "lit", cp: cps[++i]!.codePointAt(0)! });
    } else if (c === "?") {
      chunk.push({ kind: "any" });
    } else if (c === "[") {
      const parsed = parseClass(cps, i);
      if (parsed) {
        chunk.push(parsed.token);
        i = parsed.end;
      } else chunk.push({ kind: "lit", cp: c.codePointAt(0)! });
    } else chunk.push({ kind: "lit", cp: c.codePointAt(0)! });
  }
  if (trailingStar && chunks[chunks.length - 1]!.length === 0 && chunks.length > 1) chunks.pop();
  return { chunks, leadingStar, trailingStar };
}

function parseClass(cps: string[], open: number): { token: CharToken; end: number } | undefined {
  let i = open + 1;
  let negated = false;
  if (cps[i] === "!" || cps[i] === "^") {
    negated = true;
    i++;
  }
  const ranges: number[] = [];
  let first = true;
  for (; i < cps.length; i++) {
    let c = cps[i]!;
    if (c === "]" && !first) return { token: { kind: "class", negated, ranges }, end: i };
    first = false;
    if (c === "\\" && i + 1 < cps.length) c = cps[++i]!;
    const lo = c.codePointAt(0)!;
    if (cps[i + 1] === "-" && i + 2 < cps.length && cps[i + 2] !== "]") {
      let hiChar = cps[i + 2]!;
      i += 2;
      if (hiChar === "\\" && i + 1 < cps.length) hiChar = cps[++i]!;
      ranges.push(lo, hiChar.codePointAt(0)!);
    } else ranges.push(lo, lo);
  }
  return undefined;
}
