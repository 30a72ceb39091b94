/**
 * `dimba doctor [--json] [--compile [--types LIST]]`: the GPU, driver and CUDA libraries dimba can
 * use; with --compile, also compiles every CUDA kernel module into the disk cache so later runs
 * start at once. Exit code 0 with or without a GPU, except that --compile without one is 1.
 */
import { parseArgs } from 'node:util';
import { formatCudaReport, probeCuda } from '../backends/cuda/doctor.js';
import { KERNEL_PARTS, type KernelPart } from '../backends/cuda/kernels/source.js';
import { parseKernelParts } from '../backends/cuda/warm.js';

const HELP = 'Usage: dimba doctor [--json] [--compile [--types LIST]]\n\n'
  + 'Reports the GPU (name, memory, compute capability) and the versions and paths of\n'
  + 'the CUDA driver, NVRTC, cuBLAS, cuBLASLt, cuDNN and NCCL (the last two optional), or says plainly\n'
  + 'that there is no GPU. Libraries are searched in DIMBA_CUDA_LIB_PATH, the system loader path,\n'
  + '/usr/local/cuda/lib64 and the nvidia/*/lib folders of Python installs.\n'
  + '  --json           print the report as JSON\n'
  + '  --compile        compile every CUDA kernel module for this GPU now (NVRTC, into the disk cache\n'
  + '                   DIMBA_CACHE_DIR or ~/.cache/dimba), so the first train/generate does not wait\n'
  + `  --types LIST     with --compile: the storage types to compile the per-type modules for\n`
  + `                   (comma list of ${KERNEL_PARTS.join(', ')}; default all; bf16,f32,i64,bool covers bf16 runs)`;

export async function runDoctor(args: readonly string[]): Promise<number> {
  let values: { json?: boolean; compile?: boolean; types?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: { json: { type: 'boolean' }, compile: { type: 'boolean' }, types: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    console.error(`dimba doctor: ${unknown ? `unknown option '${unknown[1]}'` : message} (try --help)`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.types !== undefined && !values.compile) {
    console.error('dimba doctor: --types only applies with --compile');
    return 2;
  }
  let parts: KernelPart[];
  try {
    parts = parseKernelParts(values.types ?? KERNEL_PARTS.join(','));
  } catch (error) {
    console.error(`dimba doctor: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  const report = probeCuda();
  console.log(values.json ? JSON.stringify(report, null, 2) : formatCudaReport(report));
  if (!values.compile) return 0;
  if (!report.available) {
    console.error('dimba doctor --compile: no usable CUDA GPU here, so nothing was compiled (the report above says why)');
    return 1;
  }
  return compileKernels(parts, values.json === true);
}

async function compileKernels(parts: readonly KernelPart[], json: boolean): Promise<number> {
  const { loadCuda, CudaBackend, warmKernels } = await import('../backends/cuda/index.js');
  const { getBackend } = await import('../backends/registry.js');
  const { defaultCacheDir } = await import('../backends/cuda/compiler.js');
  loadCuda();
  const backend = getBackend('cuda');
  if (!(backend instanceof CudaBackend)) throw new Error('the cuda device did not give a CudaBackend');
  const target = backend.runtime.compileTarget();
  // With --json the report stays the only thing on stdout; progress goes to stderr.
  const say = json ? (m: string) => console.error(m) : (m: string) => console.log(m);
  say(`\nCompiling CUDA kernels for ${backend.info.name} (${target.kind === 'cubin' ? 'sm' : 'compute'}_${target.arch}) into ${defaultCacheDir()}:`);
  const warmed = warmKernels(backend.runtime, parts, (r) => {
    say(`  ${r.module.padEnd(24)} ${r.fromCache ? 'already cached' : `compiled in ${(r.compileMs / 1000).toFixed(1)} s`}`);
  });
  const compiled = warmed.filter((r) => !r.fromCache);
  say(`${warmed.length} kernel modules ready (${compiled.length} compiled now, ${(compiled.reduce((a, r) => a + r.compileMs, 0) / 1000).toFixed(1)} s of NVRTC)`);
  return 0;
}
