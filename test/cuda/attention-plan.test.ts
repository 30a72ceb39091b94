/**
 * The fused attention's launch logic without a GPU: which calls it declines, head-dim padding,
 * grids that cover every row, shared memory within an H100's limit, the backward's query split,
 * which operand layouts are read in place, mask kinds and the DIMBA_FLASH switch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backwardSharedBytes, backwardSplits, backwardTiles, forwardSharedBytes, forwardTiles, headStrides, maskKind, maskStrides,
  paddedHeadDim, planAttention, unsupportedReason, MASK_FULL, MASK_KEYS, MASK_NONE, MAX_HEAD_DIM, type AttentionShape, type DeviceLimits,
} from '../../src/backends/cuda/kernels/attention-plan.js';
import { attentionKernels, flashDisabled } from '../../src/backends/cuda/kernels/attention.js';
import { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { expand, permute, reshape, zeros } from '../../src/ops/index.js';

const H100: DeviceLimits = { arch: 90, multiprocessors: 132, maxSharedPerBlock: 227 * 1024 };
const shape = (over: Partial<AttentionShape> = {}): AttentionShape => ({ batch: 2, heads: 16, lq: 1024, lk: 1024, e: 72, ev: 72, ...over });

test('the head dim pads up to the next multiple of 16', () => {
  for (const [e, d] of [[8, 16], [16, 16], [64, 64], [72, 80], [88, 96], [120, 128], [128, 128]]) {
    assert.equal(paddedHeadDim(e!), d, `E ${e}`);
  }
});

test('declined calls name their reason; supported ones give null', () => {
  assert.equal(unsupportedReason('bfloat16', shape(), null, H100), null);
  assert.equal(unsupportedReason('float16', shape({ e: 88, ev: 88 }), 'float16', H100), null);
  assert.equal(unsupportedReason('bfloat16', shape({ e: 8, ev: 8, lq: 1, lk: 1 }), null, H100), null);
  assert.equal(unsupportedReason('bfloat16', shape({ e: 128, ev: 128 }), null, H100), null);
  const declined: [string | null, string][] = [
    [unsupportedReason('float32', shape(), null, H100), 'float32'],
    [unsupportedReason('float64', shape(), null, H100), 'float64'],
    [unsupportedReason('bfloat16', shape({ e: 76, ev: 76 }), null, H100), 'head dim 76'],
    [unsupportedReason('bfloat16', shape({ e: 136, ev: 136 }), null, H100), 'head dim 136'],
    [unsupportedReason('bfloat16', shape({ ev: 64 }), null, H100), 'head dims differ'],
    [unsupportedReason('bfloat16', shape(), 'float32', H100), 'mask dtype float32'],
    [unsupportedReason('bfloat16', shape(), null, { ...H100, arch: 75 }), 'compute capability 7.5'],
    [unsupportedReason('bfloat16', shape({ e: 128, ev: 128 }), null, { ...H100, maxSharedPerBlock: 99 * 1024 }), 'shared memory'],
  ];
  for (const [reason, expected] of declined) {
    assert.ok(reason !== null && reason.includes(expected), `expected a reason naming "${expected}", got ${reason}`);
  }
});

test('every head dim the kernels take fits an H100 block and uses whole warps', () => {
  for (let e = 8; e <= MAX_HEAD_DIM; e += 8) {
    const d = paddedHeadDim(e);
    const p = planAttention('bfloat16', shape({ e, ev: e }), 132);
    assert.equal(p.headDim, d);
    assert.equal(p.forward.kernel, `attn_fwd_bf16_d${d}`);
    assert.equal(p.backward.kernel, `attn_bwd_bf16_d${d}`);
    assert.equal(p.forward.sharedBytes, forwardSharedBytes(d));
    assert.equal(p.backward.sharedBytes, backwardSharedBytes(d));
    assert.ok(p.forward.sharedBytes <= H100.maxSharedPerBlock && p.backward.sharedBytes <= H100.maxSharedPerBlock, `D ${d}`);
    for (const l of [p.forward, p.backward, p.prep]) assert.ok(l.threads % 32 === 0 && l.threads <= 1024);
    // Warps own 16-row slices: 2 per forward warp, 1 per backward warp.
    assert.equal(p.forward.queriesPerBlock, (p.forward.threads / 32) * 32);
    assert.equal(p.backward.keysPerBlock, (p.backward.threads / 32) * 16);
    assert.equal(p.forward.queriesPerBlock, forwardTiles(d).queries);
    assert.equal(p.backward.queriesPerTile, backwardTiles(d).queries);
  }
  assert.equal(planAttention('float16', shape(), 132).forward.kernel, 'attn_fwd_f16_d80');
});

test('grids cover every query row and key exactly once per split', () => {
  for (const s of [shape({ lq: 1, lk: 1 }), shape({ lq: 17, lk: 120 }), shape({ lq: 257, lk: 1000, batch: 3, heads: 5 }), shape({ lq: 4096, lk: 120, batch: 4 })]) {
    const p = planAttention('bfloat16', s, 132);
    const bh = s.batch * s.heads;
    assert.equal(p.forward.grid % bh, 0);
    const qTiles = p.forward.grid / bh;
    assert.ok(qTiles * p.forward.queriesPerBlock >= s.lq && (qTiles - 1) * p.forward.queriesPerBlock < s.lq);
    const kTiles = p.backward.grid / bh / p.backward.splits;
    assert.ok(Number.isInteger(kTiles));
    assert.ok(kTiles * p.backward.keysPerBlock >= s.lk && (kTiles - 1) * p.backward.keysPerBlock < s.lk);
    const queryTiles = Math.ceil(s.lq / p.backward.queriesPerTile);
    const per = Math.ceil(queryTiles / p.backward.splits);
    assert.ok((p.backward.splits - 1) * per < queryTiles, 'the last split has queries');
    assert.ok(p.prep.grid * (p.prep.threads / 32) >= bh * s.lq);
  }
});

test('the backward splits queries only when key tiles leave the GPU short of blocks', () => {
  const self = planAttention('bfloat16', shape({ batch: 16 }), 132);
  assert.equal(self.backward.splits, 1);
  const selfLong = planAttention('bfloat16', shape({ batch: 4, lq: 4096, lk: 4096 }), 132);
  assert.equal(selfLong.backward.splits, 1);
  // Cross-attention over 120 caption keys: one key tile per head.
  const cross = planAttention('bfloat16', shape({ batch: 4, lq: 4096, lk: 120 }), 132);
  assert.ok(cross.backward.splits > 1);
  assert.ok(cross.backward.grid >= 2 * 132, `grid ${cross.backward.grid}`);
  // One key tile: dQ rows have a single contributor and skip the float32 accumulator.
  assert.equal(cross.backward.dqDirect, true);
  assert.equal(self.backward.dqDirect, false);
  assert.equal(planAttention('bfloat16', shape({ lk: 128 }), 132).backward.dqDirect, true);
  assert.equal(planAttention('bfloat16', shape({ lk: 129 }), 132).backward.dqDirect, false);
  assert.equal(backwardSplits(1000, 16, 132), 1);
  assert.equal(backwardSplits(4, 1, 132), 1, 'one query tile cannot split');
  assert.equal(backwardSplits(0, 8, 132), 1);
  // 10 tiles over 4 splits would be 3+3+3+1; over 7 it would leave the 7th empty: splits shrink to equal shares.
  for (const [blocks, tiles] of [[40, 10], [1, 7], [3, 100]]) {
    const s = backwardSplits(blocks!, tiles!, 132);
    const per = Math.ceil(tiles! / s);
    assert.ok((s - 1) * per < tiles!, `${blocks} blocks, ${tiles} tiles: ${s} splits`);
    assert.ok(s <= tiles!);
  }
});

test('operands are read in place when rows stay 16-byte aligned', () => {
  const c = zeros([2, 3, 5, 72], { dtype: 'bfloat16' });
  assert.deepEqual(headStrides(c.shape, c.strides, c.offset), [3 * 5 * 72, 5 * 72, 72]);
  // Heads split from [B, L, H * E] rows (the model's layout): read in place.
  const rows = zeros([2, 5, 3 * 72], { dtype: 'bfloat16' });
  const split = permute(reshape(rows, [2, 5, 3, 72]), [0, 2, 1, 3]);
  assert.deepEqual(headStrides(split.shape, split.strides, split.offset), [5 * 3 * 72, 72, 3 * 72]);
  assert.equal(headStrides([2, 3, 5, 72], [1080, 360, 72, 1], 4), null, 'offset not a multiple of 8');
  assert.equal(headStrides([2, 3, 5, 72], [2160, 720, 144, 2], 0), null, 'strided head dim');
  assert.equal(headStrides([2, 3, 5, 72], [1080, 360, 76, 1], 0), null, 'row stride not a multiple of 8');
  assert.equal(headStrides([2, 3, 72], [216, 72, 1], 0), null, 'not 4-d');
  // Size-1 dims are never stepped: an expanded batch or head of 1 keeps any stride.
  assert.deepEqual(headStrides([1, 1, 5, 72], [3, 5, 72, 1], 0), [0, 0, 72]);
});

test('masks that do not vary over queries are read as one bias row per (batch, head)', () => {
  assert.equal(maskKind(null), MASK_NONE);
  const keyPad = expand(zeros([2, 1, 1, 7], { dtype: 'bfloat16' }), [2, 4, 9, 7]);
  assert.equal(maskKind(keyPad), MASK_KEYS);
  assert.deepEqual(maskStrides(keyPad), [7, 0, 0, 1]);
  const perHead = expand(zeros([2, 4, 1, 7]), [2, 4, 9, 7]);
  assert.equal(maskKind(perHead), MASK_KEYS);
  const full = expand(zeros([9, 7]), [2, 4, 9, 7]);
  assert.equal(maskKind(full), MASK_FULL);
  assert.deepEqual(maskStrides(full), [0, 0, 7, 1]);
  // One query row: its stride is never used.
  assert.equal(maskKind(zeros([2, 4, 1, 7])), MASK_KEYS);
});

test('DIMBA_FLASH=0 leaves the fused kernels out; otherwise they register without touching the GPU', () => {
  assert.equal(flashDisabled({ DIMBA_FLASH: '0' }), true);
  assert.equal(flashDisabled({ DIMBA_FLASH: '1' }), false);
  assert.equal(flashDisabled({}), false);
  const noRuntime = (): CudaRuntime => { throw new Error('the runtime must not be needed to register'); };
  assert.deepEqual(Object.keys(attentionKernels(noRuntime, { DIMBA_FLASH: '0' })), []);
  const fused = attentionKernels(noRuntime, {});
  assert.equal(typeof fused.attention, 'function');
  assert.equal(typeof fused.attentionBackward, 'function');
  assert.equal(typeof fused.attentionSupports, 'function');
});
