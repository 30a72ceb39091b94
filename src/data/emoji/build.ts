/**
 * Builds the emoji text-to-image dataset offline from the installed npm packages:
 *
 *   <outDir>/images/<style>/<hexcode>.png   RGB, size × size, on a white background
 *   <outDir>/manifest.jsonl                 one row per image (JsonlDataset reads it)
 *   <outDir>/LICENSES.md, licenses/         a note per source and the packages' license files
 *   <outDir>/stats.json                     the counts printed at the end
 *
 * Manifest row: {image, caption, captions, source, split, emoji, base, name, category,
 * subcategory, skin_tones, license}. Rows are in catalog order (style, then the source's own
 * emoji order), so two builds of the same packages give identical manifests.
 */
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { DataError, SkipError, messageOf } from '../errors.js';
import { decodeImage, type RGB } from '../image-decode.js';
import { loadSharp } from '../sharp.js';
import { SkipReport } from '../skip-report.js';
import { EMOJI_STYLES, loadCatalog, locatePackages, type EmojiImage, type EmojiPackages, type EmojiStyle } from './catalog.js';
import { emojiCaptions } from './captions.js';
import { licenseNote, sourceLicenses } from './licenses.js';
import { SPLITS, TEST_EMOJI_FRACTION, VALIDATION_PAIR_FRACTION, emojiSplit, type Split } from './split.js';

export interface EmojiBuildOptions {
  outDir: string;
  /** Output side in pixels (default 64, the size of the Noto and Twemoji PNGs; larger upsamples them). */
  size?: number;
  /** Only the first `limit` emoji (by base emoji, in catalog order), in every style. */
  limit?: number;
  /** Only these emoji (base code points as 'hex-hex', any case, FE0F ignored), with all their tones. */
  emoji?: readonly string[];
  styles?: readonly EmojiStyle[];
  /** Images processed at once (default: available cores). */
  concurrency?: number;
  background?: RGB;
  /** Progress and the final counts (default console.log; null for silence). */
  log?: ((line: string) => void) | null;
  /** Where the packages are (default: resolved from node_modules). */
  packages?: EmojiPackages;
}

export interface EmojiBuildResult {
  outDir: string;
  manifestPath: string;
  images: number;
  captions: number;
  /** Distinct base emoji written, and how many of them are held out entirely (test split). */
  emoji: number;
  heldOutEmoji: number;
  byStyle: Record<EmojiStyle, number>;
  bySplit: Record<Split, number>;
  skipped: SkipReport;
  seconds: number;
}

interface ManifestRow {
  image: string;
  caption: string;
  captions: string[];
  source: EmojiStyle;
  split: Split;
  emoji: string;
  base: string;
  name: string;
  category: string;
  subcategory: string;
  skin_tones: string[];
  license: string;
}

export async function buildEmojiDataset(options: EmojiBuildOptions): Promise<EmojiBuildResult> {
  const started = performance.now();
  const size = options.size ?? 64;
  if (!Number.isInteger(size) || size < 8 || size > 4096) throw new DataError(`buildEmojiDataset: size must be an integer in [8, 4096], got ${size}`);
  const concurrency = options.concurrency ?? os.availableParallelism();
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new DataError(`buildEmojiDataset: concurrency must be a positive integer, got ${concurrency}`);
  const log = options.log === undefined ? (line: string) => console.log(line) : options.log;
  const packages = options.packages ?? locatePackages();
  const { outDir } = options;

  const catalog = loadCatalog(packages);
  const skipped = new SkipReport();
  for (const s of catalog.skips) skipped.add(s);
  const selected = select(catalog.images, options);
  if (size > 64 && selected.some((i) => i.format === 'png')) {
    log?.(`note: Noto and Twemoji images exist at 64 px only; at ${size} px they are upsampled`);
  }

  for (const style of EMOJI_STYLES) fs.mkdirSync(join(outDir, 'images', style), { recursive: true });
  const licenses = new Map(sourceLicenses(packages).map((l) => [l.style, l.imageLicense]));
  const rows: (ManifestRow | null)[] = new Array(selected.length).fill(null);
  let done = 0;
  await forEachLimited(selected, concurrency, async (image, i) => {
    try {
      rows[i] = await writeImage(image, outDir, size, options.background, licenses.get(image.style) ?? 'unknown');
    } catch (error) {
      if (!(error instanceof SkipError)) throw error;
      skipped.addError(error);
    }
    done += 1;
    if (done % 2000 === 0) log?.(`  ${done}/${selected.length} images`);
  });

  const written = rows.filter((r): r is ManifestRow => r !== null);
  const manifestPath = join(outDir, 'manifest.jsonl');
  await fs.promises.writeFile(manifestPath, written.map((r) => JSON.stringify(r)).join('\n') + (written.length > 0 ? '\n' : ''));
  await writeLicenses(outDir, packages, size);
  await fs.promises.writeFile(join(outDir, 'README.md'), datasetCard(size));

  const byStyle: Record<EmojiStyle, number> = { noto: 0, twemoji: 0, openmoji: 0 };
  const bySplit: Record<Split, number> = { train: 0, validation: 0, test: 0 };
  for (const r of written) {
    byStyle[r.source] += 1;
    bySplit[r.split] += 1;
  }
  const bases = new Set(written.map((r) => r.base));
  const heldOut = new Set(written.filter((r) => r.split === 'test').map((r) => r.base));
  const result: EmojiBuildResult = {
    outDir,
    manifestPath,
    images: written.length,
    captions: written.reduce((n, r) => n + r.captions.length, 0),
    emoji: bases.size,
    heldOutEmoji: heldOut.size,
    byStyle,
    bySplit,
    skipped,
    seconds: (performance.now() - started) / 1000,
  };
  const stats = { ...result, skipped: { total: skipped.total, byReason: skipped.counts(), files: skipped.list() }, size, packages };
  await fs.promises.writeFile(join(outDir, 'stats.json'), JSON.stringify(stats, null, 2) + '\n');
  log?.(formatCounts(result));
  return result;
}

export function formatCounts(r: EmojiBuildResult): string {
  return [
    `emoji dataset in ${r.outDir} (${r.seconds.toFixed(1)} s)`,
    `  images:   ${r.images} (${EMOJI_STYLES.map((s) => `${s} ${r.byStyle[s]}`).join(', ')})`,
    `  captions: ${r.captions}`,
    `  splits:   ${SPLITS.map((s) => `${s} ${r.bySplit[s]}`).join(', ')}; ${r.heldOutEmoji} of ${r.emoji} emoji held out entirely (test)`,
    `  ${r.skipped.summary()}`,
  ].join('\n');
}

function datasetCard(size: number): string {
  return [
    '# dimba emoji dataset',
    '',
    `${size}x${size} RGB PNG emoji in three art styles (Noto, Twemoji, OpenMoji) with generated captions, built by \`dimba data emoji\`.`,
    '',
    '- `manifest.jsonl`: one row per image: `image`, `caption` (the first variant), `captions` (all variants), `source` (style),',
    '  `split`, `emoji` (code points), `base` (the emoji without skin tones), `name`, `category`, `subcategory`, `skin_tones`, `license`.',
    `- split \`test\`: about ${Math.round(TEST_EMOJI_FRACTION * 100)}% of emoji held out entirely (every style and skin tone).`,
    `- split \`validation\`: about ${Math.round(VALIDATION_PAIR_FRACTION * 100)}% of the other (emoji, style) pairs; the emoji appears in training in other styles.`,
    '- `stats.json`: counts, and every skipped file with its reason. `LICENSES.md`: the license of each source.',
    '',
  ].join('\n');
}

function select(images: readonly EmojiImage[], options: EmojiBuildOptions): EmojiImage[] {
  const styles = new Set(options.styles ?? EMOJI_STYLES);
  let chosen = images.filter((i) => styles.has(i.style));
  if (options.emoji !== undefined) {
    const wanted = new Set(options.emoji.map((e) => e.toUpperCase().split('-').filter((p) => p !== 'FE0F').join('-')));
    chosen = chosen.filter((i) => wanted.has(i.base));
  }
  if (options.limit !== undefined) {
    if (!Number.isInteger(options.limit) || options.limit < 0) throw new DataError(`buildEmojiDataset: limit must be a non-negative integer, got ${options.limit}`);
    const bases = new Set<string>();
    for (const i of chosen) {
      if (bases.size >= options.limit) break;
      bases.add(i.base);
    }
    chosen = chosen.filter((i) => bases.has(i.base));
  }
  return chosen;
}

async function writeImage(image: EmojiImage, outDir: string, size: number, background: RGB | undefined, license: string): Promise<ManifestRow> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.promises.readFile(image.path);
  } catch (cause) {
    throw new SkipError('unreadable-file', image.path, messageOf(cause), { cause });
  }
  const decoded = await decodeImage(bytes, image.path, () => ({ width: size, height: size }), background ? { background } : {});
  const sharp = await loadSharp();
  const relative = `images/${image.style}/${image.hexcode.toLowerCase()}.png`;
  try {
    await sharp(Buffer.from(decoded.pixels.buffer, decoded.pixels.byteOffset, decoded.pixels.byteLength), { raw: { width: size, height: size, channels: 3 } })
      .png()
      .toFile(join(outDir, relative));
  } catch (cause) {
    throw new SkipError('unreadable-file', join(outDir, relative), `could not write the PNG: ${messageOf(cause)}`, { cause });
  }
  const captions = emojiCaptions(image);
  return {
    image: relative,
    caption: captions[0]!,
    captions,
    source: image.style,
    split: emojiSplit(image.base, image.style),
    emoji: image.hexcode,
    base: image.base,
    name: image.name,
    category: image.category,
    subcategory: image.subcategory,
    skin_tones: image.skinTones,
    license,
  };
}

async function writeLicenses(outDir: string, packages: EmojiPackages, size: number): Promise<void> {
  await fs.promises.writeFile(join(outDir, 'LICENSES.md'), licenseNote(packages, size));
  await fs.promises.mkdir(join(outDir, 'licenses'), { recursive: true });
  const dirs: Record<EmojiStyle, string> = { noto: packages.google.dir, twemoji: packages.twitter.dir, openmoji: packages.openmoji.dir };
  for (const l of sourceLicenses(packages)) {
    for (const file of l.files) {
      const from = join(dirs[l.style], file);
      if (fs.existsSync(from)) await fs.promises.copyFile(from, join(outDir, 'licenses', `${l.style}-${file}`));
    }
  }
}

/** Runs `fn` over `items` with at most `limit` calls pending at once. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
