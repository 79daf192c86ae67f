import { MAX_NAME_BYTES } from "../index/messages.ts";

/**
 * A shared name is a relative path with `/` separators that can only ever point inside the folder
 * it is resolved against. This is checked where names enter (file server scan, master registry,
 * fetch arguments, fetch destinations): the same rule everywhere.
 * Returns why the name is unsafe, or undefined when it is fine.
 */
export function unsafeNameReason(name: string): string | undefined {
  if (name.length === 0) return "empty name";
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return `name longer than ${MAX_NAME_BYTES} bytes`;
  // C0 controls, DEL and C1 controls: NUL truncates paths in C APIs, the rest garble terminals.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return "control character in name";
  if (name.startsWith("/")) return "absolute name";
  // A backslash is a separator on Windows: a name holding one could climb out there.
  if (name.includes("\\")) return "backslash in name";
  if (/^[A-Za-z]:/.test(name)) return "drive-letter name";
  for (const segment of name.split("/")) {
    if (segment === "") return "empty path segment";
    if (segment === "." || segment === "..") return `'${segment}' segment in name`;
  }
  return undefined;
}

export function isSafeName(name: string): boolean {
  return unsafeNameReason(name) === undefined;
}

/** Suffix of a download in progress. File servers never serve these. */
export const PART_SUFFIX = ".ftx-part";
