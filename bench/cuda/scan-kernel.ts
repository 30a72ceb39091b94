/**
 * The selective-scan kernels alone: scan.cu through its launcher (kernels/scan.ts, with its
 * scratch: zeroed float32 accumulators, the backward's chunk-entry states, the cast of dB/dC back
 * to bf16), without the op layer or autograd. One direction as mamba_ssm's selective_scan_fn
 * runs it: bf16 u, delta, z, B, C; float32 A (S4D-real), D and delta bias; N = 16, Di = 2304,
 * softplus, D skip, z gating. Shapes: mamba_ssm's (B16 x L1024, B4 x L4096, B1 x L16384,
 * B64 x L256, whose compiled-kernel times on the H100 ../shared/GPU.md lists) and Dimba-L-2's
 * 256 px training step (B16 x L256), the latter also with the operands laid out as the Mamba
 * mixer passes them (delta, z, B, C and the output gradient as transposed/narrowed views).
 *
 * Bytes the scan must move (as bench/gpu/flops.ts scanBytes): forward reads u, delta, z (T
 * elements each), B, C (B N L each) and writes out: 4 T e + 2 B N L e; backward reads u, delta,
 * z, gy, B, C and writes du, ddelta, dz, dB, dC: 7 T e + 4 B N L e; plus the float32 A, D, bias
 * (and their gradients). e = 2 bytes. Achieved fraction = bytes / time / 3.0 TB/s (the card's
 * measured copy bandwidth). Issue 7's bar: forward + backward >= 0.5.
 *
 * Device time: CUDA events around back-to-back calls after a warm-up, median over rounds.
 *
 *   [DIMBA_SCAN_LAYOUT=auto|wide|split] node dist/bench/cuda/scan-kernel.js [--json] [--rounds 7] [--only B16xL1024,...]
 *
 * The layout column names the lanes a row and states a lane the launcher chose (4x4 wide, 8x2 split).
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { scanGeometry, scanLayoutFromEnv } from '../../src/backends/cuda/kernels/scan.js';
import type { ScanGrads, ScanInputs } from '../../src/backends/backend.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { JSON_OPTION, ROUNDS_OPTION, cudaBackend, parseRounds, timeRounds } from './timing.js';

const { values: args } = parseArgs({
  options: { ...JSON_OPTION, ...ROUNDS_OPTION, only: { type: 'string' } },
});
const rounds = parseRounds(args.rounds);

const backend = cudaBackend();
const time = (fn: () => void) => timeRounds(backend, fn, { rounds, warmup: 2, probeCalls: 2 });

const COPY_BYTES_PER_S = 3.0e12;
const DIM = 2304;
const N = 16;
const RANK = 72;  // Dimba-L-2's dt_rank (1152 / 16): x_proj emits [dt (72), B (16), C (16)] per token

interface Shape {
  readonly name: string;
  readonly batch: number;
  readonly len: number;
  readonly mixerViews: boolean;
  /** mamba_ssm's compiled kernel on the H100 (../shared/GPU.md), forward / backward ms. */
  readonly mambaSsm: readonly [number, number] | null;
}

const ALL_SHAPES: Shape[] = [
  { name: 'B16xL1024', batch: 16, len: 1024, mixerViews: false, mambaSsm: [0.632, 2.688] },
  { name: 'B4xL4096', batch: 4, len: 4096, mixerViews: false, mambaSsm: [0.662, 2.775] },
  { name: 'B1xL16384', batch: 1, len: 16384, mixerViews: false, mambaSsm: [0.950, 3.105] },
  { name: 'B64xL256', batch: 64, len: 256, mixerViews: false, mambaSsm: [0.646, 3.215] },
  { name: 'B16xL256', batch: 16, len: 256, mixerViews: false, mambaSsm: null },
  // The sampler's batch-1 call: classifier-free guidance doubles it, 512 px gives 1024 tokens.
  { name: 'B2xL1024', batch: 2, len: 1024, mixerViews: false, mambaSsm: null },
  // Dimba-L-2's training steps: 512 px batch 8, 256 px batch 32.
  { name: 'B8xL1024', batch: 8, len: 1024, mixerViews: false, mambaSsm: null },
  { name: 'B32xL256', batch: 32, len: 256, mixerViews: false, mambaSsm: null },
  { name: 'B16xL256 mixer views', batch: 16, len: 256, mixerViews: true, mambaSsm: null },
];
const SHAPES = ALL_SHAPES.filter((s) => !args.only || args.only.split(',').includes(s.name.split(' ')[0]!));

function scanBytes(batch: number, len: number): { forward: number; backward: number } {
  const t = batch * DIM * len;
  const bc = batch * N * len;
  const params = (DIM * N + 2 * DIM) * 4;
  return { forward: 4 * t * 2 + 2 * bc * 2 + params, backward: 7 * t * 2 + 4 * bc * 2 + 2 * params };
}

const cuda = { device: 'cuda' } as const;
const bf16 = { dtype: 'bfloat16', device: 'cuda' } as const;

/** Random operands (never zeros): softplus(delta + bias) around 0.1, A = -[1..N] per channel. */
function operands(s: Shape): { inputs: ScanInputs; gy: Tensor; keep: Tensor[] } {
  const { batch: b, len: l } = s;
  const keep: Tensor[] = [];
  const k = (t: Tensor) => { keep.push(t); return t; };
  const u = k(T.randn([b, DIM, l], bf16));
  let delta: Tensor;
  let z: Tensor;
  let B: Tensor;
  let C: Tensor;
  let gy: Tensor;
  if (s.mixerViews) {
    const dBase = k(T.cast(T.mul(T.randn([b, l, DIM], cuda), 0.5), 'bfloat16'));
    delta = T.transpose(dBase, 1, 2);
    const xz = k(T.randn([b, l, 2 * DIM], bf16));
    z = T.narrow(T.transpose(xz, 1, 2), 1, DIM, DIM);
    const dbc = k(T.randn([b, l, RANK + 2 * N], bf16));
    B = T.unsqueeze(T.transpose(T.narrow(dbc, 2, RANK, N), 1, 2), 1);
    C = T.unsqueeze(T.transpose(T.narrow(dbc, 2, RANK + N, N), 1, 2), 1);
    gy = T.transpose(k(T.randn([b, l, DIM], bf16)), 1, 2);
  } else {
    delta = k(T.cast(T.mul(T.randn([b, DIM, l], cuda), 0.5), 'bfloat16'));
    z = k(T.randn([b, DIM, l], bf16));
    B = k(T.randn([b, 1, N, l], bf16));
    C = k(T.randn([b, 1, N, l], bf16));
    gy = k(T.randn([b, DIM, l], bf16));
  }
  const A = k(T.contiguous(T.neg(T.expand(T.unsqueeze(T.arange(1, N + 1, 1, { dtype: 'float32', device: 'cuda' }), 0), [DIM, N]))));
  const D = k(T.ones([DIM], { dtype: 'float32', device: 'cuda' }));
  const bias = k(T.add(T.mul(T.randn([DIM], cuda), 0.3), -2.2));
  if (s.mixerViews) keep.push(delta, z, B, C, gy);
  return { inputs: { u, delta, A, B, C, D, z, deltaBias: bias, deltaSoftplus: true }, gy, keep };
}

function finite(t: Tensor): boolean {
  const v = T.narrow(T.reshape(t, [-1]), 0, 0, Math.min(t.numel, 1 << 16)).to('cpu').toFloat64Array();
  return v.every(Number.isFinite) && v.some((x) => x !== 0);
}

interface Row {
  shape: string;
  batch: number;
  len: number;
  layout: 'contiguous' | 'mixer views';
  fwdMs: number;
  bwdMs: number;
  totalMs: number;
  fwdBytes: number;
  bwdBytes: number;
  fwdFraction: number;
  bwdFraction: number;
  totalFraction: number;
  mambaSsmFwdMs: number | null;
  mambaSsmBwdMs: number | null;
  speedupVsMambaSsm: number | null;
  layoutUsed: string;
  blocks: number;
  chunks: number;
}

const results: Row[] = [];
for (const s of SHAPES) {
  // Scoped so the float32 draws behind the bf16 operands go at once (the GPU's memory pressure
  // never prompts the garbage collector); what operands() returns survives the scope.
  const { inputs, gy, keep } = T.tidy(() => operands(s));
  const shape = [s.batch, DIM, s.len];
  const out = T.empty(shape, bf16);
  const grads: ScanGrads = {
    du: T.empty(shape, bf16), ddelta: T.empty(shape, bf16), dz: T.empty(shape, bf16),
    dA: T.empty([DIM, N], { dtype: 'float32', device: 'cuda' }),
    dB: T.empty([s.batch, 1, N, s.len], bf16), dC: T.empty([s.batch, 1, N, s.len], bf16),
    dD: T.empty([DIM], { dtype: 'float32', device: 'cuda' }), ddeltaBias: T.empty([DIM], { dtype: 'float32', device: 'cuda' }),
  };
  const fwdMs = time(() => backend.kernels.selectiveScan(inputs, out, null));
  const bwdMs = time(() => backend.kernels.selectiveScanBackward(inputs, gy, grads));
  for (const [name, t] of [['out', out], ['du', grads.du], ['ddelta', grads.ddelta], ['dz', grads.dz!], ['dB', grads.dB]] as const) {
    if (!T.tidy(() => finite(t))) throw new Error(`${s.name}: ${name} has non-finite or all-zero values: the timing would not be of real work`);
  }
  const bytes = scanBytes(s.batch, s.len);
  const frac = (b: number, ms: number) => b / (ms / 1000) / COPY_BYTES_PER_S;
  const geo = scanGeometry({ batch: s.batch, dim: DIM, len: s.len, nState: N, groups: 1 }, 'float32', scanLayoutFromEnv(), backend.info.multiprocessors);
  results.push({
    shape: s.name, batch: s.batch, len: s.len, layout: s.mixerViews ? 'mixer views' : 'contiguous',
    fwdMs, bwdMs, totalMs: fwdMs + bwdMs, fwdBytes: bytes.forward, bwdBytes: bytes.backward,
    fwdFraction: frac(bytes.forward, fwdMs), bwdFraction: frac(bytes.backward, bwdMs),
    totalFraction: frac(bytes.forward + bytes.backward, fwdMs + bwdMs),
    mambaSsmFwdMs: s.mambaSsm?.[0] ?? null, mambaSsmBwdMs: s.mambaSsm?.[1] ?? null,
    speedupVsMambaSsm: s.mambaSsm ? (s.mambaSsm[0] + s.mambaSsm[1]) / (fwdMs + bwdMs) : null,
    layoutUsed: `${geo.lanes}x${geo.statesPerLane}`, blocks: geo.blocks, chunks: geo.chunks,
  });
  for (const t of [...keep, out, grads.du, grads.ddelta, grads.dz!, grads.dA, grads.dB, grads.dC, grads.dD!, grads.ddeltaBias!]) t.dispose();
}

const device = backend.info.name;
if (args.json) {
  console.log(JSON.stringify({ device, date: new Date().toISOString(), dim: DIM, nState: N, copyBytesPerS: COPY_BYTES_PER_S, rows: results }, null, 2));
} else {
  const f = (x: number, d = 3) => x.toFixed(d);
  console.log(`selective scan kernels (scan.cu), ${device}, Di ${DIM}, N ${N}, bf16 u/delta/z/B/C, float32 A/D/bias; fraction of 3.0 TB/s on the bytes the scan must move`);
  console.log('| shape | layout | lanes x states | fwd ms | bwd ms | fwd+bwd ms | MB fwd / bwd | fwd | bwd | fwd+bwd | mamba_ssm fwd / bwd ms | speedup |');
  console.log('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    console.log(`| ${r.shape.split(' ')[0]} | ${r.layout} | ${r.layoutUsed} | ${f(r.fwdMs)} | ${f(r.bwdMs)} | ${f(r.totalMs)} | ${f(r.fwdBytes / 1e6, 0)} / ${f(r.bwdBytes / 1e6, 0)} `
      + `| ${f(r.fwdFraction, 2)} | ${f(r.bwdFraction, 2)} | ${f(r.totalFraction, 2)} `
      + `| ${r.mambaSsmFwdMs === null ? '-' : `${r.mambaSsmFwdMs} / ${r.mambaSsmBwdMs}`} | ${r.speedupVsMambaSsm === null ? '-' : `${f(r.speedupVsMambaSsm, 2)}x`} |`);
  }
}
