import { defineCommand } from "citty";
import { FtxError } from "../errors.ts";
import { jsonArg, logArgs, tokenArg } from "./shared-args.ts";

export const variadic = true;

export default defineCommand({
  args: {
    master: { type: "positional", required: true, valueHint: "HOST:PORT", description: "The master to ask (env FTX_MASTER)" },
    file: { type: "positional", required: true, valueHint: "FILE...", description: "Names as `ftx ls` shows them" },
    output: { type: "string", alias: "o", default: ".", valueHint: "DIR", description: "Where to write (created if missing)" },
    ...jsonArg,
    ...tokenArg,
    ...logArgs,
  },
  async run() {
    throw new FtxError("E_IO", "fetch is not implemented yet");
  },
});
