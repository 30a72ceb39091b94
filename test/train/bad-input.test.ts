/**
 * Bad input the other trainer tests do not reach (issue 6, item 7): a disk that fills up in the
 * middle of a run, weights of another architecture that differ both in shapes and in blocks,
 * --resume paths that are not checkpoints of this run, and --model files not written by dimba.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join } from 'node:path';
import { train } from '../../src/train/train.js';
import { listCheckpoints } from '../../src/train/checkpoint-store.js';
import { readTrainerState } from '../../src/train/checkpoint.js';
import { loadTrainedModel } from '../../src/train/load-model.js';
import { CheckpointError } from '../../src/train/errors.js';
import { Dimba } from '../../src/models/dimba/model.js';
import { presetConfig } from '../../src/models/dimba/config.js';
import { saveStateDictSync } from '../../src/nn/index.js';
import { makeTinyDataset, quietReporter, tempDir, tinyConfig } from './helpers.js';

test('a disk that fills up during a run: a clear error, the previous checkpoint intact, and the run resumes from it', async () => {
  const root = tempDir('enospc');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const stageDir = join(root, 'run', 'base');
  const config = tinyConfig(join(root, 'run'), manifest, { steps: 4, checkpoint: { every: 2, keepLast: 3 }, samples: { prompts: [] } });
  let full = false;
  await assert.rejects(train({
    config, reporter: quietReporter(),
    hooks: {
      onStep: (_stage, step) => { full = step === 4; },
      checkpoint: {
        beforeFile: (name) => {
          if (full && name === 'optimizer.safetensors') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        },
      },
    },
  }), (error: unknown) => {
    assert.ok(error instanceof CheckpointError, String(error));
    assert.match(error.message, /cannot save checkpoint step-4 in .*base: ENOSPC: no space left on device, write \(the disk is full: free space or choose another outputDir\)\. The previous checkpoint .*step-2 is intact\./);
    return true;
  });
  assert.deepEqual(listCheckpoints(stageDir).map((c) => c.step), [2]);
  assert.ok(fs.readdirSync(stageDir).every((n) => !n.startsWith('.tmp-')), 'no temporary folder is left');
  assert.equal(readTrainerState(join(stageDir, 'step-2')).step, 2);
  const resumed = await train({ config, reporter: quietReporter(), resume: true });
  assert.equal(resumed.completed, true);
  assert.deepEqual(listCheckpoints(stageDir).map((c) => c.step), [2, 4]);
});

test('weights of another width and depth: every mismatched key is listed, shapes and missing blocks alike', async () => {
  const root = tempDir('arch-shapes');
  const manifest = await makeTinyDataset(join(root, 'data'));
  await train({ config: tinyConfig(join(root, 'small'), manifest, { steps: 2, samples: { prompts: [] } }), reporter: quietReporter() });
  // hiddenSize 24 instead of 16 and two Transformer blocks instead of one.
  const config = tinyConfig(join(root, 'other'), manifest, {
    model: { hiddenSize: 24, layers: 'AAM' }, initFrom: join(root, 'small', 'base', 'step-2'), samples: { prompts: [] },
  });
  await assert.rejects(train({ config, reporter: quietReporter() }), (error: unknown) => {
    assert.ok(error instanceof CheckpointError, String(error));
    assert.match(error.message, /model\.safetensors holds weights of another architecture than this model \(stage 'base': Dimba-XS, layers AAM, hidden 24\)/);
    assert.match(error.message, /shape mismatch for x_embedder\.proj\.weight: module has \[24, 3, 2, 2\], checkpoint has \[16, 3, 2, 2\]/);
    assert.match(error.message, /missing key: blocks\.1\.attn\.qkv\.weight/);
    return true;
  });
  assert.equal(fs.existsSync(join(root, 'other', 'base')), false, 'nothing was trained or saved');
});

test('--resume paths that are not checkpoints of this run are refused by name', async () => {
  const root = tempDir('resume-paths');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const config = tinyConfig(join(root, 'run'), manifest, { steps: 2, samples: { prompts: [] } });
  await train({ config, reporter: quietReporter() });
  const run = (resume: string) => train({ config, reporter: quietReporter(), resume });
  await assert.rejects(run(join(root, 'nowhere')), /--resume .*nowhere: no such checkpoint folder/);
  await assert.rejects(run(join(root, 'data')), /--resume .*data: not a checkpoint \(a step-N folder with trainer\.json\) nor a folder holding one/);
  // A checkpoint of a run whose stages have other names.
  const other = tinyConfig(join(root, 'other'), manifest, { steps: 2, samples: { prompts: [] }, stages: [{ name: 'warmup' }] });
  await train({ config: other, reporter: quietReporter() });
  await assert.rejects(run(join(root, 'other', 'warmup')), /the checkpoint is of stage 'warmup', which the config does not have \(stages: base\)/);
});

test('--model files that dimba train did not write are refused with the reason', async () => {
  const root = tempDir('foreign-model');
  const bare = join(root, 'bare', 'model.safetensors');
  fs.mkdirSync(join(root, 'bare'));
  saveStateDictSync(bare, new Dimba(presetConfig('Dimba-XS', { inputSize: 8, depth: 1, hiddenSize: 16, numHeads: 2, layers: 'AM', dState: 4 })));
  await assert.rejects(loadTrainedModel(bare), /model\.safetensors has no 'dimba\.config' metadata: it was not written by dimba train, so its architecture is unknown/);
  fs.writeFileSync(join(root, 'notes.txt'), 'hello');
  await assert.rejects(loadTrainedModel(join(root, 'notes.txt')), /--model .*notes\.txt: expected a checkpoint folder or a model\.safetensors file/);
  await assert.rejects(loadTrainedModel(join(root, 'bare', '..', '..')), /no checkpoint here/);
});
