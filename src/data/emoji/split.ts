/**
 * The emoji dataset's split, a pure function of the emoji and style (stable across builds and
 * machines, independent of which subset is built):
 *
 * - test: about 8% of emoji held out entirely — every style and skin tone of them — to measure
 *   generalisation to concepts never seen in training;
 * - validation: about 5% of the remaining (emoji, style) pairs, all tones included — the emoji
 *   is seen in training in the other styles, so this measures style transfer;
 * - train: the rest.
 */
import type { EmojiStyle } from './catalog.js';

export type Split = 'train' | 'validation' | 'test';
export const SPLITS: readonly Split[] = ['train', 'validation', 'test'];

export const TEST_EMOJI_FRACTION = 0.08;
export const VALIDATION_PAIR_FRACTION = 0.05;

/** A uniform number in [0, 1) from a string: FNV-1a over UTF-8, then murmur3's fmix32 to spread nearby codes. */
export function unitHash(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

export function emojiSplit(base: string, style: EmojiStyle): Split {
  if (unitHash(`dimba-emoji-test:${base}`) < TEST_EMOJI_FRACTION) return 'test';
  if (unitHash(`dimba-emoji-validation:${base}:${style}`) < VALIDATION_PAIR_FRACTION) return 'validation';
  return 'train';
}
