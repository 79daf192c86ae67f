/** A small seeded PRNG (mulberry32): the same seed replays the same run. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** n pseudo-random bytes, four per step of the generator. */
  bytes(n: number): Uint8Array {
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) words[i] = this.next() * 4294967296;
    return new Uint8Array(words.buffer, 0, n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/**
 * An independent seed for one part of a seeded run (`deriveSeed(seed, "relay 2")`): FNV-1a over the
 * seed and the label. Each part draws from its own generator, so a change in how many numbers one
 * part takes cannot shift what another gets, and seeds n and n + 1 share no streams.
 */
export function deriveSeed(seed: number, label: string): number {
  let h = 0x811c9dc5;
  for (const ch of `${seed >>> 0}:${label}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

/** Mutations in the style of AFL: flip bits, change bytes, truncate, extend, splice. */
export function mutate(rng: Rng, input: Uint8Array): Uint8Array {
  let out = input.slice();
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    switch (rng.int(6)) {
      case 0:
        if (out.length) out[rng.int(out.length)]! ^= 1 << rng.int(8);
        break;
      case 1:
        if (out.length) out[rng.int(out.length)] = rng.pick([0, 1, 0x7f, 0x80, 0xff]);
        break;
      case 2:
        out = out.slice(0, rng.int(out.length + 1));
        break;
      case 3: {
        const extra = rng.bytes(1 + rng.int(16));
        const next = new Uint8Array(out.length + extra.length);
        next.set(out);
        next.set(extra, out.length);
        out = next;
        break;
      }
      case 4:
        if (out.length >= 4) {
          const at = rng.int(out.length - 3);
          new DataView(out.buffer, out.byteOffset).setUint32(at, rng.pick([0, 1, 0xffff, 0xffffffff, rng.int(2 ** 32)]));
        }
        break;
      case 5:
        if (out.length) out = out.slice(rng.int(out.length));
        break;
    }
  }
  return out;
}
