/**
 * The `ls` PATTERN: with `*`, `?` or `[` it is a glob over the whole name (`*` within one folder, `**`
 * across folders); otherwise a case-insensitive substring. An empty pattern matches everything.
 */
export function compilePattern(pattern: string): (name: string) => boolean {
  if (pattern === "") return () => true;
  if (/[*?[]/.test(pattern)) {
    const glob = new Bun.Glob(pattern);
    return (name) => glob.match(name);
  }
  const needle = pattern.toLowerCase();
  return (name) => name.toLowerCase().includes(needle);
}
