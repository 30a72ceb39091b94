/**
 * Deterministic release on the GPU (src/tensor/lifetime.ts): a Dimba-XS training step run as the
 * trainer runs it (T.tidy scopes, then zeroGrad) hands every block it took back to the caching
 * allocator before it returns, with no garbage collection and no yield to the event loop; and
 * backward releases saved activations as it passes them, so its peak stays near what the
 * forward left for it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { smallDimbaStep } from '../helpers/train-step.js';
import { cudaSkip } from './helpers.js';

const MiB = 2 ** 20;

/** Bytes the caching allocator has handed to tensors (the live-storage count under the CPU stand-in). */
function allocated(): number {
  const s = T.memoryStats('cuda');
  return s.allocator?.['allocatedBytes'] ?? s.liveBytes;
}

function peakAllocated(): number {
  const s = T.memoryStats('cuda');
  return s.allocator?.['peakAllocatedBytes'] ?? s.peakLiveBytes;
}

test('a Dimba-XS training step on CUDA returns allocator bytes to the pre-step level, synchronously', { skip: cudaSkip }, () => {
  const run = smallDimbaStep({ device: 'cuda', batch: 4, config: { inputSize: 32 } });
  run.step(true); // creates the AdamW state and the model's cached positional embedding
  const levels: number[] = [];
  const peaks: number[] = [];
  for (let i = 0; i < 3; i++) {
    const before = allocated();
    T.resetPeakMemoryStats('cuda');
    const loss = run.step(true);
    assert.ok(Number.isFinite(loss), `step ${i + 2} loss ${loss}`);
    levels.push(allocated() - before);
    peaks.push(peakAllocated() - before);
  }
  console.log(`# Dimba-XS 32x32 batch 4 training step on CUDA: peak ${(peaks[0]! / MiB).toFixed(2)} MiB above the pre-step level; left after each step: ${levels.join(', ')} bytes`);
  assert.deepEqual(levels, [0, 0, 0], 'allocated bytes after each step minus before it');
  assert.ok(T.memoryStats('cuda').liveStorages > 0);
});

test('backward on CUDA peaks near the activations its forward saved (no pile-up of gradients)', { skip: cudaSkip }, () => {
  const run = smallDimbaStep({ device: 'cuda', batch: 4, config: { inputSize: 32 } });
  run.step(true);
  const start = allocated();
  let saved = 0;
  let backwardPeak = 0;
  T.tidy(() => {
    // The forward's own scope keeps only what backward needs.
    const loss = T.tidy(() => run.forwardLoss());
    saved = allocated() - start;
    T.resetPeakMemoryStats('cuda');
    loss.backward();
    backwardPeak = peakAllocated() - start;
  });
  run.optimizer.zeroGrad();
  assert.equal(allocated(), start, 'everything released after zeroGrad');
  const params = run.model.parameters().reduce((n, p) => n + p.numel * 4, 0);
  console.log(`# Dimba-XS on CUDA: saved for backward ${(saved / MiB).toFixed(2)} MiB, backward peak ${(backwardPeak / MiB).toFixed(2)} MiB, parameters ${(params / MiB).toFixed(2)} MiB`);
  // Gradients of all parameters plus a few activation-sized gradients in flight; before the engine
  // released consumed gradients early this was far above (every reduction's copy stayed until the end).
  assert.ok(backwardPeak <= saved * 1.35 + params, `backward peak ${backwardPeak} vs saved ${saved} + parameters ${params}`);
});
