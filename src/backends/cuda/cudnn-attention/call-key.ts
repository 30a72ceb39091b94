/**
 * A call's signature as numbers, and a map from signatures to what was decided for them. The
 * cuDNN route looks its plan up once per attention call; building the graph spec and its string
 * key for that (dozens of objects and a long string hashed afresh) is per-call host work that a
 * few numbers written into a reused array, hashed and compared, replace.
 */

export class CallKey {
  readonly words: Float64Array;
  length = 0;

  constructor(capacity = 128) {
    this.words = new Float64Array(capacity);
  }

  clear(): this {
    this.length = 0;
    return this;
  }

  push(x: number): this {
    if (this.length === this.words.length) throw new RangeError(`CallKey: more than ${this.words.length} numbers`);
    this.words[this.length++] = x;
    return this;
  }

  push4(s: readonly number[]): this {
    return this.push(s[0]!).push(s[1]!).push(s[2]!).push(s[3]!);
  }

  /** FNV-1a over each number's low and high 32 bits (strides may pass 2^32, sentinels are negative). */
  hash(): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < this.length; i++) {
      const x = this.words[i]!;
      h = Math.imul(h ^ (x | 0), 0x01000193);
      h = Math.imul(h ^ (Math.floor(x / 4294967296) | 0), 0x01000193);
    }
    return h >>> 0;
  }

  equals(words: Float64Array): boolean {
    if (words.length !== this.length) return false;
    for (let i = 0; i < this.length; i++) if (words[i] !== this.words[i]) return false;
    return true;
  }
}

interface Slot<V> {
  readonly words: Float64Array;
  readonly value: V;
}

/** Values by CallKey: hash buckets, each entry checked number by number (a collision never aliases). */
export class CallCache<V> {
  private readonly buckets = new Map<number, Slot<V>[]>();
  private count = 0;
  hits = 0;
  misses = 0;

  get size(): number {
    return this.count;
  }

  get(key: CallKey): V | undefined {
    const bucket = this.buckets.get(key.hash());
    if (bucket !== undefined) {
      for (const slot of bucket) {
        if (key.equals(slot.words)) {
          this.hits++;
          return slot.value;
        }
      }
    }
    this.misses++;
    return undefined;
  }

  /** Stores a copy of the key's numbers (the key is reused for the next call), replacing an equal key's value. */
  set(key: CallKey, value: V): void {
    const h = key.hash();
    let bucket = this.buckets.get(h);
    if (bucket === undefined) {
      bucket = [];
      this.buckets.set(h, bucket);
    }
    const words = key.words.slice(0, key.length);
    const at = bucket.findIndex((s) => key.equals(s.words));
    if (at >= 0) bucket[at] = { words, value };
    else {
      bucket.push({ words, value });
      this.count++;
    }
  }
}
