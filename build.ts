/**
 * `bun run build`: one self-contained executable at dist/ftx. It needs no Bun, no node_modules and no
 * source tree beside it, and ignores .env / bunfig.toml in the folder it runs from.
 */
const result = await Bun.build({
  // The part-file writer runs in a Worker: it must be bundled as an entry point of its own.
  entrypoints: ["./src/cli.ts", "./src/transfer/part-writer.worker.ts"],
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
