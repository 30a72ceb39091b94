/**
 * Shared by the CUDA-kernel emulation tests (attention-emu, optim-emu, scan-emulated, causal-conv1d-emu,
 * modulate-emu, reduce-emu): where the emulator sources live, which host C++ compiler builds them, and
 * the build of a kernel .cu against the SIMT emulation (simt.h).
 */
import assert from 'node:assert/strict';
import { existsSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kernelSourceDir } from '../../../src/backends/cuda/kernels/source.js';

/** test/cuda/emu/ in the source tree (the compiled tests run from dist/, where tsc copies no .h/.cpp). */
export const EMU_DIR = fileURLToPath(new URL('../../../../test/cuda/emu/', import.meta.url));

/** $CXX, /usr/bin/g++ or g++ on PATH; null when none is there. */
export function findCxx(): string | null {
  for (const c of [process.env.CXX, '/usr/bin/g++']) if (c && existsSync(c)) return c;
  const which = spawnSync('which', ['g++'], { encoding: 'utf8' });
  return which.status === 0 && which.stdout.trim() ? which.stdout.trim() : null;
}

export const NO_CXX = 'g++ not found (checked $CXX, /usr/bin/g++ and PATH)';

/**
 * common.cuh's inline PTX and the host code that stands in for it (the emulator's half conversions,
 * emu/simt.h). Any asm left after these is an error, so a new PTX use in common.cuh cannot slip into
 * a host build that would silently mean something else.
 */
const PTX_REPLACEMENTS: ReadonlyArray<readonly [RegExp, string]> = [
  [/asm\("cvt\.f32\.f16.*?\);/s, 'f = emu_half_to_float(v.bits);'],
  [/asm\("cvt\.rn\.f16\.f32.*?\);/s, 'r.bits = emu_float_to_half(v);'],
];

export interface SimtEmulationOptions {
  /** The kernel source in src/backends/cuda/kernels/, e.g. 'modulate.cu'. */
  readonly kernel: string;
  /** The harness in test/cuda/emu/ that includes it, e.g. 'modulate-emu.cpp'. */
  readonly harness: string;
  /** File name of the built binary inside the work folder. */
  readonly binaryName: string;
  /** What the skip line calls these kernels, e.g. 'emulated modulation kernels'. */
  readonly label: string;
}

export interface SimtEmulation {
  /** false, or why the tests are skipped (no g++, or one without C++20). */
  readonly skip: string | false;
  /** The harness binary ('' when skipped). */
  readonly binary: string;
  /** A temp folder removed at exit, for the cases' inputs and outputs ('' when there is no g++). */
  readonly work: string;
}

/**
 * Compiles a harness against copies of a kernel .cu and common.cuh, with common.cuh's inline PTX
 * swapped for host code. Prints the skip reason when the build cannot happen here; fails (assert)
 * when g++ with C++20 rejects the sources.
 */
export function buildSimtEmulation(o: SimtEmulationOptions): SimtEmulation {
  const cxx = findCxx();
  if (!cxx) return skipped(o, NO_CXX, '');
  const work = mkdtempSync(join(tmpdir(), `dimba-${o.binaryName}-`));
  process.on('exit', () => rmSync(work, { recursive: true, force: true }));
  const kernels = kernelSourceDir();
  copyFileSync(join(kernels, o.kernel), join(work, o.kernel));
  let common = readFileSync(join(kernels, 'common.cuh'), 'utf8');
  for (const [ptx, host] of PTX_REPLACEMENTS) common = common.replace(ptx, host);
  assert.ok(!/\basm\b/.test(common),
    'common.cuh has inline PTX the host emulation does not replace: extend PTX_REPLACEMENTS in test/cuda/emu/host-compiler.ts');
  writeFileSync(join(work, 'common.cuh'), common);
  const binary = join(work, o.binaryName);
  const r = spawnSync(cxx, ['-std=c++20', '-O1', '-pthread', '-w', `-I${EMU_DIR}`, `-I${work}`, '-o', binary,
    join(EMU_DIR, o.harness)], { encoding: 'utf8' });
  if (r.status !== 0 && /barrier|atomic_ref|c\+\+20/.test(r.stderr)) {
    return skipped(o, `g++ lacks C++20 (<barrier>, std::atomic_ref): ${r.stderr.split('\n')[0]}`, work);
  }
  assert.equal(r.status, 0, `g++ failed on ${o.harness} with ${o.kernel}:\n${r.stderr}`);
  return { skip: false, binary, work };
}

function skipped(o: SimtEmulationOptions, reason: string, work: string): SimtEmulation {
  console.log(`# ${o.label} skipped: ${reason}`);
  return { skip: reason, binary: '', work };
}
