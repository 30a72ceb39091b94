/**
 * Optimizer step over Dimba-L-2's parameter list (911 tensors, 859.5M parameters; built on the
 * meta device for the shapes, then allocated on CUDA): the multi-tensor kernels (kernels/optim.cu)
 * against the composed path (engine ops per tensor, what the backend does without them), for
 * optimizer.step(), EMA.update() and clipGradNorm (norm, and norm + rescale when clipping).
 *
 * Parameters are bf16 with float32 masters (the scan parameters Dimba keeps float32 stay float32
 * without masters), gradients in each parameter's dtype; --dtype float32 makes everything float32.
 * Times: wall clock of one call with the device synchronised before and after, and the device
 * span between CUDA events around the call; medians over --steps calls after one warm-up call.
 *
 * Byte floor (DRAM traffic the update cannot avoid, per parameter element):
 *   AdamW, bf16 param + fp32 master: read grad 2 + master 4 + m 4 + v 4, write master 4 + m 4 + v 4
 *     + bf16 param 2 = 28 B (the bf16 parameter is written, never read: the master holds the
 *     weight); float32 param: read 4 + 4 + 4 + 4, write 4 + 4 + 4 = 28 B. Floor = 28 N / 3.0 TB/s.
 *   CAME (this implementation, matrices): 4 passes, grad read 3 times (2 B each), m read twice and
 *     written once, master read and written, param written: 2 + 2 + (2 + 4 + 4) + (4 + 4 + 4 + 2)
 *     = 28 B; factored statistics are O(rows + cols). Vectors: grad 2 x 2, v 4 + 4, m 4 + 4, w 4 + 4, p 2.
 *   EMA: read shadow 4 + param 2 (4 for float32), write shadow 4 = 10 B (12 B).
 *   Norm: read grad 2 B (4 B); rescale: read 2 B + write 2 B (4 + 4).
 * 3.0 TB/s is the H100 SXM's nominal 3.35 TB/s less what streaming kernels reach in practice.
 *
 *   node --expose-gc dist/bench/cuda/optim.js [--optimizer adamw|came] [--dtype bf16|float32]
 *        [--steps 5] [--unfused-steps 2] [--json]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { getBackend, withDefaultDevice } from '../../src/backends/registry.js';
import { CudaBackend, CudaEvent, loadCuda } from '../../src/backends/cuda/index.js';
import { Dimba } from '../../src/models/dimba/model.js';
import { presetConfig } from '../../src/models/dimba/config.js';
import { Parameter } from '../../src/nn/parameter.js';
import { AdamW, CAME, EMA, clipGradNorm } from '../../src/optim/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const { values: args } = parseArgs({
  options: {
    preset: { type: 'string', default: 'Dimba-L-2' }, optimizer: { type: 'string', default: 'adamw' },
    dtype: { type: 'string', default: 'bf16' }, steps: { type: 'string', default: '5' },
    'unfused-steps': { type: 'string', default: '2' }, json: { type: 'boolean', default: false },
  },
});
const optimizerName = args.optimizer!;
if (optimizerName !== 'adamw' && optimizerName !== 'came') throw new Error(`--optimizer must be adamw or came, got ${optimizerName}`);
if (args.dtype !== 'bf16' && args.dtype !== 'float32') throw new Error(`--dtype must be bf16 or float32, got ${args.dtype}`);
const PEAK = 3.0e12;

loadCuda();
const backend = getBackend('cuda');
if (!(backend instanceof CudaBackend)) throw new Error('the cuda device did not give a CudaBackend');
const rt = backend.runtime;
const fused = backend.fused as Record<string, unknown>;
const FUSED_NAMES = ['adamwStep', 'cameStep', 'emaUpdate', 'sumSquares', 'scaleTensors'] as const;
for (const k of FUSED_NAMES) {
  if (typeof fused[k] !== 'function') throw new Error(`the CUDA backend has no ${k} (is DIMBA_FUSED_OPTIM=0 set?)`);
}

// Shapes and flags from the model built on the meta device (no memory), then real tensors.
const meta = withDefaultDevice('meta', () => new Dimba(presetConfig(args.preset!), { seed: 0 })).parameters();
const half = args.dtype === 'bf16';
const gen = new T.Generator(7);
const params: Tensor[] = [];
const grads: Tensor[] = [];
let bytesHalf = 0;
let numel = 0;
/** scale * N(0, 1) as `dtype`, releasing the float32 temporaries at once (GPU memory is tight at this size). */
function random(shape: readonly number[], scale: number, dtype: 'bfloat16' | 'float32'): Tensor {
  const r = T.randn([...shape], { device: 'cuda', generator: gen });
  const s = T.mul(r, scale);
  r.dispose();
  const out = T.cast(s, dtype);
  if (out !== s) s.dispose();
  return out;
}
for (const m of meta as Parameter[]) {
  const dtype = half && !m.keepFloat32 ? 'bfloat16' : 'float32';
  const p = new Parameter(random(m.shape, 0.02, dtype), { noWeightDecay: m.noWeightDecay });
  const g = T.keep(random(m.shape, 1e-3, dtype));
  params.push(p);
  grads.push(g);
  numel += p.numel;
  if (dtype === 'bfloat16') bytesHalf += p.numel;
}
const bytesF32 = numel - bytesHalf;
const optimizer = optimizerName === 'adamw' ? new AdamW(params, { lr: 1e-4, weightDecay: 0.03 }) : new CAME(params, { lr: 2e-4, weightDecay: 0.03 });
const ema = new EMA(params, { decay: 0.9999 });

function setGrads(): void {
  params.forEach((p, i) => { p.grad = grads[i]!; });
}

const gc = (globalThis as { gc?: () => void }).gc;

interface Timing { wallMs: number; deviceMs: number }

/** Median wall and device time of `calls` calls of fn after one warm-up call. */
function time(fn: () => void, calls: number): Timing {
  const wall: number[] = [];
  const device: number[] = [];
  for (let i = 0; i <= calls; i++) {
    setGrads();
    gc?.();
    backend.synchronize();
    const a = CudaEvent.create(rt.api).record(rt.stream);
    const t0 = performance.now();
    fn();
    const b = CudaEvent.create(rt.api).record(rt.stream);
    backend.synchronize();
    const ms = performance.now() - t0;
    if (i > 0) { wall.push(ms); device.push(b.elapsedSince(a)); }
    a.destroy();
    b.destroy();
  }
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return { wallMs: med(wall), deviceMs: med(device) };
}

/** Runs fn with the multi-tensor kernels taken off the backend (the composed path). */
function unfused<T>(fn: () => T): T {
  const saved = new Map<string, unknown>();
  for (const k of FUSED_NAMES) { saved.set(k, fused[k]); delete fused[k]; }
  try {
    return fn();
  } finally {
    for (const [k, f] of saved) fused[k] = f;
  }
}

const steps = Number(args.steps);
const unfusedSteps = Number(args['unfused-steps']);
const perElement = { step: 28, ema: half ? 10 : 12, norm: half ? 2 : 4, clip: half ? 6 : 12 };
// Bytes per element by dtype: the formulas above, split between bf16 and float32 parameters.
const bytes = {
  step: 28 * numel,
  ema: 10 * bytesHalf + 12 * bytesF32,
  norm: 2 * bytesHalf + 4 * bytesF32,
  clip: 6 * bytesHalf + 12 * bytesF32,
};

interface Row { what: string; fused: Timing; unfused: Timing | null; floorMs: number }
const rows: Row[] = [];
function measure(what: keyof typeof bytes, fn: () => void): void {
  const f = time(fn, steps);
  const u = unfusedSteps > 0 ? unfused(() => time(fn, unfusedSteps)) : null;
  rows.push({ what, fused: f, unfused: u, floorMs: (bytes[what] / PEAK) * 1e3 });
}

measure('step', () => optimizer.step());
measure('ema', () => ema.update());
measure('norm', () => { clipGradNorm(params, 1e9); });
measure('clip', () => { clipGradNorm(params, 1e-9); });

const summary = {
  preset: args.preset, optimizer: optimizerName, dtype: args.dtype, tensors: params.length, parameters: numel,
  bf16Parameters: bytesHalf, device: rt.info.name, peakBytesPerSecond: PEAK, bytesPerElement: perElement,
  rows: rows.map((r) => ({
    what: r.what, floorMs: r.floorMs, fusedWallMs: r.fused.wallMs, fusedDeviceMs: r.fused.deviceMs,
    fractionOfPeak: r.floorMs / r.fused.deviceMs, unfusedWallMs: r.unfused?.wallMs ?? null, unfusedDeviceMs: r.unfused?.deviceMs ?? null,
    speedup: r.unfused ? r.unfused.wallMs / r.fused.wallMs : null,
  })),
};
if (args.json) {
  console.log(JSON.stringify(summary));
} else {
  console.log(`${summary.preset}: ${summary.tensors} tensors, ${(numel / 1e6).toFixed(1)}M parameters (${(bytesHalf / 1e6).toFixed(1)}M bf16), ${optimizerName}, ${summary.device}`);
  console.log('what   floor ms   fused wall / device ms  (of 3.0 TB/s)   composed wall / device ms   speedup');
  for (const r of summary.rows) {
    const u = r.unfusedWallMs === null ? '-' : `${r.unfusedWallMs.toFixed(1)} / ${r.unfusedDeviceMs!.toFixed(1)}`;
    console.log(`${r.what.padEnd(6)} ${r.floorMs.toFixed(2).padStart(8)}   ${r.fusedWallMs.toFixed(2).padStart(8)} / ${r.fusedDeviceMs.toFixed(2).padEnd(8)}  (${(100 * r.fractionOfPeak).toFixed(0).padStart(3)}%)        ${u.padStart(20)}   ${r.speedup === null ? '-' : `${r.speedup.toFixed(1)}x`}`);
  }
}
