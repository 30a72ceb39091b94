/**
 * scan.cu's selective-scan kernels, run on the CPU: the kernel source is compiled for the host
 * with g++ against a small SIMT emulation (emu/simt.h: a thread per CUDA thread, barriers for
 * __syncthreads/__syncwarp/shuffles) and compared with the CPU backend's kernels on the same
 * operands. This checks the kernels' indexing, staging of strided views, chunking, shuffle
 * reductions and gradient sums where there is no GPU; it does not check device numerics (the
 * host uses exp2f for the MUFU ex2) or the launcher's parameter block (test/cuda/scan.test.ts
 * does, on a GPU). Skipped, with the reason printed, when g++ with C++20 is not available.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ops from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Generator } from '../../src/random/generator.js';
import { getBackend } from '../../src/backends/registry.js';
import type { ScanGrads, ScanInputs } from '../../src/backends/backend.js';
import { scanGeometry } from '../../src/backends/cuda/kernels/scan.js';
import { buildSimtEmulation } from './emu/host-compiler.js';

const { skip, binary, work } = buildSimtEmulation({
  kernel: 'scan.cu', harness: 'scan-emu.cpp', binaryName: 'scan-emu', label: 'emulated scan kernels',
});

let seed = 5000;
function randomBase(shape: number[], dtype: DType, map?: (v: number) => number): Tensor {
  const base = ops.randn(shape, { dtype: 'float64', generator: new Generator(seed++) });
  const values = map ? base.toFloat64Array().map(map) : base.toFloat64Array();
  return ops.cast(Tensor.fromHost(values, shape, 'float64'), dtype);
}

/** An operand as the kernel sees it: a view into a contiguous base tensor. */
interface Operand {
  readonly base: Tensor;
  readonly view: Tensor;
}

const contiguousOperand = (t: Tensor): Operand => ({ base: t, view: t });

interface Case {
  readonly name: string;
  readonly dtype: DType;
  /** dtype of A, D, deltaBias (the compute type when it differs from dtype). */
  readonly paramDtype: DType;
  readonly batch: number;
  readonly dim: number;
  readonly len: number;
  readonly nState: number;
  readonly groups: number;
  readonly z: boolean;
  readonly D: boolean;
  readonly bias: boolean;
  readonly softplus: boolean;
  /** Operands laid out as the Dimba mixer passes them (transposed, narrowed and flipped views). */
  readonly mixerLayout: boolean;
  /** The kernels' split layout (8 lanes of 2 states) instead of the wide one. */
  readonly split?: boolean;
  /** A given as A_log (ScanInputs.aLog, the kernels' SCAN_A_LOG): A = -exp(A_log), dA w.r.t. A_log. */
  readonly aLog?: boolean;
}

interface Built {
  readonly inputs: ScanInputs;
  readonly operands: Record<string, Operand>;
  readonly gy: Operand;
}

function buildCase(c: Case): Built {
  const { batch: b, dim: d, len: l, nState: n, groups: g, dtype } = c;
  const deltaMap = c.softplus ? (v: number) => 0.5 * v - 1 : (v: number) => 0.05 + 0.1 * Math.abs(v);
  let u: Operand;
  let delta: Operand;
  let z: Operand | null = null;
  let B: Operand;
  let C: Operand;
  let gy: Operand;
  if (c.mixerLayout) {
    // u: the conv output, contiguous. delta: dt_proj's [B, L, D] output transposed. z: the second
    // half of in_proj's [B, L, 2D] output, transposed and flipped (the backward direction). B, C:
    // slices of x_proj's [B, L, R + 2N] output, transposed. gy: a flipped transposed gradient.
    const rank = 3;
    u = contiguousOperand(randomBase([b, d, l], dtype));
    const dBase = randomBase([b, l, d], dtype, deltaMap);
    delta = { base: dBase, view: ops.transpose(dBase, 1, 2) };
    if (c.z) {
      const xz = randomBase([b, l, 2 * d], dtype);
      z = { base: xz, view: ops.flip(ops.narrow(ops.transpose(xz, 1, 2), 1, d, d), [2]) };
    }
    const dbc = randomBase([b, l, rank + 2 * n * g], dtype);
    const bcView = (start: number) => ops.reshape(ops.transpose(ops.narrow(dbc, 2, start, n * g), 1, 2), [b, g, n, l]);
    B = { base: dbc, view: bcView(rank) };
    C = { base: dbc, view: bcView(rank + n * g) };
    const gBase = randomBase([b, l, d], dtype);
    gy = { base: gBase, view: ops.flip(ops.transpose(gBase, 1, 2), [2]) };
  } else {
    u = contiguousOperand(randomBase([b, d, l], dtype));
    delta = contiguousOperand(randomBase([b, d, l], dtype, deltaMap));
    if (c.z) z = contiguousOperand(randomBase([b, d, l], dtype));
    B = contiguousOperand(randomBase([b, g, n, l], dtype));
    C = contiguousOperand(randomBase([b, g, n, l], dtype));
    gy = contiguousOperand(randomBase([b, d, l], dtype));
  }
  for (const o of [u, delta, z, B, C, gy]) if (o) assert.ok(o.base.isContiguous, 'operand bases are contiguous');
  const A = c.aLog ? randomBase([d, n], c.paramDtype, (v) => 0.5 * v) : randomBase([d, n], c.paramDtype, (v) => -Math.exp(0.5 * v));
  const D = c.D ? randomBase([d], c.paramDtype) : null;
  const deltaBias = c.bias ? randomBase([d], c.paramDtype, (v) => 0.3 * v) : null;
  const inputs: ScanInputs = {
    u: u.view, delta: delta.view, A, B: B.view, C: C.view, D, z: z ? z.view : null, deltaBias, deltaSoftplus: c.softplus,
    aLog: c.aLog ?? false,
  };
  const operands: Record<string, Operand> = { u, delta, B, C, gy };
  if (z) operands.z = z;
  return { inputs, operands, gy };
}

const TYPE_NAME: Partial<Record<DType, string>> = { float32: 'f32', float64: 'f64', bfloat16: 'bf16', float16: 'f16' };

function writeF64(path: string, t: Tensor): void {
  writeFileSync(path, Buffer.from(t.toFloat64Array().buffer));
}

function readF64(path: string): Float64Array {
  const buf = readFileSync(path);
  return new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/** |a - e| <= rtol (|e| + mean|e|) elementwise, as test/cuda/helpers.ts's assertClose. */
function assertNear(name: string, actual: Float64Array, expected: Float64Array, rtol: number): void {
  assert.equal(actual.length, expected.length, `${name}: ${actual.length} values, expected ${expected.length}`);
  let scale = 0;
  for (const v of expected) scale += Math.abs(v);
  scale = expected.length ? scale / expected.length : 0;
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) / (Math.abs(expected[i]!) + scale || 1);
    if (!(err <= worst)) { worst = err; at = i; }
  }
  assert.ok(worst <= rtol, `${name}: max relative error ${worst.toExponential(3)} > ${rtol} at flat index ${at} `
    + `(emulated ${actual[at]}, cpu ${expected[at]})`);
}

const OUTPUT_TOL: Partial<Record<DType, number>> = { float32: 1e-5, float64: 1e-12, bfloat16: 1e-2, float16: 5e-3 };

function runCase(c: Case): void {
  const cpu = getBackend('cpu');
  const built = buildCase(c);
  const { inputs } = built;
  const compute: 'float32' | 'float64' = c.dtype === 'float64' || c.paramDtype === 'float64' ? 'float64' : 'float32';
  assert.ok(c.dtype === c.paramDtype || c.paramDtype === compute, 'cases keep one storage type for the activations');
  const dir = mkdtempSync(join(work, 'case-'));
  const lines = [
    `type ${TYPE_NAME[c.dtype]}`,
    `dims ${c.batch} ${c.dim} ${c.len} ${c.nState} ${c.groups}`,
    `flags ${+c.softplus} ${+c.z} ${+c.D} ${+c.bias} 1 ${+(c.aLog ?? false)}`,
    `statesPerLane ${c.split ? 2 : 4}`,
  ];
  for (const [name, o] of Object.entries(built.operands)) {
    const s = [...o.view.strides, 0, 0, 0, 0].slice(0, 4);
    lines.push(`view ${name} ${o.view.offset - o.base.offset} ${s.join(' ')}`);
    writeF64(join(dir, `${name}.bin`), o.base);
  }
  writeF64(join(dir, 'A.bin'), inputs.A);
  if (inputs.D) writeF64(join(dir, 'D.bin'), inputs.D);
  if (inputs.deltaBias) writeF64(join(dir, 'bias.bin'), inputs.deltaBias);
  writeFileSync(join(dir, 'spec.txt'), `${lines.join('\n')}\n`);

  const r = spawnSync(binary, [dir], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `${c.name}: emulator failed (${r.signal ?? r.status}):\n${r.stderr}`);
  // The launcher's geometry (scan.ts) is the one the kernel templates compute.
  const geo = scanGeometry({ batch: c.batch, dim: c.dim, len: c.len, nState: c.nState, groups: c.groups }, compute, c.split ? 'split' : 'wide');
  assert.equal(geo.statesPerLane, c.split ? 2 : 4, `${c.name}: layout`);
  assert.match(r.stdout, new RegExp(`geometry lanes ${geo.lanes} threads ${geo.threads} chunk ${geo.chunk} `
    + `rowsPerBlock ${geo.rowsPerBlock} blocks ${geo.blocks} chunks ${geo.chunks}\\b`), `${c.name}: ${r.stdout}`);

  const [b, d, l, n] = [c.batch, c.dim, c.len, c.nState];
  const out = Tensor.empty([b, d, l], c.dtype, cpu);
  const last = Tensor.empty([b, d, n], compute, cpu);
  cpu.kernels.selectiveScan(inputs, out, last);
  const grads: ScanGrads = {
    du: Tensor.empty([b, d, l], c.dtype, cpu),
    ddelta: Tensor.empty([b, d, l], c.dtype, cpu),
    dA: Tensor.empty([d, n], compute, cpu),
    dB: Tensor.empty([b, c.groups, n, l], compute, cpu),
    dC: Tensor.empty([b, c.groups, n, l], compute, cpu),
    dD: c.D ? Tensor.empty([d], compute, cpu) : null,
    dz: c.z ? Tensor.empty([b, d, l], c.dtype, cpu) : null,
    ddeltaBias: c.bias ? Tensor.empty([d], compute, cpu) : null,
  };
  cpu.kernels.selectiveScanBackward(inputs, built.gy.view, grads);

  const outTol = OUTPUT_TOL[c.dtype]!;
  // Gradients run through a sequential recurrence and sums in another order; half types doubled.
  const gradTol = c.dtype === 'float32' ? 1e-4 : c.dtype === 'float64' ? 1e-11 : 2 * outTol;
  const sumTol = compute === 'float64' ? 1e-11 : c.dtype === 'float32' ? 1e-4 : 2 * outTol;
  const check = (file: string, t: Tensor | null, tol: number) => {
    if (t) assertNear(`${c.name} ${file}`, readF64(join(dir, `${file}.bin`)), t.toFloat64Array(), tol);
  };
  check('out', out, outTol);
  check('last', last, compute === 'float64' ? 1e-12 : 1e-5);
  check('du', grads.du, gradTol);
  check('ddelta', grads.ddelta, gradTol);
  check('dz', grads.dz, gradTol);
  check('dA', grads.dA, sumTol);
  check('dB', grads.dB, sumTol);
  check('dC', grads.dC, sumTol);
  check('dD', grads.dD, sumTol);
  check('dbias', grads.ddeltaBias, sumTol);
}

const FULL = { z: true, D: true, bias: true, softplus: true } as const;
const BARE = { z: false, D: false, bias: false, softplus: false } as const;

const CASES: Case[] = [
  // 16 states: 4 lanes a row, 32 rows a block, chunks of 16 with a partial last one.
  { name: 'f32 B2 D5 L70 N16', dtype: 'float32', paramDtype: 'float32', batch: 2, dim: 5, len: 70, nState: 16, groups: 1, ...FULL, mixerLayout: false },
  // 37 channels: a second, partly filled block; L a multiple of 4 (vector atomics for dB/dC).
  { name: 'f32 B1 D37 L64 N16 bare', dtype: 'float32', paramDtype: 'float32', batch: 1, dim: 37, len: 64, nState: 16, groups: 1, ...BARE, mixerLayout: false },
  // The Mamba mixer's layout and dtypes: bf16 views (transposed, narrowed, flipped), float32 A, D, bias.
  { name: 'bf16 mixer layout B2 D40 L41 N16', dtype: 'bfloat16', paramDtype: 'float32', batch: 2, dim: 40, len: 41, nState: 16, groups: 1, ...FULL, mixerLayout: true },
  { name: 'f32 mixer layout B1 D33 L48 N8 G1', dtype: 'float32', paramDtype: 'float32', batch: 1, dim: 33, len: 48, nState: 8, groups: 1, ...FULL, mixerLayout: true },
  // Groups: blocks never straddle one; 40 channels a group is a full and a partial block.
  { name: 'f32 B2 D6 L33 N8 G3', dtype: 'float32', paramDtype: 'float32', batch: 2, dim: 6, len: 33, nState: 8, groups: 3, ...FULL, mixerLayout: false },
  { name: 'f32 B1 D80 L20 N16 G2 mixer', dtype: 'float32', paramDtype: 'float32', batch: 1, dim: 80, len: 20, nState: 16, groups: 2, ...FULL, mixerLayout: true },
  // 8, 16 and 32 lanes a row (up to 32, 64, 128 states).
  { name: 'f32 B1 D3 L41 N23', dtype: 'float32', paramDtype: 'float32', batch: 1, dim: 3, len: 41, nState: 23, groups: 1, ...FULL, mixerLayout: false },
  { name: 'f32 B2 D2 L35 N40', dtype: 'float32', paramDtype: 'float32', batch: 2, dim: 2, len: 35, nState: 40, groups: 1, ...FULL, mixerLayout: false },
  { name: 'f32 B1 D2 L19 N70 z', dtype: 'float32', paramDtype: 'float32', batch: 1, dim: 2, len: 19, nState: 70, groups: 1, ...BARE, z: true, mixerLayout: false },
  // float64 (64-thread blocks, chunks of 4), float16, and a single step.
  { name: 'f64 B2 D5 L30 N16', dtype: 'float64', paramDtype: 'float64', batch: 2, dim: 5, len: 30, nState: 16, groups: 1, ...FULL, mixerLayout: false },
  { name: 'f64 B1 D3 L9 N70 mixer', dtype: 'float64', paramDtype: 'float64', batch: 1, dim: 3, len: 9, nState: 70, groups: 1, ...FULL, mixerLayout: true },
  { name: 'f16 B1 D4 L37 N16', dtype: 'float16', paramDtype: 'float32', batch: 1, dim: 4, len: 37, nState: 16, groups: 1, ...FULL, mixerLayout: false },
  { name: 'f32 B1 D1 L1 N3', dtype: 'float32', paramDtype: 'float32', batch: 1, dim: 1, len: 1, nState: 3, groups: 1, ...FULL, mixerLayout: false },
  // The split layout (8 lanes of 2 states, 16 rows a block): partial blocks and chunks, the
  // mixer's views, groups, fewer states than lanes hold, half types.
  { name: 'split f32 B2 D21 L70 N16', dtype: 'float32', paramDtype: 'float32', batch: 2, dim: 21, len: 70, nState: 16, groups: 1, ...FULL, mixerLayout: false, split: true },
  { name: 'split bf16 mixer layout B2 D40 L41 N16', dtype: 'bfloat16', paramDtype: 'float32', batch: 2, dim: 40, len: 41, nState: 16, groups: 1, ...FULL, mixerLayout: true, split: true },
  { name: 'split f32 B1 D37 L64 N16 bare', dtype: 'float32', paramDtype: 'float32', batch: 1, dim: 37, len: 64, nState: 16, groups: 1, ...BARE, mixerLayout: false, split: true },
  { name: 'split f32 B2 D6 L33 N5 G3', dtype: 'float32', paramDtype: 'float32', batch: 2, dim: 6, len: 33, nState: 5, groups: 3, ...FULL, mixerLayout: false, split: true },
  { name: 'split f16 B1 D4 L37 N16', dtype: 'float16', paramDtype: 'float32', batch: 1, dim: 4, len: 37, nState: 16, groups: 1, ...FULL, mixerLayout: false, split: true },
  // A as A_log (the Mamba mixer's call): both layouts, the mixer's views and dtypes, fewer states
  // than lanes hold (padding states must neither read A_log nor add to dA), float64.
  { name: 'aLog f32 B2 D5 L70 N16', dtype: 'float32', paramDtype: 'float32', batch: 2, dim: 5, len: 70, nState: 16, groups: 1, ...FULL, mixerLayout: false, aLog: true },
  { name: 'aLog bf16 mixer layout B2 D40 L41 N16', dtype: 'bfloat16', paramDtype: 'float32', batch: 2, dim: 40, len: 41, nState: 16, groups: 1, ...FULL, mixerLayout: true, aLog: true },
  { name: 'aLog split bf16 mixer layout B1 D24 L50 N16', dtype: 'bfloat16', paramDtype: 'float32', batch: 1, dim: 24, len: 50, nState: 16, groups: 1, ...FULL, mixerLayout: true, split: true, aLog: true },
  { name: 'aLog split f32 B2 D6 L33 N5 G3 bare', dtype: 'float32', paramDtype: 'float32', batch: 2, dim: 6, len: 33, nState: 5, groups: 3, ...BARE, mixerLayout: false, split: true, aLog: true },
  { name: 'aLog f32 B1 D3 L41 N23', dtype: 'float32', paramDtype: 'float32', batch: 1, dim: 3, len: 41, nState: 23, groups: 1, ...FULL, mixerLayout: false, aLog: true },
  { name: 'aLog f64 B2 D5 L30 N16', dtype: 'float64', paramDtype: 'float64', batch: 2, dim: 5, len: 30, nState: 16, groups: 1, ...FULL, mixerLayout: false, aLog: true },
];

for (const c of CASES) {
  test(`emulated scan kernels match the CPU: ${c.name}`, { skip }, () => runCase(c));
}
