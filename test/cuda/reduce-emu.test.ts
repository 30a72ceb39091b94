/**
 * reduce.cu's column reductions without a GPU: each case plans its launch with kernels/reduce.ts
 * columnPlan (on a 1- or 2-SM "device", so grids stay small yet the reduced dim is still split
 * into chunks), then test/cuda/emu/reduce-emu.cpp runs the kernels under the host SIMT emulation
 * (simt.h) on x's storage and the results are compared with the CPU backend's row path. Covers
 * vector and scalar loads, strips of 32/16/8 lanes, one and several chunks, strided, broadcast
 * and flipped views, every op and dtype. Needs g++ (C++20); skipped with the reason otherwise.
 * test/cuda/reduce.test.ts runs the same kernels on the GPU.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../../src/index.js';
import type { ReduceOp } from '../../src/backends/backend.js';
import { columnPlan } from '../../src/backends/cuda/kernels/reduce.js';
import { DTYPE_CODE, DTYPE_SUFFIX } from '../../src/backends/cuda/kernels/source.js';
import { isFloating, itemSize, type DType } from '../../src/tensor/dtype.js';
import { buildSimtEmulation } from './emu/host-compiler.js';

const { skip, binary, work } = buildSimtEmulation({
  kernel: 'reduce.cu', harness: 'reduce-emu.cpp', binaryName: 'reduce-emu', label: 'emulated column reductions',
});

let seed = 9100;

/** Storage of `numel` elements of dtype; prod-friendly values near 1 when `nearOne`. */
function storage(numel: number, dtype: DType, nearOne: boolean): T.Tensor {
  const v = T.randn([numel], { dtype: 'float64', generator: new T.Generator(seed++) }).toFloat64Array();
  const mapped = v.map((x) => {
    if (dtype === 'bool') return x > 0 ? 1 : 0;
    if (!isFloating(dtype)) return nearOne ? (x > 1.2 ? 2 : x < -1.2 ? -1 : 1) : Math.round(4 * x);
    return nearOne ? 1 + 0.02 * x : x;
  });
  return T.cast(T.Tensor.fromHost(mapped, [numel], 'float64'), dtype);
}

/** The reference: reduced dim moved last, made contiguous, reduceRows on the CPU. */
function viaRows(op: ReduceOp, x: T.Tensor, outDType: DType): Float64Array {
  const [outer, reduced, inner] = x.shape as [number, number, number];
  const moved = T.reshape(T.contiguous(T.permute(x, [0, 2, 1])), [outer * inner, reduced]);
  const out = T.Tensor.empty([outer * inner], outDType, x.backend);
  x.backend.kernels.reduceRows(op, moved, out);
  return out.toFloat64Array();
}

const RTOL: Readonly<Record<DType, number>> = {
  float32: 1e-5, float64: 1e-12, bfloat16: 1e-2, float16: 5e-3, int32: 0, int64: 0, bool: 0,
};

interface Case {
  readonly name: string;
  readonly dtype: DType;
  readonly base: number;
  readonly shape: [number, number, number];
  readonly strides: [number, number, number];
  readonly offset: number;
  readonly sms: number;
  /** What the plan must come out as (checks the geometry choice itself). */
  readonly expect: { vec: 'vector' | 'scalar'; chunks: 'one' | 'several' };
}

const CASES: readonly Case[] = [
  { name: 'f32 sum over N of [N, C], vector loads', dtype: 'float32', base: 200 * 64, shape: [1, 200, 64], strides: [0, 64, 1], offset: 0, sms: 1, expect: { vec: 'vector', chunks: 'several' } },
  { name: 'bf16 [1, 300, 72], 16-lane strips', dtype: 'bfloat16', base: 300 * 72, shape: [1, 300, 72], strides: [0, 72, 1], offset: 0, sms: 1, expect: { vec: 'vector', chunks: 'several' } },
  { name: 'f16 slice of [2, 140, 136]', dtype: 'float16', base: 2 * 140 * 136, shape: [2, 130, 128], strides: [19040, 136, 1], offset: 5 * 136 + 8, sms: 2, expect: { vec: 'vector', chunks: 'several' } },
  { name: 'f64 odd sizes at an odd offset', dtype: 'float64', base: 2 * 33 * 9 + 3, shape: [2, 33, 7], strides: [297, 9, 1], offset: 3, sms: 1, expect: { vec: 'scalar', chunks: 'one' } },
  { name: 'f32 [2, 140, 300]: five strips', dtype: 'float32', base: 2 * 140 * 300, shape: [2, 140, 300], strides: [42000, 300, 1], offset: 0, sms: 2, expect: { vec: 'vector', chunks: 'several' } },
  { name: 'f32 flipped reduced dim', dtype: 'float32', base: 200 * 36, shape: [1, 200, 36], strides: [0, -36, 1], offset: 199 * 36, sms: 1, expect: { vec: 'vector', chunks: 'several' } },
  { name: 'bf16 odd offset: scalar loads', dtype: 'bfloat16', base: 1 + 300 * 24, shape: [1, 300, 24], strides: [0, 24, 1], offset: 1, sms: 1, expect: { vec: 'scalar', chunks: 'several' } },
  { name: 'i32 [1, 300, 35]', dtype: 'int32', base: 300 * 35, shape: [1, 300, 35], strides: [0, 35, 1], offset: 0, sms: 1, expect: { vec: 'scalar', chunks: 'several' } },
  { name: 'i64 broadcast reduced dim (stride 0)', dtype: 'int64', base: 4 * 6, shape: [4, 10, 6], strides: [6, 0, 1], offset: 0, sms: 1, expect: { vec: 'vector', chunks: 'one' } },
  { name: 'bool [1, 300, 19]', dtype: 'bool', base: 300 * 19, shape: [1, 300, 19], strides: [0, 19, 1], offset: 0, sms: 1, expect: { vec: 'scalar', chunks: 'several' } },
  { name: 'bf16 gate gradient shape [4, 300, 32]', dtype: 'bfloat16', base: 4 * 300 * 32, shape: [4, 300, 32], strides: [9600, 32, 1], offset: 0, sms: 2, expect: { vec: 'vector', chunks: 'several' } },
  { name: 'f32 [1, 100, 512]: 32-lane strips', dtype: 'float32', base: 100 * 512, shape: [1, 100, 512], strides: [0, 512, 1], offset: 0, sms: 1, expect: { vec: 'vector', chunks: 'several' } },
];

const OPS: readonly ReduceOp[] = ['sum', 'prod', 'max', 'min', 'argmax', 'argmin'];

function runCase(c: Case, op: ReduceOp, index: number): void {
  const base = storage(c.base, c.dtype, op === 'prod');
  const x = base.withLayout(c.shape, c.strides, c.offset);
  const outDType: DType = op === 'argmax' || op === 'argmin' ? 'int32' : op === 'sum' && c.dtype === 'bool' ? 'int32' : c.dtype;
  const plan = columnPlan(op, x, c.sms, c.offset * itemSize(c.dtype));
  assert.equal(plan.vec > 1 ? 'vector' : 'scalar', c.expect.vec, `${c.name}: load width`);
  assert.equal(plan.chunks > 1 ? 'several' : 'one', c.expect.chunks, `${c.name}: chunks`);
  assert.equal(plan.grid, plan.outer * plan.strips * plan.chunks, `${c.name}: grid`);
  const dir = join(work, `case-${index}-${op}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'spec.txt'), [DTYPE_SUFFIX[c.dtype], ['sum', 'prod', 'max', 'min', 'argmax', 'argmin'].indexOf(op),
    DTYPE_CODE[outDType], plan.outer, plan.reduced, plan.inner, plan.so, plan.sr, c.offset, plan.vec, plan.tx, plan.strips,
    plan.chunkRows, plan.chunks, plan.grid].join(' ') + '\n');
  writeFileSync(join(dir, 'x.bin'), base.toFloat64Array());
  const r = spawnSync(binary, [dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${c.name} ${op}: emulator failed:\n${r.stderr}`);
  const got = new Float64Array(Uint8Array.from(readFileSync(join(dir, 'out.bin'))).buffer);
  const want = viaRows(op, x, outDType);
  assert.equal(got.length, want.length, `${c.name} ${op}: result count`);
  const exact = op !== 'sum' && op !== 'prod';
  const rtol = exact ? 0 : RTOL[outDType];
  let scale = 0;
  for (const v of want) scale += Math.abs(v) / want.length;
  for (let i = 0; i < want.length; i++) {
    const [a, e] = [got[i]!, want[i]!];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    assert.ok(Math.abs(a - e) <= rtol * (Math.abs(e) + scale), `${c.name} ${op}: element ${i} is ${a}, the CPU gives ${e}`);
  }
}

test('emulated reduce_cols kernels match the CPU row path', { skip }, async (t) => {
  let index = 0;
  for (const c of CASES) {
    await t.test(c.name, () => {
      for (const op of OPS) runCase(c, op, index++);
    });
  }
});

test('the plan fills the device: chunks only when outer * strips blocks would not, partial counts bounded', () => {
  const x = (shape: [number, number, number]) => T.Tensor.empty(shape, 'bfloat16', T.getBackend('meta'));
  // Bias gradient of Dimba-L-2 (8192 tokens, 1152 channels) on 132 SMs: 9 strips of 16 lanes x 8 columns.
  const bias = columnPlan('sum', x([1, 8192, 1152]), 132, 0);
  assert.deepEqual([bias.vec, bias.tx, bias.strips], [8, 16, 9]);
  assert.ok(bias.grid >= 132 * 4 && bias.chunks * bias.chunkRows >= 8192 && (bias.chunks - 1) * bias.chunkRows < 8192);
  // Many outer entries already fill the GPU: one chunk, no second pass.
  assert.equal(columnPlan('sum', x([4096, 64, 1152]), 132, 0).chunks, 1);
  // Too few rows to split.
  assert.equal(columnPlan('sum', x([1, 20, 64]), 132, 0).chunks, 1);
  assert.throws(() => columnPlan('sum', T.zeros([4, 5]), 132, 0), /reduceColumns takes x \[outer, reduced, inner\]/);
  assert.throws(() => columnPlan('sum', T.zeros([4, 5, 6]).permute(0, 2, 1), 132, 0), /inner stride 1, got 6/);
});
