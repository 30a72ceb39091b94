/**
 * Packing of GEMM operands into the micro-panel layout the kernel streams (see kernel.ts).
 *
 * A micro-panel of width W (MR for A, NR for B) over a K block of kc steps is stored k-major:
 * panel[k * W + w] = op(X)[w0 + w, k0 + k] for A (w = row of C) or op(B)[k0 + k, w0 + w] for B
 * (w = column of C). Consecutive panels follow each other, each kcp * W floats long, where kcp
 * is kc rounded up to the kernel's unroll. Lanes beyond the matrix edge and steps beyond kc are
 * written as zeros, so the kernel always computes full tiles and its k loop needs no remainder.
 *
 * Both operands reduce to one routine: in "w-contiguous" storage op(X)[w, k] = X[k * ld + w]
 * (A transposed, or B not transposed); otherwise op(X)[w, k] = X[w * ld + k].
 */

export interface PanelSource {
  data: Float32Array;
  offset: number;
  ld: number;
  /** True when consecutive w (panel lanes) are adjacent in memory. */
  wContiguous: boolean;
}

/**
 * Packs op(X)[w0 .. w0+wCount, k0 .. k0+kc) into ceil(wCount / width) micro-panels of
 * `width` lanes and kcp (>= kc) steps, starting at dst[dOff].
 */
export function packPanels(
  src: PanelSource, w0: number, wCount: number, k0: number, kc: number, kcp: number,
  width: number, dst: Float32Array, dOff: number,
): void {
  const { data, offset, ld } = src;
  for (let t = 0; t < wCount; t += width) {
    const lanes = Math.min(width, wCount - t);
    const panel = dOff + t * kcp;
    if (src.wContiguous) {
      // Each k step reads `lanes` adjacent values: copy a row segment per step.
      let d = panel;
      let s = offset + k0 * ld + w0 + t;
      for (let k = 0; k < kc; k++, s += ld, d += width) {
        for (let w = 0; w < lanes; w++) dst[d + w] = data[s + w]!;
        for (let w = lanes; w < width; w++) dst[d + w] = 0;
      }
      dst.fill(0, d, panel + kcp * width);
    } else {
      // Each lane reads a contiguous run over k: scatter it with stride `width`.
      for (let w = 0; w < width; w++) {
        let d = panel + w;
        if (w < lanes) {
          const s = offset + (w0 + t + w) * ld + k0;
          for (let k = 0; k < kc; k++, d += width) dst[d] = data[s + k]!;
        }
        for (let k = w < lanes ? kc : 0; k < kcp; k++, d += width) dst[d] = 0;
      }
    }
  }
}

/** Rounds `n` up to a multiple of `m`. */
export function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}
