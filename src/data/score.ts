/**
 * Image-quality proxies for curating a dataset: cheap, deterministic numbers computed from the
 * pixels alone. They are proxies, not an aesthetic model: they rank images by one measurable
 * property (how colourful, how contrasted, how sharp), which correlates with "good training
 * image" for some data (emoji, icons, illustrations) and not for others. A real curation would
 * use a learned aesthetic predictor; these let the quality-tuning stage run without one.
 *
 * Every metric reads 8-bit sRGB pixels, transparent pixels composited onto white (what the
 * trainer sees), and sums in float64 in a fixed order, so a score is the same on every machine.
 *
 *   colorfulness  Hasler & Süsstrunk (2003), "Measuring colourfulness in natural images":
 *                 rg = R - G, yb = (R + G)/2 - B,
 *                 M = sqrt(σ_rg² + σ_yb²) + 0.3·sqrt(μ_rg² + μ_yb²).
 *                 0 for any grey image; the paper reads ~15 as slightly, ~33 moderately, ~45
 *                 averagely, ~59 quite, ~82 highly and ~109 extremely colourful.
 *   contrast      RMS contrast: the standard deviation of luma Y' = 0.299R + 0.587G + 0.114B
 *                 (Rec. 601 weights on the encoded values), 0 (flat) to 127.5 (half black, half
 *                 white).
 *   sharpness     Variance of the 4-neighbour Laplacian of luma over the interior pixels (Pech-
 *                 Pacheco et al. 2000, the usual focus/blur measure). It depends on the pixel
 *                 scale, so compare it only between images scored at the same size.
 */
import { decodeImage, type ImageInfo, type TargetSize } from './image-decode.js';
import { DataError } from './errors.js';

export const SCORE_METRICS = ['colorfulness', 'contrast', 'sharpness'] as const;
export type ScoreMetric = (typeof SCORE_METRICS)[number];

/** Longest side images are reduced to before scoring (never enlarged): bounds the cost of a huge image. */
export const DEFAULT_SCORE_MAX_SIDE = 256;

/** Scores are rounded to this many decimals: enough to rank, and stable to print and compare. */
const DECIMALS = 3;

export function isScoreMetric(name: string): name is ScoreMetric {
  return (SCORE_METRICS as readonly string[]).includes(name);
}

function round(value: number): number {
  const f = 10 ** DECIMALS;
  return Math.round(value * f) / f;
}

function checkPixels(pixels: Uint8Array, width: number, height: number): void {
  if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0)) {
    throw new DataError(`score: image size must be positive integers, got ${width}x${height}`);
  }
  if (pixels.length !== width * height * 3) {
    throw new DataError(`score: expected ${width}x${height}x3 = ${width * height * 3} RGB bytes, got ${pixels.length}`);
  }
}

/** Hasler–Süsstrunk colourfulness of HWC RGB bytes. */
export function colorfulness(pixels: Uint8Array, width: number, height: number): number {
  checkPixels(pixels, width, height);
  const n = width * height;
  // yb is kept doubled (R + G - 2B) so that every term is a whole number and every sum exact.
  let sumRg = 0;
  let sumYb2 = 0;
  for (let i = 0; i < n; i++) {
    const r = pixels[3 * i]!, g = pixels[3 * i + 1]!, b = pixels[3 * i + 2]!;
    sumRg += r - g;
    sumYb2 += r + g - 2 * b;
  }
  const meanRg = sumRg / n;
  const meanYb2 = sumYb2 / n;
  // Two passes rather than E[x²] - E[x]²: no cancellation, so a flat image has exactly σ = 0.
  let varRg = 0;
  let varYb2 = 0;
  for (let i = 0; i < n; i++) {
    const r = pixels[3 * i]!, g = pixels[3 * i + 1]!, b = pixels[3 * i + 2]!;
    const dRg = r - g - meanRg;
    const dYb2 = r + g - 2 * b - meanYb2;
    varRg += dRg * dRg;
    varYb2 += dYb2 * dYb2;
  }
  const meanYb = meanYb2 / 2;
  return Math.sqrt(varRg / n + varYb2 / (4 * n)) + 0.3 * Math.sqrt(meanRg * meanRg + meanYb * meanYb);
}

/**
 * Luma times 1000, from integer weights (299, 587, 114): whole numbers, so sums are exact and a
 * flat image has exactly zero contrast and Laplacian.
 */
function luma1000(pixels: Uint8Array, n: number): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) y[i] = 299 * pixels[3 * i]! + 587 * pixels[3 * i + 1]! + 114 * pixels[3 * i + 2]!;
  return y;
}

function standardDeviation(values: Float64Array): number {
  if (values.length === 0) return 0;
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let squares = 0;
  for (const v of values) squares += (v - mean) * (v - mean);
  return Math.sqrt(squares / values.length);
}

/** RMS contrast (standard deviation of luma, 0..127.5) of HWC RGB bytes. */
export function rmsContrast(pixels: Uint8Array, width: number, height: number): number {
  checkPixels(pixels, width, height);
  return standardDeviation(luma1000(pixels, width * height)) / 1000;
}

/** Variance of the 4-neighbour Laplacian of luma; 0 for images without an interior (a side < 3). */
export function laplacianVariance(pixels: Uint8Array, width: number, height: number): number {
  checkPixels(pixels, width, height);
  if (width < 3 || height < 3) return 0;
  const y = luma1000(pixels, width * height);
  const lap = new Float64Array((width - 2) * (height - 2));
  let k = 0;
  for (let row = 1; row < height - 1; row++) {
    for (let col = 1; col < width - 1; col++) {
      const i = row * width + col;
      lap[k++] = y[i - width]! + y[i + width]! + y[i - 1]! + y[i + 1]! - 4 * y[i]!;
    }
  }
  const sd = standardDeviation(lap) / 1000;
  return sd * sd;
}

const METRIC_FUNCTIONS: Readonly<Record<ScoreMetric, (pixels: Uint8Array, width: number, height: number) => number>> = {
  colorfulness,
  contrast: rmsContrast,
  sharpness: laplacianVariance,
};

/** The metric's value, rounded to the manifest's precision. */
export function scorePixels(metric: ScoreMetric, pixels: Uint8Array, width: number, height: number): number {
  return round(METRIC_FUNCTIONS[metric](pixels, width, height));
}

/** The input's own size, reduced (aspect kept) so its longest side is at most `maxSide`. */
export function scoringSize(info: ImageInfo, maxSide: number): TargetSize {
  const longest = Math.max(info.width, info.height);
  if (longest <= maxSide) return { width: info.width, height: info.height };
  const scale = maxSide / longest;
  return { width: Math.max(1, Math.round(info.width * scale)), height: Math.max(1, Math.round(info.height * scale)) };
}

/**
 * Decodes an image file's bytes and scores it. Undecodable input throws a SkipError naming
 * `file`, as the loaders do.
 */
export async function scoreImage(bytes: Uint8Array, file: string, metric: ScoreMetric, maxSide = DEFAULT_SCORE_MAX_SIDE): Promise<number> {
  const image = await decodeImage(bytes, file, (info) => scoringSize(info, maxSide));
  return scorePixels(metric, image.pixels, image.width, image.height);
}
