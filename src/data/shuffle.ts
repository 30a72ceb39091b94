/**
 * Deterministic randomness for data order: every draw is a pure function of (seed, stream,
 * a, b) through Philox4x32-10, so an epoch's permutation or a caption choice can be recomputed
 * anywhere (after a resume, in another process) without carrying generator state.
 */
import { philox4x32 } from '../random/philox.js';
import { DataError } from './errors.js';

/** Separate counter spaces so different uses of one seed never share numbers. */
export const STREAM_PERMUTATION = 1;
export const STREAM_CAPTION = 2;
export const STREAM_SHARD_ORDER = 3;
export const STREAM_SHUFFLE_BUFFER = 4;

const TWO_POW_32 = 4294967296;
const words = new Uint32Array(4);

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new DataError(`shuffle: seed must be a non-negative safe integer, got ${seed}`);
}

/** A uniform number in [0, 1) with 53 random bits for counter (a, b) of `stream`. */
export function uniformAt(seed: number, stream: number, a: number, b: number): number {
  checkSeed(seed);
  philox4x32(a >>> 0, b >>> 0, stream >>> 0, Math.floor(a / TWO_POW_32) >>> 0, seed >>> 0, Math.floor(seed / TWO_POW_32) >>> 0, words);
  // 53 bits: 27 from the first word, 26 from the second (as a double's mantissa holds).
  return ((words[0]! >>> 5) * 67108864 + (words[1]! >>> 6)) / 9007199254740992;
}

/** An integer in [0, n) for counter (a, b) of `stream`. */
export function indexAt(seed: number, stream: number, a: number, b: number, n: number): number {
  return Math.floor(uniformAt(seed, stream, a, b) * n);
}

/**
 * The order of `n` items in `epoch` for `seed`: a Fisher–Yates shuffle whose i-th swap uses
 * counter (i, epoch), so each epoch gets a fresh order and the same (seed, epoch) always the
 * same one.
 */
export function epochPermutation(n: number, seed: number, epoch: number, stream = STREAM_PERMUTATION): Uint32Array {
  if (!Number.isInteger(n) || n < 0 || n >= TWO_POW_32) throw new DataError(`epochPermutation: n must be an integer in [0, 2^32), got ${n}`);
  if (!Number.isInteger(epoch) || epoch < 0) throw new DataError(`epochPermutation: epoch must be a non-negative integer, got ${epoch}`);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = indexAt(seed, stream, i, epoch, i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}
