/**
 * Single-thread throughput of micro-kernel shapes on pre-packed operands (no packing, no
 * threads): the ceiling each tile shape can reach (best of 10 runs). Usage:
 *   node dist/bench/cpu/kernel-variants.js [n=1024] [mr x nr / unroll ...]
 */
import { encodeGemmModule, instantiateGemm, MAX_PAGES, PAGE_BYTES, type KernelShape } from '../../src/backends/cpu/gemm/kernel.js';
import { wasm } from '../../src/backends/cpu/gemm/wasm-api.js';
import { roundUp } from '../../src/backends/cpu/gemm/blocked.js';

function measure(shape: KernelShape, n: number, kcBlock: number, mcBlock: number): number {
  const mp = roundUp(n, shape.mr);
  const np = roundUp(n, shape.nr);
  const bytes = (mp * n + n * np + mp * np) * 4 + 64;
  const memory = new wasm.Memory({ initial: Math.ceil(bytes / PAGE_BYTES), maximum: MAX_PAGES, shared: true });
  const gemm = instantiateGemm(new wasm.Module(encodeGemmModule(shape)), memory);
  const f32 = new Float32Array(memory.buffer);
  for (let i = 0; i < f32.length; i++) f32[i] = Math.random() - 0.5;
  const aBase = 64;
  const bBase = aBase + mp * n * 4;
  const cBase = bBase + n * np * 4;
  const run = (): void => {
    for (let k0 = 0; k0 < n; k0 += kcBlock) {
      const kc = Math.min(kcBlock, n - k0);
      for (let i0 = 0; i0 < mp; i0 += mcBlock) {
        const mc = Math.min(mcBlock, mp - i0);
        gemm.macro(aBase + (k0 * mp + i0 * kc) * 4, bBase + k0 * np * 4, cBase + i0 * np * 4, np * 4,
          mc / shape.mr, np / shape.nr, kc, k0 === 0 ? 1 : 0);
      }
    }
  };
  for (let i = 0; i < 3; i++) run();
  const times: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
  }
  // Best run: the machine is shared, and interference only ever slows a run down.
  return (2 * n * n * n) / (Math.min(...times) * 1e6);
}

const n = Number(process.argv[2] ?? 1024);
const specs = process.argv.slice(3);
const shapes: KernelShape[] = (specs.length > 0 ? specs : ['4x8/4', '5x8/4', '6x8/4', '6x8/2', '6x8/8', '3x12/4', '4x12/4', '2x16/4'])
  .map((s) => {
    const m = /^(\d+)x(\d+)\/(\d+)(s?)$/.exec(s);
    if (m === null) throw new Error(`bad shape ${s}, expected e.g. 6x8/4 (or 6x8/4s: counter tested after every step)`);
    return { mr: Number(m[1]), nr: Number(m[2]), kUnroll: Number(m[3]), splitSteps: m[4] === 's' };
  });
for (const shape of shapes) {
  const mc = roundUp(Number(process.env.MC ?? 120), shape.mr);
  const kc = Number(process.env.KC ?? 256);
  console.log(`${shape.mr}x${shape.nr}/u${shape.kUnroll}${shape.splitSteps === true ? 's' : ''}  kc=${kc} mc=${mc}: ${measure(shape, n, kc, mc).toFixed(2)} GFLOP/s`);
}
