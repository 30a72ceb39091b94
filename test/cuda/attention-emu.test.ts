/**
 * attention.cu's kernels on the CPU: test/cuda/emu runs each CUDA thread as a fiber and implements
 * ldmatrix, mma.sync, cp.async and the reductions from the PTX ISA's fragment layouts, so the
 * kernels' indexing (fragments, tails, head-dim padding, masks, strides, the backward's query split,
 * cp.async groups and barriers) is checked here without a GPU, with the launch geometry
 * attention-plan.ts computes. Needs g++ (C++20); skipped with the reason otherwise. The GPU test
 * (attention.test.ts) checks the same kernels on the hardware.
 *
 * Tolerance, per element against a float64 reference from the same rounded inputs: |a - e| <= c u B
 * with u the storage type's unit roundoff (2^-8 bfloat16, 2^-11 float16) and B the sum of the
 * magnitudes of the products that make the element (a dot product's error scales with it, so
 * elements that cancel to almost nothing are not held to their own size): out = sum_j P V with
 * B = sum_j P |V|; dV with sum_i P |dO|; dQ, dK with the dS terms bounded by P (|dP| + sum |O dO|).
 * Each rounding to the storage type costs at most u: P for the tensor-core product and the result
 * make out, dV <= 2u B; dS, Delta (from the rounded output) and the result make dQ, dK <= 3u B;
 * half a u more allows for float32 accumulation (c = 2.5 and 3.5). Scheduling is randomised per
 * case (emu.h), and cp.async copies land at issue or at their wait, so missing barriers and waits
 * corrupt results. The log-sum-exp is float32 throughout: |a - e| <= 1e-5 (1 + |e|).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelSourceDir } from '../../src/backends/cuda/kernels/source.js';
import { planAttention, type FlashDType } from '../../src/backends/cuda/kernels/attention-plan.js';
import { EMU_DIR, NO_CXX, findCxx } from './emu/host-compiler.js';

const cxx = findCxx();
const skip = cxx ? false : NO_CXX;
if (skip) console.log(`# attention emulation skipped: ${skip}`);

const emuDir = EMU_DIR;

interface Case {
  dtype: FlashDType;
  b: number; h: number; lq: number; lk: number; e: number;
  mask: 'none' | 'keys' | 'keysadd' | 'full' | 'fulladd';
  layout: 'bhle' | 'blhe';
  /** cp.async copies at issue (true) or at their wait (false). */
  early: boolean;
  /** Multiprocessors the plan assumes: few keep the backward unsplit, many split short key ranges. */
  sms: number;
}

/** Per output [max |a - e| / bound, ||a - e|| / ||e||]. */
interface Errors { out: [number, number]; lse: [number, number]; dq: [number, number]; dk: [number, number]; dv: [number, number];
  nonfinite: number; maskedRows: number; maskedRowErrors: number }

const base: Case = { dtype: 'bfloat16', b: 2, h: 2, lq: 17, lk: 17, e: 72, mask: 'none', layout: 'bhle', early: false, sms: 1 };
const cases: Case[] = [
  { ...base, e: 8, lq: 1, lk: 1 },
  { ...base, e: 64, lq: 17, lk: 120, mask: 'keys', sms: 132 },
  { ...base, e: 72, lq: 130, lk: 120, mask: 'keys', layout: 'blhe', sms: 132 },
  { ...base, e: 72, lq: 257, lk: 257, layout: 'blhe', early: true },
  { ...base, e: 88, lq: 120, lk: 17, mask: 'keysadd' },
  { ...base, e: 128, lq: 33, lk: 150, mask: 'full', early: true },
  { ...base, e: 72, lq: 70, lk: 45, mask: 'fulladd', sms: 132 },
  { ...base, dtype: 'float16', e: 72, lq: 257, lk: 120, mask: 'keys', layout: 'blhe', sms: 132 },
  { ...base, dtype: 'float16', e: 88, lq: 1, lk: 257, mask: 'full' },
  { ...base, dtype: 'float16', e: 128, lq: 120, lk: 1, early: true, sms: 132 },
  { ...base, b: 1, h: 1, e: 72, lq: 1000, lk: 120, mask: 'keys', layout: 'blhe', sms: 132 },
  { ...base, b: 3, h: 1, e: 16, lq: 40, lk: 0 },
];

test('attention kernels on the CPU emulator match a float64 reference', { skip, timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dimba-attn-emu-'));
  try {
    copyFileSync(join(kernelSourceDir(), 'attention.cu'), join(dir, 'attention.cu'));
    for (const f of ['common.cuh', 'emu.h', 'attention-emu.h', 'attention-harness.cpp']) copyFileSync(join(emuDir, f), join(dir, f));
    const exe = join(dir, 'harness');
    const build = spawnSync(cxx!, ['-std=c++20', '-O1', '-DDIMBA_EMU', '-o', exe, join(dir, 'attention-harness.cpp')], { encoding: 'utf8' });
    assert.equal(build.status, 0, `g++ failed:\n${build.stderr}`);
    for (const c of cases) {
      const name = `${c.dtype} B${c.b} H${c.h} Lq${c.lq} Lk${c.lk} E${c.e} mask ${c.mask} ${c.layout}${c.early ? ' early copies' : ''}`;
      await t.test(name, () => {
        const p = planAttention(c.dtype, { batch: c.b, heads: c.h, lq: c.lq, lk: c.lk, e: c.e, ev: c.e }, c.sms);
        const args = [c.dtype === 'bfloat16' ? 'bf16' : 'f16', c.b, c.h, c.lq, c.lk, c.e, c.mask, c.layout, 1 + cases.indexOf(c), c.early ? 1 : 0,
          p.forward.grid, p.forward.threads, p.forward.sharedBytes, p.backward.grid, p.backward.threads, p.backward.sharedBytes,
          p.backward.splits, p.backward.dqDirect ? 1 : 0, p.prep.grid, p.prep.threads].map(String);
        const r = spawnSync(exe, args, { encoding: 'utf8' });
        assert.equal(r.status, 0, `harness failed (${args.join(' ')}):\n${r.stderr}`);
        const got = JSON.parse(r.stdout) as Errors;
        const u = c.dtype === 'bfloat16' ? 2 ** -8 : 2 ** -11;
        const detail = `${r.stdout.trim()} (splits ${p.backward.splits}${p.backward.dqDirect ? ', dQ stored directly' : ''})`;
        assert.equal(got.nonfinite, 0, `non-finite values: ${detail}`);
        assert.equal(got.maskedRowErrors, 0, `fully masked rows must give out 0, lse -inf, dq 0: ${detail}`);
        if (c.mask === 'keys' || c.mask === 'full') assert.ok(got.maskedRows > 0, 'the case has fully masked rows');
        assert.ok(got.lse[0] <= 1e-5, `lse: ${detail}`);
        for (const [g, c] of [['out', 2.5], ['dv', 2.5], ['dq', 3.5], ['dk', 3.5]] as const) {
          assert.ok(got[g][0] <= c * u, `${g}: error above ${c}u times its bound: ${detail}`);
        }
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
