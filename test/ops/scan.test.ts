/** Selective scan: kernel against a materialised-state reference loop, gradients, reverse scans, errors. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';

interface Dims {
  batch: number;
  dim: number;
  len: number;
  nState: number;
  /** null: B and C given as [batch, N, L]; otherwise [batch, groups, N, L]. */
  groups: number | null;
}

interface Flags {
  D: boolean;
  z: boolean;
  bias: boolean;
  softplus: boolean;
}

interface ScanTensors {
  u: T.Tensor;
  delta: T.Tensor;
  A: T.Tensor;
  B: T.Tensor;
  C: T.Tensor;
  D: T.Tensor;
  z: T.Tensor;
  bias: T.Tensor;
}

function makeInputs(d: Dims, seed: number): ScanTensors {
  const bcShape = d.groups === null ? [d.batch, d.nState, d.len] : [d.batch, d.groups, d.nState, d.len];
  return {
    u: rand64([d.batch, d.dim, d.len], seed),
    // Positive step sizes keep exp(Δ A) a decay when the softplus is off.
    delta: rand64([d.batch, d.dim, d.len], seed + 1, 0.3, 0.6),
    A: rand64([d.dim, d.nState], seed + 2, 0.4, -1),
    B: rand64(bcShape, seed + 3),
    C: rand64(bcShape, seed + 4),
    D: rand64([d.dim], seed + 5),
    z: rand64([d.batch, d.dim, d.len], seed + 6),
    bias: rand64([d.dim], seed + 7, 0.3),
  };
}

function castAll(t: ScanTensors, dtype: T.DType): ScanTensors {
  const c = (x: T.Tensor) => T.cast(x.detach(), dtype);
  return { u: c(t.u), delta: c(t.delta), A: c(t.A), B: c(t.B), C: c(t.C), D: c(t.D), z: c(t.z), bias: c(t.bias) };
}

function scanOptions(t: ScanTensors, f: Flags): Omit<T.SelectiveScanOptions, 'returnLastState'> {
  return { D: f.D ? t.D : null, z: f.z ? t.z : null, deltaBias: f.bias ? t.bias : null, deltaSoftplus: f.softplus };
}

/**
 * The scan written out directly: every state x[b, d, t, n] is materialised. With `reverse`, time
 * runs from L-1 down to 0 (x_t depends on x_{t+1}), the backward half of a bidirectional Mamba.
 */
function referenceScan(t: ScanTensors, d: Dims, f: Flags, reverse = false): { out: Float64Array; last: Float64Array } {
  const [u, delta, A, B, C, D, z, bias] = [t.u, t.delta, t.A, t.B, t.C, t.D, t.z, t.bias].map((x) => x.toFloat64Array());
  const { batch, dim, len, nState } = d;
  const groups = d.groups ?? 1;
  const states = new Float64Array(batch * dim * len * nState);
  const out = new Float64Array(batch * dim * len);
  const last = new Float64Array(batch * dim * nState);
  const at = (b: number, c: number, l: number) => (b * dim + c) * len + l;
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < dim; c++) {
      const g = Math.floor(c / (dim / groups));
      for (let step = 0; step < len; step++) {
        const l = reverse ? len - 1 - step : step;
        const prevL = reverse ? l + 1 : l - 1;
        let dt = delta![at(b, c, l)]! + (f.bias ? bias![c]! : 0);
        if (f.softplus) dt = Math.log(1 + Math.exp(dt));
        let y = 0;
        for (let n = 0; n < nState; n++) {
          const bc = ((b * groups + g) * nState + n) * len + l;
          const prev = step === 0 ? 0 : states[at(b, c, prevL) * nState + n]!;
          const x = Math.exp(dt * A![c * nState + n]!) * prev + dt * B![bc]! * u![at(b, c, l)]!;
          states[at(b, c, l) * nState + n] = x;
          y += C![bc]! * x;
          if (step === len - 1) last[(b * dim + c) * nState + n] = x;
        }
        let o = y + (f.D ? D![c]! * u![at(b, c, l)]! : 0);
        if (f.z) {
          const zv = z![at(b, c, l)]!;
          o *= zv / (1 + Math.exp(-zv));
        }
        out[at(b, c, l)] = o;
      }
    }
  }
  return { out, last };
}

function assertClose(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let first = -1;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!);
    worst = Math.max(worst, err);
    if (first < 0 && !(err <= atol + rtol * Math.abs(expected[i]!))) first = i;
  }
  if (first >= 0) {
    assert.fail(`${what}: max abs error ${worst}; first mismatch at ${first}: got ${actual[first]}, expected ${expected[first]}`);
  }
}

const flagSets: Flags[] = [];
for (const softplus of [false, true]) {
  for (const D of [false, true]) {
    for (const z of [false, true]) {
      for (const bias of [false, true]) flagSets.push({ D, z, bias, softplus });
    }
  }
}
const describeFlags = (f: Flags) => Object.entries(f).map(([k, v]) => `${k}=${v ? 'on' : 'off'}`).join(' ');

describe('selectiveScan forward', () => {
  const layouts: Dims[] = [
    { batch: 2, dim: 3, len: 7, nState: 4, groups: null },
    { batch: 2, dim: 4, len: 6, nState: 3, groups: 2 },
  ];
  for (const dims of layouts) {
    test(`matches the reference loop, B/C ${dims.groups === null ? '[batch, N, L]' : `with ${dims.groups} groups`}, every option`, () => {
      flagSets.forEach((flags, i) => {
        const t = makeInputs(dims, 10 * i + 1);
        const [out, last] = T.selectiveScan(t.u, t.delta, t.A, t.B, t.C, { ...scanOptions(t, flags), returnLastState: true });
        const ref = referenceScan(t, dims, flags);
        assert.deepEqual(out.shape, [dims.batch, dims.dim, dims.len]);
        assert.deepEqual(last.shape, [dims.batch, dims.dim, dims.nState]);
        assert.equal(out.dtype, 'float64');
        assert.equal(last.dtype, 'float64');
        assertClose(`out (${describeFlags(flags)})`, out.toFloat64Array(), ref.out, 1e-12, 1e-10);
        assertClose(`last state (${describeFlags(flags)})`, last.toFloat64Array(), ref.last, 1e-12, 1e-10);
      });
    });
  }

  test('float32 and bfloat16 inputs: output in u\'s dtype, state in float32', () => {
    const dims: Dims = { batch: 1, dim: 4, len: 9, nState: 5, groups: null };
    const flags: Flags = { D: true, z: true, bias: true, softplus: true };
    const t = makeInputs(dims, 300);
    const ref = referenceScan(t, dims, flags);
    const t32 = castAll(t, 'float32');
    const [out32, last32] = T.selectiveScan(t32.u, t32.delta, t32.A, t32.B, t32.C, { ...scanOptions(t32, flags), returnLastState: true });
    assert.equal(out32.dtype, 'float32');
    assert.equal(last32.dtype, 'float32');
    assertClose('float32 out', out32.toFloat64Array(), ref.out, 1e-5, 1e-5);
    assertClose('float32 last state', last32.toFloat64Array(), ref.last, 1e-5, 1e-5);
    // bf16 activations with float32 parameters, as mixed-precision Mamba runs it.
    const outBf = T.selectiveScan(T.cast(t32.u, 'bfloat16'), t32.delta, t32.A, t32.B, t32.C, scanOptions(t32, flags));
    assert.equal(outBf.dtype, 'bfloat16');
    assertClose('bfloat16 out', outBf.toFloat64Array(), ref.out, 5e-2, 3e-2);
  });

  test('length 1 and a single state', () => {
    const dims: Dims = { batch: 1, dim: 2, len: 1, nState: 1, groups: null };
    const flags: Flags = { D: true, z: false, bias: false, softplus: false };
    const t = makeInputs(dims, 400);
    const out = T.selectiveScan(t.u, t.delta, t.A, t.B, t.C, scanOptions(t, flags));
    assertClose('L = 1', out.toFloat64Array(), referenceScan(t, dims, flags).out, 1e-12, 1e-12);
  });

  test('strided (transposed) B and C, as x_proj produces them', () => {
    const dims: Dims = { batch: 2, dim: 3, len: 5, nState: 4, groups: null };
    const flags: Flags = { D: false, z: false, bias: false, softplus: true };
    const t = makeInputs(dims, 500);
    const Bt = T.contiguous(T.transpose(t.B.detach(), 1, 2)); // [batch, L, N] storage
    const Ct = T.contiguous(T.transpose(t.C.detach(), 1, 2));
    const out = T.selectiveScan(t.u, t.delta, t.A, T.transpose(Bt, 1, 2), T.transpose(Ct, 1, 2), scanOptions(t, flags));
    assertClose('strided B, C', out.toFloat64Array(), referenceScan(t, dims, flags).out, 1e-12, 1e-10);
  });
});

describe('selectiveScan gradients (float64 finite differences)', () => {
  const all = (softplus: boolean) => (u: T.Tensor, delta: T.Tensor, A: T.Tensor, B: T.Tensor, C: T.Tensor, D: T.Tensor, z: T.Tensor, bias: T.Tensor) =>
    T.selectiveScan(u, delta, A, B, C, { D, z, deltaBias: bias, deltaSoftplus: softplus });
  const list = (t: ScanTensors) => [t.u, t.delta, t.A, t.B, t.C, t.D, t.z, t.bias];

  test('every input, deltaSoftplus on, B/C [batch, N, L]', () => {
    const t = makeInputs({ batch: 2, dim: 3, len: 5, nState: 3, groups: null }, 600);
    gradcheck('selectiveScan softplus', all(true), list(t));
  });

  test('every input, deltaSoftplus off, B/C in 2 groups', () => {
    const t = makeInputs({ batch: 2, dim: 4, len: 4, nState: 2, groups: 2 }, 700);
    gradcheck('selectiveScan grouped', all(false), list(t));
  });

  test('no D, z or deltaBias', () => {
    const t = makeInputs({ batch: 1, dim: 3, len: 6, nState: 3, groups: null }, 800);
    gradcheck('selectiveScan bare', (u, delta, A, B, C) => T.selectiveScan(u, delta, A, B, C, { deltaSoftplus: true }),
      [t.u, t.delta, t.A, t.B, t.C]);
  });

  test('float32 gradients agree with float64', () => {
    const t = makeInputs({ batch: 2, dim: 3, len: 6, nState: 4, groups: null }, 900);
    const inputs64 = list(t);
    const inputs32 = inputs64.map((x) => T.cast(x.detach(), 'float32').requiresGrad_());
    const weights = rand64([2, 3, 6], 901).detach();
    for (const inputs of [inputs64, inputs32]) {
      const out = all(true)(...(inputs as [T.Tensor, T.Tensor, T.Tensor, T.Tensor, T.Tensor, T.Tensor, T.Tensor, T.Tensor]));
      T.sum(T.mul(out, T.cast(weights, out.dtype))).backward();
    }
    inputs64.forEach((x, i) => {
      const g32 = inputs32[i]!.grad;
      assert.ok(g32 && g32.dtype === 'float32', `input ${i} has a float32 gradient`);
      assertClose(`float32 gradient of input ${i}`, g32.toFloat64Array(), x.grad!.toFloat64Array(), 1e-4, 1e-4);
    });
  });
});

describe('selectiveScan in reverse time (bidirectional Mamba)', () => {
  const dims: Dims = { batch: 2, dim: 4, len: 6, nState: 3, groups: null };
  const flags: Flags = { D: true, z: true, bias: true, softplus: true };
  const flipL = (x: T.Tensor) => T.flip(x, [-1]);
  const backwardScan = (t: ScanTensors) => flipL(T.selectiveScan(flipL(t.u), flipL(t.delta), t.A, flipL(t.B), flipL(t.C),
    { D: t.D, z: flipL(t.z), deltaBias: t.bias, deltaSoftplus: true }));

  test('scanning the flipped sequence equals the reverse-time recurrence', () => {
    const t = makeInputs(dims, 1000);
    const ref = referenceScan(t, dims, flags, true);
    assertClose('reverse scan', backwardScan(t).toFloat64Array(), ref.out, 1e-12, 1e-10);
    const forward = referenceScan(t, dims, flags, false);
    assert.ok(ref.out.some((v, i) => Math.abs(v - forward.out[i]!) > 1e-3), 'the reverse scan differs from the forward one');
  });

  test('gradients flow through both directions', () => {
    const t = makeInputs({ ...dims, batch: 1, len: 4 }, 1100);
    gradcheck('bidirectional', (u, delta, A, B, C, D, z, bias) => {
      const parts = { u, delta, A, B, C, D, z, bias };
      const fwd = T.selectiveScan(u, delta, A, B, C, { D, z, deltaBias: bias, deltaSoftplus: true });
      return T.add(fwd, backwardScan(parts));
    }, [t.u, t.delta, t.A, t.B, t.C, t.D, t.z, t.bias]);
  });
});

describe('selectiveScan argument errors', () => {
  const t = makeInputs({ batch: 2, dim: 4, len: 5, nState: 3, groups: null }, 1200);
  const f = (over: Partial<ScanTensors>, options: T.SelectiveScanOptions = {}) => () => {
    const a = { ...t, ...over };
    return T.selectiveScan(a.u, a.delta, a.A, a.B, a.C, options);
  };
  const cases: [string, () => unknown, RegExp][] = [
    ['u not 3-d', f({ u: rand64([2, 4], 1) }), /selectiveScan: u must be \[batch, dim, L\], got \[2, 4\]/],
    ['delta shape', f({ delta: rand64([2, 4, 6], 1) }), /selectiveScan: delta must be .*\[2, 4, 5\], got \[2, 4, 6\]/],
    ['A dim', f({ A: rand64([3, 3], 1) }), /selectiveScan: A must be \[dim, N\] with dim = 4.*got \[3, 3\]/],
    ['A 1-d', f({ A: rand64([4], 1) }), /selectiveScan: A must be \[dim, N\]/],
    ['B state size', f({ B: rand64([2, 2, 5], 1) }), /selectiveScan: B must be \[batch, N, L\] = \[2, 3, 5\], got \[2, 2, 5\]/],
    ['B time-invariant', f({ B: rand64([4, 3], 1) }), /selectiveScan: B must be input-dependent/],
    ['B groups', f({ B: rand64([2, 3, 3, 5], 1) }), /selectiveScan: B has 3 groups, which do not divide dim = 4/],
    ['C length', f({ C: rand64([2, 3, 4], 1) }), /selectiveScan: C must be \[batch, N, L\] = \[2, 3, 5\], got \[2, 3, 4\]/],
    ['C batch (grouped)', f({ C: rand64([1, 2, 3, 5], 1) }), /selectiveScan: C must be \[batch, groups, N, L\] = \[2, 2, 3, 5\], got \[1, 2, 3, 5\]/],
    ['D size', f({}, { D: rand64([3], 1) }), /selectiveScan: D must be \[dim\] = \[4\], got \[3\]/],
    ['z shape', f({}, { z: rand64([2, 4, 1], 1) }), /selectiveScan: z must be .*\[2, 4, 5\], got \[2, 4, 1\]/],
    ['deltaBias size', f({}, { deltaBias: rand64([4, 1], 1) }), /selectiveScan: deltaBias must be \[dim\] = \[4\], got \[4, 1\]/],
    ['integer u', f({ u: T.zeros([2, 4, 5], { dtype: 'int32' }) }), /selectiveScan: u must be a floating tensor, got int32/],
  ];
  for (const [name, call, message] of cases) {
    test(name, () => assert.throws(call, message));
  }
});

describe('selectiveScanPair: two scans, one launch where the backend pairs them', () => {
  const d: Dims = { batch: 2, dim: 3, len: 9, nState: 4, groups: null };
  const f: Flags = { D: true, z: true, bias: true, softplus: true };
  const call = (t: ScanTensors): T.SelectiveScanCall => ({ u: t.u, delta: t.delta, A: t.A, B: t.B, C: t.C, options: scanOptions(t, f) });
  const single = (t: ScanTensors) => T.selectiveScan(t.u, t.delta, t.A, t.B, t.C, scanOptions(t, f));
  const [ta, tb] = [makeInputs(d, 300), makeInputs(d, 400)];

  /** Runs fn with a stand-in selectiveScanPair on the CPU backend that records its calls. */
  function withPair<R>(result: boolean, fn: (calls: number[]) => R): R {
    const fused = ta.u.backend.fused;
    const saved = fused.selectiveScanPair;
    const calls: number[] = [];
    fused.selectiveScanPair = (a, b, outA, outB) => {
      calls.push(1);
      if (!result) return false;
      ta.u.backend.kernels.selectiveScan(a, outA, null);
      ta.u.backend.kernels.selectiveScan(b, outB, null);
      return true;
    };
    try {
      return fn(calls);
    } finally {
      if (saved) fused.selectiveScanPair = saved;
      else delete fused.selectiveScanPair;
    }
  }

  test('without the fused kernel: the two scans, in order', () => {
    const [ya, yb] = T.selectiveScanPair(call(ta), call(tb));
    assert.deepEqual(Array.from(ya.toFloat64Array()), Array.from(single(ta).toFloat64Array()));
    assert.deepEqual(Array.from(yb.toFloat64Array()), Array.from(single(tb).toFloat64Array()));
  });

  test('the fused pair runs only where nothing needs a gradient, and a declined pair falls back', () => {
    withPair(true, (calls) => {
      const [ya, yb] = T.noGrad(() => T.selectiveScanPair(call(ta), call(tb)));
      assert.equal(calls.length, 1);
      assert.deepEqual(Array.from(ya.toFloat64Array()), Array.from(single(ta).toFloat64Array()));
      assert.deepEqual(Array.from(yb.toFloat64Array()), Array.from(single(tb).toFloat64Array()));
      const u = ta.u.detach().requiresGrad_(true);
      const [yg] = T.selectiveScanPair({ ...call(ta), u }, call(tb));
      assert.equal(calls.length, 1, 'a gradient through u keeps the scans apart (the pair has no backward)');
      T.sum(yg).backward();
      assert.ok(u.grad, 'the gradient reaches u');
    });
    withPair(false, (calls) => {
      const [ya] = T.noGrad(() => T.selectiveScanPair(call(ta), call(tb)));
      assert.equal(calls.length, 1);
      assert.deepEqual(Array.from(ya.toFloat64Array()), Array.from(single(ta).toFloat64Array()));
    });
  });

  test('bad operands are refused by name before any kernel runs', () => {
    withPair(true, (calls) => {
      assert.throws(() => T.noGrad(() => T.selectiveScanPair(call(ta), { ...call(tb), delta: T.zeros([2, 3, 8], { dtype: 'float64' }) })),
        /selectiveScan: delta must be \[batch, dim, L\] like u = \[2, 3, 9\], got \[2, 3, 8\]/);
      assert.equal(calls.length, 0);
    });
  });
});
