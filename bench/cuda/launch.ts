/**
 * First numbers for the CUDA backend (no tuning yet): host cost per kernel launch and per small
 * op, device copy bandwidth (contiguous and transposed), and a bf16 cuBLAS GEMM. Device times by
 * CUDA events after a warm-up; medians of several runs. Usage: node dist/bench/cuda/launch.js
 */
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend, CudaEvent, loadCuda } from '../../src/backends/cuda/index.js';
import * as ops from '../../src/ops/index.js';

loadCuda();
const backend = getBackend('cuda');
if (!(backend instanceof CudaBackend)) throw new Error('cuda device did not give a CudaBackend');
const rt = backend.runtime;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median device milliseconds of fn over `reps` runs, after one warm-up run. */
function deviceMs(fn: () => void, reps = 5): number {
  fn();
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const a = CudaEvent.create(rt.api).record(rt.stream);
    fn();
    const b = CudaEvent.create(rt.api).record(rt.stream);
    b.synchronize();
    times.push(b.elapsedSince(a));
    a.destroy();
    b.destroy();
  }
  return median(times);
}

const rows: [string, string][] = [];
const tiny = ops.zeros([16], { device: 'cuda' });
for (let i = 0; i < 2000; i++) backend.kernels.fill(tiny, i);
backend.synchronize();
let t0 = performance.now();
const launches = 20000;
for (let i = 0; i < launches; i++) backend.kernels.fill(tiny, i);
const hostLaunch = ((performance.now() - t0) * 1000) / launches;
backend.synchronize();
rows.push(['fill kernel, host time per launch', `${hostLaunch.toFixed(2)} us`]);

const x = ops.randn([64], { device: 'cuda' });
for (let i = 0; i < 500; i++) ops.add(x, x).dispose();
t0 = performance.now();
const opsCount = 5000;
for (let i = 0; i < opsCount; i++) ops.add(x, x).dispose();
backend.synchronize();
rows.push(['ops.add on 64 floats, per op (alloc + launch)', `${(((performance.now() - t0) * 1000) / opsCount).toFixed(2)} us`]);

const n = 1 << 28;
const big = ops.randn([n], { device: 'cuda' });
const dst = ops.empty([n], { device: 'cuda' });
const copyMs = deviceMs(() => backend.kernels.copy(big, dst));
rows.push(['copy 1 GiB contiguous (cuMemcpyDtoD)', `${((2 * 4 * n) / copyMs / 1e6).toFixed(0)} GB/s`]);
const sq = ops.reshape(big, [1 << 14, 1 << 14]);
const sqT = ops.transpose(sq, 0, 1);
const outT = ops.empty([1 << 14, 1 << 14], { device: 'cuda' });
const tMs = deviceMs(() => backend.kernels.copy(sqT, outT));
rows.push(['copy 1 GiB transposed (strided copy kernel)', `${((2 * 4 * n) / tMs / 1e6).toFixed(0)} GB/s`]);
const half = ops.empty([n], { dtype: 'bfloat16', device: 'cuda' });
const castMs = deviceMs(() => backend.kernels.copy(big, half));
rows.push(['cast 1 GiB float32 -> bfloat16 (cast kernel)', `${((6 * n) / castMs / 1e6).toFixed(0)} GB/s`]);
for (const t of [big, dst, outT, half]) t.dispose();

const m = 8192;
const a = ops.randn([m, m], { dtype: 'bfloat16', device: 'cuda' });
const b = ops.randn([m, m], { dtype: 'bfloat16', device: 'cuda' });
const gemmMs = deviceMs(() => ops.matmul(a, b).dispose());
rows.push(['bf16 GEMM 8192^3 (cuBLAS, fp32 accumulate)', `${((2 * m ** 3) / gemmMs / 1e9).toFixed(0)} TFLOP/s`]);
const af = ops.randn([4096, 4096], { device: 'cuda' });
const f32Ms = deviceMs(() => ops.matmul(af, af).dispose());
rows.push(['fp32 GEMM 4096^3 (no TF32)', `${((2 * 4096 ** 3) / f32Ms / 1e9).toFixed(1)} TFLOP/s`]);

console.log(`\n${backend.info.name}`);
for (const [what, value] of rows) console.log(`  ${what.padEnd(48)} ${value}`);
