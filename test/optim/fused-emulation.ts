/**
 * The multi-tensor optimizer kernels of src/backends/backend.ts (AdamW, CAME, EMA, sum of
 * squares, rescale) written out element by element in JavaScript from their documented formulas,
 * each step rounded to float32 (Math.fround), sums in double in row-major order. Installed on the
 * CPU backend, they let the CPU tests drive src/optim's multi-tensor paths (batching, the
 * coefficients, which tensors go where) and check that the documented formulas give the composed
 * path's results bit for bit. optim.cu implements the same formulas on the GPU
 * (test/cuda/optim.test.ts compares it with the CPU).
 */
import type {
  AdamWCoefficients, AdamWTensors, CAMECoefficients, CAMETensors, FusedKernels, MultiTensorOptions,
} from '../../src/backends/backend.js';
import { getBackend } from '../../src/backends/registry.js';
import { hostOf } from '../../src/backends/cpu/storage.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/tensor/half.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';

const F = Math.fround;

interface Access {
  get(i: number): number;
  set(i: number, v: number): void;
}

function access(t: Tensor): Access {
  if (!t.isContiguous) throw new TypeError(`emulated kernel got a non-contiguous ${t.toString()}`);
  const data = hostOf(t);
  const off = t.offset;
  switch (t.dtype) {
    case 'float32': return { get: (i) => data[off + i] as number, set: (i, v) => { data[off + i] = v; } };
    case 'bfloat16': return { get: (i) => bf16BitsToF32(data[off + i] as number), set: (i, v) => { data[off + i] = f32ToBf16Bits(v); } };
    case 'float16': return { get: (i) => f16BitsToF32(data[off + i] as number), set: (i, v) => { data[off + i] = f32ToF16Bits(v); } };
    default: throw new TypeError(`emulated kernel got ${t.dtype}`);
  }
}

/** A scalar operand takes the tensor's dtype. */
function roundTo(dtype: DType, v: number): number {
  if (dtype === 'bfloat16') return bf16BitsToF32(f32ToBf16Bits(v));
  if (dtype === 'float16') return f16BitsToF32(f32ToF16Bits(v));
  return F(v);
}

const rsqrt = (x: number) => F(1 / Math.sqrt(x));
const ema2 = (x: number, a: number, y: number, b: number) => F(F(x * a) + F(y * b));

/** Calls per kernel, and the cache keys seen, for assertions that the multi-tensor path ran. */
export interface EmulationLog {
  calls: Record<string, number>;
  /** Entries per call, in call order. */
  sizes: Record<string, number[]>;
  keys: Set<object | undefined>;
}

function adamwStep(t: AdamWTensors, c: AdamWCoefficients): void {
  t.weights.forEach((wt, k) => {
    const w = access(wt), g = access(t.grads[k]!), m = access(t.expAvg[k]!), v = access(t.expAvgSq[k]!);
    const h = t.halfParams[k] ? access(t.halfParams[k]!) : null;
    for (let i = 0; i < wt.numel; i++) {
      let wi = w.get(i);
      if (t.decay[k]) wi = F(wi * c.decayScale);
      const gi = g.get(i);
      const d = F(gi - m.get(i));
      const mi = c.lerpFromGrad ? F(gi - F(d * c.lerpWeight)) : F(m.get(i) + F(d * c.lerpWeight));
      const vi = ema2(v.get(i), c.beta2, F(gi * gi), c.oneMinusBeta2);
      const denom = F(F(F(Math.sqrt(vi)) / c.rootBias2) + c.eps);
      wi = F(wi + F(F(mi / denom) * c.stepScale));
      w.set(i, wi);
      m.set(i, mi);
      v.set(i, vi);
      h?.set(i, wi);
    }
  });
}

/** 1 / max(1, RMS / threshold) from a double sum of squares over `numel` elements. */
function clipScale(sumSquares: number, numel: number, threshold: number): number {
  const ratio = F(F(Math.sqrt(F(F(sumSquares) / F(numel)))) / threshold);
  return Number.isNaN(ratio) || ratio > 1 ? ratio : 1;
}

/**
 * Row/column moving averages of x ([batch, rows, cols] flattened) with rate beta, then
 * rsqrt(row / mean(row)) and rsqrt(col) per batch.
 */
function factoredStats(x: Float32Array, B: number, R: number, C: number, row: Access, col: Access, beta: number, omb: number): { rinv: Float32Array; cinv: Float32Array } {
  const rinv = new Float32Array(B * R);
  const cinv = new Float32Array(B * C);
  for (let b = 0; b < B; b++) {
    for (let r = 0; r < R; r++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += x[(b * R + r) * C + c]!;
      row.set(b * R + r, ema2(row.get(b * R + r), beta, F(F(s) / F(C)), omb));
    }
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let r = 0; r < R; r++) s += x[(b * R + r) * C + c]!;
      col.set(b * C + c, ema2(col.get(b * C + c), beta, F(F(s) / F(R)), omb));
      cinv[b * C + c] = rsqrt(col.get(b * C + c));
    }
    let s = 0;
    for (let r = 0; r < R; r++) s += row.get(b * R + r);
    const mean = F(F(s) / F(R));
    for (let r = 0; r < R; r++) rinv[b * R + r] = rsqrt(F(row.get(b * R + r) / mean));
  }
  return { rinv, cinv };
}

function cameStep(t: CAMETensors, c: CAMECoefficients): void {
  t.weights.forEach((wt, k) => {
    const n = wt.numel;
    const w = access(wt), g = access(t.grads[k]!), m = access(t.expAvg[k]!);
    const h = t.halfParams[k] ? access(t.halfParams[k]!) : null;
    const decay = (wi: number) => (t.decay[k] ? F(wi + F(wi * c.decayScale)) : wi);
    const u = new Float32Array(n);
    if (wt.ndim >= 2) {
      const R = wt.shape[wt.ndim - 2]!, C = wt.shape[wt.ndim - 1]!, B = n / (R * C);
      const x = new Float32Array(n);
      for (let i = 0; i < n; i++) x[i] = F(F(g.get(i) * g.get(i)) + c.eps1);
      const sq = factoredStats(x, B, R, C, access(t.sqRow[k]!), access(t.sqCol[k]!), c.beta2, c.oneMinusBeta2);
      let s = 0;
      for (let i = 0; i < n; i++) {
        const r = Math.floor(i / C), col = (Math.floor(i / (R * C)) * C) + (i % C);
        u[i] = F(F(sq.rinv[r]! * sq.cinv[col]!) * g.get(i));
        s += F(u[i]! * u[i]!);
      }
      const scale = clipScale(s, n, c.clipThreshold);
      for (let i = 0; i < n; i++) {
        const clipped = F(u[i]! / scale);
        const mi = ema2(m.get(i), c.beta1, clipped, c.oneMinusBeta1);
        m.set(i, mi);
        const d = F(clipped - mi);
        x[i] = F(F(d * d) + c.eps2);
      }
      const res = factoredStats(x, B, R, C, access(t.resRow[k]!), access(t.resCol[k]!), c.beta3, c.oneMinusBeta3);
      for (let i = 0; i < n; i++) {
        const r = Math.floor(i / C), col = (Math.floor(i / (R * C)) * C) + (i % C);
        const step = F(F(res.rinv[r]! * res.cinv[col]!) * m.get(i));
        const wi = F(decay(w.get(i)) + F(step * c.negLr));
        w.set(i, wi);
        h?.set(i, wi);
      }
    } else {
      const v = access(t.expAvgSq[k]!);
      let s = 0;
      for (let i = 0; i < n; i++) {
        const gi = g.get(i);
        v.set(i, ema2(v.get(i), c.beta2, F(F(gi * gi) + c.eps1), c.oneMinusBeta2));
        u[i] = F(rsqrt(v.get(i)) * gi);
        s += F(u[i]! * u[i]!);
      }
      const scale = clipScale(s, n, c.clipThreshold);
      for (let i = 0; i < n; i++) {
        const mi = ema2(m.get(i), c.beta1, F(u[i]! / scale), c.oneMinusBeta1);
        m.set(i, mi);
        const wi = F(decay(w.get(i)) + F(mi * c.negLr));
        w.set(i, wi);
        h?.set(i, wi);
      }
    }
  });
}

function emaUpdate(shadows: readonly Tensor[], params: readonly Tensor[], keep: number, take: number): void {
  shadows.forEach((st, k) => {
    const s = access(st), p = access(params[k]!);
    for (let i = 0; i < st.numel; i++) s.set(i, ema2(s.get(i), keep, p.get(i), take));
  });
}

function sumSquares(tensors: readonly Tensor[], out: Tensor): void {
  let s = 0;
  for (const t of tensors) {
    const a = access(t);
    for (let i = 0; i < t.numel; i++) s += F(a.get(i) * a.get(i));
  }
  access(out).set(0, F(s));
}

function scaleTensors(src: readonly Tensor[], out: readonly Tensor[], factor: number): void {
  src.forEach((t, k) => {
    const a = access(t), o = access(out[k]!);
    const c = roundTo(t.dtype, factor);
    for (let i = 0; i < t.numel; i++) o.set(i, F(a.get(i) * c));
  });
}

/** The emulated kernels, to call directly on CPU tensors. */
export const EMULATED = { adamwStep, cameStep, emaUpdate, sumSquares, scaleTensors };

/** Installs the emulated kernels on the CPU backend for the duration of fn. */
export function withEmulatedKernels<T>(fn: (log: EmulationLog) => T): T {
  const fused = getBackend('cpu').fused as FusedKernels;
  const log: EmulationLog = { calls: {}, sizes: {}, keys: new Set() };
  const note = (name: string, size: number, options?: MultiTensorOptions) => {
    log.calls[name] = (log.calls[name] ?? 0) + 1;
    (log.sizes[name] ??= []).push(size);
    log.keys.add(options?.cacheKey);
  };
  const kernels: FusedKernels = {
    adamwStep: (t, c, o) => { note('adamwStep', t.weights.length, o); adamwStep(t, c); },
    cameStep: (t, c, o) => { note('cameStep', t.weights.length, o); cameStep(t, c); },
    emaUpdate: (s, p, keep, take, o) => { note('emaUpdate', s.length, o); emaUpdate(s, p, keep, take); },
    sumSquares: (ts, out, o) => { note('sumSquares', ts.length, o); sumSquares(ts, out); },
    scaleTensors: (src, out, f, o) => { note('scaleTensors', src.length, o); scaleTensors(src, out, f); },
  };
  const names = Object.keys(kernels) as (keyof FusedKernels)[];
  for (const k of names) if (fused[k]) throw new Error(`the CPU backend already has ${k}`);
  Object.assign(fused, kernels);
  try {
    return fn(log);
  } finally {
    for (const k of names) delete fused[k];
  }
}
