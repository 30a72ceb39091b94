/**
 * Exact resume: N steps straight and N/2 steps + stop + resume give identical weights, EMA
 * averages and optimizer state, bit for bit (CPU), with gradient accumulation and min-SNR on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join } from 'node:path';
import { train } from '../../src/train/train.js';
import { listCheckpoints } from '../../src/train/checkpoint-store.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { checkpointBytes, makeTinyDataset, quietReporter, tempDir, tinyConfig } from './helpers.js';

test('N steps straight equal N/2 steps, a stop, and --resume (bitwise)', async () => {
  const root = tempDir('resume');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const overrides = { steps: 6, gradAccumulation: 2, minSnrGamma: 5, checkpoint: { every: 0, keepLast: 3 } };

  const straight = tinyConfig(join(root, 'straight'), manifest, overrides);
  const a = await train({ config: straight, reporter: quietReporter() });
  assert.equal(a.completed, true);

  const split = tinyConfig(join(root, 'split'), manifest, overrides);
  const controller = new AbortController();
  const first = await train({
    config: split, reporter: quietReporter(), signal: controller.signal,
    hooks: { onStep: (_stage, step) => { if (step === 3) controller.abort('test stop'); } },
  });
  assert.equal(first.completed, false);
  assert.deepEqual(listCheckpoints(join(root, 'split', 'base')).map((c) => c.step), [3]);
  const second = await train({ config: split, reporter: quietReporter(), resume: true });
  assert.equal(second.completed, true);
  assert.equal(second.stages[0]!.steps, 6);
  const third = await train({ config: split, reporter: quietReporter(), resume: true });
  assert.deepEqual([third.completed, third.stages.length, third.checkpoint], [true, 0, join(root, 'split', 'base', 'step-6')]);

  const finalA = join(root, 'straight', 'base', 'step-6');
  const finalB = join(root, 'split', 'base', 'step-6');
  const bytesA = checkpointBytes(finalA);
  const bytesB = checkpointBytes(finalB);
  assert.deepEqual([...bytesB.keys()], [...bytesA.keys()]);
  for (const [name, bytes] of bytesA) assert.ok(bytes.equals(bytesB.get(name)!), `${name} differs between the straight and the resumed run`);
  const stateA = JSON.parse(fs.readFileSync(join(finalA, 'trainer.json'), 'utf8')) as Record<string, unknown>;
  const stateB = JSON.parse(fs.readFileSync(join(finalB, 'trainer.json'), 'utf8')) as Record<string, unknown>;
  for (const key of ['generators', 'loader', 'scheduler', 'ema', 'imagesSeen', 'step']) assert.deepEqual(stateB[key], stateA[key], key);

  // The resumed run's metrics read as one run: steps 1..6 once each.
  const steps = new MetricsLog(join(root, 'split', 'metrics.jsonl')).read().map((r) => r.step);
  assert.deepEqual(steps, [1, 2, 3, 4, 5, 6]);
  const lossA = new MetricsLog(join(root, 'straight', 'metrics.jsonl')).read().map((r) => r['loss']);
  const lossB = new MetricsLog(join(root, 'split', 'metrics.jsonl')).read().map((r) => r['loss']);
  assert.deepEqual(lossB, lossA);
});

test('a config whose trajectory changed is refused on resume, naming the fields', async () => {
  const root = tempDir('resume-changed');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const controller = new AbortController();
  await train({
    config: tinyConfig(join(root, 'run'), manifest, { steps: 4 }), reporter: quietReporter(), signal: controller.signal,
    hooks: { onStep: (_s, step) => { if (step === 2) controller.abort(); } },
  });
  await assert.rejects(
    train({ config: tinyConfig(join(root, 'run'), manifest, { steps: 4, optimizer: { lr: 0.01 } }), reporter: quietReporter(), resume: true }),
    /config changed since it was written \(changed: optimizer\)/,
  );
  await assert.rejects(
    train({ config: tinyConfig(join(root, 'run'), manifest, { steps: 4 }), reporter: quietReporter() }),
    /already holds checkpoints .*pass --resume/,
  );
});
