/**
 * The Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE`, then one line per sample,
 * `name{label="value",…} number`. Label values escape `\`, `"` and newline; HELP text escapes `\` and newline.
 */
export const PROM_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export type Labels = Record<string, string>;
export type Sample = { labels?: Labels; value: number };

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class PromWriter {
  private readonly lines: string[] = [];
  private readonly seen = new Set<string>();

  gauge(name: string, help: string, samples: number | Sample[]): this {
    return this.family(name, "gauge", help, samples);
  }

  counter(name: string, help: string, samples: number | Sample[]): this {
    return this.family(name, "counter", help, samples);
  }

  private family(name: string, type: "gauge" | "counter", help: string, samples: number | Sample[]): this {
    if (!NAME.test(name)) throw new RangeError(`not a metric name: ${name}`);
    if (this.seen.has(name)) throw new RangeError(`metric ${name} written twice`);
    this.seen.add(name);
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${name} ${type}`);
    for (const s of typeof samples === "number" ? [{ value: samples }] : samples) this.lines.push(`${name}${labelText(s.labels)} ${numberText(s.value)}`);
    return this;
  }

  text(): string {
    return this.lines.join("\n") + "\n";
  }
}

function labelText(labels: Labels | undefined): string {
  if (!labels) return "";
  const parts: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_NAME.test(k)) throw new RangeError(`not a label name: ${k}`);
    parts.push(`${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
  }
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function numberText(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}
