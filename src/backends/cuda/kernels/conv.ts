/**
 * conv2d on CUDA as im2col (conv.cu) + cuBLAS GEMM, with the CPU kernel's formulation
 * (src/backends/cpu/kernels/conv.ts): per sample and group, with K = C/groups * kh * kw,
 *   forward          out[Cog, L]  = W[Cog, K] @ cols[K, L]        (bias pre-filled, beta = 1)
 *   backward input   gcols[K, L]  = W^T @ gy[Cog, L], gathered back into gx (col2im)
 *   backward weight  gW[Cog, K]  += gy[Cog, L] @ cols^T
 * Samples go through in chunks whose column matrices fit the column budget, one batched GEMM per
 * group and chunk; when one sample's columns exceed it, its output rows are blocked instead.
 * 1x1 convolutions with stride 1 and no padding multiply the input itself. gcols and gW accumulate
 * in float32 for half types (float64 for float64) and are rounded once, as on the CPU.
 */
import type { Kernels } from '../../backend.js';
import { convGeometry as geometry, type ConvGeometry as Geometry } from '../../conv-geometry.js';
import { itemSize, type DType } from '../../../tensor/dtype.js';
import type { Tensor } from '../../../tensor/tensor.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { gemm } from './gemm.js';
import { Scratch, computeType } from './scratch.js';
import { CONV_MODULE } from './source.js';

/** Most elements of one column buffer by default (128 MiB of float32). */
const COLS_BUDGET = 1 << 25;
let colsBudget = COLS_BUDGET;

/**
 * Runs fn with another column-buffer budget (elements), so tests can reach the sample-chunked and
 * row-blocked paths with small tensors.
 */
export function withConvColumnBudget<T>(elements: number, fn: () => T): T {
  if (!Number.isInteger(elements) || elements < 1) throw new RangeError(`withConvColumnBudget: budget must be a positive integer, got ${elements}`);
  const previous = colsBudget;
  colsBudget = elements;
  try {
    return fn();
  } finally {
    colsBudget = previous;
  }
}

/** Samples [s0, s0 + ns) and output rows [r0, r1) whose columns are unrolled together. */
interface Chunk { s0: number; ns: number; r0: number; r1: number }

function chunks(g: Geometry): { list: Chunk[]; maxElements: number } {
  const perSample = g.groups * g.k * g.p;
  const list: Chunk[] = [];
  if (perSample <= colsBudget) {
    const ns = Math.max(1, Math.min(g.n, Math.floor(colsBudget / perSample)));
    for (let s0 = 0; s0 < g.n; s0 += ns) list.push({ s0, ns: Math.min(ns, g.n - s0), r0: 0, r1: g.ho });
    return { list, maxElements: Math.min(ns, g.n) * perSample };
  }
  const rows = Math.max(1, Math.floor(colsBudget / (g.groups * g.k * g.wo)));
  for (let s0 = 0; s0 < g.n; s0++) {
    for (let r0 = 0; r0 < g.ho; r0 += rows) list.push({ s0, ns: 1, r0, r1: Math.min(g.ho, r0 + rows) });
  }
  return { list, maxElements: g.groups * g.k * Math.min(rows, g.ho) * g.wo };
}

/** conv.cu's ConvGeom, as int64 words. */
function geomWords(g: Geometry): number[] {
  return [g.c, g.h, g.w, g.co, g.ho, g.wo, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups];
}

/** Device address of element `index` of contiguous t. */
function at(t: Tensor, index: number): number {
  return addressOf(t) + index * itemSize(t.dtype);
}

export function convKernels(rt: CudaRuntime): Pick<Kernels, 'conv2d' | 'conv2dBackwardInput' | 'conv2dBackwardWeight'> {
  const im2col = (g: Geometry, x: Tensor, cols: Tensor, ch: Chunk) => {
    const count = ch.ns * g.groups * g.k * (ch.r1 - ch.r0) * g.wo;
    rt.params.begin().ptr(addressOf(x)).ptr(addressOf(cols)).i64Struct(geomWords(g)).i64(ch.s0).i64(ch.ns).i64(ch.r0).i64(ch.r1);
    rt.launch(rt.fn(CONV_MODULE, `im2col_${itemSize(x.dtype)}`), rt.gridFor(count), 256);
  };

  return {
    conv2d(x0, weight0, bias0, out0, args) {
      const g = geometry(x0.shape, weight0.shape, out0.shape, args);
      if (out0.numel === 0) return;
      const s = new Scratch(rt);
      const dtype = x0.dtype;
      const x = s.input(x0);
      const wt = s.input(weight0, dtype);
      const out = s.output(out0, dtype);
      if (bias0) {
        const bias = s.input(bias0, dtype);
        rt.params.begin().ptr(addressOf(bias)).ptr(addressOf(out)).i64(g.co).i64(g.p).i64(out.numel);
        rt.launch(rt.fn(CONV_MODULE, `bias_fill_${itemSize(dtype)}`), rt.gridFor(out.numel), 256);
      }
      const beta = bias0 ? 1 : 0;
      const base = { abType: dtype, cType: dtype, beta, transA: false, transB: false } as const;
      if (g.pointwise) {
        for (let grp = 0; grp < g.groups; grp++) {
          gemm(rt, { ...base, m: g.cog, n: g.p, k: g.k, batch: g.n,
            a: { address: at(wt, grp * g.cog * g.k), ld: g.k, stride: 0 },
            b: { address: at(x, grp * g.cg * g.p), ld: g.p, stride: g.c * g.p },
            c: { address: at(out, grp * g.cog * g.p), ld: g.p, stride: g.co * g.p } });
        }
      } else {
        const plan = chunks(g);
        const cols = s.buffer(x, [plan.maxElements], dtype);
        for (const ch of plan.list) {
          im2col(g, x, cols, ch);
          const L = (ch.r1 - ch.r0) * g.wo;
          for (let grp = 0; grp < g.groups; grp++) {
            gemm(rt, { ...base, m: g.cog, n: L, k: g.k, batch: ch.ns,
              a: { address: at(wt, grp * g.cog * g.k), ld: g.k, stride: 0 },
              b: { address: at(cols, grp * g.k * L), ld: L, stride: g.groups * g.k * L },
              c: { address: at(out, (ch.s0 * g.co + grp * g.cog) * g.p + ch.r0 * g.wo), ld: g.p, stride: g.co * g.p } });
          }
        }
      }
      s.finish();
    },

    conv2dBackwardInput(gy0, weight0, gx0, args) {
      const g = geometry(gx0.shape, weight0.shape, gy0.shape, args);
      if (gx0.numel === 0) return;
      const s = new Scratch(rt);
      const dtype = gx0.dtype;
      const compute: DType = computeType(gx0);
      const gy = s.input(gy0, dtype);
      const wt = s.input(weight0, dtype);
      // col2im adds into the accumulator, so it starts at zero (and stays zero for an empty gy).
      const acc = s.output(gx0, compute, !g.pointwise || gy.numel === 0);
      if (gy.numel === 0) { s.finish(); return; }
      const base = { abType: dtype, cType: compute, beta: 0, transA: true, transB: false } as const;
      if (g.pointwise) {
        for (let grp = 0; grp < g.groups; grp++) {
          gemm(rt, { ...base, m: g.cg, n: g.p, k: g.cog, batch: g.n,
            a: { address: at(wt, grp * g.cog * g.k), ld: g.k, stride: 0 },
            b: { address: at(gy, grp * g.cog * g.p), ld: g.p, stride: g.co * g.p },
            c: { address: at(acc, grp * g.cg * g.p), ld: g.p, stride: g.c * g.p } });
        }
      } else {
        const plan = chunks(g);
        const gcols = s.buffer(gy, [plan.maxElements], compute);
        for (const ch of plan.list) {
          const L = (ch.r1 - ch.r0) * g.wo;
          for (let grp = 0; grp < g.groups; grp++) {
            gemm(rt, { ...base, m: g.k, n: L, k: g.cog, batch: ch.ns,
              a: { address: at(wt, grp * g.cog * g.k), ld: g.k, stride: 0 },
              b: { address: at(gy, (ch.s0 * g.co + grp * g.cog) * g.p + ch.r0 * g.wo), ld: g.p, stride: g.co * g.p },
              c: { address: at(gcols, grp * g.k * L), ld: L, stride: g.groups * g.k * L } });
          }
          // Input rows that the chunk's output rows read.
          const ih0 = Math.max(0, ch.r0 * g.sh - g.ph);
          const ih1 = Math.min(g.h, (ch.r1 - 1) * g.sh - g.ph + (g.kh - 1) * g.dh + 1);
          if (ih1 <= ih0) continue;
          const count = ch.ns * g.c * (ih1 - ih0) * g.w;
          rt.params.begin().ptr(addressOf(gcols)).ptr(addressOf(acc)).i64Struct(geomWords(g))
            .i64(ch.s0).i64(ch.ns).i64(ch.r0).i64(ch.r1).i64(ih0).i64(ih1);
          rt.launch(rt.fn(CONV_MODULE, `col2im_${compute === 'float64' ? 'f64' : 'f32'}`), rt.gridFor(count), 256);
        }
      }
      s.finish();
    },

    conv2dBackwardWeight(gy0, x0, gw0, args) {
      const g = geometry(x0.shape, gw0.shape, gy0.shape, args);
      if (gw0.numel === 0) return;
      const s = new Scratch(rt);
      const dtype = x0.dtype;
      const compute: DType = computeType(x0, gw0);
      const gy = s.input(gy0, dtype);
      const x = s.input(x0, dtype);
      // Samples (and row blocks) add onto the accumulator with beta = 1.
      const acc = s.output(gw0, compute, true);
      const base = { abType: dtype, cType: compute, beta: 1, transA: false, transB: true } as const;
      if (gy.numel > 0 && g.pointwise) {
        for (let n = 0; n < g.n; n++) {
          gemm(rt, { ...base, m: g.cog, n: g.k, k: g.p, batch: g.groups,
            a: { address: at(gy, n * g.co * g.p), ld: g.p, stride: g.cog * g.p },
            b: { address: at(x, n * g.c * g.p), ld: g.p, stride: g.cg * g.p },
            c: { address: at(acc, 0), ld: g.k, stride: g.cog * g.k } });
        }
      } else if (gy.numel > 0) {
        const plan = chunks(g);
        const cols = s.buffer(x, [plan.maxElements], dtype);
        for (const ch of plan.list) {
          im2col(g, x, cols, ch);
          const L = (ch.r1 - ch.r0) * g.wo;
          for (let i = 0; i < ch.ns; i++) {
            gemm(rt, { ...base, m: g.cog, n: g.k, k: L, batch: g.groups,
              a: { address: at(gy, (ch.s0 + i) * g.co * g.p + ch.r0 * g.wo), ld: g.p, stride: g.cog * g.p },
              b: { address: at(cols, i * g.groups * g.k * L), ld: L, stride: g.k * L },
              c: { address: at(acc, 0), ld: g.k, stride: g.cog * g.k } });
          }
        }
      }
      s.finish();
    },
  };
}
