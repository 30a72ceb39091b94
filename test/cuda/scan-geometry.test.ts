/**
 * The selective-scan launcher's geometry (kernels/scan.ts), which runs on the CPU: lanes per row
 * by state count, chunk and block sizes per compute type, blocks per group, the backward's buffer
 * of chunk-entry states, kernel names and operand strides. scan-emulated.test.ts checks that the
 * kernel templates compute the same geometry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ops from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import {
  SCAN_MAX_STATES, bcStrides, rowStrides, scanGeometry, scanKernelName, scanLayoutFromEnv, scanPairKernelName, scanPairPays,
} from '../../src/backends/cuda/kernels/scan.js';
import { CudaNotImplementedError } from '../../src/backends/cuda/kernels/unimplemented.js';

const base = { batch: 2, dim: 64, len: 100, groups: 1 };

test('lanes per row follow the state count: 4 lanes of 4 states up to 16, then 8, 16, 32 lanes', () => {
  const lanes = (nState: number) => scanGeometry({ ...base, nState }, 'float32').lanes;
  assert.deepEqual([1, 8, 16, 17, 32, 33, 64, 65, 128].map(lanes), [4, 4, 4, 8, 8, 16, 16, 32, 32]);
  for (const nState of [1, 16, 17, 100, 128]) {
    const g = scanGeometry({ ...base, nState }, 'float32');
    assert.equal(g.paddedStates, g.lanes * 4);
    // Enough lanes for the states, and no more than needed (half as many would not hold them).
    assert.ok(g.paddedStates >= nState && (g.lanes === 4 || g.paddedStates / 2 < nState), `N = ${nState}: ${g.lanes} lanes`);
  }
  assert.equal(SCAN_MAX_STATES, 128);
  assert.throws(() => scanGeometry({ ...base, nState: 129 }, 'float32'), (e: unknown) => e instanceof CudaNotImplementedError && /N = 129/.test(String(e)));
  assert.throws(() => scanGeometry({ ...base, nState: 0 }, 'float32'), /N = 0/);
});

test('float32 compute: 128 threads, chunks of 16 steps for up to 32 states, shorter above', () => {
  const g16 = scanGeometry({ ...base, nState: 16 }, 'float32');
  assert.deepEqual([g16.threads, g16.chunk, g16.rowsPerBlock], [128, 16, 32]);
  const g32 = scanGeometry({ ...base, nState: 32 }, 'float32');
  assert.deepEqual([g32.threads, g32.chunk, g32.rowsPerBlock], [128, 16, 16]);
  const g64 = scanGeometry({ ...base, nState: 64 }, 'float32');
  assert.deepEqual([g64.threads, g64.chunk, g64.rowsPerBlock], [128, 8, 8]);
  const g128 = scanGeometry({ ...base, nState: 128 }, 'float32');
  assert.deepEqual([g128.threads, g128.chunk, g128.rowsPerBlock], [128, 4, 4]);
});

test('float64 compute: 64 threads and chunks of 4 steps', () => {
  for (const nState of [4, 16, 30, 64, 128]) {
    const g = scanGeometry({ ...base, nState }, 'float64');
    assert.equal(g.threads, 64);
    assert.equal(g.chunk, 4);
    assert.equal(g.rowsPerBlock, 64 / g.lanes);
  }
});

test('blocks cover each group of channels separately, the last block of a group partly filled', () => {
  // Dimba-L-2 at 256 px: 16 x 2304 rows in blocks of 32 channels.
  const dimba = scanGeometry({ batch: 16, dim: 2304, len: 256, nState: 16, groups: 1 }, 'float32');
  assert.deepEqual([dimba.blocksPerGroup, dimba.blocks, dimba.chunks], [72, 16 * 72, 16]);
  // 80 channels in 2 groups of 40: a full and a partial block per group.
  const grouped = scanGeometry({ batch: 3, dim: 80, len: 20, nState: 16, groups: 2 }, 'float32');
  assert.deepEqual([grouped.blocksPerGroup, grouped.blocks], [2, 3 * 2 * 2]);
  // 37 channels: 2 blocks, the second with 5 channels.
  assert.equal(scanGeometry({ batch: 1, dim: 37, len: 8, nState: 16, groups: 1 }, 'float32').blocks, 2);
  assert.throws(() => scanGeometry({ batch: 1, dim: 10, len: 8, nState: 16, groups: 3 }, 'float32'), /3 groups do not divide dim = 10/);
});

test('the backward stores the state entering every chunk but the first', () => {
  const g = scanGeometry({ batch: 2, dim: 5, len: 70, nState: 16, groups: 1 }, 'float32');
  assert.equal(g.chunks, 5);  // 16 + 16 + 16 + 16 + 6 steps
  assert.equal(g.boundsElements, 4 * 2 * 5 * 16);
  assert.equal(scanGeometry({ batch: 2, dim: 5, len: 16, nState: 16, groups: 1 }, 'float32').boundsElements, 0);
  assert.equal(scanGeometry({ batch: 2, dim: 5, len: 0, nState: 16, groups: 1 }, 'float32').boundsElements, 0);
  // N = 23 pads to 32 states a row.
  const g23 = scanGeometry({ batch: 1, dim: 3, len: 41, nState: 23, groups: 1 }, 'float32');
  assert.equal(g23.boundsElements, 2 * 3 * 32);
});

test('kernel names and operand strides', () => {
  assert.equal(scanKernelName('fwd', 'bfloat16', 4), 'scan_fwd_bf16_4');
  assert.equal(scanKernelName('bwd', 'float64', 32), 'scan_bwd_f64_32');
  assert.equal(scanKernelName('fwd', 'bfloat16', 8, 2), 'scan_fwd_bf16_8x2');
  const x = Tensor.fromHost(new Float64Array(2 * 3 * 4), [2, 4, 3], 'float64');
  assert.deepEqual(rowStrides(x), [12, 3, 1]);
  assert.deepEqual(rowStrides(ops.transpose(x, 1, 2)), [12, 1, 3]);
  assert.deepEqual(rowStrides(ops.flip(ops.transpose(x, 1, 2), [2])), [12, 1, -3]);
  assert.deepEqual(rowStrides(null), [0, 0, 0]);
  assert.deepEqual(bcStrides(ops.unsqueeze(ops.transpose(x, 1, 2), 1)).filter((_, i) => i !== 1), [12, 1, 3]);
});

test('the split layout (8 lanes of 2 states) serves small batches of up to 16 states in float compute', () => {
  const dimba = (batch: number, layout: 'auto' | 'wide' | 'split', sms = 132) =>
    scanGeometry({ batch, dim: 2304, len: 1024, nState: 16, groups: 1 }, 'float32', layout, sms);
  // The sampler's batch 1 (2 rows of the CFG batch): 144 wide blocks, fewer than 3 a multiprocessor.
  const small = dimba(2, 'auto');
  assert.deepEqual([small.lanes, small.statesPerLane, small.paddedStates, small.rowsPerBlock, small.blocks], [8, 2, 16, 16, 288]);
  assert.equal(small.boundsElements, (1024 / 16 - 1) * 2 * 2304 * 16);
  // Batch 16 fills the device with the wide layout; an unknown device count keeps it too.
  assert.equal(dimba(16, 'auto').statesPerLane, 4);
  assert.equal(dimba(2, 'auto', 0).statesPerLane, 4);
  assert.equal(dimba(16, 'split').statesPerLane, 2);
  assert.equal(dimba(2, 'wide').statesPerLane, 4);
  // Beyond 16 states, or in float64, there is no split kernel: wide.
  assert.equal(scanGeometry({ ...base, nState: 17 }, 'float32', 'split').statesPerLane, 4);
  assert.equal(scanGeometry({ ...base, nState: 16 }, 'float64', 'split').statesPerLane, 4);
});

test('DIMBA_SCAN_LAYOUT names a layout or fails naming the value', () => {
  assert.equal(scanLayoutFromEnv(undefined), 'auto');
  assert.equal(scanLayoutFromEnv(' split '), 'split');
  assert.throws(() => scanLayoutFromEnv('narrow'), /DIMBA_SCAN_LAYOUT="narrow": expected auto, wide or split/);
});

test('the two directions share a launch only where twice the batch still takes the split layout', () => {
  const dimba = (batch: number) => ({ batch, dim: 2304, len: 1024, nState: 16, groups: 1 });
  // The sampler's batch 1 (CFG rows 2, 4 doubled): split; its batch 8 (16, 32 doubled): wide, apart.
  assert.equal(scanPairPays(dimba(2), 'float32', 'auto', 132), true);
  assert.equal(scanPairPays(dimba(16), 'float32', 'auto', 132), false);
  assert.equal(scanPairPays(dimba(2), 'float32', 'wide', 132), false);
  assert.equal(scanPairPays(dimba(16), 'float32', 'split', 132), true);
  // No split kernels in float64 or beyond 16 states, and nothing to launch for an empty problem.
  assert.equal(scanPairPays(dimba(2), 'float64', 'auto', 132), false);
  assert.equal(scanPairPays({ ...dimba(2), nState: 32 }, 'float32', 'auto', 132), false);
  assert.equal(scanPairPays({ ...dimba(2), len: 0 }, 'float32', 'auto', 132), false);
  const g = scanGeometry(dimba(2), 'float32', 'auto', 132);
  assert.equal(scanPairKernelName('bfloat16', g), 'scan_fwd_pair_bf16_8x2');
  assert.equal(scanPairKernelName('float32', scanGeometry(dimba(2), 'float32', 'wide', 132)), 'scan_fwd_pair_f32_4');
});
