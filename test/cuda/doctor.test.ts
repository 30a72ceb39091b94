/** `dimba doctor [--json]` runs with or without a GPU, exits 0 and says plainly what it found. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CudaReport } from '../../src/backends/cuda/doctor.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function doctor(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, 'doctor', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('doctor --json reports the driver, devices and libraries, and exits 0', () => {
  const r = doctor('--json');
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as CudaReport;
  console.log(`doctor: ${report.summary}`);
  for (const key of ['driver', 'nvrtc', 'cublas', 'cublasLt', 'cudnn', 'nccl'] as const) assert.equal(typeof report[key].found, 'boolean');
  for (const key of ['cudnn', 'nccl'] as const) {
    const lib = report[key];
    assert.equal(lib.optional, true, `${key} is reported as optional`);
    console.log(`doctor: ${key} ${lib.found ? `${lib.version} (${lib.path})` : `absent: ${lib.error}`}`);
    if (lib.found) continue;
    // Absent means not found, with the places looked; anything else must say why it is unusable.
    if (lib.looked) assert.ok(lib.looked.length >= 2 && lib.looked.some((l) => /system loader/.test(l)), JSON.stringify(lib));
    else assert.ok((lib.error ?? '').length > 0, JSON.stringify(lib));
  }
  if (report.cudnn.found) {
    assert.match(report.cudnn.version ?? '', /^\d+\.\d+\.\d+$/);
    assert.ok((report.cudnn.parts ?? []).some((p) => p.endsWith('/libcudnn_graph.so.9')), 'cuDNN graph sub-library loaded from its folder');
    const folder = report.cudnn.parts![0]!.slice(0, report.cudnn.parts![0]!.lastIndexOf('/'));
    for (const p of report.cudnn.parts ?? []) assert.ok(p.startsWith(`${folder}/`), `cuDNN parts from one folder: ${p}`);
  }
  if (report.nccl.found) assert.match(report.nccl.version ?? '', /^2\.\d+\.\d+$/);
  if (report.available) {
    assert.ok(report.devices.length > 0);
    assert.ok(report.devices[0]!.name.length > 0);
    assert.match(report.devices[0]!.computeCapability, /^\d+\.\d+$/);
    assert.ok(report.devices[0]!.totalMemoryBytes > 2 ** 30);
    assert.match(report.nvrtc.version ?? '', /^\d+\.\d+$/);
    assert.match(report.cublas.version ?? '', /^\d+\.\d+\.\d+$/);
    assert.equal(report.cublasLt.found, true, `cuBLASLt next to cuBLAS: ${report.cublasLt.error}`);
    assert.match(report.cublasLt.version ?? '', /^\d+\.\d+\.\d+$/);
    assert.match(report.summary, /^CUDA is ready: \d+ GPU/);
  } else {
    assert.match(report.summary, /^No GPU|could not be loaded/);
    if (!report.driver.found) assert.ok((report.driver.looked ?? []).length > 0, 'a missing driver lists where it was looked for');
  }
});

test('doctor prints a plain sentence first: the GPU found, or that there is none', () => {
  const r = doctor();
  assert.equal(r.status, 0, r.stderr);
  const first = r.stdout.split('\n')[0]!;
  const json = JSON.parse(doctor('--json').stdout) as CudaReport;
  assert.equal(first, json.summary);
  if (json.available) {
    assert.ok(r.stdout.includes(json.devices[0]!.name));
    assert.match(r.stdout, /compute capability \d+\.\d+/);
  } else {
    assert.match(first, /No GPU|could not be loaded/);
    assert.match(r.stdout, /CUDA driver +(not found|unusable|\d)/);
  }
  for (const label of ['cuBLASLt', 'cuDNN', 'NCCL']) assert.match(r.stdout, new RegExp(`^${label} +(\\d|not found|unusable)`, 'm'), label);
  for (const key of ['cudnn', 'nccl'] as const) {
    if (json[key].found) assert.ok(r.stdout.includes(json[key].path!), `${key} path printed`);
    else if (json[key].looked) assert.match(r.stdout, new RegExp(`Searched for ${key === 'cudnn' ? 'cuDNN' : 'NCCL'} in:`));
  }
});

test('doctor rejects unknown options with exit code 2', () => {
  const r = doctor('--bogus');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown option '--bogus'/);
});

test('doctor --compile: compiles every kernel module on a GPU (exit 0), says plainly that it cannot without one (exit 1)', () => {
  const available = (JSON.parse(doctor('--json').stdout) as CudaReport).available;
  const r = doctor('--compile', '--types', 'bf16');
  if (available) {
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Compiling CUDA kernels for .+ \((sm|compute)_\d+\) into /);
    assert.match(r.stdout, /^ {2}scan\.cu\[bf16\] +(already cached|compiled in \d+\.\d s)$/m);
    assert.doesNotMatch(r.stdout, /scan\.cu\[f32\]/, 'only the asked-for type of a per-type module');
    assert.match(r.stdout, /^\d+ kernel modules ready \(\d+ compiled now, \d+\.\d s of NVRTC\)$/m);
  } else {
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^dimba doctor --compile: no usable CUDA GPU here, so nothing was compiled/);
    assert.match(r.stdout, /No GPU|could not be loaded/, 'the report is still printed');
  }
});

test('doctor --types: an unknown storage type, or --types without --compile, is exit code 2 naming it', () => {
  const bad = doctor('--compile', '--types', 'bf16,fp8');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--types: unknown storage type 'fp8' \(one of f32, f64, bf16, f16, i32, i64, bool\)/);
  const alone = doctor('--types', 'bf16');
  assert.equal(alone.status, 2);
  assert.match(alone.stderr, /--types only applies with --compile/);
});

test('the CUDA module imports and registers anywhere; without a GPU, the first CUDA tensor names what is missing', async () => {
  const cuda = await import('../../src/backends/cuda/index.js');
  const { zeros } = await import('../../src/ops/create.js');
  cuda.loadCuda();
  if (cuda.isCudaAvailable()) {
    assert.equal(zeros([2], { device: 'cuda' }).deviceName, 'cuda:0');
  } else {
    assert.throws(() => zeros([2], { device: 'cuda' }),
      (e: unknown) => e instanceof cuda.LibraryNotFoundError || e instanceof cuda.CudaUnavailableError || e instanceof cuda.CudaError);
    assert.throws(() => cuda.useCuda(), /libcuda|no CUDA device|CUDA/);
  }
});
