/**
 * The fused causal conv1d (bias + SiLU, causal-conv1d.cu) on x as the Mamba mixer passes it:
 * a [B, 2304, L] channel-last view of in_proj's [B, L, 4608] bf16 output (the first half), and
 * the time-flipped one of the backward direction; bf16 weight and bias (as the model holds them:
 * the kernels read them as stored). Shapes: the sampler's batch-1 call with guidance (B2 x L1024),
 * the 512 px training batch (B8 x L1024), the forward profile's B16 x L1024 and the training step's
 * B32 x L256 (bench/NOTES.md, Dimba-L-2).
 *
 * Rows: the fused kernels alone (forward; backward; both), and the op with autograd, fused
 * against the composed path the op used to run (transposing copy of x + plain conv + bias add +
 * silu, each its own op; its conv is today's kernel on a contiguous x, not the removed
 * one-thread-per-element kernel).
 *
 * Bytes the kernels must move: forward reads x and writes out (2 B D L e); backward reads x and
 * gy and writes gx (3 B D L e); e = 2. Fraction = bytes / time / 3.0 TB/s (the card's measured
 * copy bandwidth). Device time: CUDA events around back-to-back calls, median over rounds; the
 * fused kernels also from replays of a CUDA graph of GRAPH_CALLS calls ("graph" rows), which leave
 * out the host's launch work (at B2 a call's launcher costs about as long as its kernel).
 *
 * --sweep: the forward kernel alone (graph replays) for every time chunk in {8, 16, 32, 64} and
 * forward block size in {64, 128, 256} at each shape, with the geometry the launcher picks marked,
 * so its rule (causalConv1dTuning) can be checked against the card.
 *
 *   node dist/bench/cuda/causal-conv1d.js [--json] [--rounds 7] [--shapes 2x1024,8x1024,16x1024,32x256] [--sweep]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { causalConv1dGeometry, causalConv1dTuning } from '../../src/backends/cuda/kernels/causal-conv1d.js';
import { addressOf } from '../../src/backends/cuda/storage.js';
import { CudaGraph } from '../../src/backends/cuda/graph.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { JSON_OPTION, ROUNDS_OPTION, cudaBackend, parseRounds, timeRounds } from './timing.js';

const { values: args } = parseArgs({
  options: {
    ...JSON_OPTION, ...ROUNDS_OPTION,
    shapes: { type: 'string', default: '2x1024,8x1024,16x1024,32x256' }, sweep: { type: 'boolean', default: false },
  },
});
const rounds = parseRounds(args.rounds);
const shapes = args.shapes!.split(',').map((t) => {
  const m = /^(\d+)x(\d+)$/.exec(t.trim());
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new Error(`--shapes: ${JSON.stringify(t)} is not BATCHxL (e.g. 2x1024)`);
  return [Number(m[1]), Number(m[2])] as const;
});

const backend = cudaBackend();
const rt = backend.runtime;
const time = (fn: () => void) => timeRounds(backend, () => T.tidy(fn), { rounds, warmup: 2, probeCalls: 2 });

/** Calls captured into one graph for the graph rows. */
const GRAPH_CALLS = 20;

/** Device ms per call from replays of a graph of GRAPH_CALLS calls of fn (the kernels alone). */
function timeGraph(fn: () => void): number {
  fn();
  backend.synchronize();
  const { graph } = CudaGraph.capture(rt, () => { for (let i = 0; i < GRAPH_CALLS; i++) fn(); }, 'causal-conv1d bench');
  try {
    return timeRounds(backend, () => graph.replay(), { rounds, warmup: 2 }) / GRAPH_CALLS;
  } finally {
    graph.destroy();
  }
}

const COPY_BYTES_PER_S = 3.0e12;
const DIM = 2304;
const TAPS = 4;
const bf16 = { dtype: 'bfloat16', device: 'cuda' } as const;

interface Row {
  shape: string;
  direction: 'forward' | 'flipped';
  what: string;
  ms: number;
  mb: number;
  fraction: number | null;
}

interface SweepRow {
  shape: string;
  chunk: number;
  threads: number;
  blocks: number;
  picked: boolean;
  us: number;
  fraction: number;
}

const rows: Row[] = [];
const sweep: SweepRow[] = [];
const geometries: Record<string, unknown> = {};
for (const [batch, len] of shapes) {
  const xz = T.randn([batch, len, 2 * DIM], bf16);
  const w = T.mul(T.randn([DIM, TAPS], bf16), 0.5);
  const bias = T.randn([DIM], bf16);
  const gBase = T.randn([batch, len, DIM], bf16);
  const gy = T.transpose(gBase, 1, 2);  // the gradient of u as x_proj's backward hands it over
  const n = batch * DIM * len;
  const shape = `B${batch}xL${len}`;
  for (const direction of ['forward', 'flipped'] as const) {
    const t = T.transpose(xz, 1, 2);
    const [x] = T.chunk(direction === 'flipped' ? T.flip(t, [2]) : t, 2, 1) as [Tensor, Tensor];
    const out = T.transpose(T.empty([batch, len, DIM], bf16), 1, 2);
    const gx = direction === 'flipped' ? T.flip(T.transpose(T.empty([batch, len, DIM], bf16), 1, 2), [2]) : T.transpose(T.empty([batch, len, DIM], bf16), 1, 2);
    const gw = T.empty([DIM, TAPS], bf16);
    const gb = T.empty([DIM], bf16);
    const k = backend.kernels;
    const add = (what: string, ms: number, bytes: number | null) => rows.push({
      shape, direction, what, ms, mb: bytes === null ? 0 : bytes / 1e6, fraction: bytes === null ? null : bytes / (ms / 1000) / COPY_BYTES_PER_S,
    });
    const fwd = time(() => k.causalConv1d(x, w, bias, true, out));
    const bwd = time(() => k.causalConv1dBackward(x, w, bias, true, gy, gx, gw, gb));
    add('fused kernel forward', fwd, 2 * n * 2);
    add('fused kernel backward (+ gw/gbias reduce)', bwd, 3 * n * 2);
    add('fused kernels forward + backward', fwd + bwd, 5 * n * 2);
    const fwdGraph = timeGraph(() => k.causalConv1d(x, w, bias, true, out));
    const bwdGraph = timeGraph(() => k.causalConv1dBackward(x, w, bias, true, gy, gx, gw, gb));
    add(`fused kernel forward (graph of ${GRAPH_CALLS})`, fwdGraph, 2 * n * 2);
    add(`fused kernel backward (graph of ${GRAPH_CALLS})`, bwdGraph, 3 * n * 2);
    add(`fused kernels forward + backward (graph of ${GRAPH_CALLS})`, fwdGraph + bwdGraph, 5 * n * 2);
    const item = 2;
    const op = (v: Tensor) => ({ strides: v.strides, address: addressOf(v) });
    const fwdGeometry = () => causalConv1dGeometry(x.shape, TAPS, [op(x), op(out)], item, rt.info.multiprocessors, false);
    geometries[`${shape} ${direction}`] = {
      forward: fwdGeometry(),
      backward: causalConv1dGeometry(x.shape, TAPS, [op(x), op(gy), op(gx)], item, rt.info.multiprocessors, true),
    };
    if (args.sweep && direction === 'forward') {
      const picked = fwdGeometry();
      const saved = { ...causalConv1dTuning };
      try {
        for (const threads of [64, 128, 256]) {
          for (const chunk of [8, 16, 32, 64]) {
            Object.assign(causalConv1dTuning, { maxChunk: chunk, minChunk: chunk, smallChunk: chunk, forwardThreads: threads });
            const g = fwdGeometry();
            const ms = timeGraph(() => k.causalConv1d(x, w, bias, true, out));
            sweep.push({
              shape, chunk, threads, blocks: g.blocks, picked: g.chunk === picked.chunk && g.threads === picked.threads,
              us: ms * 1000, fraction: (2 * n * 2) / (ms / 1000) / COPY_BYTES_PER_S,
            });
          }
        }
      } finally {
        Object.assign(causalConv1dTuning, saved);
      }
    }

    const fused = (xx: Tensor, ww: Tensor, bb: Tensor) => T.causalConv1d(xx, ww, bb, 'silu');
    const composed = (xx: Tensor, ww: Tensor, bb: Tensor) => T.silu(T.add(T.causalConv1d(T.contiguous(xx), ww), T.reshape(bb, [DIM, 1])));
    for (const [name, f] of [['fused op', fused], ['composed ops (copy + conv + add + silu)', composed]] as const) {
      add(`${name}, forward (no grad)`, time(() => { T.noGrad(() => f(x, w, bias)); }), null);
      add(`${name}, forward + backward (autograd)`, time(() => {
        const wl = w.detach().requiresGrad_(true);
        const bl = bias.detach().requiresGrad_(true);
        const xl = x.detach().requiresGrad_(true);
        f(xl, wl, bl).backward(gy);
      }), null);
    }
    for (const tt of [out, gx, gw, gb]) tt.dispose();
  }
  for (const tt of [xz, w, bias, gBase]) tt.dispose();
}

const device = backend.info.name;
if (args.json) {
  console.log(JSON.stringify({ device, date: new Date().toISOString(), dim: DIM, taps: TAPS, copyBytesPerS: COPY_BYTES_PER_S, rows, sweep, geometries }, null, 2));
} else {
  console.log(`causal conv1d (causal-conv1d.cu), ${device}, D ${DIM}, K ${TAPS}, bf16 x as the mixer's channel-last view; fraction of 3.0 TB/s`);
  console.log('| shape | x | what | ms | MB | fraction |');
  console.log('| --- | --- | --- | ---: | ---: | ---: |');
  for (const r of rows) {
    console.log(`| ${r.shape} | ${r.direction} | ${r.what} | ${r.ms.toFixed(3)} | ${r.mb ? r.mb.toFixed(0) : '-'} | ${r.fraction === null ? '-' : r.fraction.toFixed(2)} |`);
  }
  if (sweep.length > 0) {
    console.log('\nforward kernel alone (graph replays) by time chunk and block size; * = the launcher\'s pick');
    console.log('| shape | chunk | block threads | blocks | us | fraction |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const r of sweep) {
      console.log(`| ${r.shape} | ${r.chunk}${r.picked ? ' *' : ''} | ${r.threads} | ${r.blocks} | ${r.us.toFixed(1)} | ${r.fraction.toFixed(2)} |`);
    }
  }
  console.log(JSON.stringify(geometries));
}
