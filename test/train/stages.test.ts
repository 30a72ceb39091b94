/**
 * Stages run in order: base training, resolution adaptation from the base checkpoint (the
 * positional embedding interpolated for the larger grid), quality tuning on the scored subset at a
 * lower learning rate; resuming after a stop in a later stage goes on from there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { train } from '../../src/train/train.js';
import { listCheckpoints } from '../../src/train/checkpoint-store.js';
import { readModelMetadata, readTrainerState } from '../../src/train/checkpoint.js';
import { loadTrainedModel } from '../../src/train/load-model.js';
import { makeTinyDataset, quietReporter, tempDir, tinyConfig } from './helpers.js';

test('base → resolution adaptation → quality tuning, with a stop and resume in the middle', async () => {
  const root = tempDir('stages');
  const manifest = await makeTinyDataset(join(root, 'data'), 12);
  const out = join(root, 'run');
  const config = tinyConfig(out, manifest, {
    steps: 2,
    samples: { prompts: [] },
    checkpoint: { every: 1, keepLast: 1 },
    stages: [
      { name: 'base' },
      { name: 'hires', kind: 'resolution', data: { resolution: 16 } },
      { name: 'curated', kind: 'quality', data: { minScore: 5 }, optimizer: { lr: 0.0005 } },
    ],
  });
  const controller = new AbortController();
  const first = await train({
    config, reporter: quietReporter(), signal: controller.signal,
    hooks: { onStep: (stage, step) => { if (stage === 'hires' && step === 1) controller.abort(); } },
  });
  assert.equal(first.completed, false);
  assert.deepEqual(first.stages.map((s) => [s.name, s.steps, s.completed]), [['base', 2, true], ['hires', 1, false]]);

  const reporter = quietReporter();
  const second = await train({ config, reporter, resume: true });
  assert.equal(second.completed, true);
  assert.deepEqual(second.stages.map((s) => [s.name, s.steps]), [['hires', 2], ['curated', 2]]);
  const starts = reporter.events.filter((e) => e.event === 'stage');
  assert.deepEqual(starts.map((e) => e.event === 'stage' && [e.stage, e.resumed, e.from?.endsWith(join('hires', 'step-1')) ?? false]), [['hires', true, true], ['curated', false, false]]);

  const base = readModelMetadata(join(out, 'base', 'step-2', 'model.safetensors')).config;
  const hires = readModelMetadata(join(out, 'hires', 'step-2', 'model.safetensors')).config;
  assert.deepEqual([base.inputSize, base.peInterpolation], [8, 1]);
  assert.deepEqual([hires.inputSize, hires.peInterpolation], [16, 2]);
  const curated = listCheckpoints(join(out, 'curated')).at(-1)!;
  const state = readTrainerState(curated.path);
  assert.match(state.loader.source, /score >= 5 \(5 rows\)/); // even-numbered train rows score 6
  assert.equal((state.trajectory['optimizer'] as { lr: number }).lr, 0.0005);

  const loaded = await loadTrainedModel(out);
  assert.equal(loaded.checkpoint, curated.path);
  const images = loaded.pipeline.generate({ prompts: ['a red square'], steps: 2, sampler: 'ddim', guidanceScale: 2, seed: 1, height: 16, width: 16 });
  assert.deepEqual(images.shape, [1, 3, 16, 16]);
  assert.ok(images.toArray().every(Number.isFinite));
});
