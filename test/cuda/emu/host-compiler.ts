/**
 * Shared by the CUDA-kernel emulation tests (attention-emu, optim-emu, scan-emulated): where the
 * emulator sources live and which host C++ compiler builds them.
 */
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** test/cuda/emu/ in the source tree (the compiled tests run from dist/, where tsc copies no .h/.cpp). */
export const EMU_DIR = fileURLToPath(new URL('../../../../test/cuda/emu/', import.meta.url));

/** $CXX, /usr/bin/g++ or g++ on PATH; null when none is there. */
export function findCxx(): string | null {
  for (const c of [process.env.CXX, '/usr/bin/g++']) if (c && existsSync(c)) return c;
  const which = spawnSync('which', ['g++'], { encoding: 'utf8' });
  return which.status === 0 && which.stdout.trim() ? which.stdout.trim() : null;
}

export const NO_CXX = 'g++ not found (checked $CXX, /usr/bin/g++ and PATH)';
