/**
 * Host cost of one kernel launch: the same no-op kernel (launch-noop.cuh, three parameters)
 * launched (1) from C with cuLaunchKernel, (2) through koffi with our preallocated parameter
 * block (runtime.launch), and (3) as an engine op (kernels.fill on 16 floats: layout checks,
 * parameter packing, launch). Issue 7's bar: (2) within 1 us of (1). Each figure: median of 7
 * rounds of N back-to-back launches (host time; the GPU keeps pace with an empty kernel).
 *
 *   node dist/bench/cuda/launch-overhead.js [--n 20000] [--json]
 * (needs nvcc for the C side; without it the C column says why it is missing)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend, loadCuda } from '../../src/backends/cuda/index.js';
import { KernelCompiler } from '../../src/backends/cuda/compiler.js';
import { bindNvrtc } from '../../src/backends/cuda/ffi/nvrtc.js';
import { check } from '../../src/backends/cuda/ffi/driver.js';
import { outU64, takeU64 } from '../../src/backends/cuda/ffi/koffi.js';
import { addressOf } from '../../src/backends/cuda/storage.js';
import * as ops from '../../src/ops/index.js';

const { values: args } = parseArgs({ options: { n: { type: 'string', default: '20000' }, json: { type: 'boolean', default: false } } });
const n = Number(args.n);
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
// dist/bench/cuda/x.js -> the sources stay in bench/cuda/ (tsc does not copy them).
const srcDir = here('../../../bench/cuda/');

loadCuda();
const backend = getBackend('cuda');
if (!(backend instanceof CudaBackend)) throw new Error('no CUDA backend');
const rt = backend.runtime;

function medianOfRounds(launchOnce: (i: number) => void): { median: number; min: number; max: number } {
  for (let i = 0; i < 2000; i++) launchOnce(i);
  backend.synchronize();
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) launchOnce(i);
    rounds.push(((performance.now() - t0) * 1000) / n);
    backend.synchronize();
  }
  rounds.sort((a, b) => a - b);
  return { median: rounds[3]!, min: rounds[0]!, max: rounds[6]! };
}

// (2) our FFI path on the same kernel.
const compiler = new KernelCompiler(bindNvrtc());
const source = { name: 'launch-noop.cu', source: readFileSync(`${srcDir}launch-noop.cuh`, 'utf8'), headers: {} };
const image = compiler.compile(source, rt.compileTarget()).image;
rt.activate();
check(rt.api, 'cuModuleLoadData', rt.api.cuModuleLoadData(outU64, image));
const mod = takeU64();
check(rt.api, 'cuModuleGetFunction', rt.api.cuModuleGetFunction(outU64, mod, 'launch_noop'));
const fn = takeU64();
const target = ops.zeros([16], { device: 'cuda' });
const address = addressOf(target);
const ffi = medianOfRounds((i) => {
  rt.params.begin().ptr(address).i64(16 + (i & 1)).f32(1);
  rt.launch(fn, 1, 32);
});

// (3) a whole engine kernel call.
const engine = medianOfRounds((i) => backend.kernels.fill(target, i));

// (1) C.
let c: { median: number; min: number; max: number } | string;
try {
  execFileSync('nvcc', ['-O2', '-o', '/tmp/dimba-launch-c', `${srcDir}launch_c.cu`, '-L/usr/local/cuda/lib64/stubs', '-lcuda'], { stdio: 'pipe' });
  const out = JSON.parse(execFileSync('/tmp/dimba-launch-c', [String(n)], { encoding: 'utf8' })) as { c_us_per_launch: number; min: number; max: number };
  c = { median: out.c_us_per_launch, min: out.min, max: out.max };
} catch (error) {
  c = `C side unavailable: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
}

const result = {
  device: backend.info.name, launches: n,
  cUs: typeof c === 'string' ? null : c.median, ffiUs: ffi.median, engineFillUs: engine.median,
  ffiMinusCUs: typeof c === 'string' ? null : ffi.median - c.median,
  bar: 'ffi - C <= 1 us', pass: typeof c === 'string' ? null : ffi.median - c.median <= 1,
  note: typeof c === 'string' ? c : undefined,
};
if (args.json) console.log(JSON.stringify(result));
else {
  console.log(`${result.device}: host time per launch of a no-op kernel (median of 7 x ${n})`);
  console.log(`  from C (cuLaunchKernel)            ${typeof c === 'string' ? c : `${c.median.toFixed(2)} us (min ${c.min.toFixed(2)}, max ${c.max.toFixed(2)})`}`);
  console.log(`  through koffi (runtime.launch)     ${ffi.median.toFixed(2)} us (min ${ffi.min.toFixed(2)}, max ${ffi.max.toFixed(2)})`);
  console.log(`  engine kernel call (kernels.fill)  ${engine.median.toFixed(2)} us`);
  if (result.ffiMinusCUs !== null) console.log(`  koffi - C = ${result.ffiMinusCUs.toFixed(2)} us (bar <= 1 us: ${result.pass ? 'pass' : 'FAIL'})`);
}
