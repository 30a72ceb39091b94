/**
 * Elementwise and copy kernels on the shapes the Dimba-L-2 profiles spend most time in
 * (bench/NOTES.md, bf16): each case calls the backend kernel directly (no autograd) and times it
 * with CUDA events around every call, median of --reps calls after --warmup calls. GB/s counts
 * the bytes read plus written once (a broadcast operand by its own size); the fraction is of
 * 3.0 TB/s (H100/H200 nominal less what streaming kernels reach). Each case is also timed through
 * the 64-bit kernels the launchers used before 32-bit indexing (still the path past int32
 * offsets), launched the way those launchers did, as the same-run baseline.
 *
 *   node dist/bench/cuda/elementwise.js [--reps 30] [--warmup 5] [--only substring] [--json]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { mergeDims, planCopy, planMap, putDims, putStrides } from '../../src/backends/cuda/layout.js';
import { addressOf } from '../../src/backends/cuda/storage.js';
import { COPY_MODULE, DTYPE_CODE, DTYPE_SUFFIX, ELEMENTWISE_MODULE } from '../../src/backends/cuda/kernels/source.js';
import { BINARY_OPS, UNARY_OPS } from '../../src/backends/cuda/kernels/elementwise.js';
import { itemSize } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { JSON_OPTION, cudaBackend, parseReps, repsOptions, timeEachCall } from './timing.js';
import type { BinaryOp, UnaryOp } from '../../src/backends/backend.js';

const { values: args } = parseArgs({
  options: {
    ...repsOptions(30, 5), only: { type: 'string' }, ...JSON_OPTION,
  },
});
const { reps, warmup } = parseReps(args);
const PEAK = 3.0e12;

const backend = cudaBackend();
const rt = backend.runtime;
const K = backend.kernels;
const time = (fn: () => void) => timeEachCall(backend, fn, { reps, warmup });

/** Distinct elements a view reaches (a broadcast dim counts once). */
function distinctBytes(t: Tensor): number {
  let n = 1;
  t.shape.forEach((s, d) => { if (t.strides[d] !== 0) n *= s; });
  return n * itemSize(t.dtype);
}

// The 64-bit launches the launchers made before (kept for tensors past int32 offsets).
function legacyBinary(op: BinaryOp, a: Tensor, b: Tensor, out: Tensor): void {
  const layout = mergeDims(out.shape, [a.strides, b.strides], op);
  const p = rt.params.begin().i32(BINARY_OPS.indexOf(op));
  putDims(p, layout.sizes);
  putStrides(p, layout.strides[0]!, 0);
  putStrides(p, layout.strides[1]!, 0);
  p.ptr(addressOf(a)).ptr(addressOf(b)).ptr(addressOf(out)).i64(out.numel);
  rt.launch(rt.fn(ELEMENTWISE_MODULE, `binary_${DTYPE_SUFFIX[a.dtype]}`), rt.gridFor(out.numel), 256);
}

function legacyUnary(op: UnaryOp, x: Tensor, out: Tensor): void {
  rt.params.begin().i32(UNARY_OPS.indexOf(op)).ptr(addressOf(x)).ptr(addressOf(out)).i64(out.numel).f64(0).f64(0);
  rt.launch(rt.fn(ELEMENTWISE_MODULE, `unary_${DTYPE_SUFFIX[x.dtype]}`), rt.gridFor(out.numel), 256);
}

function legacyCopy(src: Tensor, out: Tensor): void {
  const layout = mergeDims(out.shape, [src.strides, out.strides], 'copy');
  const p = rt.params.begin();
  putDims(p, layout.sizes);
  if (src.dtype === out.dtype) {
    putStrides(p, layout.strides[0]!, 0);
    putStrides(p, layout.strides[1]!, 0);
    p.ptr(addressOf(src)).ptr(addressOf(out)).i64(out.numel);
    rt.launch(rt.fn(COPY_MODULE, `copy_${itemSize(out.dtype)}`), rt.gridFor(out.numel), 256);
  } else {
    putStrides(p, layout.strides[0]!, 0);
    p.i32(DTYPE_CODE[src.dtype]);
    putStrides(p, layout.strides[1]!, 0);
    p.i32(DTYPE_CODE[out.dtype]).ptr(addressOf(src)).ptr(addressOf(out)).i64(out.numel);
    rt.launch(rt.fn(COPY_MODULE, 'cast'), rt.gridFor(out.numel), 256);
  }
}

function legacyFill(out: Tensor): void {
  const layout = mergeDims(out.shape, [out.strides], 'fill');
  const p = rt.params.begin();
  putDims(p, layout.sizes);
  putStrides(p, layout.strides[0]!, 0);
  p.ptr(addressOf(out)).bits(2, 0n).i64(out.numel);
  rt.launch(rt.fn(COPY_MODULE, 'fill_2'), rt.gridFor(out.numel), 256);
}

interface Case {
  name: string;
  bytes: number;
  plan: string;
  run: () => void;
  legacy: () => void;
}

const bf16 = 'bfloat16' as const;
function rand(shape: number[], dtype: 'bfloat16' | 'float32' = bf16): Tensor {
  return T.keep(T.cast(T.randn(shape, { device: 'cuda' }), dtype));
}
function empty(shape: number[], dtype: 'bfloat16' | 'float32' = bf16): Tensor {
  return T.keep(T.Tensor.empty(shape, dtype, backend));
}
function mapPlan(out: Tensor, ins: Tensor[]): string {
  return planMap(out.shape, [out, ...ins].map((t) => ({ strides: t.strides, address: addressOf(t), bytes: itemSize(t.dtype) }))).kind;
}
function copyPlan(src: Tensor, out: Tensor): string {
  const o = (t: Tensor) => ({ strides: t.strides, address: addressOf(t), bytes: itemSize(t.dtype) });
  return planCopy(out.shape, o(out), o(src), { rows: true, tile: true }).kind;
}

function binaryCase(name: string, op: BinaryOp, a: Tensor, b: Tensor): Case {
  const out = empty([...a.shape]);
  return {
    name, bytes: distinctBytes(a) + distinctBytes(b) + out.numel * 2, plan: mapPlan(out, [a, b]),
    run: () => K.binary(op, a, b, out), legacy: () => legacyBinary(op, a, b, out),
  };
}

function copyCase(name: string, src: Tensor, dtype: 'bfloat16' | 'float32' = bf16): Case {
  const out = empty([...src.shape], dtype);
  return {
    name: `${name} ${src.shape.join('x')} strides ${src.strides.join(',')}`, bytes: distinctBytes(src) + distinctBytes(out),
    plan: copyPlan(src, out), run: () => K.copy(src, out), legacy: () => legacyCopy(src, out),
  };
}

const cases: Case[] = [];
const want = (name: string) => !args.only || name.includes(args.only);
{
  const a = rand([16, 1024, 1152]);
  const b = rand([16, 1024, 1152]);
  cases.push(binaryCase('add [16,1024,1152] contiguous', 'add', a, b));
  const x = T.reshape(a, [16384, 1152]);
  const bias = rand([1152]);
  cases.push(binaryCase('add bias [16384,1152]+[1152]', 'add', x, T.expand(bias, [16384, 1152])));
  const gate = rand([16, 1, 1152]);
  cases.push(binaryCase('mul [16,1024,1152]*[16,1,1152]', 'mul', a, T.expand(gate, [16, 1024, 1152])));
  const s = rand([16, 2304, 1024]);
  const so = empty([16, 2304, 1024]);
  cases.push({
    name: 'silu [16,2304,1024]', bytes: 2 * s.numel * 2, plan: mapPlan(so, [s]),
    run: () => K.unary('silu', s, so, {}), legacy: () => legacyUnary('silu', s, so),
  });
  const f = empty([16, 1024, 1152]);
  cases.push({
    name: 'fill [16,1024,1152]', bytes: f.numel * 2, plan: mapPlan(f, []),
    run: () => K.fill(f, 0), legacy: () => legacyFill(f),
  });
  // Copies from the profiles (source views built with the profiles' strides).
  const wide = rand([16, 1024, 4608]);
  const tr = T.transpose(T.narrow(wide, 2, 0, 2304), 1, 2);
  cases.push(copyCase('transpose', tr));
  cases.push(copyCase('flipped transpose', T.flip(tr, [2])));
  cases.push(copyCase('narrowed slice', T.narrow(rand([32, 4608, 256]), 1, 0, 2304)));
  cases.push(copyCase('permute', T.permute(rand([32, 2304, 1152]), [1, 2, 0])));
  cases.push(copyCase('transpose', T.transpose(rand([32, 256, 1152]), 1, 2)));
  cases.push(copyCase('permute', T.permute(rand([32, 256, 4608]), [2, 0, 1])));
  cases.push(copyCase('cast bf16->f32', a, 'float32'));
  cases.push(copyCase('cast f32->bf16', rand([16, 1024, 1152], 'float32'), bf16));
  cases.push(copyCase('cast bf16->f32 transpose', T.transpose(rand([16, 1152, 1024]), 1, 2), 'float32'));
}

const results: { name: string; plan: string; ms: number; gbs: number; fraction: number; legacyMs: number; speedup: number }[] = [];
for (const c of cases) {
  if (!want(c.name)) continue;
  const ms = time(c.run);
  const legacyMs = time(c.legacy);
  const gbs = c.bytes / (ms * 1e-3) / 1e9;
  results.push({ name: c.name, plan: c.plan, ms, gbs, fraction: (gbs * 1e9) / PEAK, legacyMs, speedup: legacyMs / ms });
}

if (args.json) {
  console.log(JSON.stringify({ device: rt.info.name, reps, peakTBs: PEAK / 1e12, results }, null, 2));
} else {
  console.log(`device: ${rt.info.name}; median of ${reps} calls after ${warmup}; fraction of ${PEAK / 1e12} TB/s`);
  for (const r of results) {
    console.log(`${r.name.padEnd(64)} ${r.plan.padEnd(8)} ${(r.ms * 1e3).toFixed(1).padStart(8)} us ${r.gbs.toFixed(0).padStart(6)} GB/s ${(100 * r.fraction).toFixed(0).padStart(4)} %   64-bit kernels ${(r.legacyMs * 1e3).toFixed(1).padStart(8)} us (x${r.speedup.toFixed(2)})`);
  }
}
