/**
 * Caption variants for an emoji image, from its metadata and art style. Several phrasings per
 * image (name first, then descriptive, then with category and tags) so a model learns the
 * concept rather than one template; the loader picks one per epoch.
 */
import type { EmojiImage, EmojiStyle } from './catalog.js';

export const STYLE_NAMES: Readonly<Record<EmojiStyle, { short: string; long: string }>> = {
  noto: { short: 'Noto', long: 'Google Noto Color Emoji' },
  twemoji: { short: 'Twemoji', long: 'Twitter Twemoji' },
  openmoji: { short: 'OpenMoji', long: 'OpenMoji' },
};

/** Tags beyond this many add length, not information. */
const MAX_TAGS = 8;

function joinWords(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

export type EmojiCaptionInput = Pick<EmojiImage, 'style' | 'name' | 'baseName' | 'category' | 'subcategory' | 'skinTones' | 'tags'>;

export function emojiCaptions(image: EmojiCaptionInput): string[] {
  const style = STYLE_NAMES[image.style];
  const tones = image.skinTones;
  const subject = tones.length > 0 ? `${image.baseName} with ${joinWords(tones)} skin tone${tones.length > 1 ? 's' : ''}` : image.name;
  const where = [image.subcategory, image.category].filter((s) => s.length > 0);
  const variants = [
    `${image.name}, ${style.short} emoji`,
    `a ${style.long} style emoji of ${subject}`,
  ];
  if (where.length > 0) variants.push(`${subject}, ${where.join(', ')}, in the ${style.short} emoji style`);
  const tags = image.tags.filter((t) => t.toLowerCase() !== image.name.toLowerCase()).slice(0, MAX_TAGS);
  if (tags.length > 0) variants.push(`${style.short} emoji: ${subject}; ${tags.join(', ')}`);
  return [...new Set(variants)];
}
