/**
 * What CUDA graphs save per sampling step: the guided Dimba denoiser call ([x; x] with [∅; c],
 * batch 2B, eval mode) run eagerly versus replayed from a captured graph, the way
 * TextToImage.generate runs it (graph path: copy x_t, t and the condition into static inputs,
 * launch, clone the output).
 *
 * Reported per step: wall-clock ms (steps queued back to back, one synchronisation at the end),
 * host ms (the JS call alone: op dispatch and launches, or copies and one launch), device ms (the
 * graph alone, replayed back to back between CUDA events: the GPU's busy time per step), and the
 * GPU idle fraction 1 - device / wall for each path. Also the graph's node count, capture and
 * instantiate times, its private pool, and max |graph - eager| on one input.
 *
 *   node dist/bench/cuda/graph.js [--presets Dimba-XS,Dimba-S] [--res 256] [--batch 2]
 *        [--dtype float32|bf16] [--steps 20] [--depth N] [--json]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend, CudaEvent, loadCuda } from '../../src/backends/cuda/index.js';
import { CudaGraph } from '../../src/backends/cuda/graph.js';
import { Dimba } from '../../src/models/dimba/model.js';
import { presetConfig } from '../../src/models/dimba/config.js';
import { dimbaDenoiser } from '../../src/pipeline/conditioning.js';
import { graphedDenoiser } from '../../src/pipeline/graphed-denoiser.js';
import { captureReplayable } from '../../src/backends/replayable.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const { values: args } = parseArgs({
  options: {
    presets: { type: 'string', default: 'Dimba-XS,Dimba-S' }, res: { type: 'string', default: '256' },
    batch: { type: 'string', default: '2' }, dtype: { type: 'string', default: 'float32' },
    steps: { type: 'string', default: '20' }, depth: { type: 'string' }, json: { type: 'boolean', default: false },
  },
});

loadCuda();
const backend = getBackend('cuda');
if (!(backend instanceof CudaBackend)) throw new Error('no CUDA backend');
const rt = backend.runtime;
const steps = Number(args.steps);
const batch = Number(args.batch);
const latent = Number(args.res) / 8;
if (!Number.isInteger(latent) || !(steps > 0) || !(batch > 0)) throw new Error('bad --res, --steps or --batch');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = a.to('cpu').toFloat64Array();
  const y = b.to('cpu').toFloat64Array();
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  return worst;
}

interface Row {
  preset: string; res: number; batch: number; dtype: string; nodes: number;
  eagerWallMs: number; eagerHostMs: number; graphWallMs: number; graphHostMs: number; deviceMs: number;
  eagerIdle: number; graphIdle: number; captureMs: number; instantiateMs: number; firstCallMs: number; poolMiB: number; maxDiff: number;
}

/** Per-step wall and median host milliseconds of `steps` calls queued back to back. */
function timeSteps(call: () => void): { wall: number; host: number } {
  backend.synchronize();
  const hosts: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    const h = performance.now();
    T.tidy(call);
    hosts.push(performance.now() - h);
  }
  backend.synchronize();
  return { wall: (performance.now() - t0) / steps, host: median(hosts) };
}

const rows: Row[] = [];
for (const preset of args.presets!.split(',')) {
  const config = presetConfig(preset, { inputSize: latent, ...(args.depth ? { depth: Number(args.depth) } : {}) });
  const model = new Dimba(config, { seed: 0 });
  // The released initialisation zeroes the output layers: give every parameter signal so the comparison means something.
  const gen = new T.Generator(1);
  for (const [, p] of model.namedParameters()) if (T.max(T.abs(p)).item() === 0) T.nn.init.normal_(p, 0, 0.02, { generator: gen });
  model.to('cuda');
  if (args.dtype === 'bf16') model.cast('bfloat16');
  model.eval();
  const b2 = 2 * batch;
  const x = T.randn([b2, config.inChannels, latent, latent], { device: 'cuda', generator: gen });
  const t = T.mul(T.rand([b2], { device: 'cuda', generator: gen }), 999);
  const cond = {
    caption: T.randn([b2, config.captionTokens, config.captionChannels], { device: 'cuda', generator: gen }),
    captionMask: T.lt(T.rand([b2, config.captionTokens], { device: 'cuda', generator: gen }), 0.8),
    forceDropCaption: T.cast(T.tensor(Array.from({ length: b2 }, (_, i) => Number(i < batch))), 'bool').to('cuda'),
  };
  const denoiser = dimbaDenoiser(model);
  T.noGrad(() => {
    // Eager: two warm-up calls, then the timed steps.
    T.tidy(() => { denoiser(x, t, cond); denoiser(x, t, cond); });
    const eager = timeSteps(() => { denoiser(x, t, cond); });
    const eagerOut = T.keep(denoiser(x, t, cond));

    // Graph path as generate runs it: the first call warms up, captures and replays.
    const graphed = graphedDenoiser(denoiser, true, preset);
    const t0 = performance.now();
    const graphOut = T.keep(graphed.fn(x, t, cond));
    backend.synchronize();
    const firstCallMs = performance.now() - t0;
    const graph = timeSteps(() => { graphed.fn(x, t, cond); });
    const maxDiff = maxAbsDiff(graphOut, eagerOut);

    // Device time per step: the graph alone, replayed back to back.
    const statics = [x, t, cond.caption, cond.captionMask, cond.forceDropCaption].map((a) => T.keep(T.clone(a)));
    const r = captureReplayable((xs, ts, c, m, f) => denoiser(xs!, ts!, { caption: c!, captionMask: m!, forceDropCaption: f! }), statics, { graph: true, label: preset });
    r.run();
    const cg = r.capturedGraph as CudaGraph;
    const device: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      const a = CudaEvent.create(rt.api).record(rt.stream);
      for (let i = 0; i < steps; i++) r.run();
      const e = CudaEvent.create(rt.api).record(rt.stream);
      e.synchronize();
      device.push(e.elapsedSince(a) / steps);
      a.destroy();
      e.destroy();
    }
    const deviceMs = median(device);
    const s = cg.stats();
    rows.push({
      preset, res: Number(args.res), batch, dtype: args.dtype!, nodes: s.nodes,
      eagerWallMs: eager.wall, eagerHostMs: eager.host, graphWallMs: graph.wall, graphHostMs: graph.host, deviceMs,
      eagerIdle: Math.max(0, 1 - deviceMs / eager.wall), graphIdle: Math.max(0, 1 - deviceMs / graph.wall),
      captureMs: s.captureMs, instantiateMs: s.instantiateMs, firstCallMs, poolMiB: s.poolBytes / 2 ** 20, maxDiff,
    });
    r.dispose({ outputs: true });
    graphed.dispose();
    for (const st of statics) st.dispose();
    eagerOut.dispose();
    graphOut.dispose();
  });
}

if (args.json) {
  console.log(JSON.stringify({ device: rt.info.name, steps, rows }, null, 2));
} else {
  const f = (v: number, d = 3) => v.toFixed(d);
  const head = ['preset', 'res', 'B (2B guided)', 'dtype', 'nodes', 'eager ms/step', 'eager host ms', 'graph ms/step', 'graph host ms',
    'device ms/step', 'GPU idle eager', 'GPU idle graph', 'capture+inst ms', 'first call ms', 'pool MiB', 'max |Δ|'];
  console.log(`# CUDA graph replay vs eager denoiser calls on ${rt.info.name}, ${steps} steps, ${new Date().toISOString().slice(0, 10)}`);
  console.log(`| ${head.join(' | ')} |`);
  console.log(`|${head.map(() => '---').join('|')}|`);
  for (const r of rows) {
    console.log(`| ${[r.preset, r.res, `${r.batch} (${2 * r.batch})`, r.dtype, r.nodes, f(r.eagerWallMs), f(r.eagerHostMs), f(r.graphWallMs), f(r.graphHostMs),
      f(r.deviceMs), `${(100 * r.eagerIdle).toFixed(0)}%`, `${(100 * r.graphIdle).toFixed(0)}%`, f(r.captureMs + r.instantiateMs, 1), f(r.firstCallMs, 1),
      f(r.poolMiB, 1), r.maxDiff.toExponential(1)].join(' | ')} |`);
  }
}
