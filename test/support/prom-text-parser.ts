/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests: it throws on anything a
 * Prometheus server would refuse (a bad metric or label name, a bad escape, a value that is not a
 * number, a TYPE after the family's samples, a family split in two, a duplicate series, a counter with
 * a negative value) rather than guess.
 */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help: string | undefined;
  samples: PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

export function parsePromText(text: string): Map<string, PromFamily> {
  if (text.length > 0 && !text.endsWith("\n")) throw new Error("exposition must end with a newline");
  const families = new Map<string, PromFamily>();
  const closed = new Set<string>();
  const series = new Set<string>();
  let current: string | undefined;
  const family = (name: string): PromFamily => {
    if (current !== name) {
      if (closed.has(name)) throw new Error(`metric family ${name} is split in two`);
      if (current !== undefined) closed.add(current);
      current = name;
    }
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: "untyped", help: undefined, samples: [] }));
    return f;
  };
  text.split("\n").forEach((line, i) => {
    const where = `line ${i + 1}`;
    if (line === "") return;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) ([^ ]+)(?: (.*))?$/.exec(line);
      if (!m) return; // another comment
      const [, kind, name, rest = ""] = m;
      if (!NAME.test(name!) || NAME.exec(name!)![0] !== name) throw new Error(`${where}: bad metric name ${name}`);
      const f = family(name!);
      if (kind === "HELP") {
        if (f.help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
        f.help = unescape(rest, false, where);
      } else {
        if (!TYPES.has(rest)) throw new Error(`${where}: bad type ${rest}`);
        if (f.samples.length > 0) throw new Error(`${where}: TYPE of ${name} after its samples`);
        f.type = rest as PromFamily["type"];
      }
      return;
    }
    const nameMatch = NAME.exec(line);
    if (!nameMatch) throw new Error(`${where}: no metric name: ${line}`);
    const name = nameMatch[0];
    let at = name.length;
    const labels: Record<string, string> = {};
    if (line[at] === "{") {
      at++;
      while (line[at] !== "}") {
        const ln = LABEL_NAME.exec(line.slice(at));
        if (!ln) throw new Error(`${where}: bad label name at ${at}`);
        at += ln[0].length;
        if (line[at] !== "=" || line[at + 1] !== '"') throw new Error(`${where}: expected =" after label ${ln[0]}`);
        at += 2;
        let raw = "";
        while (line[at] !== '"') {
          if (at >= line.length) throw new Error(`${where}: unterminated label value`);
          if (line[at] === "\\") {
            raw += line.slice(at, at + 2);
            at += 2;
          } else raw += line[at++];
        }
        at++;
        if (ln[0] in labels) throw new Error(`${where}: label ${ln[0]} twice`);
        labels[ln[0]] = unescape(raw, true, where);
        if (line[at] === ",") at++;
        else if (line[at] !== "}") throw new Error(`${where}: expected , or } at ${at}`);
      }
      at++;
    }
    if (line[at] !== " ") throw new Error(`${where}: expected a space before the value`);
    const [valueText, timestamp, ...extra] = line.slice(at + 1).split(" ");
    if (extra.length > 0 || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) throw new Error(`${where}: trailing text`);
    const value = parseValue(valueText!, where);
    const base = familyOf(name, families);
    const f = family(base);
    if (f.type === "counter" && value < 0) throw new Error(`${where}: counter ${name} is negative`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`${where}: duplicate series ${key}`);
    series.add(key);
    f.samples.push({ name, labels, value });
  });
  return families;
}

/** Histogram and summary samples (`x_bucket`, `x_sum`, `x_count`) belong to family `x`. */
function familyOf(name: string, families: Map<string, PromFamily>): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const t = families.get(base)?.type;
      if (t === "histogram" || t === "summary") return base;
    }
  }
  return name;
}

function parseValue(text: string, where: string): number {
  if (text === "NaN") return NaN;
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value ${text}`);
  return Number(text);
}

function unescape(raw: string, quotes: boolean, where: string): string {
  return raw.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    if (c === '"' && quotes) return '"';
    throw new Error(`${where}: bad escape \\${c}`);
  });
}

/** The value of one series (labels must match exactly), or undefined. */
export function promValue(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  for (const f of families.values()) for (const s of f.samples) if (s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want) return s.value;
  return undefined;
}
