/**
 * causal-conv1d.cu's kernels run on the CPU: the kernel source is compiled for the host with g++
 * against the SIMT emulation (emu/simt.h) and launched with the geometry the TypeScript launcher
 * computes (causalConv1dGeometry), on strided views as the Mamba mixer passes them; results are
 * compared with the CPU backend. This checks the walk and direct kernels' indexing (negative time
 * strides, vector loads, time chunks and their halos; the forward's peeled first steps, unrolled
 * groups with the next group in flight, and tail steps), the weight and bias read in their own
 * dtypes (bf16, f16, f32, f64, converted in the kernel), the backward's partial sums and their
 * reduction, and that every output element is written (outputs start as NaN). It does not check
 * device numerics or the launcher's parameter block (test/cuda/causal-conv1d.test.ts does, on a
 * GPU). Also here: the geometry choices themselves. Skipped, with the reason printed, without g++ (C++20).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ops from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Generator } from '../../src/random/generator.js';
import {
  causalConv1dGeometry, causalConv1dTuning, type CausalConv1dGeometry, type ConvOperand,
} from '../../src/backends/cuda/kernels/causal-conv1d.js';
import { buildSimtEmulation } from './emu/host-compiler.js';

const { skip, binary, work } = buildSimtEmulation({
  kernel: 'causal-conv1d.cu', harness: 'causal-conv1d-emu.cpp', binaryName: 'causal-conv1d-emu', label: 'emulated causal-conv1d kernels',
});

let seed = 7000;
function randomValues(n: number, scale = 1): Float64Array {
  return ops.randn([n], { dtype: 'float64', generator: new Generator(seed++) }).toFloat64Array().map((v) => v * scale);
}

type Layout = 'contiguous' | 'flipped' | 'channel-last' | 'mixer' | 'mixer-flipped';

/** A [B, D, L] view of a base buffer: the base's length, the view's offset and strides (elements). */
interface ViewSpec { readonly size: number; readonly offset: number; readonly strides: readonly number[] }

function layoutView(layout: Layout, b: number, d: number, l: number): ViewSpec {
  // Build the view with the real layout ops on a float64 base, then read off offset and strides.
  let base: Tensor;
  let view: Tensor;
  switch (layout) {
    case 'contiguous': base = ops.zeros([b, d, l], { dtype: 'float64' }); view = base; break;
    case 'flipped': base = ops.zeros([b, d, l], { dtype: 'float64' }); view = ops.flip(base, [2]); break;
    case 'channel-last': base = ops.zeros([b, l, d], { dtype: 'float64' }); view = ops.transpose(base, 1, 2); break;
    default: {
      base = ops.zeros([b, l, 2 * d], { dtype: 'float64' });
      const xz = ops.transpose(base, 1, 2);
      view = ops.chunk(layout === 'mixer' ? xz : ops.flip(xz, [2]), 2, 1)[0]!;
    }
  }
  return { size: base.numel, offset: view.offset, strides: [...view.strides] };
}

/** The logical [B, D, L] values of a view in a base buffer. */
function gather(base: Float64Array, v: ViewSpec, b: number, d: number, l: number): Float64Array {
  const out = new Float64Array(b * d * l);
  let i = 0;
  for (let bi = 0; bi < b; bi++) for (let di = 0; di < d; di++) for (let t = 0; t < l; t++) {
    out[i++] = base[v.offset + bi * v.strides[0]! + di * v.strides[1]! + t * v.strides[2]!]!;
  }
  return out;
}

type FloatType = 'float32' | 'float64' | 'bfloat16' | 'float16';

interface Case {
  readonly name: string;
  readonly dtype: FloatType;
  /** The weight's and bias's stored dtypes (default: the compute type, float64 for float64 x, else float32). */
  readonly wdtype?: FloatType;
  readonly bdtype?: FloatType;
  readonly b: number;
  readonly d: number;
  readonly l: number;
  readonly k: number;
  readonly silu: boolean;
  readonly bias: boolean;
  readonly x: Layout;
  readonly out: Layout;
  readonly gy: Layout;
  readonly gx: Layout;
  /** Time steps per walk thread (forces several chunks and chunk blocks on small shapes). */
  readonly chunk?: number;
  readonly expectKind: 'walk' | 'direct';
  readonly expectVec?: number;
  /** The forward's time chunk and block size the launcher's rule gives (unforced chunk). */
  readonly expectFwdChunk?: number;
  readonly expectFwdThreads?: number;
}

const CASES: Case[] = [
  // The sampler's case in small: bf16 x, weight and bias (the model's dtypes, no cast launch), the
  // chunk the small-grid rule picks (8 = two unrolled groups: the second group's loads in flight
  // while the first is computed), the last chunk 5 steps (one group + one tail step).
  { name: 'mixer view, bf16 x, weight and bias, small-grid chunk 8, 64-thread forward blocks', dtype: 'bfloat16', wdtype: 'bfloat16', bdtype: 'bfloat16',
    b: 2, d: 8, l: 37, k: 4, silu: true, bias: true, x: 'mixer', out: 'channel-last', gy: 'channel-last', gx: 'channel-last',
    expectKind: 'walk', expectVec: 4, expectFwdChunk: 8, expectFwdThreads: 64 },
  { name: 'f32 x, bf16 weight, f32 bias, flipped mixer view, chunk 6 (groups + tail steps in every chunk)', dtype: 'float32', wdtype: 'bfloat16', bdtype: 'float32',
    b: 2, d: 12, l: 31, k: 4, silu: true, bias: true, x: 'mixer-flipped', out: 'channel-last', gy: 'channel-last', gx: 'mixer-flipped', chunk: 6,
    expectKind: 'walk', expectVec: 4 },
  { name: 'f32 x, f16 weight, bf16 bias, no silu, chunk 2 < K - 1 (window before t = 0 in a later chunk)', dtype: 'float32', wdtype: 'float16', bdtype: 'bfloat16',
    b: 1, d: 4, l: 11, k: 4, silu: false, bias: true, x: 'channel-last', out: 'channel-last', gy: 'channel-last', gx: 'channel-last', chunk: 2,
    expectKind: 'walk', expectVec: 4 },
  { name: 'f64 x, bf16 weight, f32 bias (double compute), K 3', dtype: 'float64', wdtype: 'bfloat16', bdtype: 'float32',
    b: 2, d: 6, l: 19, k: 3, silu: true, bias: true, x: 'channel-last', out: 'channel-last', gy: 'channel-last', gx: 'channel-last', chunk: 8,
    expectKind: 'walk', expectVec: 1 },
  { name: 'f16 x, f16 weight without bias, V 2 (D 6), silu', dtype: 'float16', wdtype: 'float16',
    b: 2, d: 6, l: 21, k: 4, silu: true, bias: false, x: 'mixer', out: 'channel-last', gy: 'channel-last', gx: 'channel-last', chunk: 8,
    expectKind: 'walk', expectVec: 2 },
  { name: 'direct kernel with bf16 weight and f16 bias, f32 x, K 5', dtype: 'float32', wdtype: 'bfloat16', bdtype: 'float16',
    b: 1, d: 3, l: 40, k: 5, silu: true, bias: true, x: 'contiguous', out: 'contiguous', gy: 'contiguous', gx: 'contiguous', expectKind: 'direct' },
  { name: 'mixer view, bf16, K 4, V 4 forward / 2 backward, several chunk blocks', dtype: 'bfloat16', b: 2, d: 8, l: 37, k: 4, silu: true, bias: true,
    x: 'mixer', out: 'channel-last', gy: 'channel-last', gx: 'channel-last', chunk: 4, expectKind: 'walk', expectVec: 4 },
  { name: 'flipped mixer view, f32, K 4, gx flipped channel-last', dtype: 'float32', b: 2, d: 12, l: 29, k: 4, silu: true, bias: true,
    x: 'mixer-flipped', out: 'channel-last', gy: 'channel-last', gx: 'mixer-flipped', chunk: 8, expectKind: 'walk', expectVec: 4 },
  { name: 'channel-last, odd D (V 1), f32, K 3, no bias, contiguous gy', dtype: 'float32', b: 1, d: 5, l: 23, k: 3, silu: true, bias: false,
    x: 'channel-last', out: 'channel-last', gy: 'contiguous', gx: 'channel-last', chunk: 4, expectKind: 'walk', expectVec: 1 },
  { name: 'channel-last, f64, K 1, bias without silu', dtype: 'float64', b: 2, d: 6, l: 9, k: 1, silu: false, bias: true,
    x: 'channel-last', out: 'contiguous', gy: 'flipped', gx: 'channel-last', chunk: 4, expectKind: 'walk', expectVec: 1 },
  { name: 'channel-last, K 2, L shorter than K - 1 halo, f32', dtype: 'float32', b: 2, d: 4, l: 1, k: 2, silu: true, bias: true,
    x: 'channel-last', out: 'channel-last', gy: 'channel-last', gx: 'channel-last', expectKind: 'walk' },
  { name: 'contiguous x: direct kernel, bf16, K 4', dtype: 'bfloat16', b: 2, d: 3, l: 70, k: 4, silu: true, bias: true,
    x: 'contiguous', out: 'contiguous', gy: 'channel-last', gx: 'contiguous', expectKind: 'direct' },
  { name: 'flipped contiguous x: direct, f64, K 5 > L 3', dtype: 'float64', b: 1, d: 2, l: 3, k: 5, silu: true, bias: true,
    x: 'flipped', out: 'contiguous', gy: 'contiguous', gx: 'flipped', expectKind: 'direct' },
  { name: 'channel-last x with K 6: direct, f32, 300 steps (two tiles)', dtype: 'float32', b: 1, d: 3, l: 300, k: 6, silu: true, bias: false,
    x: 'channel-last', out: 'channel-last', gy: 'channel-last', gx: 'channel-last', expectKind: 'direct' },
];

const SUFFIX = { float32: 'f32', float64: 'f64', bfloat16: 'bf16', float16: 'f16' } as const;
const ITEM = { float32: 4, float64: 8, bfloat16: 2, float16: 2 } as const;

function geoLine(g: CausalConv1dGeometry): string {
  return [g.kind === 'walk' ? 0 : 1, g.vec, g.chunk, g.bx, g.groupBlocks, g.chunkBlocks, g.tiles, g.blocks, g.threads, g.partialRows].join(' ');
}

function tol(dtype: DType): number {
  return dtype === 'float64' ? 1e-12 : dtype === 'float32' ? 1e-5 : dtype === 'float16' ? 4e-3 : 2e-2;
}

/** float64 values rounded to `dtype` (what a tensor of that dtype holds). */
function roundTo(v: Float64Array, dtype: DType): Float64Array {
  return ops.cast(Tensor.fromHost(v, [v.length], 'float64'), dtype).toFloat64Array();
}

function assertNear(what: string, got: Float64Array, want: Float64Array, rtol: number): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 0;
  for (const v of want) scale += Math.abs(v) / want.length;
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= rtol * (Math.abs(want[i]!) + scale))) {
      assert.fail(`${what}: element ${i}: emulated kernel ${got[i]}, CPU ${want[i]} (rtol ${rtol})`);
    }
  }
}

function runCase(c: Case): void {
  const { b, d, l, k } = c;
  const dir = mkdtempSync(join(work, 'case-'));
  const views = { x: layoutView(c.x, b, d, l), out: layoutView(c.out, b, d, l), gy: layoutView(c.gy, b, d, l), gx: layoutView(c.gx, b, d, l) };
  // Base buffers rounded to the storage type, so the emulation and the CPU see the same values.
  const round = (v: Float64Array) => roundTo(v, c.dtype);
  const xBase = round(randomValues(views.x.size));
  const gyBase = round(randomValues(views.gy.size));
  const w = randomValues(d * k, 0.5);
  const bias = randomValues(d);
  const write = (name: string, v: Float64Array) => writeFileSync(join(dir, `${name}.bin`), Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  write('x', xBase);
  write('gy', gyBase);
  write('w', w);
  write('bias', bias);
  const item = ITEM[c.dtype];
  const operand = (v: ViewSpec): ConvOperand => ({ strides: v.strides, address: v.offset * item });
  const saved = { ...causalConv1dTuning };
  if (c.chunk) Object.assign(causalConv1dTuning, { maxChunk: c.chunk, minChunk: c.chunk, smallChunk: c.chunk });
  let fwd: CausalConv1dGeometry;
  let bwd: CausalConv1dGeometry;
  try {
    fwd = causalConv1dGeometry([b, d, l], k, [operand(views.x), operand(views.out)], item, 1, false);
    bwd = causalConv1dGeometry([b, d, l], k, [operand(views.x), operand(views.gy), operand(views.gx)], item, 1, true);
  } finally {
    Object.assign(causalConv1dTuning, saved);
  }
  assert.equal(fwd.kind, c.expectKind, 'forward kernel');
  assert.equal(bwd.kind, c.expectKind, 'backward kernel');
  if (c.expectVec !== undefined) assert.equal(fwd.vec, c.expectVec, 'forward channels per thread');
  if (c.expectFwdChunk !== undefined) assert.equal(fwd.chunk, c.expectFwdChunk, 'forward time chunk');
  if (c.expectFwdThreads !== undefined) assert.equal(fwd.threads, c.expectFwdThreads, 'forward block size');
  const compute = c.dtype === 'float64' ? 'float64' : 'float32';
  const wdtype = c.wdtype ?? compute;
  const bdtype = c.bdtype ?? compute;
  const spec = [
    `type ${SUFFIX[c.dtype]}`,
    `params ${SUFFIX[wdtype]} ${SUFFIX[bdtype]}`,
    `dims ${b} ${d} ${l} ${k} ${c.silu ? 1 : 0} ${c.bias ? 1 : 0}`,
    ...Object.entries(views).map(([name, v]) => `view ${name} ${v.size} ${v.offset} ${v.strides.join(' ')}`),
    `fwd ${geoLine(fwd)}`,
    `bwd ${geoLine(bwd)}`,
  ].join('\n');
  writeFileSync(join(dir, 'spec.txt'), `${spec}\n`);
  const r = spawnSync(binary, [dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `emulator failed: ${r.stderr}`);
  const read = (name: string) => {
    const buf = readFileSync(join(dir, `${name}.bin`));
    return new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  };

  // CPU reference: the op on the same (rounded) values, loss = sum(out * gy).
  const xLeaf = Tensor.fromHost(gather(xBase, views.x, b, d, l), [b, d, l], 'float64');
  const x = ops.cast(xLeaf, c.dtype).detach().requiresGrad_(true);
  const wt = Tensor.fromHost(w, [d, k], 'float64');
  const wc = ops.cast(wt, wdtype).detach().requiresGrad_(true);
  const bt = c.bias ? ops.cast(Tensor.fromHost(bias, [d], 'float64'), bdtype).detach().requiresGrad_(true) : null;
  const out = ops.causalConv1d(x, wc, bt, c.silu ? 'silu' : null);
  const gy = ops.cast(Tensor.fromHost(gather(gyBase, views.gy, b, d, l), [b, d, l], 'float64'), c.dtype);
  out.backward(gy);
  const rtol = tol(c.dtype);
  assertNear('out', gather(read('out'), views.out, b, d, l), out.toFloat64Array(), rtol);
  assertNear('gx', gather(read('gx'), views.gx, b, d, l), x.grad!.toFloat64Array(), rtol * 2);
  // gw and gbias are summed in the compute type, then (as the launcher's Scratch.output does)
  // stored in the weight's and bias's dtypes.
  assertNear('gw', roundTo(read('gw'), wdtype), wc.grad!.toFloat64Array(), Math.max(rtol, tol(wdtype)) * 2);
  if (bt) assertNear('gbias', roundTo(read('gbias'), bdtype), bt.grad!.toFloat64Array(), Math.max(rtol, tol(bdtype)) * 2);
  // Elements outside the views were never written (still NaN) where the view does not cover the base.
  const outBase = read('out');
  const covered = new Set<number>();
  for (let bi = 0; bi < b; bi++) for (let di = 0; di < d; di++) for (let t = 0; t < l; t++) {
    covered.add(views.out.offset + bi * views.out.strides[0]! + di * views.out.strides[1]! + t * views.out.strides[2]!);
  }
  outBase.forEach((v, i) => { if (!covered.has(i)) assert.ok(Number.isNaN(v), `out base element ${i} outside the view was written`); });
}

describe('causal conv1d kernels under the SIMT emulation', () => {
  for (const c of CASES) test(c.name, { skip }, () => runCase(c));
});

describe('causalConv1dGeometry', () => {
  const cl = (b: number, d: number, l: number, item = 2, address = 0): ConvOperand => ({ strides: [l * 2 * d, 1, 2 * d], address: address * item });
  test('the mixer\'s bf16 view [16, 2304, 1024]: walk, 4 channels a thread forward in 64-thread blocks, 2 backward in 64 x 4', () => {
    const f = causalConv1dGeometry([16, 2304, 1024], 4, [cl(16, 2304, 1024), { strides: [1024 * 2304, 1, 2304], address: 0 }], 2, 132, false);
    assert.equal(f.kind, 'walk');
    assert.equal(f.vec, 4);
    assert.equal(f.threads, 64);
    assert.equal(f.bx * f.by, 64);
    assert.equal(f.groupBlocks * f.bx * f.vec, 2304);
    assert.equal(f.chunk, 32, 'B16 keeps its chunk: 295k threads, more than 2048 an SM');
    assert.equal(f.blocks, f.groupBlocks * f.chunkBlocks * 16);
    const g = causalConv1dGeometry([16, 2304, 1024], 4, [cl(16, 2304, 1024), cl(16, 2304, 1024), cl(16, 2304, 1024)], 2, 132, true);
    assert.equal(g.vec, 2);
    assert.equal(g.threads, 256);
    assert.equal(g.bx * g.by, 256);
    assert.equal(g.partialRows, 16 * g.chunkBlocks);
  });
  test('small batches: the forward grid fills the card in one resident wave (sampler: B2 x D2304 x L1024, 132 SMs)', () => {
    const geo = (batch: number, backward: boolean) => {
      const ops = [cl(batch, 2304, 1024), { strides: [1024 * 2304, 1, 2304], address: 0 }];
      return causalConv1dGeometry([batch, 2304, 1024], 4, backward ? [...ops, ops[1]!] : ops, 2, 132, backward);
    };
    const residentThreads = 132 * causalConv1dTuning.forwardResidentThreads;
    const b2 = geo(2, false);
    assert.deepEqual([b2.vec, b2.chunk, b2.threads, b2.blocks], [4, 16, 64, 1152]);
    // Every thread of the grid is resident at once, spread within 1.05x of even (8.7 blocks an SM).
    const threads = b2.blocks * b2.threads;
    assert.ok(threads <= residentThreads, `${threads} threads exceed one wave of ${residentThreads}`);
    assert.ok(Math.ceil(b2.blocks / 132) / (b2.blocks / 132) < 1.05, `${b2.blocks} blocks over 132 SMs`);
    // B1: the halved chunk (8) still fits in one wave, so it is taken; B2's would not (147k threads).
    const b1 = geo(1, false);
    assert.deepEqual([b1.chunk, b1.blocks], [8, 1152]);
    // B8 keeps the large-grid rule's chunk (16: 295k threads), as before.
    assert.equal(geo(8, false).chunk, 16);
    // The backward's geometry is the one it had: 256 threads, chunk 64 down to 16 by the 2048-thread rule.
    const bb = geo(2, true);
    assert.deepEqual([bb.vec, bb.threads, bb.chunk, bb.bx, bb.by], [2, 256, 16, 64, 4]);
  });
  test('the forward chunk halving stops at smallChunk and at the one-wave limit', () => {
    // Small D and L: everything fits, so the chunk goes down to smallChunk (8), never below.
    const f = causalConv1dGeometry([1, 64, 4096], 4, [cl(1, 64, 4096), cl(1, 64, 4096)], 2, 132, false);
    assert.equal(f.chunk, causalConv1dTuning.smallChunk);
    // A grid already past 2048 threads an SM at chunk 64 keeps 64.
    const big = causalConv1dGeometry([64, 2304, 1024], 4, [cl(64, 2304, 1024), cl(64, 2304, 1024)], 2, 132, false);
    assert.equal(big.chunk, 64);
  });
  test('misaligned or odd views fall back to narrower vectors', () => {
    const out = { strides: [8 * 6, 1, 6], address: 0 };
    assert.equal(causalConv1dGeometry([1, 6, 8], 4, [cl(1, 6, 8, 4, 2), out], 4, 132, false).vec, 2, 'offset 2 elements: 2-aligned only');
    assert.equal(causalConv1dGeometry([1, 6, 8], 4, [cl(1, 6, 8, 4, 1), out], 4, 132, false).vec, 1, 'offset 1 element');
    assert.equal(causalConv1dGeometry([1, 6, 8], 4, [cl(1, 6, 8, 8), { strides: [48, 1, 6], address: 0 }], 8, 132, false).vec, 1, 'float64 never vectorises');
  });
  test('time-contiguous x or K > 4 takes the direct kernel; blocks are whole warps', () => {
    const g = causalConv1dGeometry([2, 3, 70], 4, [{ strides: [210, 70, 1], address: 0 }, { strides: [210, 70, 1], address: 0 }], 4, 132, false);
    assert.equal(g.kind, 'direct');
    assert.equal(g.threads % 32, 0);
    assert.equal(g.blocks, 2 * 3 * g.tiles);
    assert.equal(causalConv1dGeometry([1, 8, 9], 5, [cl(1, 8, 9), cl(1, 8, 9)], 2, 132, false).kind, 'direct');
    const w = causalConv1dGeometry([1, 5, 9], 3, [cl(1, 5, 9), cl(1, 5, 9)], 2, 132, false);
    assert.equal(w.kind, 'walk');
    assert.equal(w.threads % 32, 0);
  });
  test('sizes past 32-bit indexing are refused with the value named', () => {
    assert.throws(() => causalConv1dGeometry([1, 2 ** 31, 4], 4, [cl(1, 2 ** 31, 4), cl(1, 2 ** 31, 4)], 2, 132, false), /dim = 2147483648/);
  });
});
