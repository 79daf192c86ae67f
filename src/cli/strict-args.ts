import type { ArgsDef } from "citty";
import { UsageError } from "../errors.ts";

function camel(s: string): string {
  return s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * citty 0.2.2 accepts unknown flags silently and reports usage errors with exit 1. This checks raw
 * arguments against a command's definition first, so every usage mistake becomes a UsageError (exit 2)
 * naming the offending word.
 */
export function checkArgs(rawArgs: readonly string[], defs: ArgsDef, variadic: boolean): void {
  const byName = new Map<string, { type: string; name: string }>();
  const positionals: string[] = [];
  let requiredPositionals = 0;
  for (const [name, def] of Object.entries(defs)) {
    const type = def.type ?? "string";
    if (type === "positional") {
      positionals.push(name);
      if (def.required !== false && def.default === undefined) requiredPositionals++;
      continue;
    }
    const entry = { type, name };
    byName.set(name, entry);
    byName.set(camel(name), entry);
    const aliases = "alias" in def && def.alias !== undefined ? (Array.isArray(def.alias) ? def.alias : [def.alias]) : [];
    for (const a of aliases) byName.set(a, entry);
  }

  let positionalCount = 0;
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") {
      positionalCount += rawArgs.length - i - 1;
      break;
    }
    if (arg.startsWith("-") && arg !== "-") {
      const body = arg.replace(/^--?/, "");
      const eq = body.indexOf("=");
      const name = eq >= 0 ? body.slice(0, eq) : body;
      let def = byName.get(name);
      if (!def && name.startsWith("no-")) {
        const negated = byName.get(name.slice(3));
        if (negated?.type === "boolean" && eq < 0) continue;
      }
      if (!def) throw new UsageError(`unknown option '${arg.startsWith("--") ? `--${name}` : `-${name}`}'`);
      if (def.type === "boolean") {
        if (eq >= 0) throw new UsageError(`option '--${def.name}' takes no value`);
        continue;
      }
      if (eq < 0) {
        const value = rawArgs[i + 1];
        if (value === undefined || (value.startsWith("--") && value.length > 2))
          throw new UsageError(`option '--${def.name}' needs a value`);
        i++;
      } else if (body.length === eq + 1) {
        throw new UsageError(`option '--${def.name}' needs a value`);
      }
      continue;
    }
    positionalCount++;
  }
  if (positionalCount < requiredPositionals)
    throw new UsageError(`missing argument ${positionals[positionalCount]!.toUpperCase()}`);
  if (!variadic && positionalCount > positionals.length)
    throw new UsageError(`unexpected argument (this command takes ${positionals.length === 0 ? "none" : positionals.map((p) => p.toUpperCase()).join(" ")})`);
}
