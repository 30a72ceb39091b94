/**
 * Where a Dimba training step spends GPU time: every backend kernel call is bracketed by CUDA
 * events and its device time summed per kernel family (matmul by shape, scan, attention, ...).
 * The events serialise nothing but cost host time, so the wall-clock step is measured separately
 * without them. Depth can be cut (per-layer cost is what matters; totals scale with depth).
 *
 *   node dist/bench/cuda/profile-step.js [--preset Dimba-L-2] [--depth 4] [--res 256] [--batch 8]
 *        [--dtype bf16|float32] [--checkpointing] [--steps 3] [--json] [--forward]
 *
 * --forward profiles one inference forward pass (no gradients, eval mode) instead of a training
 * step: the sampler's per-step work (pass --batch 2x the image batch for classifier-free guidance).
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { getBackend, withDefaultDevice } from '../../src/backends/registry.js';
import { CudaBackend, CudaEvent, loadCuda } from '../../src/backends/cuda/index.js';
import { Dimba } from '../../src/models/dimba/model.js';
import { presetConfig } from '../../src/models/dimba/config.js';
import { AdamW } from '../../src/optim/adamw.js';
import { Generator } from '../../src/random/generator.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const { values: args } = parseArgs({
  options: {
    preset: { type: 'string', default: 'Dimba-L-2' }, depth: { type: 'string' }, res: { type: 'string', default: '256' },
    batch: { type: 'string', default: '8' }, dtype: { type: 'string', default: 'bf16' }, checkpointing: { type: 'boolean', default: false },
    steps: { type: 'string', default: '3' }, json: { type: 'boolean', default: false }, forward: { type: 'boolean', default: false },
  },
});

loadCuda();
const backend = getBackend('cuda');
if (!(backend instanceof CudaBackend)) throw new Error('no CUDA backend');
const rt = backend.runtime;
const overrides = args.depth ? { depth: Number(args.depth) } : {};
const config = presetConfig(args.preset!, overrides);
const res = Number(args.res);
const batch = Number(args.batch);
const latent = res / 8;

let t0 = performance.now();
// Built on the device itself (initialisers draw there): an L-2 built on the CPU takes minutes.
const model = withDefaultDevice('cuda', () => T.tidy(() => new Dimba({ ...config, inputSize: latent }, { seed: 0 })));
const buildMs = performance.now() - t0;
model.to('cuda');
if (args.dtype === 'bf16') model.cast('bfloat16');
model.gradientCheckpointing = args.checkpointing!;
if (args.forward) model.eval(); else model.train();
const params = model.parameters();
const optimizer = new AdamW(params, { lr: 1e-4, weightDecay: 0 });
const gen = new Generator(1);
const x = T.randn([batch, config.inChannels, latent, latent], { device: 'cuda', generator: gen });
const target = T.randn([batch, config.inChannels, latent, latent], { device: 'cuda', generator: gen });
const caption = T.randn([batch, config.captionTokens, config.captionChannels], { device: 'cuda', generator: gen });
const timestep = T.mul(T.rand([batch], { device: 'cuda', generator: gen }), 999);

/** One training step (or forward pass) in a tidy scope (as the trainer runs it): intermediates go when it ends. */
function step(): number {
  if (args.forward) return T.tidy(() => noGrad(() => { model.forward({ x, timestep, caption }); return 0; }));
  return T.tidy(() => {
    const out = model.forward({ x, timestep, caption });
    const eps = T.narrow(T.cast(out, 'float32'), 1, 0, config.inChannels);
    const loss = T.mean(T.square(T.sub(eps, target)));
    loss.backward();
    optimizer.step();
    optimizer.zeroGrad();
    return loss.item();
  });
}

// Warm-up (compiles and loads every kernel), then wall-clock steps.
t0 = performance.now();
step();
const warmMs = performance.now() - t0;
rt.allocator.resetPeakStats();
const wall: number[] = [];
for (let i = 0; i < Number(args.steps); i++) {
  const a = performance.now();
  step();
  backend.synchronize();
  wall.push(performance.now() - a);
}
const peak = rt.allocator.stats();

// Profiled step: wrap every kernel entry point.
interface Slot { name: string; a: CudaEvent; b: CudaEvent }
const slots: Slot[] = [];
const pool: CudaEvent[] = [];
const event = (): CudaEvent => pool.pop() ?? CudaEvent.create(rt.api);
function shapeKey(name: string, callArgs: unknown[]): string {
  if (name === 'matmul') {
    const [a, b] = callArgs as [Tensor, Tensor];
    return `matmul ${a.shape.join('x')} @ ${b.shape.join('x')} ${a.dtype}`;
  }
  if (name === 'copy') {
    const [src, dst] = callArgs as [Tensor, Tensor];
    return `copy ${src.shape.join('x')} strides ${src.strides.join(',')} ${src.dtype}->${dst.dtype}`;
  }
  if (name === 'unary' || name === 'binary' || name === 'unaryBackward' || name === 'reduceRows') return `${name}:${String(callArgs[0])}`;
  return name;
}
function wrap(target: Record<string, unknown>, prefix: string): () => void {
  const originals = new Map<string, unknown>();
  for (const key of Object.keys(target).concat(Object.getOwnPropertyNames(Object.getPrototypeOf(target)))) {
    const fn = target[key];
    if (typeof fn !== 'function' || key === 'constructor' || originals.has(key)) continue;
    originals.set(key, fn);
    target[key] = (...callArgs: unknown[]) => {
      const a = event().record(rt.stream);
      const r = (fn as (...x: unknown[]) => unknown).apply(target, callArgs);
      slots.push({ name: prefix + shapeKey(key, callArgs), a, b: event().record(rt.stream) });
      return r;
    };
  }
  return () => { for (const [k, f] of originals) target[k] = f; };
}
const unwrapKernels = wrap(backend.kernels as unknown as Record<string, unknown>, '');
const unwrapFused = wrap(backend.fused as unknown as Record<string, unknown>, 'fused.');
const pa = CudaEvent.create(rt.api).record(rt.stream);
step();
const pb = CudaEvent.create(rt.api).record(rt.stream);
pb.synchronize();
unwrapKernels();
unwrapFused();
const profiledTotal = pb.elapsedSince(pa);
const totals = new Map<string, { ms: number; calls: number }>();
for (const s of slots) {
  const ms = s.b.elapsedSince(s.a);
  const e = totals.get(s.name) ?? { ms: 0, calls: 0 };
  e.ms += ms; e.calls += 1;
  totals.set(s.name, e);
}
const kernelSum = [...totals.values()].reduce((n, e) => n + e.ms, 0);
const sorted = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms);
const median = [...wall].sort((a, b) => a - b)[Math.floor(wall.length / 2)]!;
const summary = {
  preset: args.preset, depth: config.depth, res, batch, dtype: args.dtype, checkpointing: args.checkpointing, mode: args.forward ? 'forward' : 'train',
  buildMs: Math.round(buildMs), warmupMs: Math.round(warmMs), stepMs: median, imagesPerSec: (batch * 1000) / median,
  peakAllocatedGiB: peak.peakAllocatedBytes / 2 ** 30, peakReservedGiB: peak.peakReservedBytes / 2 ** 30,
  profiledStepMs: profiledTotal, kernelMs: kernelSum, kernelCalls: slots.length,
  top: sorted.slice(0, 40).map(([name, e]) => ({ name, ms: Number(e.ms.toFixed(3)), calls: e.calls })),
};
if (args.json) console.log(JSON.stringify(summary));
else {
  console.log(`${summary.preset} depth ${summary.depth} ${res}px batch ${batch} ${args.dtype}${args.checkpointing ? ' checkpointing' : ''}${args.forward ? ' forward only' : ''}`);
  console.log(`build ${summary.buildMs} ms, warm-up ${summary.warmupMs} ms, step ${median.toFixed(1)} ms (${summary.imagesPerSec.toFixed(1)} img/s), peak ${summary.peakAllocatedGiB.toFixed(2)} GiB allocated / ${summary.peakReservedGiB.toFixed(2)} GiB reserved`);
  console.log(`profiled step ${profiledTotal.toFixed(1)} ms, in kernels ${kernelSum.toFixed(1)} ms over ${slots.length} calls`);
  for (const t of summary.top) console.log(`${t.ms.toFixed(3).padStart(10)} ms ${String(t.calls).padStart(6)}  ${t.name}`);
}
