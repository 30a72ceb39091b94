/** `dimba doctor [--json]`: the GPU, driver and CUDA libraries dimba can use. Exit code 0 with or without a GPU. */
import { formatCudaReport, probeCuda } from '../backends/cuda/doctor.js';

export function runDoctor(args: readonly string[]): number {
  if (args.includes('--help') || args.includes('-h')) {
    console.log('Usage: dimba doctor [--json]\n\nReports the GPU (name, memory, compute capability) and the versions and paths of\n'
      + 'the CUDA driver, NVRTC, cuBLAS, cuBLASLt, cuDNN and NCCL (the last two optional), or says plainly\n'
      + 'that there is no GPU. Libraries are searched in DIMBA_CUDA_LIB_PATH, the system loader path,\n'
      + '/usr/local/cuda/lib64 and the nvidia/*/lib folders of Python installs.\n  --json   print the report as JSON');
    return 0;
  }
  const unknown = args.filter((a) => a !== '--json');
  if (unknown.length > 0) {
    console.error(`dimba doctor: unknown option '${unknown[0]}' (try --help)`);
    return 2;
  }
  const report = probeCuda();
  console.log(args.includes('--json') ? JSON.stringify(report, null, 2) : formatCudaReport(report));
  return 0;
}
