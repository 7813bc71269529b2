import { randomBytes } from 'node:crypto';

/**
 * A set of paths at 8 bytes a path (16 at the worst load), whatever their
 * length or number: what lets a layer of a million entries be applied in
 * bounded memory (a Set of the strings cost ~300 MiB there).
 *
 * Each path is kept as a 64-bit hash, keyed with random seeds per set, so
 * nobody can make two paths collide on purpose; by chance, two of a million
 * paths collide with odds of about 3 in 10^8. A collision can only make
 * `has` say yes for a path that was never added; the extractor asks "did
 * this layer write that path?" to spare this layer's own files from its
 * whiteouts, so at worst a lower layer's file stays visible, never a file of
 * another image or the host.
 */
export class PathSet {
  private hi: Uint32Array;
  private lo: Uint32Array;
  private size = 0;
  private readonly seedHi: number;
  private readonly seedLo: number;

  constructor(initialCapacity = 1024) {
    let cap = 16;
    while (cap < initialCapacity * 2) cap *= 2;
    this.hi = new Uint32Array(cap);
    this.lo = new Uint32Array(cap);
    const seeds = randomBytes(8);
    this.seedHi = seeds.readUInt32LE(0);
    this.seedLo = seeds.readUInt32LE(4);
  }

  get count(): number {
    return this.size;
  }

  add(path: string): void {
    const [h, l] = this.hash(path);
    if (this.insert(h, l) && ++this.size * 2 > this.hi.length) this.grow();
  }

  has(path: string): boolean {
    const [h, l] = this.hash(path);
    const mask = this.hi.length - 1;
    for (let i = l & mask; ; i = (i + 1) & mask) {
      if (this.hi[i] === 0 && this.lo[i] === 0) return false;
      if (this.hi[i] === h && this.lo[i] === l) return true;
    }
  }

  /** Linear probing; (0, 0) marks a free slot. True when the hash was new. */
  private insert(h: number, l: number): boolean {
    const mask = this.hi.length - 1;
    for (let i = l & mask; ; i = (i + 1) & mask) {
      if (this.hi[i] === 0 && this.lo[i] === 0) {
        this.hi[i] = h;
        this.lo[i] = l;
        return true;
      }
      if (this.hi[i] === h && this.lo[i] === l) return false;
    }
  }

  private grow(): void {
    const { hi, lo } = this;
    this.hi = new Uint32Array(hi.length * 2);
    this.lo = new Uint32Array(lo.length * 2);
    for (let i = 0; i < hi.length; i++) if (hi[i] !== 0 || lo[i] !== 0) this.insert(hi[i]!, lo[i]!);
  }

  /** Two independent 32-bit murmur3-style hashes of the UTF-16 code units; never (0, 0). */
  private hash(s: string): [number, number] {
    const h = mix(s, this.seedHi);
    const l = mix(s, this.seedLo ^ 0x9e3779b9);
    return h === 0 && l === 0 ? [0, 1] : [h, l];
  }
}

function mix(s: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    let k = Math.imul(s.charCodeAt(i), 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= s.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
