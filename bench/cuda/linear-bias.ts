/**
 * linear with a bias, bf16: the bias inside the GEMM (cuBLASLt BIAS epilogue) against the GEMM
 * followed by a separate broadcast add (the composition linear used before), on Dimba-L-2
 * shapes: training (B16 x 1024 tokens = 16384 rows) and sampling (B2 = 2048 rows).
 *   epilogue      T.linear(x, w, b): one cublasLtMatmul with the bias epilogue
 *   gemm + add    T.add(T.linear(x, w), b): the GEMM, then binary:add reading and rewriting y
 *   GemmEx fused  T.linear(x, w, b) under DIMBA_CUBLASLT=0: bias copied into y, GemmEx with beta 1
 *   no bias       T.linear(x, w): the GEMM alone, the floor for the fused call
 * Device time by CUDA events around back-to-back calls after a warm-up, median per call over
 * rounds; saved = gemm + add - epilogue.
 *
 *   node dist/bench/cuda/linear-bias.js [--json]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend, CudaEvent, loadCuda } from '../../src/backends/cuda/index.js';
import { gemmStats, setLtUse } from '../../src/backends/cuda/kernels/gemm.js';

const { values: args } = parseArgs({ options: { json: { type: 'boolean', default: false } } });

loadCuda();
const backend = getBackend('cuda');
if (!(backend instanceof CudaBackend)) throw new Error('the cuda device did not give a CudaBackend');
const rt = backend.runtime;

const SHAPES = [
  { name: 'mlp up 1152->4608', m: 16384, k: 1152, n: 4608 },
  { name: 'proj 1152->1152', m: 16384, k: 1152, n: 1152 },
  { name: 'mlp down 4608->1152', m: 16384, k: 4608, n: 1152 },
  { name: 'B2 mlp up 1152->4608', m: 2048, k: 1152, n: 4608 },
  { name: 'B2 proj 1152->1152', m: 2048, k: 1152, n: 1152 },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median device ms per call; rounds of back-to-back calls sized to about 20 ms. */
function time(fn: () => void): number {
  for (let i = 0; i < 3; i++) fn();
  const a = CudaEvent.create(rt.api);
  const b = CudaEvent.create(rt.api);
  a.record(rt.stream);
  for (let i = 0; i < 3; i++) fn();
  b.record(rt.stream);
  b.synchronize();
  const inner = Math.max(2, Math.min(500, Math.ceil(20 / Math.max(b.elapsedSince(a) / 3, 1e-3))));
  const device: number[] = [];
  for (let r = 0; r < 7; r++) {
    a.record(rt.stream);
    for (let i = 0; i < inner; i++) fn();
    b.record(rt.stream);
    b.synchronize();
    device.push(b.elapsedSince(a) / inner);
  }
  a.destroy();
  b.destroy();
  return median(device);
}

/** Largest |a - b| / (|b| + mean |b|) over the first 64 rows. */
function agreement(a: T.Tensor, b: T.Tensor): number {
  const x = T.narrow(a, 0, 0, 64).to('cpu').toFloat64Array();
  const y = T.narrow(b, 0, 0, 64).to('cpu').toFloat64Array();
  let scale = 0;
  for (const v of y) scale += Math.abs(v) / y.length;
  let err = 0;
  for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(x[i]! - y[i]!) / (Math.abs(y[i]!) + scale));
  return err;
}

interface Row {
  shape: string;
  m: number;
  k: number;
  n: number;
  epilogueMs: number;
  gemmAddMs: number;
  gemmExFusedMs: number;
  noBiasMs: number;
  savedMs: number;
  maxRelDiff: number;
}

const rows: Row[] = [];
for (const s of SHAPES) {
  const x = T.randn([s.m, s.k], { dtype: 'bfloat16', device: 'cuda' });
  const w = T.randn([s.n, s.k], { dtype: 'bfloat16', device: 'cuda' });
  const b = T.randn([s.n], { dtype: 'bfloat16', device: 'cuda' });
  const call = (f: () => T.Tensor) => () => T.tidy(() => { f().dispose(); });
  setLtUse(rt, 'half');
  const before = gemmStats(rt);
  const epilogueMs = time(call(() => T.linear(x, w, b)));
  const after = gemmStats(rt);
  if (after.ltCalls === before.ltCalls || after.gemmExCalls !== before.gemmExCalls) {
    console.error(`warning: ${s.name}: the fused call did not stay on cuBLASLt (${JSON.stringify(after)})`);
  }
  const gemmAddMs = time(call(() => T.add(T.linear(x, w), b)));
  const noBiasMs = time(call(() => T.linear(x, w)));
  setLtUse(rt, 'off');
  const gemmExFusedMs = time(call(() => T.linear(x, w, b)));
  setLtUse(rt, 'half');
  const fused = T.linear(x, w, b);
  const composed = T.add(T.linear(x, w), b);
  rows.push({
    shape: s.name, m: s.m, k: s.k, n: s.n, epilogueMs, gemmAddMs, gemmExFusedMs, noBiasMs,
    savedMs: gemmAddMs - epilogueMs, maxRelDiff: agreement(fused, composed),
  });
  for (const t of [x, w, b, fused, composed]) t.dispose();
}

const device = backend.info.name;
if (args.json) {
  console.log(JSON.stringify({ device, date: new Date().toISOString(), dtype: 'bfloat16', rows }, null, 2));
} else {
  const f = (v: number, d = 3) => v.toFixed(d);
  const head = ['shape', 'M x K x N', 'epilogue ms', 'gemm+add ms', 'saved ms', 'GemmEx fused ms', 'no bias ms', 'check'];
  const lines = rows.map((r) => [r.shape, `${r.m}x${r.k}x${r.n}`, f(r.epilogueMs), f(r.gemmAddMs), f(r.savedMs), f(r.gemmExFusedMs), f(r.noBiasMs),
    r.maxRelDiff < 2e-2 ? 'ok' : `DIFF ${r.maxRelDiff.toExponential(1)}`]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`\nbf16 linear + bias on ${device} (CUDA events, medians per call)`);
  console.log(fmt(head));
  for (const l of lines) console.log(fmt(l));
}
