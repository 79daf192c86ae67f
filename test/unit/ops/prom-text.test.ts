import { describe, expect, test } from "bun:test";
import { PromWriter } from "../../../src/ops/prom-text.ts";
import { parsePromText, promValue } from "../../support/prom-text-parser.ts";

describe("Prometheus text: our writer, read back by the strict parser", () => {
  test("gauges and counters with labels round-trip, escapes included", () => {
    const text = new PromWriter()
      .gauge("ftx_x", "A gauge\nwith a newline and a \\ backslash.", 1.5)
      .counter("ftx_y_total", "A counter.", [
        { labels: { server: "127.0.0.1:1" }, value: 3 },
        { labels: { server: '[::1]:2 "quoted" \\ back\nline' }, value: 4 },
      ])
      .gauge("ftx_inf", "Infinite.", [{ value: Infinity }])
      .text();
    expect(text).toContain('ftx_y_total{server="[::1]:2 \\"quoted\\" \\\\ back\\nline"} 4\n');
    const families = parsePromText(text);
    expect(families.get("ftx_x")).toEqual({ name: "ftx_x", type: "gauge", help: "A gauge\nwith a newline and a \\ backslash.", samples: [{ name: "ftx_x", labels: {}, value: 1.5 }] });
    expect(families.get("ftx_y_total")!.type).toBe("counter");
    expect(promValue(families, "ftx_y_total", { server: '[::1]:2 "quoted" \\ back\nline' })).toBe(4);
    expect(promValue(families, "ftx_inf")).toBe(Infinity);
  });

  test("the writer refuses bad names and a family written twice", () => {
    expect(() => new PromWriter().gauge("1bad", "x", 1)).toThrow(RangeError);
    expect(() => new PromWriter().gauge("ok", "x", [{ labels: { "bad-label": "v" }, value: 1 }])).toThrow(RangeError);
    expect(() => new PromWriter().gauge("a", "x", 1).counter("a", "x", 1)).toThrow(RangeError);
  });

  test("the parser refuses what Prometheus would", () => {
    const bad = [
      "x 1", // no final newline
      "x{a=\"1\"} one\n", // not a number
      "x{a=1} 1\n", // unquoted label value
      'x{a="\\t"} 1\n', // unknown escape
      "# TYPE x counter\nx -1\n", // negative counter
      "x 1\ny 1\nx 2\n", // family split in two
      'x{a="1"} 1\nx{a="1"} 2\n', // duplicate series
      "x 1\n# TYPE x gauge\n", // TYPE after samples
      "# TYPE x bogus\n",
      "x 1 2 3\n",
    ];
    for (const text of bad) expect(() => parsePromText(text)).toThrow();
    expect(parsePromText("# a free comment\n# TYPE x gauge\nx 1 1700000000000\n").get("x")!.samples[0]!.value).toBe(1);
  });
});
