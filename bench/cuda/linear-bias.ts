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
import { gemmStats, setLtUse } from '../../src/backends/cuda/kernels/gemm.js';
import { agreement } from './agreement.js';
import { cudaBackend, timeRounds } from './timing.js';

const { values: args } = parseArgs({ options: { json: { type: 'boolean', default: false } } });

const backend = cudaBackend();
const rt = backend.runtime;

const SHAPES = [
  { name: 'mlp up 1152->4608', m: 16384, k: 1152, n: 4608 },
  { name: 'proj 1152->1152', m: 16384, k: 1152, n: 1152 },
  { name: 'mlp down 4608->1152', m: 16384, k: 4608, n: 1152 },
  { name: 'B2 mlp up 1152->4608', m: 2048, k: 1152, n: 4608 },
  { name: 'B2 proj 1152->1152', m: 2048, k: 1152, n: 1152 },
];

/** Median device ms per call (shared timer: rounds of back-to-back calls, ~30 ms each). */
function time(fn: () => void): number {
  return timeRounds(backend, fn, { probeCalls: 3 });
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
