/**
 * Every CUDA kernel source compiles with nvcc for sm_90 (the H100/H200 target NVRTC uses at run
 * time). Runs where nvcc exists (CI has the toolkit but no GPU); skipped with the reason otherwise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ALL_MODULES, kernelSourceFiles } from '../../src/backends/cuda/kernels/source.js';

function findNvcc(): string | null {
  for (const candidate of [process.env.NVCC, '/usr/local/cuda/bin/nvcc']) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  const which = spawnSync('which', ['nvcc'], { encoding: 'utf8' });
  return which.status === 0 && which.stdout.trim() ? which.stdout.trim() : null;
}

const nvcc = findNvcc();
const skip = nvcc ? false : 'nvcc not found (checked $NVCC, /usr/local/cuda/bin/nvcc and PATH)';
if (skip) console.log(`# nvcc compile check skipped: ${skip}`);

test('the kernel folder holds exactly the modules ALL_MODULES lists (so warm-up compiles every one)', () => {
  const names = kernelSourceFiles().map((f) => basename(f)).sort();
  for (const m of ['copy.cu', 'elementwise.cu', 'reduce.cu', 'rows.cu', 'indexing.cu', 'random.cu', 'scan.cu', 'causal-conv1d.cu', 'conv.cu', 'interpolate.cu']) assert.ok(names.includes(m), `${m} missing from ${names}`);
  assert.deepEqual(ALL_MODULES.map((m) => `${m.name}.cu`).sort(), names);
});

test('every .cu kernel source compiles with nvcc -arch=sm_90 --cubin', { skip }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'dimba-nvcc-'));
  try {
    for (const file of kernelSourceFiles()) {
      await t.test(basename(file), () => {
        const cubin = join(out, basename(file).replace(/\.cu$/, '.cubin'));
        const r = spawnSync(nvcc!, ['-arch=sm_90', '--cubin', '-std=c++17', '-Werror', 'all-warnings', '-o', cubin, file], { encoding: 'utf8' });
        assert.equal(r.status, 0, `nvcc failed on ${file}:\n${r.stderr}${r.stdout}`);
        assert.ok(statSync(cubin).size > 0);
      });
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
