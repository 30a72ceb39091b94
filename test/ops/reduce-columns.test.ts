/**
 * Reductions over leading or middle dims read x in place through reduceColumns. Checked here
 * against the transposing row path (reduced dims moved last, made contiguous, reduceRows) for
 * every op and dtype on the CPU, where both fold each output in the same order in a double, so
 * results must agree bit for bit. Also: which layouts take the column path, and gradients.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as T from '../../src/index.js';
import type { ReduceOp } from '../../src/backends/backend.js';
import { columnView } from '../../src/ops/reduce-columns.js';
import { isFloating, type DType } from '../../src/tensor/dtype.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';

const cpu = T.getBackend('cpu');
const DTYPES: readonly DType[] = ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int64', 'bool'];

let seed = 500;
function values(shape: number[], dtype: DType): T.Tensor {
  const g = new T.Generator(seed++);
  const base = T.randn(shape, { dtype: 'float64', generator: g });
  if (isFloating(dtype)) return T.cast(base, dtype);
  // Small integers give ties for the arg ops; bool gets both values.
  const ints = base.toFloat64Array().map((v) => (dtype === 'bool' ? (v > 0 ? 1 : 0) : Math.round(3 * v)));
  return T.cast(T.Tensor.fromHost(ints, shape, 'float64'), dtype);
}

/** The pre-existing path: reduced dims last, contiguous, one reduceRows call. */
function viaRows(op: ReduceOp, x: T.Tensor, dims: number[], outDType: DType): T.Tensor {
  const kept = x.shape.map((_, i) => i).filter((i) => !dims.includes(i));
  const cols = dims.reduce((n, d) => n * x.shape[d]!, 1);
  const rows = x.numel / cols;
  const moved = T.reshape(T.contiguous(T.permute(x, [...kept, ...dims])), [rows, cols]);
  const out = T.Tensor.empty([rows], outDType, cpu);
  cpu.kernels.reduceRows(op, moved, out);
  return T.reshape(out, kept.map((d) => x.shape[d]!));
}

/** Counts reduceColumns calls while fn runs (the kernel table is shared, so this sees every op). */
function countColumnCalls(fn: () => void): number {
  const kernels = cpu.kernels as { reduceColumns: typeof cpu.kernels.reduceColumns };
  const original = kernels.reduceColumns;
  let calls = 0;
  kernels.reduceColumns = (...args) => { calls++; original(...args); };
  try { fn(); } finally { kernels.reduceColumns = original; }
  return calls;
}

function sameBits(actual: T.Tensor, expected: T.Tensor, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  const a = actual.toFloat64Array();
  const e = expected.toFloat64Array();
  for (let i = 0; i < e.length; i++) {
    if (!Object.is(a[i], e[i]) && !(Number.isNaN(a[i]) && Number.isNaN(e[i]))) {
      assert.fail(`${what}: element ${i} is ${a[i]}, the row path gives ${e[i]}`);
    }
  }
}

const OPS: readonly { name: ReduceOp; run: (x: T.Tensor, dims: number[]) => T.Tensor; out: (d: DType) => DType }[] = [
  { name: 'sum', run: (x, d) => T.sum(x, d), out: (d) => (d === 'bool' ? 'int32' : d) },
  { name: 'prod', run: (x, d) => T.prod(x, d), out: (d) => d },
  { name: 'max', run: (x, d) => T.max(x, d), out: (d) => d },
  { name: 'min', run: (x, d) => T.min(x, d), out: (d) => d },
];

// [shape, reduced dims]: dim 0 of [N, C]; the middle of [B, L, C]; several adjacent dims;
// size-1 dims on either side; odd sizes; a 2-wide inner part.
const CASES: readonly [number[], number[]][] = [
  [[37, 5], [0]], [[8, 33], [0]], [[3, 17, 6], [1]], [[4, 5, 6, 7], [1, 2]], [[6, 5, 3], [0, 1]],
  [[2, 1, 9, 1, 4], [2]], [[2, 1, 9, 1, 4], [1, 2, 3]], [[1, 13, 3], [1]], [[5, 40, 2], [1]], [[2, 3, 4, 5], [0, 1, 2]],
];

describe('reduceColumns against the transposing row path (CPU, bit for bit)', () => {
  for (const dtype of DTYPES) {
    test(dtype, () => {
      for (const [shape, dims] of CASES) {
        const x = values(shape, dtype);
        for (const op of OPS) {
          let got!: T.Tensor;
          const calls = countColumnCalls(() => { got = op.run(x, dims); });
          assert.equal(calls, 1, `${op.name} over [${dims}] of [${shape}] should take the column path`);
          sameBits(got, viaRows(op.name, x, dims, op.out(dtype)), `${op.name} ${dtype} [${shape}] dims [${dims}]`);
        }
        if (dims.length === 1) {
          for (const op of ['argmax', 'argmin'] as const) {
            const got = op === 'argmax' ? T.argmax(x, dims[0]!) : T.argmin(x, dims[0]!);
            sameBits(got, viaRows(op, x, dims, 'int32'), `${op} ${dtype} [${shape}] dim ${dims[0]}`);
          }
        }
      }
    });
  }

  test('NaN wins max/min/argmax (first NaN), ties go to the lowest index', () => {
    const x = T.Tensor.fromHost(new Float32Array([1, 2, NaN, 4, NaN, 2, 3, 4, 5, NaN, 3, 4]), [3, 4], 'float32');
    for (const op of ['max', 'min', 'argmax', 'argmin'] as const) {
      const got = op === 'max' ? T.max(x, 0) : op === 'min' ? T.min(x, 0) : op === 'argmax' ? T.argmax(x, 0) : T.argmin(x, 0);
      sameBits(got, viaRows(op, x, [0], op.startsWith('arg') ? 'int32' : 'float32'), `${op} with NaN`);
    }
    assert.deepEqual(T.argmax(x, 0).toArray(), [1, 2, 0, 0]);
    assert.deepEqual(T.argmin(T.Tensor.fromHost(new Int32Array([2, 1, 1, 1]), [4, 1], 'int32').expand(4, 3), 0).toArray(), [1, 1, 1]);
  });
});

describe('strided inputs read in place', () => {
  test('a column slice, a row slice, a broadcast (stride 0) view and a flipped view', () => {
    const base = values([4, 9, 10], 'float32');
    const cases: [string, T.Tensor, number[]][] = [
      ['narrow inner', T.narrow(base, 2, 3, 6), [1]],
      ['narrow reduced', T.narrow(base, 1, 2, 5), [1]],
      ['narrow inner, reduce two', T.narrow(base, 2, 0, 7), [0, 1]],
      ['expanded reduced dim', T.expand(values([3, 1, 8], 'float32'), [3, 7, 8]), [1]],
      ['expanded outer dim', T.expand(values([1, 6, 8], 'float32'), [5, 6, 8]), [1]],
      ['flipped reduced dim', T.flip(base, [1]), [1]],
      ['flipped outer dim', T.flip(base, [0]), [0]],
    ];
    for (const [what, x, dims] of cases) {
      assert.equal(x.isContiguous, false, `${what} should be a strided view`);
      let got!: T.Tensor;
      assert.equal(countColumnCalls(() => { got = T.sum(x, dims); }), 1, `${what} takes the column path`);
      sameBits(got, viaRows('sum', x, dims, 'float32'), what);
      sameBits(T.max(x, dims), viaRows('max', x, dims, 'float32'), `${what} max`);
    }
  });

  test('layouts the column path does not take fall back to rows with the same results', () => {
    const x = values([4, 6, 5], 'float32');
    const cases: [string, T.Tensor, number[]][] = [
      ['innermost dim', x, [2]],
      ['every dim', x, [0, 1, 2]],
      ['interleaved dims', x, [0, 2]],
      ['transposed inner part', T.permute(x, [0, 2, 1]), [1]],
      ['outer dims that do not merge', T.permute(values([4, 6, 5, 3], 'float32'), [1, 0, 2, 3]), [2]],
    ];
    for (const [what, t, dims] of cases) {
      let got!: T.Tensor;
      assert.equal(countColumnCalls(() => { got = T.sum(t, dims); }), 0, `${what} stays on the row path`);
      sameBits(got, viaRows('sum', t, dims, 'float32'), what);
    }
  });
});

describe('columnView', () => {
  const view = (shape: number[], dims: number[], strides?: number[]) => {
    const x = T.zeros(shape);
    const v = columnView(strides ? x.withLayout(shape, strides, 0) : x, dims);
    return v === null ? null : { shape: [...v.shape], strides: [...v.strides] };
  };
  test('merges dims into [outer, reduced, inner]', () => {
    assert.deepEqual(view([8192, 1152], [0]), { shape: [1, 8192, 1152], strides: [0, 1152, 1] });
    assert.deepEqual(view([32, 256, 1152], [1]), { shape: [32, 256, 1152], strides: [294912, 1152, 1] });
    assert.deepEqual(view([32, 256, 1152], [0, 1]), { shape: [1, 8192, 1152], strides: [0, 1152, 1] });
    assert.deepEqual(view([2, 3, 4, 5, 6], [2, 3]), { shape: [6, 20, 6], strides: [120, 6, 1] });
    assert.deepEqual(view([2, 1, 5, 1, 3], [1, 2]), { shape: [2, 5, 3], strides: [15, 3, 1] });
    // A gate gradient: [B, 1, C] against [B, L, C] broadcasts to stride 0 over L.
    assert.deepEqual(view([4, 7, 8], [1], [8, 0, 1]), { shape: [4, 7, 8], strides: [8, 0, 1] });
  });
  test('declines innermost, interleaved, empty and non-contiguous-inner layouts', () => {
    assert.equal(view([5, 6], [1]), null);
    assert.equal(view([5, 6], [0, 1]), null);
    assert.equal(view([3, 4, 5], [0, 2]), null);
    assert.equal(view([0, 6], [0]), null);
    assert.equal(view([5, 6], [0], [1, 5]), null);
    assert.equal(view([4, 1, 6], [1]), null);
    assert.equal(view([4, 6], []), null);
  });
});

describe('semantics around the column path', () => {
  test('keepdim, mean, variance and integer promotion', () => {
    const x = values([6, 4, 5], 'float32');
    assert.deepEqual(T.sum(x, 1, true).shape, [6, 1, 5]);
    sameBits(T.reshape(T.sum(x, 1, true), [6, 5]), viaRows('sum', x, [1], 'float32'), 'keepdim');
    const m = T.mean(x, 0).toFloat64Array();
    const s = viaRows('sum', x, [0], 'float32').toFloat64Array();
    for (let i = 0; i < m.length; i++) assert.ok(Math.abs(m[i]! - s[i]! / 6) <= 1e-6 * (1 + Math.abs(m[i]!)), `mean ${i}`);
    const v = T.variance(x, 0).toFloat64Array();
    const xs = x.toFloat64Array();
    for (let c = 0; c < 20; c++) {
      let mu = 0;
      for (let r = 0; r < 6; r++) mu += xs[r * 20 + c]!;
      mu /= 6;
      let q = 0;
      for (let r = 0; r < 6; r++) q += (xs[r * 20 + c]! - mu) ** 2;
      assert.ok(Math.abs(v[c]! - q / 5) <= 1e-5 * (1 + q / 5), `variance column ${c}`);
    }
    const b = values([7, 3], 'bool');
    assert.equal(T.sum(b, 0).dtype, 'int32');
    assert.equal(T.mean(values([7, 3], 'int32'), 0).dtype, 'float32');
  });

  test('empty dims: sums give zeros, max names the empty dim', () => {
    assert.deepEqual(T.sum(T.zeros([0, 3]), 0).toArray(), [0, 0, 0]);
    assert.deepEqual(T.prod(T.zeros([2, 0, 3]), 1).toArray(), [1, 1, 1, 1, 1, 1]);
    assert.deepEqual(T.sum(T.zeros([4, 0]), 0).shape, [0]);
    assert.throws(() => T.max(T.zeros([0, 3]), 0), /max: cannot reduce an empty dimension of a \[0, 3\] tensor/);
  });

  test('gradients through leading-dim reductions match finite differences', () => {
    gradcheck('sum dim 0', (x) => T.sum(x, 0), [rand64([5, 3], 31)]);
    gradcheck('sum middle', (x) => T.sum(x, 1), [rand64([2, 4, 3], 32)]);
    gradcheck('mean leading two', (x) => T.mean(x, [0, 1], true), [rand64([2, 3, 4], 33)]);
    gradcheck('max dim 0', (x) => T.max(x, 0), [rand64([4, 3], 34)]);
    gradcheck('min middle', (x) => T.min(x, 1), [rand64([2, 5, 3], 35)]);
    gradcheck('prod dim 0', (x) => T.prod(x, 0), [rand64([3, 4], 36, 0.5, 1)]);
    gradcheck('sum of a broadcast', (g) => T.sum(T.mul(T.expand(g, [3, 4, 5]), rand64([3, 4, 5], 38)), 1), [rand64([3, 1, 5], 37)]);
  });
});
