/**
 * Every CUDA kernel source compiles with nvcc for sm_90 (the H100/H200 target NVRTC uses at run
 * time). Runs where nvcc exists (CI has the toolkit but no GPU); skipped with the reason otherwise.
 * A module compiled per storage type (KernelModule.typeSplit) is compiled part by part, as NVRTC
 * compiles it, and its parts are checked against the whole: each of the module's kernels is in
 * the part its name selects (source.ts kernelPart), and no part defines a kernel the module lacks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ALL_MODULES, kernelPart, kernelSourceFiles, partDefines } from '../../src/backends/cuda/kernels/source.js';

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

/** Compiles `file` to a cubin (with extra options); returns the kernels its PTX defines. */
function compileCubin(file: string, dir: string, extra: readonly string[] = []): string[] {
  mkdirSync(dir, { recursive: true });
  const cubin = join(dir, basename(file).replace(/\.cu$/, '.cubin'));
  const r = spawnSync(nvcc!, ['-arch=sm_90', '--cubin', '-std=c++17', '-Werror', 'all-warnings', ...extra,
    '--keep', '--keep-dir', dir, '-o', cubin, file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `nvcc ${extra.join(' ')} failed on ${file}:\n${r.stderr}${r.stdout}`);
  assert.ok(statSync(cubin).size > 0);
  const ptx = readdirSync(dir).filter((f) => f.endsWith('.ptx'));
  assert.equal(ptx.length, 1, `expected one PTX file in ${dir}, found ${ptx.join(', ')}`);
  return [...readFileSync(join(dir, ptx[0]!), 'utf8').matchAll(/^\.visible \.entry (\w+)/gm)].map((m) => m[1]!);
}

/** Every kernel a whole .cu file defines, from nvcc's preprocessed text (fast: no compilation). */
function declaredKernels(file: string): string[] {
  const r = spawnSync(nvcc!, ['-E', '-std=c++17', file], { encoding: 'utf8', maxBuffer: 256 << 20 });
  assert.equal(r.status, 0, `nvcc -E failed on ${file}:\n${r.stderr}`);
  const text = r.stdout;
  const kernels: string[] = [];
  // extern "C" __attribute__((global)) void [__attribute__((launch_bounds(...)))] name(
  for (const m of text.matchAll(/extern\s+"C"\s+(?:__global__|__attribute__\(\(global\)\))\s+void\s+/g)) {
    let i = m.index! + m[0].length;
    while (text.startsWith('__attribute__', i) || text.startsWith('__launch_bounds__', i)) {
      i = text.indexOf('(', i);
      for (let depth = 0; ; ++i) {
        if (text[i] === '(') depth++;
        else if (text[i] === ')' && --depth === 0) break;
      }
      i++;
      while (/\s/.test(text[i]!)) i++;
    }
    const name = /^\w+/.exec(text.slice(i, i + 200));
    assert.ok(name, `could not read a kernel name at ${JSON.stringify(text.slice(m.index!, m.index! + 120))}`);
    kernels.push(name[0]);
  }
  return kernels;
}

test('every .cu kernel source compiles with nvcc -arch=sm_90 --cubin (type-split modules part by part)', { skip }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'dimba-nvcc-'));
  try {
    for (const file of kernelSourceFiles()) {
      const name = basename(file, '.cu');
      const module = ALL_MODULES.find((m) => m.name === name);
      await t.test(basename(file), () => {
        if (!module?.typeSplit) {
          compileCubin(file, join(out, name));
          return;
        }
        const declared = declaredKernels(file);
        assert.ok(declared.length > 0, `no kernels found in ${file}`);
        const inParts = new Set<string>();
        for (const part of module.typeSplit) {
          const defined = compileCubin(file, join(out, `${name}-${part}`), partDefines(part));
          for (const k of defined) {
            assert.ok(declared.includes(k), `${name}.cu[${part}] defines ${k}, which the whole module does not`);
            inParts.add(k);
          }
          // Its own type's kernels, and the untyped ones (which every part carries).
          for (const k of declared.filter((d) => kernelPart(d) === part || kernelPart(d) === null)) {
            assert.ok(defined.includes(k), `${k} belongs to ${name}.cu[${part}] (kernelPart), which does not define it`);
          }
        }
        for (const k of declared) {
          const part = kernelPart(k);
          assert.ok(part === null || module.typeSplit.includes(part), `${k}: ${name}.cu has no ${part} part`);
          assert.ok(inParts.has(k), `${k} is in no part of ${name}.cu`);
        }
      });
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
