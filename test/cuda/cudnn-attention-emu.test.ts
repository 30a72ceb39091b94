/**
 * kernels/cudnn-attention.cu (the fix-ups around cuDNN's masked attention) without a GPU: the
 * kernels are compiled for the host against the SIMT emulation (emu/simt.h) by
 * emu/cudnn-attention-emu.cpp and run on operands written here, in the launcher's geometry
 * (EMPTY_ROWS_PER_BLOCK query rows a block, several blocks a batch row):
 *   cudnn_attn_empty_rows_*: batch rows whose mask is -inf at every key get O = 0 (every element
 *     of their H x Lq x E rows, through O's [B, L, H, E] strides, nothing else of the storage) and
 *     lse = -inf; other batch rows are left bit for bit, whatever their mask pattern;
 *   cudnn_attn_bwd_stats: lse with -inf turned into +inf, everything else (NaN included) copied.
 * test/cuda/cudnn-attention-masked.test.ts runs them on the GPU, through the launcher.
 * Needs g++ (C++20); skipped with the reason otherwise.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMPTY_ROWS_PER_BLOCK } from '../../src/backends/cuda/cudnn-attention/run.js';
import { buildSimtEmulation } from './emu/host-compiler.js';

const { skip, binary, work } = buildSimtEmulation({
  kernel: 'cudnn-attention.cu', harness: 'cudnn-attention-emu.cpp', binaryName: 'cudnn-attention-emu', label: 'emulated cuDNN attention fix-ups',
});

const toBin = (v: ArrayLike<number>) => Buffer.from(Float64Array.from(v).buffer);
const fromBin = (path: string) => {
  const b = readFileSync(path);
  return new Float64Array(b.buffer, b.byteOffset, b.length / 8);
};

interface Case {
  readonly name: string;
  readonly type: 'bf16' | 'f16';
  readonly b: number;
  readonly h: number;
  readonly lq: number;
  readonly lk: number;
  readonly e: number;
  /** Mask row step (elements; keys at stride 1). */
  readonly maskBatch: number;
  /** Which batch rows have no valid key. */
  readonly empty: readonly number[];
}

const CASES: Case[] = [
  // H * Lq = 600 rows: three blocks a batch row, the last one partly used.
  { name: 'bf16, split heads, batch row 1 fully masked', type: 'bf16', b: 3, h: 2, lq: 300, lk: 13, e: 8, maskBatch: 16, empty: [1] },
  { name: 'f16, every batch row fully masked', type: 'f16', b: 2, h: 3, lq: 90, lk: 5, e: 16, maskBatch: 8, empty: [0, 1] },
  { name: 'bf16, no row fully masked (nothing may change)', type: 'bf16', b: 2, h: 2, lq: 200, lk: 120, e: 8, maskBatch: 120, empty: [] },
];

let seed = 31;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
/** Values exact in bf16 and f16 (multiples of 1/8 in [-4, 4)), so the storage round trip is the identity. */
const exact = () => Math.floor(rand() * 64 - 32) / 8;

function runCase(c: Case): void {
  const dir = join(work, c.name.replace(/[^a-z0-9]+/gi, '-'));
  mkdirSync(dir, { recursive: true });
  // O stored [B, L, H, E] and read as [B, H, L, E], with a spare row of E at the end the kernel must not touch.
  const [ob, oh, ol] = [c.lq * c.h * c.e, c.e, c.h * c.e];
  const o = Array.from({ length: c.b * ob + c.e }, exact);
  const lse = Array.from({ length: c.b * c.h * c.lq }, () => exact());
  lse[3] = Number.NaN; // a NaN stays NaN in the backward's Stats
  lse[5] = -Infinity; // and a -inf becomes +inf there (the empty-rows fix-up leaves it as it is)
  const mask: number[] = [];
  for (let bi = 0; bi < c.b; bi++) {
    for (let j = 0; j < c.maskBatch; j++) {
      // Padding past Lk is 0 (a valid-looking key): the kernel must read only Lk keys.
      if (j >= c.lk) mask.push(0);
      else if (c.empty.includes(bi)) mask.push(-Infinity);
      else mask.push(j % 3 === 1 || j === c.lk - 1 ? 0 : -Infinity); // valid keys scattered, not a prefix
    }
  }
  writeFileSync(join(dir, 'spec.txt'), `${c.type} ${c.b} ${c.h} ${c.lq} ${c.lk} ${c.e} ${c.maskBatch} 1 ${ob} ${oh} ${ol} ${EMPTY_ROWS_PER_BLOCK}\n`);
  writeFileSync(join(dir, 'mask.bin'), toBin(mask));
  writeFileSync(join(dir, 'o.bin'), toBin(o));
  writeFileSync(join(dir, 'lse.bin'), toBin(lse));
  const r = spawnSync(binary, [dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `cudnn-attention-emu failed: ${r.stderr}`);
  const oOut = fromBin(join(dir, 'o.bin'));
  const lseOut = fromBin(join(dir, 'lse.bin'));
  const stats = fromBin(join(dir, 'stats.bin'));

  const expectO = [...o];
  const expectLse = [...lse];
  for (const bi of c.empty) {
    for (let hi = 0; hi < c.h; hi++) {
      for (let i = 0; i < c.lq; i++) {
        for (let x = 0; x < c.e; x++) expectO[bi * ob + hi * oh + i * ol + x] = 0;
        expectLse[(bi * c.h + hi) * c.lq + i] = -Infinity;
      }
    }
  }
  assert.deepEqual(Array.from(oOut), expectO, 'O: zero rows exactly where the batch row has no valid key');
  assert.deepEqual(Array.from(lseOut), expectLse, 'lse: -inf exactly where the batch row has no valid key');
  assert.deepEqual(Array.from(stats), lse.map((l) => (l === -Infinity ? Infinity : l)), 'Stats: -inf -> +inf, the rest copied');
}

for (const c of CASES) test(`cudnn-attention.cu fix-ups: ${c.name}`, { skip }, () => runCase(c));

test('the backward\'s Stats turn a fully masked batch row\'s -inf into +inf', { skip }, () => {
  // lse as the forward leaves it (-inf over batch row 1); bwd_stats runs on the lse read in.
  const c = CASES[0]!;
  const dir = join(work, 'stats-after-fixup');
  mkdirSync(dir, { recursive: true });
  const lse = Array.from({ length: c.b * c.h * c.lq }, (_, i) => (Math.floor(i / (c.h * c.lq)) === 1 ? -Infinity : exact()));
  writeFileSync(join(dir, 'spec.txt'), `${c.type} ${c.b} ${c.h} ${c.lq} ${c.lk} ${c.e} ${c.maskBatch} 1 0 0 0 ${EMPTY_ROWS_PER_BLOCK}\n`);
  writeFileSync(join(dir, 'mask.bin'), toBin(new Array(c.b * c.maskBatch).fill(0)));
  writeFileSync(join(dir, 'o.bin'), toBin(new Array(8).fill(1)));
  writeFileSync(join(dir, 'lse.bin'), toBin(lse));
  const r = spawnSync(binary, [dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `cudnn-attention-emu failed: ${r.stderr}`);
  const stats = fromBin(join(dir, 'stats.bin'));
  const per = c.h * c.lq;
  assert.ok(stats.subarray(per, 2 * per).every((x) => x === Infinity));
  assert.deepEqual(Array.from(stats.subarray(0, per)), lse.slice(0, per));
});
