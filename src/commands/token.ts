import { defineCommand } from "citty";
import { randomBytes } from "../util/random.ts";

/** 160 bits: beyond any online guessing, and 32 characters of an alphabet that survives copy and paste. */
const TOKEN_BYTES = 20;
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

export function newToken(bytes = randomBytes(TOKEN_BYTES)): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

export default defineCommand({
  args: {},
  run() {
    process.stdout.write(`${newToken()}\n`);
  },
});
