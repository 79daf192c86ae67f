/**
 * `bun run build`: one self-contained executable at dist/ftx. It needs no Bun, no node_modules and no
 * source tree beside it, and ignores .env / bunfig.toml in the folder it runs from.
 */
const result = await Bun.build({
  entrypoints: ["./src/cli.ts"],
  compile: {
    outfile: "./dist/ftx",
    autoloadDotenv: false,
    autoloadBunfig: false,
  },
  minify: true,
  sourcemap: "none",
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
console.error("built dist/ftx");
