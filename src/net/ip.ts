/**
 * Which IP version a literal address is: 4, 6, or 0 for anything else (a host name, garbage).
 * The same answers as `isIP` from node:net, without loading node:net, which cost 10 ms of every
 * process's start here (a quarter of `ftx ls`).
 */
export function ipVersion(text: string): 0 | 4 | 6 {
  if (isIPv4(text)) return 4;
  if (isIPv6(text)) return 6;
  return 0;
}

/** Four decimal parts 0–255, no leading zeros (`01` is not an address: some parsers read it as octal). */
function isIPv4(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 && parts.every(isByte);
}

function isByte(part: string): boolean {
  if (part.length === 0 || part.length > 3) return false;
  for (let i = 0; i < part.length; i++) {
    const c = part.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  if (part.length > 1 && part[0] === "0") return false;
  return Number(part) <= 255;
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
/** A zone after `%` (`fe80::1%eth0`): letters, digits and `-._:`, at least one. */
const ZONE = /^[0-9a-zA-Z\-.:]+$/;

/** Eight 16-bit groups, one run of them shortened to `::`, the last two maybe written as IPv4. */
function isIPv6(text: string): boolean {
  const percent = text.indexOf("%");
  if (percent >= 0) {
    if (!ZONE.test(text.slice(percent + 1))) return false;
    text = text.slice(0, percent);
  }
  const halves = text.split("::");
  if (halves.length > 2) return false;
  let groups = 0;
  for (let h = 0; h < halves.length; h++) {
    const half = halves[h]!;
    if (half === "") continue;
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const last = h === halves.length - 1 && i === parts.length - 1;
      if (HEX_GROUP.test(parts[i]!)) groups += 1;
      else if (last && isIPv4(parts[i]!)) groups += 2;
      else return false;
    }
  }
  return halves.length === 2 ? groups <= 7 : groups === 8;
}

/**
 * The bytes of a literal address: 4 for IPv4, 16 for IPv6 (a zone is dropped), undefined for anything
 * else. For building socket addresses (udp-gso.ts), not for validating: it trusts `ipVersion`.
 */
export function ipBytes(text: string): Uint8Array | undefined {
  const version = ipVersion(text);
  if (version === 4) return new Uint8Array(text.split(".").map(Number));
  if (version !== 6) return undefined;
  const percent = text.indexOf("%");
  if (percent >= 0) text = text.slice(0, percent);
  const out = new Uint8Array(16);
  const groups = (half: string): number[] => {
    if (half === "") return [];
    const words: number[] = [];
    for (const part of half.split(":")) {
      if (part.includes(".")) {
        const [a, b, c, d] = part.split(".").map(Number) as [number, number, number, number];
        words.push((a << 8) | b, (c << 8) | d);
      } else words.push(parseInt(part, 16));
    }
    return words;
  };
  const halves = text.split("::");
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return out;
}
