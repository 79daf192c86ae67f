import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES, counterNonce, MAX_SEQ, type InPlaceAead } from "../../crypto/core/aead.ts";

/**
 * AEAD for the transfer's datagrams (docs/PROTOCOL.md §4, "Datagrams"), sans-IO and in place: the
 * datagram is built in clear with room for 24 bytes after its body, and sealed where it lies.
 *
 *   datagram = aad ‖ AES-256-GCM(key, iv XOR pn, aad, body) ‖ pn: u64 ‖ tag: 16
 *
 * `aad` is everything before the body: the header (its checksum field taken as zero: the checksum is
 * computed over the sealed datagram afterwards) and a packet's clear fields. The body keeps its
 * offsets, so after `openInPlace` the datagram's first `bodyEnd` bytes read as the clear datagram did.
 * `pn` needs no place in the aad: a changed pn changes the nonce, and the tag fails.
 *
 * `pn` is a per-direction packet number that never repeats under a key (a retransmission is a new
 * packet with a new pn: the header's seq repeats, the nonce never does). The receiver accepts a pn once,
 * within a sliding window of REPLAY_WINDOW below the highest seen (reordering by the network is
 * normal); a pn seen before, or older than the window, is refused and counted — as is a datagram whose
 * tag fails. The window moves only for datagrams that authenticate, so forgeries cannot push it.
 */
export const PN_BYTES = 8;
export const DATAGRAM_OVERHEAD_BYTES = PN_BYTES + AEAD_TAG_BYTES;
/** Packet numbers this far below the highest one seen are still accepted once (RFC 4303 §3.4.3 uses ≥ 32; a GSO burst and a reordering path need more). */
export const REPLAY_WINDOW = 4096;

export class DatagramSealer {
  private pn = 0;
  private readonly nonce = new Uint8Array(AEAD_NONCE_BYTES);
  sealed = 0;

  constructor(
    private readonly aead: InPlaceAead,
    private readonly iv: Uint8Array,
    firstPn = 0,
  ) {
    this.pn = firstPn;
  }

  /** The packet number the next datagram will carry. */
  get nextPn(): number {
    return this.pn;
  }

  /**
   * Seals `buf[bodyAt, bodyEnd)` in place under aad `buf[0, bodyAt)` and writes pn and tag after it;
   * `buf` must have DATAGRAM_OVERHEAD_BYTES of room there. Returns the sealed length (bodyEnd + 24).
   */
  sealInPlace(buf: Uint8Array, bodyAt: number, bodyEnd: number): number {
    if (this.pn > MAX_SEQ) throw new RangeError("packet numbers exhausted: start a new session");
    const pn = this.pn++;
    writePn(buf, bodyEnd, pn);
    this.aead.sealInPlace(counterNonce(this.iv, pn, this.nonce), buf, 0, bodyAt, bodyAt, bodyEnd - bodyAt, bodyEnd + PN_BYTES);
    this.sealed++;
    return bodyEnd + DATAGRAM_OVERHEAD_BYTES;
  }
}

export interface OpenerStats {
  opened: number;
  /** The tag did not verify: tampered, forged, or under another key. */
  tampered: number;
  /** A packet number already accepted. */
  replayed: number;
  /** A packet number below the replay window: it may be a replay, and cannot be told from one. */
  tooOld: number;
  /** Shorter than the aad + pn + tag. */
  malformed: number;
}

export type Refusal = "tampered" | "replayed" | "too-old" | "malformed";

export class DatagramOpener {
  private readonly nonce = new Uint8Array(AEAD_NONCE_BYTES);
  readonly window = new ReplayWindow(REPLAY_WINDOW);
  readonly stats: OpenerStats = { opened: 0, tampered: 0, replayed: 0, tooOld: 0, malformed: 0 };
  /** Why the last `openInPlace` refused. */
  lastRefusal: Refusal | undefined;

  constructor(
    private readonly aead: InPlaceAead,
    private readonly iv: Uint8Array,
  ) {}

  /**
   * Opens `datagram` in place (aad = its first `bodyAt` bytes, as the sender had them): the body's
   * end (datagram.byteLength − 24), the clear body then at [bodyAt, end); or −1, counted, when it is
   * malformed, replayed, too old or does not authenticate (its body is then garbage: drop it). Never throws.
   */
  openInPlace(datagram: Uint8Array, bodyAt: number): number {
    const bodyEnd = datagram.byteLength - DATAGRAM_OVERHEAD_BYTES;
    if (bodyEnd < bodyAt) return this.refuse("malformed");
    const pn = readPn(datagram, bodyEnd);
    if (pn > MAX_SEQ) return this.refuse("malformed");
    const seen = this.window.check(pn);
    if (seen !== "new") return this.refuse(seen === "seen" ? "replayed" : "too-old");
    if (!this.aead.openInPlace(counterNonce(this.iv, pn, this.nonce), datagram, 0, bodyAt, bodyAt, bodyEnd - bodyAt, bodyEnd + PN_BYTES)) return this.refuse("tampered");
    this.window.accept(pn);
    this.stats.opened++;
    return bodyEnd;
  }

  private refuse(why: Refusal): -1 {
    this.lastRefusal = why;
    if (why === "tampered") this.stats.tampered++;
    else if (why === "replayed") this.stats.replayed++;
    else if (why === "too-old") this.stats.tooOld++;
    else this.stats.malformed++;
    return -1;
  }
}

/**
 * Which packet numbers have been accepted, within `size` below the highest (a bitmap ring, as
 * RFC 6479): `check` is pure, `accept` records one that authenticated.
 */
export class ReplayWindow {
  private highest = -1;
  private readonly bits: Uint32Array;

  constructor(readonly size: number) {
    if (size % 32 !== 0) throw new RangeError("window size must be a multiple of 32");
    this.bits = new Uint32Array(size / 32);
  }

  check(pn: number): "new" | "seen" | "too-old" {
    if (pn > this.highest) return "new";
    if (this.highest - pn >= this.size) return "too-old";
    return this.has(pn) ? "seen" : "new";
  }

  accept(pn: number): void {
    if (pn > this.highest) {
      // Clear the slots the window slides over (all of them after a jump of a whole window or more).
      const from = Math.max(this.highest + 1, pn - this.size + 1);
      if (pn - from >= this.size) this.bits.fill(0);
      else for (let p = from; p <= pn; p++) this.set(p, false);
      this.highest = pn;
    }
    this.set(pn, true);
  }

  private has(pn: number): boolean {
    const slot = pn % this.size;
    return (this.bits[slot >>> 5]! & (1 << (slot & 31))) !== 0;
  }

  private set(pn: number, on: boolean): void {
    const slot = pn % this.size;
    if (on) this.bits[slot >>> 5]! |= 1 << (slot & 31);
    else this.bits[slot >>> 5]! &= ~(1 << (slot & 31));
  }
}

/** pn as a big-endian u64 (pn < 2^48: its top two bytes are zero), unrolled: once per datagram. */
function writePn(out: Uint8Array, at: number, pn: number): void {
  const hi = (pn / 0x100000000) >>> 0;
  const lo = pn >>> 0;
  out[at] = hi >>> 24;
  out[at + 1] = (hi >>> 16) & 0xff;
  out[at + 2] = (hi >>> 8) & 0xff;
  out[at + 3] = hi & 0xff;
  out[at + 4] = lo >>> 24;
  out[at + 5] = (lo >>> 16) & 0xff;
  out[at + 6] = (lo >>> 8) & 0xff;
  out[at + 7] = lo & 0xff;
}

function readPn(d: Uint8Array, at: number): number {
  const hi = ((d[at]! << 24) | (d[at + 1]! << 16) | (d[at + 2]! << 8) | d[at + 3]!) >>> 0;
  const lo = ((d[at + 4]! << 24) | (d[at + 5]! << 16) | (d[at + 6]! << 8) | d[at + 7]!) >>> 0;
  return hi * 0x100000000 + lo;
}
