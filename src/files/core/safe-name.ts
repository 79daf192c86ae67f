import { MAX_NAME_BYTES, MAX_SEGMENT_NAME_BYTES, PART_SUFFIX } from "./name-limits.ts";

export { PART_SUFFIX };

/**
 * A shared name is a relative path with `/` separators that can only ever point inside the folder
 * it is resolved against. This is checked where names enter (file server scan, master registry,
 * fetch arguments, fetch destinations): the same rule everywhere, with the limits of name-limits.ts.
 * Returns why the name is unsafe, or undefined when it is fine.
 */
export function unsafeNameReason(name: string): string | undefined {
  if (name.length === 0) return "empty name";
  const nameBytes = Buffer.byteLength(name);
  if (nameBytes > MAX_NAME_BYTES) return `name of ${nameBytes} bytes, longer than ${MAX_NAME_BYTES}`;
  // C0 controls, DEL and C1 controls: NUL truncates paths in C APIs, the rest garble terminals.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return "control character in name";
  if (name.startsWith("/")) return "absolute name";
  // A backslash is a separator on Windows: a name holding one could climb out there.
  if (name.includes("\\")) return "backslash in name";
  if (/^[A-Za-z]:/.test(name)) return "drive-letter name";
  for (const segment of name.split("/")) {
    if (segment === "") return "empty path segment";
    if (segment === "." || segment === "..") return `'${segment}' segment in name`;
    const bytes = Buffer.byteLength(segment);
    if (bytes > MAX_SEGMENT_NAME_BYTES) return `path segment of ${bytes} bytes, longer than ${MAX_SEGMENT_NAME_BYTES} (the file system's 255 less '${PART_SUFFIX}')`;
  }
  return undefined;
}

export function isSafeName(name: string): boolean {
  return unsafeNameReason(name) === undefined;
}
