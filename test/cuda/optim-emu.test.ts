/**
 * kernels/optim.ts and optim.cu together, without a GPU: the launchers run against a fake CUDA
 * runtime that records every upload and launch (arguments with their types) into a trace, and
 * test/cuda/emu/optim-harness.cpp replays the trace with optim.cu compiled for the CPU emulator
 * (emu.h: every CUDA thread a fiber, warps scheduled at random between barriers). The results
 * are compared with the documented formulas run in JavaScript on the CPU (test/optim/
 * fused-emulation.ts, itself pinned to the composed optimizers bit for bit): AdamW, EMA and the
 * rescale must match exactly, CAME and the sum of squares (double sums in another order) to a
 * last float32 bit. This checks the record tables, the item search, the tiles, the launch
 * arguments against the kernels' parameter lists, and writes past any allocation. Needs g++
 * (C++20); skipped with the reason otherwise. test/cuda/optim.test.ts runs the same kernels on
 * the GPU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, tensor, zeros } from '../../src/index.js';
import type { Backend, FusedKernels } from '../../src/backends/backend.js';
import type { Block, CachingAllocator } from '../../src/backends/cuda/allocator.js';
import { CudaStorage } from '../../src/backends/cuda/storage.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { kernelSourceDir } from '../../src/backends/cuda/kernels/source.js';
import { optimKernels } from '../../src/backends/cuda/kernels/optim.js';
import { itemSize, viewHost, type DType } from '../../src/tensor/dtype.js';
import { numelOf } from '../../src/tensor/shape.js';
import { adamwCoefficients, type AdamWOptions } from '../../src/optim/adamw.js';
import { cameCoefficients, type CAMEOptions } from '../../src/optim/came.js';
import { EMULATED } from '../optim/fused-emulation.js';
import { EMU_DIR, NO_CXX, findCxx } from './emu/host-compiler.js';

const cxx = findCxx();
const skip = cxx ? false : NO_CXX;
if (skip) console.log(`# optimizer kernel emulation skipped: ${skip}`);

const emuDir = EMU_DIR;

// ---------------------------------------------------------------------------------------------
// The fake device: a bump allocator over a fixed address range (the harness maps it at the same
// address), with a gap after every allocation that must stay untouched, and a trace of uploads
// and launches.

const BASE = 0x200000000000;
const GAP = 256;

class FakeDevice {
  private next = BASE;
  private readonly zones: [number, number][] = [];
  private readonly ops: Buffer[] = [];
  launches = 0;
  /** Table uploads by the launchers (not the test's own tensor data). */
  uploads = 0;

  alloc(bytes: number): Block {
    const address = this.next;
    const end = address + bytes;
    this.next = Math.ceil((end + GAP) / 256) * 256;
    this.zones.push([end, this.next - end]);
    return { address, size: bytes, requested: bytes };
  }

  copy(dst: number, bytes: Uint8Array): void {
    const head = Buffer.alloc(24);
    head.writeUInt32LE(1, 0);
    head.writeBigUInt64LE(BigInt(dst), 8);
    head.writeBigUInt64LE(BigInt(bytes.length), 16);
    // op is a u32 followed by u64s: the harness reads them packed, so drop the 4 padding bytes.
    this.ops.push(Buffer.concat([head.subarray(0, 4), head.subarray(8), Buffer.from(bytes), Buffer.alloc((8 - (bytes.length % 8)) % 8)]));
  }

  launch(name: string, grid: number, block: number, args: readonly [string, bigint][]): void {
    this.launches++;
    const nameBytes = Buffer.from(name);
    const parts: Buffer[] = [u32(2), u32(nameBytes.length), nameBytes, Buffer.alloc((8 - (nameBytes.length % 8)) % 8), u32(grid), u32(block), u32(args.length)];
    for (const [tag, bits] of args) parts.push(u32(tag.charCodeAt(0)), u64(bits));
    this.ops.push(Buffer.concat(parts));
  }

  trace(): Buffer {
    const zones = [u32(3), u64(BigInt(this.zones.length)), ...this.zones.flatMap(([a, n]) => [u64(BigInt(a)), u64(BigInt(n))])];
    return Buffer.concat([u64(0x554d454d4954504fn), u64(BigInt(BASE)), u64(BigInt(this.next - BASE)), ...this.ops, ...zones, u32(0)]);
  }
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
}

function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, v), 0);
  return b;
}

/** KernelParams' writer interface, recording (type tag, bits) per argument. */
class RecordingParams {
  args: [string, bigint][] = [];
  private readonly f32bits = new Float32Array(1);
  private readonly f64bits = new Float64Array(1);

  begin(): this { this.args = []; return this; }
  ptr(v: number): this { this.args.push(['p', BigInt(v)]); return this; }
  i64(v: number): this { this.args.push(['l', BigInt(v)]); return this; }
  i32(v: number): this { this.args.push(['i', BigInt(v >>> 0)]); return this; }
  f32(v: number): this {
    this.f32bits[0] = v;
    this.args.push(['f', BigInt(new Uint32Array(this.f32bits.buffer)[0]!)]);
    return this;
  }
  f64(v: number): this {
    this.f64bits[0] = v;
    this.args.push(['d', new BigUint64Array(this.f64bits.buffer)[0]!]);
    return this;
  }
}

function fakeRuntime(dev: FakeDevice): CudaRuntime {
  const params = new RecordingParams();
  const htod = (dst: number, src: Uint32Array, bytes: number) => {
    dev.uploads++;
    dev.copy(dst, new Uint8Array(src.buffer, src.byteOffset, bytes).slice());
    return 0;
  };
  const rt = {
    index: 0,
    label: 'cuda:0',
    info: { multiprocessors: 2 },
    params,
    stream: { handle: 0 },
    api: { library: { handle: { func: () => htod } } },
    allocator: { alloc: (bytes: number) => dev.alloc(bytes), release: () => {} },
    activate() {},
    refuseDuringCapture() {},
    fn: (_module: unknown, name: string) => name,
    launch: (fn: string, grid: number, block: number) => dev.launch(fn, grid, block, params.args),
  };
  return rt as unknown as CudaRuntime;
}

/** A CUDA tensor of the fake device holding `cpu`'s values (or 0xa5 bytes when cpu is null). */
function fakeTensor(dev: FakeDevice, backend: Backend, shape: number[], dtype: DType, cpu: Tensor | null): Tensor {
  const numel = numelOf(shape);
  const block = dev.alloc(numel * itemSize(dtype));
  const storage = new CudaStorage(backend, dtype, numel, block, { release() {} } as unknown as CachingAllocator);
  if (cpu) {
    const host = cpu.toHost();
    dev.copy(block.address, new Uint8Array(host.buffer, host.byteOffset, host.byteLength).slice());
  }
  return new Tensor(storage, shape);
}

interface Pair { cpu: Tensor; gpu: Tensor }

class Session {
  readonly dev = new FakeDevice();
  readonly backend = { device: { kind: 'cuda', index: 0 }, kernels: {}, fused: {} } as unknown as Backend;
  readonly kernels: Required<Pick<FusedKernels, 'adamwStep' | 'cameStep' | 'emaUpdate' | 'sumSquares' | 'scaleTensors' | 'gradNormCheck'>>;
  readonly pairs: [string, Pair, number][] = [];

  constructor() {
    this.kernels = optimKernels(fakeRuntime(this.dev), {}) as typeof this.kernels;
  }

  /** A CPU tensor and its fake-device copy; `rtol` is how close the emulator must come (0: exact). */
  pair(name: string, cpu: Tensor, rtol: number): Pair {
    const p = { cpu, gpu: fakeTensor(this.dev, this.backend, [...cpu.shape], cpu.dtype, cpu) };
    this.pairs.push([name, p, rtol]);
    return p;
  }

  /** Replays the trace and compares every registered pair. */
  check(dir: string, exe: string): string[] {
    const tracePath = join(dir, 'trace.bin');
    const outPath = join(dir, 'memory.bin');
    writeFileSync(tracePath, this.dev.trace());
    const r = spawnSync(exe, [tracePath, outPath], { encoding: 'utf8', maxBuffer: 1 << 26 });
    assert.equal(r.status, 0, `harness failed:\n${r.stderr}`);
    assert.equal(JSON.parse(r.stdout).launches, this.dev.launches);
    const memory = readFileSync(outPath);
    const notes: string[] = [];
    for (const [name, { cpu, gpu }, rtol] of this.pairs) {
      const storage = gpu.storage as CudaStorage;
      const at = storage.address - BASE;
      const bytes = new Uint8Array(memory.subarray(at, at + gpu.numel * itemSize(gpu.dtype)));
      const got = new Tensor(cpu.backend.fromHost(gpu.dtype, viewHost(gpu.dtype, bytes.buffer, 0, gpu.numel)), [...gpu.shape]).toFloat64Array();
      const want = cpu.toFloat64Array();
      let worst = 0;
      let exact = true;
      for (let i = 0; i < want.length; i++) {
        if (Object.is(got[i], want[i])) continue;
        exact = false;
        const rel = Math.abs(got[i]! - want[i]!) / Math.max(Math.abs(want[i]!), 1e-30);
        if (!(rel <= rtol)) assert.fail(`${name}: element ${i} is ${got[i]} from the emulated kernels, ${want[i]} from the formulas (tolerance ${rtol})`);
        worst = Math.max(worst, rel);
      }
      if (!exact) notes.push(`${name}: largest relative difference ${worst.toExponential(2)}`);
    }
    return notes;
  }
}

function lcg(n: number, seed: number, scale = 1): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 31 - 1) * scale;
  });
}

interface Entry {
  shape: number[];
  /** The parameter's dtype: float32 (updated directly) or a half type (float32 master). */
  dtype: DType;
  gradDtype: DType;
  decay: boolean;
}

function entries(shapes: number[][]): Entry[] {
  return shapes.map((shape, i) => {
    const dtype: DType = i % 3 === 0 ? 'float32' : i % 3 === 1 ? 'bfloat16' : 'float16';
    // One half parameter with a float32 gradient, as a cast-up gradient would arrive.
    const gradDtype = i === 4 ? 'float32' : dtype;
    return { shape, dtype, gradDtype, decay: i % 4 !== 1 };
  });
}

function withHarness(fn: (dir: string, exe: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'dimba-optim-emu-'));
  try {
    copyFileSync(join(kernelSourceDir(), 'optim.cu'), join(dir, 'optim.cu'));
    copyFileSync(join(emuDir, 'emu.h'), join(dir, 'emu.h'));
    copyFileSync(join(emuDir, 'optim-common.cuh'), join(dir, 'common.cuh'));
    copyFileSync(join(emuDir, 'optim-harness.cpp'), join(dir, 'optim-harness.cpp'));
    const exe = join(dir, 'harness');
    const build = spawnSync(cxx!, ['-std=c++20', '-O1', '-ffp-contract=off', '-Wno-unknown-pragmas', '-DDIMBA_EMU', '-o', exe,
      join(dir, 'optim-harness.cpp')], { encoding: 'utf8' });
    assert.equal(build.status, 0, `g++ failed:\n${build.stderr}`);
    fn(dir, exe);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const SMALL = Array.from({ length: 20 }, (_, i) => (i % 4 === 0 ? [i + 2, 3] : [i * 7 + 1]));

test('AdamW, EMA, sum of squares and rescale: the emulated kernels give the formulas\' results exactly', { skip, timeout: 600_000 }, () => {
  withHarness((dir, exe) => {
    const s = new Session();
    const list = entries([[1], [3], [1000], [65537], [], [33, 31], [2, 3, 4], ...SMALL]);
    const params = list.map((e, i) => s.pair(`param ${i}`, tensor(lcg(numelOf(e.shape), i + 1, 0.5), { shape: e.shape, dtype: e.dtype }), 0));
    const weights = list.map((e, i) => (e.dtype === 'float32' ? params[i]! : s.pair(`master ${i}`, tensor(params[i]!.cpu.toFloat64Array(), { shape: e.shape, dtype: 'float32' }), 0)));
    const m = list.map((e, i) => s.pair(`exp_avg ${i}`, zeros(e.shape), 0));
    const v = list.map((e, i) => s.pair(`exp_avg_sq ${i}`, zeros(e.shape), 0));
    const shadows = list.map((e, i) => s.pair(`shadow ${i}`, tensor(params[i]!.cpu.toFloat64Array(), { shape: e.shape, dtype: 'float32' }), 0));
    // Two lists with their own hyperparameters (beta1 0.3 takes the lerp's other branch) and cache keys.
    const half = Math.floor(list.length / 2);
    const groups: [number, number, AdamWOptions, object][] = [
      [0, half, { lr: 0.02, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 }, {}],
      [half, list.length, { lr: 0.01, betas: [0.3, 0.99], eps: 1e-6, weightDecay: 0.05 }, {}],
    ];
    let grads: Pair[] = [];
    for (let step = 1; step <= 3; step++) {
      grads = list.map((e, i) => s.pair(`grad ${i} step ${step}`, tensor(lcg(numelOf(e.shape), 100 * step + i, 0.1 * (1 + (i % 3))), { shape: e.shape, dtype: e.gradDtype }), 0));
      for (const [lo, hi, options, key] of groups) {
        const pick = <T>(xs: T[]) => xs.slice(lo, hi);
        const lists = (side: 'cpu' | 'gpu') => ({
          weights: pick(weights).map((p) => p[side]),
          grads: pick(grads).map((p) => p[side]),
          expAvg: pick(m).map((p) => p[side]),
          expAvgSq: pick(v).map((p) => p[side]),
          halfParams: pick(list).map((e, k) => (e.dtype === 'float32' ? null : params[lo + k]![side])),
          decay: pick(list).map((e) => e.decay),
        });
        const c = adamwCoefficients(options, step);
        EMULATED.adamwStep(lists('cpu'), c);
        s.kernels.adamwStep(lists('gpu'), c, { cacheKey: key });
      }
      EMULATED.emaUpdate(shadows.map((p) => p.cpu), params.map((p) => p.cpu), Math.fround(0.9), Math.fround(0.1));
      s.kernels.emaUpdate(shadows.map((p) => p.gpu), params.map((p) => p.gpu), Math.fround(0.9), Math.fround(0.1));
      // Step 1 uploads both lists' records and gradient addresses and the EMA's records; later
      // steps only the gradient addresses, which are new tensors every step.
      assert.equal(s.dev.uploads, step === 1 ? 5 : 5 + 2 * (step - 1), `uploads after step ${step}`);
    }
    // The sum of squares accumulates in double in another order: the float32 result may differ in its last bit.
    const total = s.pair('sum of squares', zeros([]), 2 ** -23);
    EMULATED.sumSquares(grads.map((p) => p.cpu), total.cpu);
    s.kernels.sumSquares(grads.map((p) => p.gpu), total.gpu);
    const outs = list.map((e, i) => s.pair(`rescaled grad ${i}`, zeros(e.shape, { dtype: e.gradDtype }), 0));
    EMULATED.scaleTensors(grads.map((p) => p.cpu), outs.map((p) => p.cpu), 0.37);
    s.kernels.scaleTensors(grads.map((p) => p.gpu), outs.map((p) => p.gpu), 0.37);
    const notes = s.check(dir, exe);
    for (const n of notes) console.log(`# ${n}`);
    assert.ok(notes.every((n) => n.startsWith('sum of squares')), notes.join('\n'));
  });
});

test('CAME: the emulated kernels give the formulas\' results to a last float32 bit', { skip, timeout: 600_000 }, () => {
  withHarness((dir, exe) => {
    const s = new Session();
    // Matrices of one and several row tiles (300 rows) and column strips, leading batch dims,
    // vectors; a run of 40-row matrices makes each block take several tiles in a row, so row
    // statistics still being read while the next tile starts would show.
    const list = entries([[1], [3], [1000], [65537], [], [33, 31], [2, 3, 4], [300, 300], [8, 1, 4], [5, 1], [1, 7],
      ...Array.from({ length: 24 }, (_, i) => [40, 3 + (i % 5)]), ...SMALL.slice(0, 8)]);
    const rtol = 4e-7;
    const params = list.map((e, i) => s.pair(`param ${i}`, tensor(lcg(numelOf(e.shape), i + 1, 0.5), { shape: e.shape, dtype: e.dtype }), e.dtype === 'float32' ? rtol : 2 ** -7));
    const weights = list.map((e, i) => (e.dtype === 'float32' ? params[i]! : s.pair(`master ${i}`, tensor(params[i]!.cpu.toFloat64Array(), { shape: e.shape, dtype: 'float32' }), rtol)));
    const factored = (e: Entry) => e.shape.length >= 2;
    const stat = (name: string, e: Entry, i: number, shape: number[] | null) => (shape ? s.pair(`${name} ${i}`, zeros(shape), rtol) : null);
    const rowShape = (e: Entry) => e.shape.slice(0, -1);
    const colShape = (e: Entry) => [...e.shape.slice(0, -2), e.shape[e.shape.length - 1]!];
    const m = list.map((e, i) => s.pair(`exp_avg ${i}`, zeros(e.shape), rtol));
    const v = list.map((e, i) => stat('exp_avg_sq', e, i, factored(e) ? null : e.shape));
    const sqRow = list.map((e, i) => stat('exp_avg_sq_row', e, i, factored(e) ? rowShape(e) : null));
    const sqCol = list.map((e, i) => stat('exp_avg_sq_col', e, i, factored(e) ? colShape(e) : null));
    const resRow = list.map((e, i) => stat('exp_avg_res_row', e, i, factored(e) ? rowShape(e) : null));
    const resCol = list.map((e, i) => stat('exp_avg_res_col', e, i, factored(e) ? colShape(e) : null));
    const options: CAMEOptions = { lr: 0.02, betas: [0.9, 0.999, 0.9999], eps: [1e-30, 1e-16], clipThreshold: 0.5, weightDecay: 0.1 };
    const key = {};
    for (let step = 1; step <= 2; step++) {
      const grads = list.map((e, i) => s.pair(`grad ${i} step ${step}`, tensor(lcg(numelOf(e.shape), 100 * step + i, 0.1 * (1 + (i % 3))), { shape: e.shape, dtype: e.gradDtype }), 0));
      const side = (x: Pair | null, k: 'cpu' | 'gpu') => (x ? x[k] : null);
      const lists = (k: 'cpu' | 'gpu') => ({
        weights: weights.map((p) => p[k]),
        grads: grads.map((p) => p[k]),
        expAvg: m.map((p) => p[k]),
        expAvgSq: v.map((p) => side(p, k)),
        sqRow: sqRow.map((p) => side(p, k)),
        sqCol: sqCol.map((p) => side(p, k)),
        resRow: resRow.map((p) => side(p, k)),
        resCol: resCol.map((p) => side(p, k)),
        halfParams: list.map((e, i) => (e.dtype === 'float32' ? null : params[i]![k])),
        decay: list.map((e) => e.decay),
      });
      const c = cameCoefficients(options);
      EMULATED.cameStep(lists('cpu'), c);
      s.kernels.cameStep(lists('gpu'), c, { cacheKey: key });
    }
    for (const n of s.check(dir, exe)) console.log(`# ${n}`);
  });
});

/** Writes `values` into a fake-device tensor at this point of the trace (the host rewriting a static input between replays). */
function writeDevice(s: Session, t: Tensor, values: number[]): void {
  const host = tensor(values, { shape: [...t.shape], dtype: t.dtype }).toHost();
  s.dev.copy((t.storage as CudaStorage).address, new Uint8Array(host.buffer, host.byteOffset, host.byteLength).slice());
}

test('captured-step kernels: coefficients from device memory, a set skip flag changes nothing, grad_norm_check\'s arithmetic is the host\'s', { skip, timeout: 600_000 }, () => {
  withHarness((dir, exe) => {
    const s = new Session();
    const list = entries([[1], [1000], [33, 31], [2, 3, 4], [300, 7], [5, 1], ...SMALL.slice(0, 6)]);
    const params = list.map((e, i) => s.pair(`param ${i}`, tensor(lcg(numelOf(e.shape), i + 1, 0.5), { shape: e.shape, dtype: e.dtype }), 0));
    const weights = list.map((e, i) => (e.dtype === 'float32' ? params[i]! : s.pair(`master ${i}`, tensor(params[i]!.cpu.toFloat64Array(), { shape: e.shape, dtype: 'float32' }), 0)));
    const m = list.map((e, i) => s.pair(`exp_avg ${i}`, zeros(e.shape), 0));
    const v = list.map((e, i) => s.pair(`exp_avg_sq ${i}`, zeros(e.shape), 0));
    const shadows = list.map((e, i) => s.pair(`shadow ${i}`, tensor(params[i]!.cpu.toFloat64Array(), { shape: e.shape, dtype: 'float32' }), 0));
    const scratch = (shape: number[], dtype: DType) => fakeTensor(s.dev, s.backend, shape, dtype, null);
    const flag = { gpu: scratch([], 'int32') };
    const coef = { gpu: scratch([8], 'float32') };
    const options: AdamWOptions = { lr: 0.02, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 };
    const key = {};
    const control = { skip: flag.gpu, coefficients: coef.gpu };
    // Steps 1 and 3 run; step 2 is skipped on the device (with coefficients that would wreck the weights).
    let taken = 0;
    for (let call = 1; call <= 3; call++) {
      const skipped = call === 2;
      const grads = list.map((e, i) => s.pair(`grad ${i} call ${call}`, tensor(lcg(numelOf(e.shape), 100 * call + i, 0.1), { shape: e.shape, dtype: e.gradDtype }), 0));
      const lists = (side: 'cpu' | 'gpu') => ({
        weights: weights.map((p) => p[side]), grads: grads.map((p) => p[side]), expAvg: m.map((p) => p[side]), expAvgSq: v.map((p) => p[side]),
        halfParams: list.map((e, k) => (e.dtype === 'float32' ? null : params[k]![side])), decay: list.map((e) => e.decay),
      });
      const c = adamwCoefficients(skipped ? { ...options, lr: 1e6 } : options, taken + 1);
      writeDevice(s, flag.gpu, [skipped ? 1 : 0]);
      writeDevice(s, coef.gpu, [c.decayScale, c.lerpWeight, c.lerpFromGrad ? 1 : 0, c.beta2, c.oneMinusBeta2, c.rootBias2, c.eps, c.stepScale]);
      // The argument coefficients are ignored on this path: pass nonsense.
      s.kernels.adamwStep(lists('gpu'), { ...c, stepScale: NaN, decayScale: NaN }, { cacheKey: key, control });
      s.kernels.emaUpdate(shadows.map((p) => p.gpu), params.map((p) => p.gpu), Math.fround(0.9), Math.fround(0.1), { cacheKey: key, control: { skip: flag.gpu } });
      if (!skipped) {
        EMULATED.adamwStep(lists('cpu'), c);
        EMULATED.emaUpdate(shadows.map((p) => p.cpu), params.map((p) => p.cpu), Math.fround(0.9), Math.fround(0.1));
        taken++;
      }
    }
    // Rescale by a device factor (the launcher's argument ignored).
    const src = list.map((e, i) => s.pair(`clip source ${i}`, tensor(lcg(numelOf(e.shape), 900 + i, 2), { shape: e.shape, dtype: e.gradDtype }), 0));
    const outs = list.map((e, i) => s.pair(`clipped ${i}`, zeros(e.shape, { dtype: e.gradDtype }), 0));
    const factor = { gpu: scratch([], 'float64') };
    writeDevice(s, factor.gpu, [0.37]);
    s.kernels.scaleTensors(src.map((p) => p.gpu), outs.map((p) => p.gpu), 5, { control: { skip: flag.gpu, factor: factor.gpu } });
    EMULATED.scaleTensors(src.map((p) => p.cpu), outs.map((p) => p.cpu), 0.37);
    // grad_norm_check against clipGradNorm's host arithmetic, for a finite, a NaN loss, an infinite sum and no clipping.
    const cases: [number, number, number][] = [[12.25, 0.5, 1], [12.25, NaN, 1], [Infinity, 0.5, 1], [0.01, 0.5, 1], [7, -Infinity, Infinity]];
    cases.forEach(([sum, lossValue, maxNorm], k) => {
      const sumT = s.pair(`sum ${k}`, tensor([sum], { shape: [] }), 0);
      const lossT = s.pair(`loss ${k}`, tensor([lossValue], { shape: [] }), 0);
      const norm = s.pair(`norm ${k}`, zeros([], { dtype: 'float64' }), 0);
      const f = s.pair(`factor ${k}`, zeros([], { dtype: 'float64' }), 0);
      const skipT = s.pair(`skip ${k}`, zeros([], { dtype: 'int32' }), 0);
      s.kernels.gradNormCheck(sumT.gpu, lossT.gpu, maxNorm, norm.gpu, f.gpu, skipT.gpu);
      const total = Math.sqrt(Math.fround(sum));
      const clip = maxNorm / (total + 1e-6);
      norm.cpu.storage.backend.kernels.copy(tensor([total], { shape: [], dtype: 'float64' }), norm.cpu);
      f.cpu.storage.backend.kernels.copy(tensor([clip < 1 ? clip : 1], { shape: [], dtype: 'float64' }), f.cpu);
      skipT.cpu.storage.backend.kernels.copy(tensor([Number.isFinite(lossValue) && Number.isFinite(total) ? 0 : 1], { shape: [], dtype: 'int32' }), skipT.cpu);
    });
    // CAME: one device-skipped call between two that run.
    const cameList = entries([[3], [33, 31], [300, 7], [2, 3, 4], [9]]);
    const cw = cameList.map((e, i) => s.pair(`came weight ${i}`, tensor(lcg(numelOf(e.shape), 50 + i, 0.5), { shape: e.shape }), 4e-7));
    const factored = (e: Entry) => e.shape.length >= 2;
    const buf = (name: string, i: number, shape: number[] | null) => (shape ? s.pair(`came ${name} ${i}`, zeros(shape), 4e-7) : null);
    const rowShape = (e: Entry) => e.shape.slice(0, -1);
    const colShape = (e: Entry) => [...e.shape.slice(0, -2), e.shape[e.shape.length - 1]!];
    const cm = cameList.map((e, i) => s.pair(`came exp_avg ${i}`, zeros(e.shape), 4e-7));
    const cv = cameList.map((e, i) => buf('exp_avg_sq', i, factored(e) ? null : e.shape));
    const sr = cameList.map((e, i) => buf('sq_row', i, factored(e) ? rowShape(e) : null));
    const sc = cameList.map((e, i) => buf('sq_col', i, factored(e) ? colShape(e) : null));
    const rr = cameList.map((e, i) => buf('res_row', i, factored(e) ? rowShape(e) : null));
    const rc = cameList.map((e, i) => buf('res_col', i, factored(e) ? colShape(e) : null));
    const cameCoef = { gpu: scratch([2], 'float32') };
    const cameOptions: CAMEOptions = { lr: 0.02, betas: [0.9, 0.999, 0.9999], eps: [1e-30, 1e-16], clipThreshold: 1, weightDecay: 0.1 };
    for (let call = 1; call <= 3; call++) {
      const skipped = call === 2;
      const grads = cameList.map((e, i) => s.pair(`came grad ${i} call ${call}`, tensor(lcg(numelOf(e.shape), 300 * call + i, 0.1), { shape: e.shape }), 0));
      const side = (x: Pair | null, k: 'cpu' | 'gpu') => (x ? x[k] : null);
      const lists = (k: 'cpu' | 'gpu') => ({
        weights: cw.map((p) => p[k]), grads: grads.map((p) => p[k]), expAvg: cm.map((p) => p[k]), expAvgSq: cv.map((p) => side(p, k)),
        sqRow: sr.map((p) => side(p, k)), sqCol: sc.map((p) => side(p, k)), resRow: rr.map((p) => side(p, k)), resCol: rc.map((p) => side(p, k)),
        halfParams: cameList.map(() => null), decay: cameList.map(() => true),
      });
      const c = cameCoefficients({ ...cameOptions, lr: call === 3 ? 0.005 : skipped ? 1e6 : 0.02 });
      writeDevice(s, flag.gpu, [skipped ? 1 : 0]);
      writeDevice(s, cameCoef.gpu, [c.decayScale, c.negLr]);
      s.kernels.cameStep(lists('gpu'), { ...c, negLr: NaN }, { cacheKey: key, control: { skip: flag.gpu, coefficients: cameCoef.gpu } });
      if (!skipped) EMULATED.cameStep(lists('cpu'), c);
    }
    writeDevice(s, flag.gpu, [0]);
    for (const n of s.check(dir, exe)) console.log(`# ${n}`);
  });
});
