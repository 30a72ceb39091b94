/**
 * Shared by the CUDA tests: whether a GPU is here (and why not), and one comparison of an op on
 * CUDA against the CPU backend, forward and backward, with tolerances by dtype.
 */
import assert from 'node:assert/strict';
import { cast, mul, rand, randn, sum } from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Generator } from '../../src/random/generator.js';
import type { DType } from '../../src/tensor/dtype.js';
import { isFloating } from '../../src/tensor/dtype.js';
import { formatShape } from '../../src/tensor/shape.js';
import { isCudaAvailable, loadCuda, probeCuda } from '../../src/backends/cuda/index.js';
import { CpuBackend } from '../../src/backends/cpu/index.js';
import { registerBackendFactory } from '../../src/backends/registry.js';

/**
 * false when CUDA tests can run; otherwise the reason they are skipped (printed once).
 * DIMBA_CUDA_TEST_FAKE=cpu runs the specs with the CPU backend posing as 'cuda' — a check of
 * the specs themselves on machines without a GPU (every comparison is then CPU against CPU).
 */
export const cudaSkip: string | false = (() => {
  if (process.env.DIMBA_CUDA_TEST_FAKE === 'cpu') {
    registerBackendFactory('cuda', (d) => new CpuBackend(d));
    console.log('# CUDA specs running against the CPU backend posing as cuda (DIMBA_CUDA_TEST_FAKE=cpu)');
    return false;
  }
  if (isCudaAvailable()) {
    loadCuda();
    return false;
  }
  const reason = probeCuda().summary;
  console.log(`# CUDA tests skipped: ${reason}`);
  return reason;
})();

/** True when the specs run on a real GPU (not the CPU stand-in). */
export const realCuda = cudaSkip === false && process.env.DIMBA_CUDA_TEST_FAKE !== 'cpu';

/** Relative tolerance per dtype (float32 1e-5, bfloat16 1e-2; integer and bool results must match exactly). */
export const TOL: Readonly<Record<DType, number>> = {
  float32: 1e-5, float64: 1e-12, bfloat16: 1e-2, float16: 5e-3, int32: 0, int64: 0, bool: 0,
};

/** Float dtypes the CUDA kernels serve. */
export const FLOATS: readonly DType[] = ['float32', 'bfloat16', 'float16', 'float64'];

let seedCounter = 1000;

/** Fresh standard-normal values on the CPU as `dtype`, transformed by `map` (in float64) first. */
export function randomCpu(shape: number[], dtype: DType = 'float32', map?: (v: number) => number): Tensor {
  const base = randn(shape, { dtype: 'float64', generator: new Generator(seedCounter++) });
  if (!map) return cast(base, dtype);
  const values = base.toFloat64Array().map(map);
  return cast(Tensor.fromHost(values, shape, 'float64'), dtype);
}

/** Random integers in [lo, hi) as `dtype` (int32, int64 or bool). */
export function randomInts(shape: number[], lo: number, hi: number, dtype: DType = 'int32'): Tensor {
  const u = rand(shape, { dtype: 'float64', generator: new Generator(seedCounter++) }).toFloat64Array();
  return cast(Tensor.fromHost(u.map((v) => lo + Math.floor(v * (hi - lo))), shape, 'float64'), dtype);
}

interface Comparison {
  readonly maxAbs: number;
  /** Largest |a - e| / (|e| + mean|e|) over finite pairs; Infinity where NaN or infinities disagree. */
  readonly maxRel: number;
  /** First index outside the tolerance (-1: none). */
  readonly first: number;
  readonly a: Float64Array;
  readonly e: Float64Array;
}

/** Elementwise comparison with error relative to |e| plus the mean magnitude of `expected`. */
function compare(actual: Tensor, expected: Tensor, rtol: number): Comparison {
  const a = actual.to('cpu').toFloat64Array();
  const e = expected.toFloat64Array();
  let scale = 0;
  let finite = 0;
  for (const v of e) if (Number.isFinite(v)) { scale += Math.abs(v); finite++; }
  scale = finite > 0 ? scale / finite : 0;
  let maxAbs = 0;
  let maxRel = 0;
  let first = -1;
  for (let i = 0; i < e.length; i++) {
    const x = a[i]!;
    const y = e[i]!;
    let ok: boolean;
    if (Number.isNaN(y) || Number.isNaN(x)) ok = Number.isNaN(x) && Number.isNaN(y);
    else if (!Number.isFinite(y) || !Number.isFinite(x)) ok = x === y;
    else {
      const err = Math.abs(x - y);
      maxAbs = Math.max(maxAbs, err);
      maxRel = Math.max(maxRel, err / (Math.abs(y) + scale || 1));
      ok = rtol === 0 ? x === y : err <= rtol * (Math.abs(y) + scale);
    }
    if (!ok) {
      if (first < 0) first = i;
      if (!(Number.isFinite(x) && Number.isFinite(y))) maxRel = Infinity;
    }
  }
  return { maxAbs, maxRel, first, a, e };
}

/** The error measure assertClose applies its tolerance to (for tolerances derived per tensor). */
/**
 * Largest |a - e| / bound over the elements (a value whose bound is 0 must be exact, and every
 * value finite); asserts it is at most tol and returns it, naming the worst element otherwise.
 */
export function assertBounded(what: string, actual: Float64Array, expected: Float64Array, bound: Float64Array, tol: number): number {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} elements, expected ${expected.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Number.isFinite(actual[i]!), `${what}[${i}] = ${actual[i]} (expected ${expected[i]})`);
    const d = Math.abs(actual[i]! - expected[i]!);
    if (bound[i] === 0) assert.equal(d, 0, `${what}[${i}]: ${actual[i]} where the value must be exactly ${expected[i]}`);
    else if (d / bound[i]! > worst) { worst = d / bound[i]!; at = i; }
  }
  assert.ok(worst <= tol, `${what}: error ${worst.toExponential(3)} x bound above ${tol.toExponential(3)} at [${at}]: `
    + `got ${actual[at]}, float64 ${expected[at]}, bound ${bound[at]}`);
  return worst;
}

export function maxRelativeError(actual: Tensor, expected: Tensor): number {
  return compare(actual, expected, Infinity).maxRel;
}

/**
 * Asserts actual (any device) matches expected (CPU) elementwise: |a - e| <= rtol * (|e| + mean|e|),
 * NaN where NaN, equal infinities; rtol 0 demands exact equality. The failure names the shape,
 * the largest errors and the first mismatching index.
 */
export function assertClose(name: string, actual: Tensor, expected: Tensor, rtol: number): void {
  assert.deepEqual([...actual.shape], [...expected.shape], `${name}: shape ${formatShape(actual.shape)} vs expected ${formatShape(expected.shape)}`);
  assert.equal(actual.dtype, expected.dtype, `${name}: dtype ${actual.dtype} vs expected ${expected.dtype}`);
  const { maxAbs, maxRel, first, a, e } = compare(actual, expected, rtol);
  if (first >= 0) {
    assert.fail(`${name}: ${actual.dtype} ${formatShape(actual.shape)} differs from the CPU: max abs error ${maxAbs.toExponential(3)}, `
      + `max rel error ${maxRel.toExponential(3)} (tolerance ${rtol}); first mismatch at flat index ${first}: `
      + `cuda ${a[first]}, cpu ${e[first]}`);
  }
}

export interface CheckOptions {
  /** Tolerance for outputs (default: TOL of each output's dtype). */
  readonly rtol?: number;
  /** Compare input gradients too (default true when an input is floating). */
  readonly grad?: boolean;
  /** Tolerance for gradients (default: TOL of each input's dtype, doubled for half types). */
  readonly gradRtol?: number;
}

/**
 * Runs f on CPU inputs and on copies of them on CUDA; compares every output and, via
 * loss = sum(out * w) with random w, every floating input's gradient. f may take views
 * (transpose, narrow, expand) of its inputs so the kernels see strided operands.
 */
export function checkOp(name: string, inputs: readonly Tensor[], f: (...xs: Tensor[]) => Tensor | Tensor[], options: CheckOptions = {}): void {
  const wantGrad = options.grad ?? inputs.some((t) => isFloating(t.dtype));
  const leaves = (device: string) => inputs.map((t) => {
    const leaf = device === 'cpu' ? t.detach() : t.to(device);
    return wantGrad && isFloating(t.dtype) ? leaf.detach().requiresGrad_(true) : leaf;
  });
  const cpuIn = leaves('cpu');
  const gpuIn = leaves('cuda');
  const asList = (o: Tensor | Tensor[]) => (Array.isArray(o) ? o : [o]);
  const outCpu = asList(f(...cpuIn));
  const outGpu = asList(f(...gpuIn));
  assert.equal(outGpu.length, outCpu.length, `${name}: output count`);
  outCpu.forEach((o, i) => {
    assert.equal(outGpu[i]!.deviceName, 'cuda:0', `${name}: output ${i} should live on cuda:0`);
    assertClose(`${name} output ${i}`, outGpu[i]!, o, options.rtol ?? TOL[o.dtype]);
  });
  if (!wantGrad) return;
  const differentiable = outCpu.map((o, i) => [o, outGpu[i]!] as const).filter(([o]) => o.requiresGrad);
  if (differentiable.length === 0) return;
  let lossCpu: Tensor | null = null;
  let lossGpu: Tensor | null = null;
  for (const [oc, og] of differentiable) {
    const w = randomCpu([...oc.shape], oc.dtype);
    const lc = sum(mul(oc, w));
    const lg = sum(mul(og, w.to('cuda')));
    lossCpu = lossCpu ? lossCpu.add(lc) : lc;
    lossGpu = lossGpu ? lossGpu.add(lg) : lg;
  }
  lossCpu!.backward();
  lossGpu!.backward();
  cpuIn.forEach((t, i) => {
    if (!t.requiresGrad) return;
    const gc = t.grad;
    const gg = gpuIn[i]!.grad;
    assert.ok(gc && gg, `${name}: input ${i} got no gradient (cpu ${gc !== null}, cuda ${gg !== null})`);
    const half = t.dtype === 'bfloat16' || t.dtype === 'float16';
    assertClose(`${name} grad of input ${i}`, gg, gc, options.gradRtol ?? TOL[t.dtype] * (half ? 2 : 1));
  });
}
