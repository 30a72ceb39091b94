/**
 * Fixed 2-D sin-cos positional embedding, recomputed for the current token grid (released code:
 * get_2d_sincos_pos_embed). Positions are scaled to the training grid: p = i / (n / baseSize) /
 * peInterpolation, which is what lets a model trained at one resolution run at another.
 * Token m = h * W + w; the first half of the channels encodes the w coordinate and the second the
 * h coordinate (the released code's meshgrid puts w first), each half as [sin(p ω), cos(p ω)]
 * with ω_d = 10000^(-d / (D/4)).
 */
import { tensor, type Tensor } from '../../index.js';

/** [1, gridH * gridW, dim] float32 on the CPU; callers move it to their device and dtype. */
export function sincosPosEmbed(dim: number, gridH: number, gridW: number, baseSize: number, peInterpolation: number): Tensor {
  if (dim % 4 !== 0) throw new RangeError(`sincosPosEmbed: dim must be a multiple of 4, got ${dim}`);
  const quarter = dim / 4;
  const omega = Float64Array.from({ length: quarter }, (_, d) => 1 / 10000 ** (d / quarter));
  const out = new Float32Array(gridH * gridW * dim);
  // Coordinates are float32 in the released code (np.float32 aranges); match that.
  const coord = (i: number, n: number) => Math.fround(Math.fround(i / (n / baseSize)) / peInterpolation);
  for (let h = 0; h < gridH; h++) {
    for (let w = 0; w < gridW; w++) {
      const row = (h * gridW + w) * dim;
      const pw = coord(w, gridW);
      const ph = coord(h, gridH);
      for (let d = 0; d < quarter; d++) {
        out[row + d] = Math.sin(pw * omega[d]!);
        out[row + quarter + d] = Math.cos(pw * omega[d]!);
        out[row + 2 * quarter + d] = Math.sin(ph * omega[d]!);
        out[row + 3 * quarter + d] = Math.cos(ph * omega[d]!);
      }
    }
  }
  return tensor(out, { shape: [1, gridH * gridW, dim] });
}
