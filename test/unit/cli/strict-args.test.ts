import { expect, test } from "bun:test";
import type { ArgsDef } from "citty";
import { checkArgs } from "../../../src/cli/strict-args.ts";

const defs = {
  master: { type: "positional", required: true },
  pattern: { type: "positional", required: false },
  json: { type: "boolean" },
  token: { type: "string" },
  output: { type: "string", alias: "o" },
  "heartbeat-timeout": { type: "string" },
} satisfies ArgsDef;

test("accepts known flags in every spelling", () => {
  checkArgs(["h:1", "--json", "--token", "s", "--token=s", "-o", "d", "--heartbeat-timeout", "3", "--heartbeatTimeout=3", "--no-json"], defs, false);
  checkArgs(["h:1", "pat"], defs, false);
});

test("rejects unknown flags, missing values, missing and extra arguments", () => {
  expect(() => checkArgs(["h:1", "--bogus"], defs, false)).toThrow(/unknown option '--bogus'/);
  expect(() => checkArgs(["h:1", "-x"], defs, false)).toThrow(/unknown option '-x'/);
  expect(() => checkArgs(["h:1", "--token"], defs, false)).toThrow(/needs a value/);
  expect(() => checkArgs(["h:1", "--token="], defs, false)).toThrow(/needs a value/);
  expect(() => checkArgs(["h:1", "--json=yes"], defs, false)).toThrow(/takes no value/);
  expect(() => checkArgs([], defs, false)).toThrow(/missing argument MASTER/);
  expect(() => checkArgs(["a", "b", "c"], defs, false)).toThrow(/unexpected argument/);
  checkArgs(["a", "b", "c"], defs, true);
});
