/**
 * The emoji catalog: every image of the three npm packages with its metadata, in one shape.
 *
 * - emoji-datasource-google / -twitter (iamcal/emoji-data): emoji.json (name, category,
 *   subcategory, skin_variations) and 64 px PNGs under img/<set>/64/.
 * - openmoji: data/openmoji.json (CLDR annotation and tags, group, subgroup, skin tone) and
 *   SVGs under color/svg/.
 *
 * Names and tags come from the CLDR annotations that openmoji.json carries, looked up by code
 * point sequence for all three styles (emoji-data's own names are older Unicode names such as
 * "FATHER CHRISTMAS"); emoji-data's name is the fallback.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DataError, messageOf } from '../errors.js';
import type { SkipEntry } from '../skip-report.js';

export type EmojiStyle = 'noto' | 'twemoji' | 'openmoji';
export const EMOJI_STYLES: readonly EmojiStyle[] = ['noto', 'twemoji', 'openmoji'];

export interface EmojiImage {
  style: EmojiStyle;
  /** Code points, upper-case hex joined by '-', without the FE0F variation selector. */
  hexcode: string;
  /** The emoji without skin-tone modifiers: all its tones (and styles) share a split. */
  base: string;
  path: string;
  format: 'png' | 'svg';
  /** Full CLDR-style name, e.g. "waving hand: medium-dark skin tone". */
  name: string;
  /** Name without the skin tone, e.g. "waving hand". */
  baseName: string;
  category: string;
  subcategory: string;
  /** Skin tones in code point order, e.g. ['light', 'medium-dark']. */
  skinTones: string[];
  tags: string[];
  /** Position in the source's own ordering, for a stable catalog order. */
  order: number;
}

export interface EmojiPackage {
  name: string;
  version: string;
  dir: string;
}

export interface EmojiPackages {
  google: EmojiPackage;
  twitter: EmojiPackage;
  openmoji: EmojiPackage;
}

const SKIN_TONES: Readonly<Record<string, string>> = {
  '1F3FB': 'light',
  '1F3FC': 'medium-light',
  '1F3FD': 'medium',
  '1F3FE': 'medium-dark',
  '1F3FF': 'dark',
};

const OPENMOJI_GROUPS: Readonly<Record<string, string>> = {
  'smileys-emotion': 'Smileys & Emotion',
  'people-body': 'People & Body',
  component: 'Component',
  'animals-nature': 'Animals & Nature',
  'food-drink': 'Food & Drink',
  'travel-places': 'Travel & Places',
  activities: 'Activities',
  objects: 'Objects',
  symbols: 'Symbols',
  flags: 'Flags',
  'extras-openmoji': 'OpenMoji Extras',
  'extras-unicode': 'Unicode Extras',
};

/** Finds the installed packages (they are dependencies of dimba). */
export function locatePackages(): EmojiPackages {
  const require = createRequire(import.meta.url);
  const locate = (name: string): EmojiPackage => {
    let manifest: string;
    try {
      manifest = require.resolve(`${name}/package.json`);
    } catch (cause) {
      throw new DataError(`emoji dataset: package '${name}' is not installed (${messageOf(cause)}); run \`npm install\``, { cause });
    }
    const { version } = readJson(manifest) as { version?: unknown };
    return { name, version: typeof version === 'string' ? version : 'unknown', dir: dirname(manifest) };
  };
  return { google: locate('emoji-datasource-google'), twitter: locate('emoji-datasource-twitter'), openmoji: locate('openmoji') };
}

export function normalizeHexcode(hexcode: string): string {
  return hexcode
    .toUpperCase()
    .split('-')
    .filter((p) => p !== 'FE0F' && p.length > 0)
    .join('-');
}

function skinTonesOf(hexcode: string): string[] {
  const parts = hexcode.split('-');
  if (parts.length < 2) return []; // a lone modifier is the swatch itself, not a toned emoji
  return parts.flatMap((p) => (SKIN_TONES[p] ? [SKIN_TONES[p]] : []));
}

function stripSkinTones(hexcode: string): string {
  const parts = hexcode.split('-');
  if (parts.length < 2) return hexcode;
  return parts.filter((p) => SKIN_TONES[p] === undefined).join('-');
}

interface Annotation {
  name: string;
  tags: string[];
  category: string;
  subcategory: string;
}

interface DatasourceVariation {
  unified?: unknown;
  image?: unknown;
}

interface DatasourceEntry {
  name?: unknown;
  unified?: unknown;
  image?: unknown;
  category?: unknown;
  subcategory?: unknown;
  sort_order?: unknown;
  skin_variations?: Record<string, DatasourceVariation>;
}

interface OpenmojiEntry {
  hexcode?: unknown;
  annotation?: unknown;
  tags?: unknown;
  openmoji_tags?: unknown;
  group?: unknown;
  subgroups?: unknown;
  skintone_base_hexcode?: unknown;
  order?: unknown;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new DataError(`emoji dataset: cannot read ${path}: ${messageOf(cause)}`, { cause });
  }
}

function readArray<T>(path: string): T[] {
  const value = readJson(path);
  if (!Array.isArray(value)) throw new DataError(`emoji dataset: ${path} should hold a JSON array`);
  return value as T[];
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const words = (v: unknown): string[] =>
  str(v)
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
const readable = (slug: string): string => slug.replace(/-/g, ' ');

/** Every image of the three styles; files named in metadata but absent are returned as skips. */
export function loadCatalog(packages: EmojiPackages = locatePackages()): { images: EmojiImage[]; skips: SkipEntry[] } {
  const openmoji = readArray<OpenmojiEntry>(join(packages.openmoji.dir, 'data', 'openmoji.json'));
  const annotations = new Map<string, Annotation>();
  for (const e of openmoji) {
    const hex = normalizeHexcode(str(e.hexcode));
    annotations.set(hex, {
      name: str(e.annotation),
      tags: [...new Set([...words(e.tags), ...words(e.openmoji_tags)])],
      category: OPENMOJI_GROUPS[str(e.group)] ?? readable(str(e.group)),
      subcategory: readable(str(e.subgroups)),
    });
  }
  const images: EmojiImage[] = [];
  const skips: SkipEntry[] = [];
  const datasource = readArray<DatasourceEntry>(join(packages.google.dir, 'emoji.json'));
  for (const [style, pkg, set] of [['noto', packages.google, 'google'], ['twemoji', packages.twitter, 'twitter']] as const) {
    for (const entry of datasource) {
      const base = normalizeHexcode(str(entry.unified));
      const baseAnnotation = annotations.get(base);
      const baseName = baseAnnotation?.name || str(entry.name).toLowerCase();
      const variants: [string, string][] = [[str(entry.unified), str(entry.image)]];
      for (const v of Object.values(entry.skin_variations ?? {})) variants.push([str(v.unified), str(v.image)]);
      for (const [unified, image] of variants) {
        const hexcode = normalizeHexcode(unified);
        const path = join(pkg.dir, 'img', set, '64', image);
        if (image === '' || !fs.existsSync(path)) {
          skips.push({ file: path, reason: 'missing-image', detail: `${style} image for ${hexcode} named in emoji.json is not in the package` });
          continue;
        }
        const tones = skinTonesOf(hexcode);
        const own = annotations.get(hexcode);
        images.push({
          style,
          hexcode,
          base,
          path,
          format: 'png',
          name: own?.name || (tones.length > 0 ? `${baseName}: ${tones.join(', ')} skin tone` : baseName),
          baseName,
          category: str(entry.category),
          subcategory: readable(str(entry.subcategory)),
          skinTones: tones,
          tags: own?.tags.length ? own.tags : baseAnnotation?.tags ?? [],
          order: typeof entry.sort_order === 'number' ? entry.sort_order : images.length,
        });
      }
    }
  }
  openmoji.forEach((e, i) => {
    const raw = str(e.hexcode);
    const hexcode = normalizeHexcode(raw);
    const path = join(packages.openmoji.dir, 'color', 'svg', `${raw}.svg`);
    if (!fs.existsSync(path)) {
      skips.push({ file: path, reason: 'missing-image', detail: `OpenMoji SVG for ${hexcode} named in openmoji.json is not in the package` });
      return;
    }
    const base = normalizeHexcode(str(e.skintone_base_hexcode)) || stripSkinTones(hexcode);
    const own = annotations.get(hexcode)!;
    const baseAnnotation = annotations.get(base);
    images.push({
      style: 'openmoji',
      hexcode,
      base,
      path,
      format: 'svg',
      name: own.name || hexcode,
      baseName: baseAnnotation?.name || own.name || hexcode,
      category: own.category,
      subcategory: own.subcategory,
      skinTones: skinTonesOf(hexcode),
      tags: own.tags.length > 0 ? own.tags : baseAnnotation?.tags ?? [],
      order: typeof e.order === 'number' ? e.order : i,
    });
  });
  return { images, skips };
}
