/**
 * Flash attention (kernels/attention.cu) against the composed path (matmul + softmax through the
 * engine, as DIMBA_FLASH=0 runs it), 16 heads of 72 (Dimba-L-2), bf16, on the shapes of issue 7:
 * self-attention over 1024 and 4096 tokens and cross-attention to 120 caption keys with key
 * padding. Forward, and forward + backward:
 *   flash     our fused kernels called directly on preallocated buffers (device time only; DIMBA_ATTENTION=ours)
 *   flash op  scaledDotProductAttention + backward through the engine (adds op work, allocations)
 *   cudnn     cuDNN's fused attention (cudnn-attention/) called directly; cross-attention's key padding
 *             goes in as cuDNN's bias (composite masked graphs plus the fully-masked-row fix-up)
 *   cudnn op  the op under DIMBA_ATTENTION=auto, which routes unmasked and key-padded calls to cuDNN
 *   composed  the same op with the fused kernels switched off
 * TFLOP/s count 4 B H Lq Lk E for the forward and 2.5x that for the backward (the convention of
 * PyTorch's and FlashAttention's benchmarks, so ../shared/GPU.md's SDPA figures compare directly).
 * Device time by CUDA events around back-to-back calls after a warm-up, median of 7 rounds.
 *
 *   node dist/bench/cuda/attention.js [--json] [--skip-composed]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import type { AttentionArgs, FusedKernels } from '../../src/backends/backend.js';
import { planAttention } from '../../src/backends/cuda/kernels/attention-plan.js';
import { cudnnBackward, cudnnForward } from '../../src/backends/cuda/cudnn-attention/run.js';
import { cudnnAttentionFor } from '../../src/backends/cuda/cudnn-attention/plan.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { JSON_OPTION, cudaBackend, timeRounds } from './timing.js';

const { values: args } = parseArgs({ options: { ...JSON_OPTION, 'skip-composed': { type: 'boolean', default: false } } });

const backend = cudaBackend();
const rt = backend.runtime;
const time = (fn: () => void) => timeRounds(backend, fn);
const fused = backend.fused as FusedKernels;
if (!fused.attention || !fused.attentionBackward) throw new Error('flash attention is not registered (DIMBA_FLASH=0?)');
const flashForward = fused.attention;
const flashBackward = fused.attentionBackward;

interface Shape { readonly name: string; readonly b: number; readonly lq: number; readonly lk: number; readonly cross: boolean }
const H = 16;
const E = 72;
const SHAPES: Shape[] = [
  { name: 'self B16 L1024', b: 16, lq: 1024, lk: 1024, cross: false },
  { name: 'self B4 L4096', b: 4, lq: 4096, lk: 4096, cross: false },
  { name: 'cross B16 L1024 x 120', b: 16, lq: 1024, lk: 120, cross: true },
  { name: 'cross B4 L4096 x 120', b: 4, lq: 4096, lk: 120, cross: true },
];

/** Heads split from [B, L, H * E] rows, as the model's attention layers pass them. */
function heads(b: number, l: number, seed: number): Tensor {
  const rows = T.randn([b, l, H * E], { dtype: 'bfloat16', device: 'cuda', generator: new T.Generator(seed) });
  return T.permute(T.reshape(rows, [b, l, H, E]), [0, 2, 1, 3]);
}

/** Caption lengths 40..120 over the batch (key padding). */
function captionMask(b: number, lk: number): Tensor {
  const keep = new Uint8Array(b * lk);
  for (let i = 0; i < b; i++) for (let j = 0; j < 40 + Math.floor((80 * i) / Math.max(1, b - 1)); j++) keep[i * lk + j] = 1;
  return T.Tensor.fromHost(keep, [b, lk], 'bool').to('cuda');
}

/** Runs fn with DIMBA_ATTENTION set to `mode` (the fused kernels read it per call). */
function withMode<R>(mode: 'auto' | 'ours', fn: () => R): R {
  const before = process.env.DIMBA_ATTENTION;
  process.env.DIMBA_ATTENTION = mode;
  try {
    return fn();
  } finally {
    if (before === undefined) delete process.env.DIMBA_ATTENTION;
    else process.env.DIMBA_ATTENTION = before;
  }
}

const cudnnMissing = cudnnAttentionFor(rt).unavailableReason();
if (cudnnMissing !== null) console.log(`# cuDNN attention rows skipped: ${cudnnMissing}`);

interface Row { shape: string; variant: string; fwdMs: number; fwdTflops: number; fwdBwdMs: number; fwdBwdTflops: number }
const rows: Row[] = [];

for (const s of SHAPES) {
  const q = heads(s.b, s.lq, 1);
  const k = heads(s.b, s.lk, 2);
  const v = heads(s.b, s.lk, 3);
  const dO = heads(s.b, s.lq, 4);
  const keyPadding = s.cross ? captionMask(s.b, s.lk) : null;
  const flopsFwd = 4 * s.b * H * s.lq * s.lk * E;
  const flopsAll = 3.5 * flopsFwd;
  const row = (variant: string, fwdMs: number, fwdBwdMs: number): Row => ({
    shape: s.name, variant, fwdMs, fwdTflops: flopsFwd / fwdMs / 1e9, fwdBwdMs, fwdBwdTflops: flopsAll / fwdBwdMs / 1e9,
  });

  // Direct kernel calls on preallocated buffers.
  const scale = 1 / Math.sqrt(E);
  const m = keyPadding ? T.additiveMask(q, s.lk, { keyPadding }) : null;
  const margs: AttentionArgs = { scale, mask: m ? T.expand(m, [s.b, H, s.lq, s.lk]) : null };
  const out = T.Tensor.empty([s.b, H, s.lq, E], 'bfloat16', backend);
  const lse = T.Tensor.empty([s.b, H, s.lq], 'float32', backend);
  const gq = T.Tensor.empty(q.shape, 'bfloat16', backend);
  const gk = T.Tensor.empty(k.shape, 'bfloat16', backend);
  const gv = T.Tensor.empty(v.shape, 'bfloat16', backend);
  withMode('ours', () => {
    const fwd = () => flashForward(q, k, v, out, lse, margs);
    const fwdMs = time(fwd);
    const allMs = time(() => { fwd(); flashBackward(q, k, v, out, lse, dO, gq, gk, gv, margs); });
    rows.push(row('flash', fwdMs, allMs));
  });
  if (cudnnMissing === null) {
    const cfwd = () => { cudnnForward(rt, q, k, v, out, lse, margs, 'cudnn'); };
    try {
      const cfwdMs = time(cfwd);
      const callMs = time(() => { cfwd(); cudnnBackward(rt, q, k, v, out, lse, dO, gq, gk, gv, margs, 'cudnn'); });
      rows.push(row('cudnn', cfwdMs, callMs));
    } catch (e) {
      // A declined call (the error names why) leaves this row out; anything else is a failure.
      if (!(e instanceof Error) || !e.message.startsWith('DIMBA_ATTENTION=cudnn, but')) throw e;
      console.log(`# ${s.name}: cudnn row skipped: ${e.message}`);
    }
  }

  // Through the op and autograd.
  const leaves = [q, k, v].map((t) => t.detach().requiresGrad_(true)) as [Tensor, Tensor, Tensor];
  const opFwd = () => T.tidy(() => T.noGrad(() => { T.scaledDotProductAttention(q, k, v, { keyPadding }); }));
  const opAll = () => T.tidy(() => {
    const y = T.scaledDotProductAttention(leaves[0], leaves[1], leaves[2], { keyPadding });
    T.backward(y, dO);
    for (const l of leaves) l.grad = null;
  });
  withMode('ours', () => rows.push(row('flash op', time(opFwd), time(opAll))));
  if (cudnnMissing === null) withMode('auto', () => rows.push(row('cudnn op', time(opFwd), time(opAll))));

  if (!args['skip-composed']) {
    delete fused.attention;
    delete fused.attentionBackward;
    try {
      rows.push(row('composed', time(opFwd), time(opAll)));
    } finally {
      fused.attention = flashForward;
      fused.attentionBackward = flashBackward;
    }
  }
  const p = planAttention('bfloat16', { batch: s.b, heads: H, lq: s.lq, lk: s.lk, e: E, ev: E }, rt.info.multiprocessors);
  if (!args.json) console.log(`# ${s.name}: forward grid ${p.forward.grid}, backward grid ${p.backward.grid} (query splits ${p.backward.splits})`);
  backend.emptyCache();
}

if (!args.json && cudnnMissing === null) {
  for (const p of cudnnAttentionFor(rt).stats().plans) console.log(`# cuDNN plan ${p.key}: ${p.label}, workspace ${p.layout.total} B, built in ${p.buildMs.toFixed(0)} ms`);
  for (const u of cudnnAttentionFor(rt).stats().unsupported) console.log(`# cuDNN declined ${u.key}: ${u.reason}`);
}

if (args.json) {
  console.log(JSON.stringify({ device: rt.info.name, heads: H, headDim: E, rows }));
} else {
  console.log(`\n${rt.info.name}, bf16, ${H} heads x ${E}; TFLOP/s: forward 4 B H Lq Lk E, forward + backward 3.5x that`);
  console.log('| shape | variant | fwd ms | fwd TFLOP/s | fwd+bwd ms | fwd+bwd TFLOP/s |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    console.log(`| ${r.shape} | ${r.variant} | ${r.fwdMs.toFixed(3)} | ${r.fwdTflops.toFixed(0)} | ${r.fwdBwdMs.toFixed(3)} | ${r.fwdBwdTflops.toFixed(0)} |`);
  }
}
