/**
 * CUDA matmul against the CPU backend, forward and backward: cuBLASLt (the default for
 * bfloat16/float16, and float32 under DIMBA_CUBLASLT=all), cuBLAS GemmEx (float32, float64, and
 * everything under DIMBA_CUBLASLT=0) and the integer kernel. The row-major to column-major
 * mapping and the plan keys are checked on the CPU everywhere; GPU specs skip without a GPU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { addressAlignment, planKey, type LtOperand, type LtProblem } from '../../src/backends/cuda/blas-lt.js';
import { columnMajorProblem, gemmStats, parseLtUse, type GemmSpec } from '../../src/backends/cuda/kernels/gemm.js';
import { FLOATS, checkOp, cudaSkip, randomCpu, randomInts, realCuda } from './helpers.js';
import { cudaBackend, routeOf, withRoute } from './gemm-route.js';

const skip = cudaSkip;

// ---- CPU: the column-major problem handed to cuBLAS / cuBLASLt ----

/** Reads column-major operand `o` (element (r, c) of op(o) in batch entry e) from `data`, cuBLASLt's way. */
function opElement(data: Float64Array, o: LtOperand, e: number, r: number, c: number): number {
  const [row, col] = o.trans ? [c, r] : [r, c];
  assert.ok(row < o.rows && col < o.cols, `element (${row}, ${col}) outside the ${o.rows} x ${o.cols} layout`);
  return data[e * o.stride + col * o.ld + row]!;
}

/** D = op(A) op(B) as cuBLASLt computes it from the layouts alone. */
function runColumnMajor(p: LtProblem, a: Float64Array, b: Float64Array): Float64Array {
  const m = p.c.rows;
  const n = p.c.cols;
  const k = p.a.trans ? p.a.rows : p.a.cols;
  const d = new Float64Array(p.batch * p.c.stride);
  for (let e = 0; e < p.batch; e++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) s += opElement(a, p.a, e, i, q) * opElement(b, p.b, e, q, j);
        d[e * p.c.stride + j * p.c.ld + i] = s;
      }
    }
  }
  return d;
}

test('the row-major problem maps onto column-major cuBLAS operands: every transpose, batch strides, broadcast', () => {
  const [m, n, k, batch] = [3, 5, 4, 2];
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      for (const [strideA, strideB] of [[m * k, k * n], [0, k * n], [m * k, 0]]) {
        const A = Float64Array.from({ length: batch * m * k }, (_, i) => ((i * 7) % 11) - 5);
        const B = Float64Array.from({ length: batch * k * n }, (_, i) => ((i * 5) % 13) - 6);
        const spec: GemmSpec = {
          m, n, k, batch, transA, transB,
          a: { address: 0x1000, ld: transA ? m : k, stride: strideA },
          b: { address: 0x2000, ld: transB ? k : n, stride: strideB },
          c: { address: 0x3000, ld: n, stride: m * n },
          abType: 'bfloat16', cType: 'float32', beta: 0,
        };
        const p = columnMajorProblem(spec);
        // cuBLAS computes C^T (n x m): A' is our B, B' our A.
        assert.equal(p.a.address, 0x2000);
        assert.equal(p.b.address, 0x1000);
        const got = runColumnMajor(p, B, A);
        for (let e = 0; e < batch; e++) {
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < n; j++) {
              let s = 0;
              for (let q = 0; q < k; q++) {
                const av = transA ? A[e * strideA + q * m + i]! : A[e * strideA + i * k + q]!;
                const bv = transB ? B[e * strideB + j * k + q]! : B[e * strideB + q * n + j]!;
                s += av * bv;
              }
              assert.equal(got[e * m * n + i * n + j], s, `transA ${transA} transB ${transB} strides ${strideA}/${strideB} at ${e},${i},${j}`);
            }
          }
        }
      }
    }
  }
});

test('compute types: half types and float32 accumulate in FP32 (TF32 only when asked), float64 in FP64', () => {
  const base = {
    m: 2, n: 2, k: 2, batch: 1, transA: false, transB: false, beta: 0 as const,
    a: { address: 0, ld: 2, stride: 4 }, b: { address: 0, ld: 2, stride: 4 }, c: { address: 0, ld: 2, stride: 4 },
  };
  const compute = (abType: DType, tf32 = false) => columnMajorProblem({ ...base, abType, cType: abType, tf32 }).computeType;
  assert.equal(compute('bfloat16'), 68);
  assert.equal(compute('float16', true), 68);
  assert.equal(compute('float32'), 68);
  assert.equal(compute('float32', true), 77);
  assert.equal(compute('float64'), 70);
  assert.equal(columnMajorProblem({ ...base, abType: 'bfloat16', cType: 'float32', beta: 1 }).accumulate, true);
});

test('plan keys: alignment of each pointer counts, batch strides only when batched', () => {
  assert.equal(addressAlignment(0x7f00_0000_0000), 256);
  assert.equal(addressAlignment(0x7f00_0000_0002), 2);
  assert.equal(addressAlignment(0x7f00_0000_0130), 16);
  const op = (address: number, stride: number): LtOperand => ({ address, rows: 8, cols: 4, ld: 8, stride, trans: false });
  const problem = (a: LtOperand, batch: number): LtProblem => ({
    a, b: op(0x2000, 32), c: op(0x3000, 32), batch, abType: 14, cType: 14, computeType: 68, accumulate: false,
  });
  assert.equal(planKey(problem(op(0x1000, 32), 1)), planKey(problem(op(0x1000, 0), 1)));
  assert.notEqual(planKey(problem(op(0x1000, 32), 3)), planKey(problem(op(0x1000, 0), 3)));
  assert.notEqual(planKey(problem(op(0x1000, 32), 1)), planKey(problem(op(0x1002, 32), 1)));
  assert.equal(planKey(problem(op(0x1000, 32), 1)), planKey(problem(op(0x5000, 32), 1)), 'the address itself is not part of the key');
});

test('DIMBA_CUBLASLT: unset or 1 = half types, 0 = off, all = float32 too; anything else is refused by name', () => {
  assert.equal(parseLtUse(undefined), 'half');
  assert.equal(parseLtUse(''), 'half');
  assert.equal(parseLtUse('1'), 'half');
  assert.equal(parseLtUse('0'), 'off');
  assert.equal(parseLtUse('all'), 'all');
  assert.throws(() => parseLtUse('yes'), /DIMBA_CUBLASLT must be 0 .* got 'yes'/);
});

// ---- GPU: against the CPU backend ----


const T = (x: Tensor) => ops.transpose(x, -1, -2);

/** op(a) op(b) with a, b stored as given: each operand stored plainly or transposed, the product the same. */
function transposeCases(dtype: DType, m: number, k: number, n: number, batch: number[] = []): [string, Tensor[], (...xs: Tensor[]) => Tensor][] {
  const a = randomCpu([...batch, m, k], dtype);
  const aT = randomCpu([...batch, k, m], dtype);
  const b = randomCpu([...batch, k, n], dtype);
  const bT = randomCpu([...batch, n, k], dtype);
  return [
    ['NN', [a, b], (x, y) => ops.matmul(x, y)],
    ['TN', [aT, b], (x, y) => ops.matmul(T(x), y)],
    ['NT', [a, bT], (x, y) => ops.matmul(x, T(y))],
    ['TT', [aT, bT], (x, y) => ops.matmul(T(x), T(y))],
  ];
}

const SIZES: [number, number, number][] = [[37, 53, 29], [1, 17, 1], [130, 257, 67], [8, 1, 9]];

for (const use of ['half', 'all', 'off'] as const) {
  test(`DIMBA_CUBLASLT=${use === 'half' ? '1' : use === 'all' ? 'all' : '0'}: odd sizes, every transpose pair, each float dtype, forward and backward`, { skip }, async (t) => {
    for (const dtype of FLOATS) {
      await t.test(dtype, () => {
        withRoute(use, routeOf(use, dtype), () => {
          for (const [m, k, n] of SIZES) {
            for (const [name, inputs, f] of transposeCases(dtype, m, k, n)) checkOp(`${dtype} ${m}x${k}x${n} ${name}`, inputs, f);
          }
        });
      });
    }
  });
}

test('batched and broadcast matmuls in every float dtype, on each route', { skip }, async (t) => {
  for (const use of ['half', 'all', 'off'] as const) {
    for (const dtype of FLOATS) {
      await t.test(`${dtype} DIMBA_CUBLASLT=${use}`, () => {
        withRoute(use, routeOf(use, dtype), () => {
          for (const [name, inputs, f] of transposeCases(dtype, 11, 19, 7, [3])) checkOp(`batched ${name}`, inputs, f);
          // One matrix for every batch entry (batch stride 0), on either side.
          checkOp('broadcast b (stride 0)', [randomCpu([5, 13, 21], dtype), randomCpu([1, 21, 9], dtype)], (x, y) => ops.matmul(x, y));
          checkOp('broadcast a (stride 0)', [randomCpu([1, 13, 21], dtype), randomCpu([5, 21, 9], dtype)], (x, y) => ops.matmul(x, y));
          checkOp('broadcast a^T', [randomCpu([1, 21, 13], dtype), randomCpu([5, 9, 21], dtype)], (x, y) => ops.matmul(T(x), T(y)));
          // A weight applied to a batch of rows folds the batch into m; mixed batch shapes broadcast.
          checkOp('folded', [randomCpu([2, 3, 11, 19], dtype), randomCpu([19, 7], dtype)], (x, y) => ops.matmul(x, y));
          checkOp('broadcast 4-D', [randomCpu([2, 3, 11, 19], dtype), randomCpu([3, 19, 7], dtype)], (x, y) => ops.matmul(x, y));
          const w = randomCpu([23, 19], dtype);
          const bias = randomCpu([23], dtype);
          checkOp('linear', [randomCpu([3, 4, 19], dtype), w, bias], (x, ww, bb) => ops.linear(x, ww, bb));
          checkOp('matrix-vector', [randomCpu([3, 4, 19], dtype), randomCpu([19], dtype)], (x, y) => ops.matmul(x, y));
          checkOp('vector-vector', [randomCpu([19], dtype), randomCpu([19], dtype)], (x, y) => ops.matmul(x, y));
        });
      });
    }
  }
});

test('operands that start off the 256-byte alignment (views at an element offset) still multiply right', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      const [m, k, n] = [24, 40, 16];
      // Element offset 1 (2 or 4 bytes) and 8 (16 or 32 bytes) into a flat buffer, then reshaped: contiguous, unaligned.
      for (const off of [1, 8]) {
        checkOp(`${dtype} offset ${off}`, [randomCpu([off + m * k], dtype), randomCpu([off + k * n], dtype)],
          (x, y) => ops.matmul(ops.reshape(ops.narrow(x, 0, off, m * k), [m, k]), ops.reshape(ops.narrow(y, 0, off, k * n), [k, n])));
      }
    });
  }
});

test('a plan is built once per problem: repeating a shape adds no plan', { skip: skip || (realCuda ? false : 'needs a real GPU') }, () => {
  const rt = cudaBackend()!.runtime;
  const a = ops.randn([48, 72], { dtype: 'bfloat16', device: 'cuda' });
  const b = ops.randn([72, 40], { dtype: 'bfloat16', device: 'cuda' });
  ops.matmul(a, b).dispose();
  const s0 = gemmStats(rt);
  for (let i = 0; i < 3; i++) ops.matmul(a, b).dispose();
  const s1 = gemmStats(rt);
  assert.equal(s1.plans, s0.plans);
  assert.equal(s1.ltCalls - s0.ltCalls, 3);
  assert.equal(s1.ltUnavailable, null);
});

test('integer and bool matmuls match the CPU exactly (every transpose pair, batched, broadcast)', { skip }, async (t) => {
  for (const dtype of ['int32', 'int64', 'bool'] as const) {
    await t.test(dtype, () => {
      withRoute('half', 'none', () => {
        const [lo, hi] = dtype === 'bool' ? [0, 2] : [-50, 50];
        const a = randomInts([3, 13, 21], lo, hi, dtype);
        const aT = randomInts([3, 21, 13], lo, hi, dtype);
        const b = randomInts([3, 21, 9], lo, hi, dtype);
        const bT = randomInts([3, 9, 21], lo, hi, dtype);
        checkOp(`${dtype} NN`, [a, b], (x, y) => ops.matmul(x, y));
        checkOp(`${dtype} TN`, [aT, b], (x, y) => ops.matmul(T(x), y));
        checkOp(`${dtype} NT`, [a, bT], (x, y) => ops.matmul(x, T(y)));
        checkOp(`${dtype} TT`, [aT, bT], (x, y) => ops.matmul(T(x), T(y)));
        checkOp(`${dtype} broadcast`, [randomInts([1, 13, 21], lo, hi, dtype), b], (x, y) => ops.matmul(x, y));
        checkOp(`${dtype} 2-D`, [randomInts([7, 300], lo, hi, dtype), randomInts([300, 5], lo, hi, dtype)], (x, y) => ops.matmul(x, y));
      });
    });
  }
  // int32 sums wrap like the CPU's Int32Array stores: 2 * (65536 * 32768) = 2^32 -> 0, plus 3.
  const big = ops.tensor([[65536, 65536, 3]], { dtype: 'int32' });
  const col = ops.tensor([[32768], [32768], [1]], { dtype: 'int32' });
  checkOp('int32 wraparound', [big, col], (x, y) => ops.matmul(x, y));
});

test('attention composed from matmul and softmax matches the CPU, with a key-padding mask', { skip }, () => {
  const q = randomCpu([2, 3, 9, 8]);
  const k = randomCpu([2, 3, 11, 8]);
  const v = randomCpu([2, 3, 11, 5]);
  const keep = ops.lt(ops.arange(0, 11), ops.tensor([[8], [11]], { dtype: 'int32' }));
  checkOp('attention', [q, k, v, keep], (x, y, z, m) => ops.scaledDotProductAttention(x, y, z, { keyPadding: m }));
});

test('empty inner dimension gives zeros', { skip }, () => {
  for (const dtype of [...FLOATS, 'int32'] as DType[]) {
    checkOp(`k = 0 ${dtype}`, [randomCpu([4, 0], dtype), randomCpu([0, 5], dtype)], (x, y) => ops.matmul(x, y));
  }
});

// ---- the environment switch, in a fresh process ----

const dist = (path: string) => new URL(`../../src/${path}`, import.meta.url).href;

function childRun(env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const script = `
    import * as ops from ${JSON.stringify(dist('ops/index.js'))};
    import { getBackend } from ${JSON.stringify(dist('backends/registry.js'))};
    import { loadCuda } from ${JSON.stringify(dist('backends/cuda/index.js'))};
    import { gemmStats } from ${JSON.stringify(dist('backends/cuda/kernels/gemm.js'))};
    loadCuda();
    const a = ops.randn([33, 65], { dtype: 'float32' });
    const b = ops.randn([65, 17], { dtype: 'float32' });
    const want = ops.matmul(ops.cast(a, 'bfloat16'), ops.cast(b, 'bfloat16')).toFloat64Array();
    const got = ops.matmul(ops.cast(a, 'bfloat16').to('cuda'), ops.cast(b, 'bfloat16').to('cuda')).to('cpu').toFloat64Array();
    let scale = 0; for (const v of want) scale += Math.abs(v) / want.length;
    let err = 0; for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + scale));
    console.log(JSON.stringify({ err, stats: gemmStats(getBackend('cuda').runtime) }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const realSkip = skip || (realCuda ? false : 'needs a real GPU');

test('DIMBA_CUBLASLT=0 in the environment sends bfloat16 matmuls to GemmEx, and they stay right', { skip: realSkip }, () => {
  for (const [value, route] of [['0', 'gemmEx'], ['1', 'lt']] as const) {
    const r = childRun({ DIMBA_CUBLASLT: value });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { err: number; stats: ReturnType<typeof gemmStats> };
    assert.ok(out.err < 1e-2, `DIMBA_CUBLASLT=${value}: max rel error ${out.err}`);
    assert.equal(out.stats.use, value === '0' ? 'off' : 'half');
    assert.equal(route === 'lt' ? out.stats.ltCalls : out.stats.gemmExCalls, 1, JSON.stringify(out.stats));
    assert.equal(route === 'lt' ? out.stats.gemmExCalls : out.stats.ltCalls, 0, JSON.stringify(out.stats));
  }
});

test('a bad DIMBA_CUBLASLT value fails the first matmul with the value named', { skip: realSkip }, () => {
  const r = childRun({ DIMBA_CUBLASLT: 'fast' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /DIMBA_CUBLASLT must be 0 .* got 'fast'/);
});
