/**
 * The trainer's step scopes (src/train/stage.ts): every tensor a step creates is released by the
 * end of the step (gradients when zeroGrad clears them), so live tensor memory does not grow over
 * the steps even without garbage collection; gradient accumulation, EMA and clipping included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as T from '../../src/index.js';
import { train } from '../../src/train/train.js';
import { makeTinyDataset, quietReporter, tempDir, tinyConfig } from './helpers.js';

test('live tensor bytes do not grow over training steps', async () => {
  const root = tempDir('memory');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const config = tinyConfig(join(root, 'run'), manifest, { steps: 8, gradAccumulation: 2, gradClip: 1, checkpoint: { every: 0, keepLast: 1 } });
  const seen: number[] = [];
  const result = await train({ config, reporter: quietReporter(), hooks: { onStep: () => seen.push(T.memoryStats('cpu').liveBytes) } });
  assert.equal(result.completed, true);
  assert.equal(seen.length, 8);
  // From step 2 on (step 1 creates the optimizer state), a step leaves exactly what it found; the
  // garbage collector may meanwhile release tensors made before training, never add any.
  for (let i = 2; i < seen.length; i++) assert.ok(seen[i]! <= seen[1]!, `live bytes after each step: ${seen.join(', ')}`);
});
