/**
 * Aspect-ratio buckets after PixArt-α's multi-scale training tables (ASPECT_RATIO_1024/512/256
 * in PixArt-alpha diffusion/data/datasets/utils.py). Each bin is labelled with its nominal
 * height/width ratio and holds a [height, width] of about base² pixels; an image goes to the
 * bin whose label is closest to its own height/width (PixArt's get_closest_ratio), is resized
 * to cover that size and center-cropped, and batches are formed within a bin.
 *
 * The 512 and 256 tables are the 1024 table divided by 2 and 4 exactly, so one table is kept.
 */
import { DataError } from './errors.js';

export interface AspectBucket {
  /** The bin's label as a number (PixArt's dict key), height / width nominally. */
  ratio: number;
  height: number;
  width: number;
}

export type AspectRatioTable = readonly AspectBucket[];

/** [label, height, width] at base 1024, in PixArt's order (ascending ratio). */
const TABLE_1024: readonly (readonly [number, number, number])[] = [
  [0.25, 512, 2048], [0.26, 512, 1984], [0.27, 512, 1920], [0.28, 512, 1856],
  [0.32, 576, 1792], [0.33, 576, 1728], [0.35, 576, 1664], [0.4, 640, 1600],
  [0.42, 640, 1536], [0.48, 704, 1472], [0.5, 704, 1408], [0.52, 704, 1344],
  [0.57, 768, 1344], [0.6, 768, 1280], [0.68, 832, 1216], [0.72, 832, 1152],
  [0.78, 896, 1152], [0.82, 896, 1088], [0.88, 960, 1088], [0.94, 960, 1024],
  [1.0, 1024, 1024], [1.07, 1024, 960], [1.13, 1088, 960], [1.21, 1088, 896],
  [1.29, 1152, 896], [1.38, 1152, 832], [1.46, 1216, 832], [1.67, 1280, 768],
  [1.75, 1344, 768], [2.0, 1408, 704], [2.09, 1472, 704], [2.4, 1536, 640],
  [2.5, 1600, 640], [2.89, 1664, 576], [3.0, 1728, 576], [3.11, 1792, 576],
  [3.62, 1856, 512], [3.75, 1920, 512], [3.88, 1984, 512], [4.0, 2048, 512],
];

/**
 * The table scaled to `base` (1024 → PixArt's ASPECT_RATIO_1024, 512, 256 likewise), sides
 * rounded to a multiple of `multiple` (VAE downsampling × patch size; 8 keeps latents whole
 * for an 8× VAE). When rounding gives several bins one size (small bases), the one whose label
 * is nearest that size's true ratio is kept, so each size is one bucket.
 */
export function aspectRatioTable(base: number, multiple = 8): AspectRatioTable {
  if (!Number.isInteger(base) || base <= 0) throw new DataError(`aspectRatioTable: base must be a positive integer, got ${base}`);
  if (!Number.isInteger(multiple) || multiple <= 0) {
    throw new DataError(`aspectRatioTable: multiple must be a positive integer, got ${multiple}`);
  }
  const bySize = new Map<string, AspectBucket>();
  for (const [ratio, h, w] of TABLE_1024) {
    const height = Math.max(multiple, Math.round((h * base) / 1024 / multiple) * multiple);
    const width = Math.max(multiple, Math.round((w * base) / 1024 / multiple) * multiple);
    const key = `${height}x${width}`;
    const kept = bySize.get(key);
    if (kept === undefined || Math.abs(ratio - height / width) < Math.abs(kept.ratio - height / width)) {
      bySize.set(key, Object.freeze({ ratio, height, width }));
    }
  }
  return Object.freeze([...bySize.values()].sort((a, b) => a.ratio - b.ratio));
}

export const ASPECT_RATIO_1024: AspectRatioTable = aspectRatioTable(1024);
export const ASPECT_RATIO_512: AspectRatioTable = aspectRatioTable(512);
export const ASPECT_RATIO_256: AspectRatioTable = aspectRatioTable(256);

/** The bin whose ratio label is nearest height / width; ties go to the earlier bin, as in PixArt. */
export function closestBucket(table: AspectRatioTable, height: number, width: number): AspectBucket {
  if (table.length === 0) throw new DataError('closestBucket: the table is empty');
  if (!(height > 0 && width > 0)) throw new DataError(`closestBucket: image size must be positive, got ${height}x${width}`);
  const aspect = height / width;
  let best = table[0]!;
  let bestDistance = Math.abs(best.ratio - aspect);
  for (const bucket of table) {
    const distance = Math.abs(bucket.ratio - aspect);
    if (distance < bestDistance) {
      best = bucket;
      bestDistance = distance;
    }
  }
  return best;
}
