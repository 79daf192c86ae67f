/**
 * Text from the network on its way to a terminal: names from a master, a file server's ERROR text,
 * a peer's address in a log line. A control character there could clear the screen, set the window
 * title or forge output (`ESC ]0;…BEL`), so every C0 control (U+0000–U+001F), DEL (U+007F) and C1
 * control (U+0080–U+009F) is written as a visible escape: `\n`, `\t`, `\r`, `\e` for ESC and `\xNN` /
 * `\u{NN}` for the rest, and a backslash as `\\` only where it starts something that would read as one
 * of those (so `C:\dir` stays as it is). JSON output does not need this: JSON escapes C0 itself.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]|\\(?=[ntre]|x[0-9a-fA-F]{2}|u\{)/g;

export function escapeControl(text: string): string {
  if (!CONTROL.test(text)) return text;
  CONTROL.lastIndex = 0;
  return text.replace(CONTROL, (c) => {
    switch (c) {
      case "\\":
        return "\\\\";
      case "\n":
        return "\\n";
      case "\t":
        return "\\t";
      case "\r":
        return "\\r";
      case "\u001b":
        return "\\e";
      default: {
        const code = c.charCodeAt(0);
        return code < 0x80 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
      }
    }
  });
}
