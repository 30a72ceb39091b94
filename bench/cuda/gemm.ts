/**
 * bf16 GEMM, engine against cuBLAS (issue 7: the engine should reach >= 0.90 of a direct call).
 * Per shape, on the same device buffers:
 *   engine        T.linear(x, w) / T.matmul(a, b) on CUDA tensors: op overhead, output allocation
 *                 and the default route (cuBLASLt for bf16)
 *   engine GemmEx the same with DIMBA_CUBLASLT=0's route (cublasGemmStridedBatchedEx)
 *   cublasGemmEx  one direct call (fp32 compute, default algorithm)
 *   cublasLt      one direct cublasLtMatmul with a plan built beforehand (top heuristic choice)
 * Device time by CUDA events around back-to-back calls after a warm-up, median per call over
 * several rounds; host time per engine call from the same loop. ratio = engine / best direct.
 * Shapes: 4096^3, and the Dimba-L-2 projections over 16384 rows (B16 x 1024 tokens).
 *
 *   node dist/bench/cuda/gemm.js [--json]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend, CudaEvent, loadCuda } from '../../src/backends/cuda/index.js';
import { addressOf } from '../../src/backends/cuda/storage.js';
import {
  check as checkBlas, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT, CUBLAS_OP_N, CUBLAS_OP_T, CUDA_R_16BF,
} from '../../src/backends/cuda/ffi/cublas.js';
import { bindCublasLt, check as checkLt, HEURISTIC_RESULT_BYTES, MATMUL_DESC, PREF } from '../../src/backends/cuda/ffi/cublaslt.js';
import { koffi, outI32, outU64, takeU64 } from '../../src/backends/cuda/ffi/koffi.js';
import { LT_WORKSPACE_BYTES } from '../../src/backends/cuda/blas-lt.js';
import { gemmStats, setLtUse } from '../../src/backends/cuda/kernels/gemm.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { agreement } from './agreement.js';

const { values: args } = parseArgs({ options: { json: { type: 'boolean', default: false } } });

loadCuda();
const backend = getBackend('cuda');
if (!(backend instanceof CudaBackend)) throw new Error('the cuda device did not give a CudaBackend');
const rt = backend.runtime;

interface Shape {
  readonly name: string;
  readonly m: number;
  readonly k: number;
  readonly n: number;
  /** x [m, k] @ w^T with w [n, k] (nn.Linear), else a [m, k] @ b [k, n]. */
  readonly linear: boolean;
}

const ROWS = 16384;
const SHAPES: Shape[] = [
  { name: 'square 4096^3', m: 4096, k: 4096, n: 4096, linear: false },
  { name: 'qkv 1152->3456', m: ROWS, k: 1152, n: 3456, linear: true },
  { name: 'mlp up 1152->4608', m: ROWS, k: 1152, n: 4608, linear: true },
  { name: 'mlp down 4608->1152', m: ROWS, k: 4608, n: 1152, linear: true },
  { name: 'out_proj 2304->1152', m: ROWS, k: 2304, n: 1152, linear: true },
  { name: 'attn proj 1152->1152', m: ROWS, k: 1152, n: 1152, linear: true },
  { name: 'in_proj 1152->2304', m: ROWS, k: 1152, n: 2304, linear: true },
  { name: 'x_proj 2304->104', m: ROWS, k: 2304, n: 104, linear: true },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median device ms per call of fn, and host us per call; rounds of back-to-back calls sized to ~20 ms. */
function time(fn: () => void): { ms: number; hostUs: number } {
  for (let i = 0; i < 3; i++) fn();
  const a = CudaEvent.create(rt.api);
  const b = CudaEvent.create(rt.api);
  a.record(rt.stream);
  for (let i = 0; i < 3; i++) fn();
  b.record(rt.stream);
  b.synchronize();
  const inner = Math.max(2, Math.min(200, Math.ceil(20 / Math.max(b.elapsedSince(a) / 3, 1e-3))));
  const device: number[] = [];
  const host: number[] = [];
  for (let r = 0; r < 7; r++) {
    a.record(rt.stream);
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) fn();
    host.push(((performance.now() - t0) * 1000) / inner);
    b.record(rt.stream);
    b.synchronize();
    device.push(b.elapsedSince(a) / inner);
  }
  a.destroy();
  b.destroy();
  return { ms: median(device), hostUs: median(host) };
}

/** A direct cublasGemmEx on the engine's buffers, in the same column-major form gemm.ts uses. */
function directGemmEx(s: Shape, x: Tensor, w: Tensor, out: Tensor): () => void {
  const { api, handle } = rt.blas();
  const gemmEx = api.library.handle.func('cublasGemmEx', 'int', ['uintptr_t', 'int', 'int', 'int', 'int', 'int',
    'const void *', 'uintptr_t', 'int', 'int', 'uintptr_t', 'int', 'int', 'const void *', 'uintptr_t', 'int', 'int', 'int', 'int']);
  const one = new Float32Array([1]);
  const zero = new Float32Array([0]);
  const [X, W, C] = [addressOf(x), addressOf(w), addressOf(out)];
  const [opW, ldw] = s.linear ? [CUBLAS_OP_T, s.k] : [CUBLAS_OP_N, s.n];
  return () => checkBlas(api, 'cublasGemmEx', gemmEx(handle, opW, CUBLAS_OP_N, s.n, s.m, s.k, one, W, CUDA_R_16BF, ldw,
    X, CUDA_R_16BF, s.k, zero, C, CUDA_R_16BF, s.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/** A direct cublasLtMatmul: descriptor, layouts and the top heuristic algorithm made once, outside the timing. */
function directLt(s: Shape, x: Tensor, w: Tensor, out: Tensor): { call: () => void; release: () => void } | null {
  const api = bindCublasLt(rt.blas().api.library);
  const k = koffi();
  checkLt(api, 'cublasLtCreate', api.cublasLtCreate(outU64));
  const handle = takeU64();
  checkLt(api, 'cublasLtMatmulDescCreate', api.cublasLtMatmulDescCreate(outU64, CUBLAS_COMPUTE_32F, 0));
  const desc = takeU64();
  checkLt(api, 'TRANSA', api.cublasLtMatmulDescSetAttribute(desc, MATMUL_DESC.transA, new Int32Array([s.linear ? CUBLAS_OP_T : CUBLAS_OP_N]), 4));
  const layout = (rows: number, cols: number, ld: number) => {
    checkLt(api, 'cublasLtMatrixLayoutCreate', api.cublasLtMatrixLayoutCreate(outU64, CUDA_R_16BF, rows, cols, ld));
    return takeU64();
  };
  const la = s.linear ? layout(s.k, s.n, s.k) : layout(s.n, s.k, s.n);
  const lb = layout(s.k, s.m, s.k);
  const lc = layout(s.n, s.m, s.n);
  checkLt(api, 'cublasLtMatmulPreferenceCreate', api.cublasLtMatmulPreferenceCreate(outU64));
  const pref = takeU64();
  checkLt(api, 'MAX_WORKSPACE', api.cublasLtMatmulPreferenceSetAttribute(pref, PREF.maxWorkspaceBytes, new BigUint64Array([BigInt(LT_WORKSPACE_BYTES)]), 8));
  const result = Number(k.alloc('uint8_t', HEURISTIC_RESULT_BYTES));
  const status = api.cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, lc, lc, pref, 1, result, outI32);
  if (status !== 0 || outI32[0] === 0) return null;
  const workspace = rt.allocator.alloc(LT_WORKSPACE_BYTES);
  const scalars = Number(k.alloc('float', 2));
  new Float32Array(k.view(scalars, 8)).set([1, 0]);
  const [X, W, C] = [addressOf(x), addressOf(w), addressOf(out)];
  return {
    call: () => checkLt(api, 'cublasLtMatmul', api.cublasLtMatmul(handle, desc, scalars, W, la, X, lb, scalars + 4, C, lc, C, lc,
      result, workspace.address, LT_WORKSPACE_BYTES, rt.stream.handle)),
    release: () => {
      rt.synchronize();
      rt.allocator.release(workspace);
      for (const l of [la, lb, lc]) api.cublasLtMatrixLayoutDestroy(l);
      api.cublasLtMatmulDescDestroy(desc);
      api.cublasLtMatmulPreferenceDestroy(pref);
      api.cublasLtDestroy(handle);
    },
  };
}

interface Row {
  shape: string;
  m: number;
  k: number;
  n: number;
  engineTflops: number;
  engineGemmExTflops: number;
  cublasGemmExTflops: number;
  cublasLtTflops: number | null;
  ratio: number;
  engineHostUs: number;
  engineVsDirectMaxRelDiff: number;
}

const rows: Row[] = [];
for (const s of SHAPES) {
  const x = T.randn([s.m, s.k], { dtype: 'bfloat16', device: 'cuda' });
  const w = T.randn(s.linear ? [s.n, s.k] : [s.k, s.n], { dtype: 'bfloat16', device: 'cuda' });
  const out = T.empty([s.m, s.n], { dtype: 'bfloat16', device: 'cuda' });
  // tidy: the op's internal result (of which the returned tensor is a view) goes with it.
  const engineCall = () => T.tidy(() => { (s.linear ? T.linear(x, w) : T.matmul(x, w)).dispose(); });
  const tflops = (ms: number) => (2 * s.m * s.n * s.k) / ms / 1e9;

  setLtUse(rt, 'half');
  const ltBefore = gemmStats(rt).ltCalls;
  const engine = time(engineCall);
  if (gemmStats(rt).ltCalls === ltBefore) console.error(`warning: ${s.name}: the engine did not use cuBLASLt (${JSON.stringify(gemmStats(rt))})`);
  setLtUse(rt, 'off');
  const engineGemmEx = time(engineCall);
  setLtUse(rt, 'half');
  const ex = time(directGemmEx(s, x, w, out));
  const ref = s.linear ? T.linear(x, w) : T.matmul(x, w);
  const diff = agreement(ref, out);
  const direct = directLt(s, x, w, out);
  const lt = direct ? time(direct.call) : null;
  direct?.release();
  const best = Math.max(tflops(ex.ms), lt ? tflops(lt.ms) : 0);
  rows.push({
    shape: s.name, m: s.m, k: s.k, n: s.n,
    engineTflops: tflops(engine.ms), engineGemmExTflops: tflops(engineGemmEx.ms), cublasGemmExTflops: tflops(ex.ms),
    cublasLtTflops: lt ? tflops(lt.ms) : null, ratio: tflops(engine.ms) / best, engineHostUs: engine.hostUs,
    engineVsDirectMaxRelDiff: diff,
  });
  for (const t of [x, w, out, ref]) t.dispose();
}

const device = backend.info.name;
if (args.json) {
  console.log(JSON.stringify({ device, date: new Date().toISOString(), dtype: 'bfloat16', rows }, null, 2));
} else {
  const f = (v: number | null, d = 0) => (v === null ? 'n/a' : v.toFixed(d));
  const head = ['shape', 'M x K x N', 'engine', 'eng GemmEx', 'cublasGemmEx', 'cublasLt', 'ratio', 'host us', 'check'];
  const lines = rows.map((r) => [r.shape, `${r.m}x${r.k}x${r.n}`, f(r.engineTflops), f(r.engineGemmExTflops), f(r.cublasGemmExTflops),
    f(r.cublasLtTflops), f(r.ratio, 2), f(r.engineHostUs, 1), r.engineVsDirectMaxRelDiff < 2e-2 ? 'ok' : `DIFF ${r.engineVsDirectMaxRelDiff.toExponential(1)}`]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`\nbf16 GEMM TFLOP/s on ${device} (CUDA events, medians; ratio = engine / best direct call; bar >= 0.90)`);
  console.log(fmt(head));
  for (const l of lines) console.log(fmt(l));
}
