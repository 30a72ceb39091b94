/** NaN losses: a bad step is skipped with a warning; too many in a row stop the run. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { train } from '../../src/train/train.js';
import { TrainingError } from '../../src/train/errors.js';
import { listCheckpoints } from '../../src/train/checkpoint-store.js';
import { makeTinyDataset, quietReporter, tempDir, tinyConfig } from './helpers.js';

test('a NaN loss skips the step with a warning and training goes on', async () => {
  const root = tempDir('nan');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const reporter = quietReporter();
  let calls = 0;
  const result = await train({
    config: tinyConfig(join(root, 'run'), manifest, { steps: 4, samples: { prompts: [] } }), reporter,
    hooks: { lossValue: (_stage, _step, value) => (++calls === 2 ? NaN : value) },
  });
  assert.equal(result.completed, true);
  assert.equal(result.stages[0]!.steps, 4);
  assert.equal(result.stages[0]!.skippedSteps, 1);
  assert.equal(reporter.warnings.length, 1);
  assert.match(reporter.warnings[0]!, /step 2: loss is NaN; step skipped \(1 in a row; training stops at 5\)/);
  assert.ok(reporter.events.some((e) => e.event === 'skip' && e.step === 2));
});

test('K NaN losses in a row stop the run with an error; no checkpoint of a bad state is written', async () => {
  const root = tempDir('nan-stop');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const reporter = quietReporter();
  await assert.rejects(train({
    config: tinyConfig(join(root, 'run'), manifest, { steps: 10, maxNanSteps: 3, checkpoint: { every: 1 } }), reporter,
    hooks: { lossValue: (_stage, step, value) => (step >= 3 ? Infinity : value) },
  }), (error: unknown) => error instanceof TrainingError && /NaN or infinite for 3 steps in a row \(maxNanSteps\) at step 3/.test(error.message));
  assert.equal(reporter.warnings.length, 3);
  assert.deepEqual(listCheckpoints(join(root, 'run', 'base')).map((c) => c.step), [1, 2]);
});
