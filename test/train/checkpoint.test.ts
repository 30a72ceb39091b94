/**
 * Crash safety of checkpoints: a failure or a crash in the middle of a write, a full disk and an
 * unwritable output folder leave the previous checkpoint loadable; weights of another
 * architecture are refused with every mismatched key listed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { train } from '../../src/train/train.js';
import { listCheckpoints, writeCheckpoint, jsonFile } from '../../src/train/checkpoint-store.js';
import { loadWeights, readTrainerState } from '../../src/train/checkpoint.js';
import { CheckpointError } from '../../src/train/errors.js';
import { Dimba } from '../../src/models/dimba/model.js';
import { presetConfig } from '../../src/models/dimba/config.js';
import { makeTinyDataset, quietReporter, tempDir, tinyConfig } from './helpers.js';

async function trainedRun(prefix: string, steps = 2): Promise<{ root: string; manifest: string; stageDir: string }> {
  const root = tempDir(prefix);
  const manifest = await makeTinyDataset(join(root, 'data'));
  await train({ config: tinyConfig(join(root, 'run'), manifest, { steps, checkpoint: { every: 0, keepLast: 3 }, samples: { prompts: [] } }), reporter: quietReporter() });
  return { root, manifest, stageDir: join(root, 'run', 'base') };
}

function assertLoadable(stageDir: string, step: number): void {
  const entries = listCheckpoints(stageDir);
  assert.deepEqual(entries.map((e) => e.step), [step]);
  assert.equal(readTrainerState(entries[0]!.path).step, step);
  assert.ok(fs.readdirSync(stageDir).every((n) => !n.startsWith('.tmp-')), 'no temporary folder is left behind');
}

test('a failure in the middle of a checkpoint write leaves the previous checkpoint loadable', async () => {
  const root = tempDir('midwrite');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const stageDir = join(root, 'run', 'base');
  const config = tinyConfig(join(root, 'run'), manifest, { steps: 4, checkpoint: { every: 2, keepLast: 3 }, samples: { prompts: [] } });
  // The run saves step 2, then dies while writing the second file of its step-4 checkpoint.
  let armed = false;
  let written = 0;
  await assert.rejects(train({
    config, reporter: quietReporter(),
    hooks: {
      onStep: (_stage, step) => { armed = step === 4; },
      checkpoint: { beforeFile: () => { if (armed && ++written === 2) throw new Error('injected failure'); } },
    },
  }), (error: unknown) => error instanceof CheckpointError && /injected failure/.test(error.message) && /previous checkpoint .*step-2 is intact/.test(error.message));
  assertLoadable(stageDir, 2);
  const model = new Dimba({ ...presetConfig('Dimba-XS'), hiddenSize: 16, numHeads: 2, layers: 'AM', depth: 1, dState: 4, expand: 1, inChannels: 3, inputSize: 8, captionChannels: 16, captionTokens: 8 });
  await loadWeights(model, join(stageDir, 'step-2', 'model.safetensors'));
  // Resuming from it works.
  const resumed = await train({ config, reporter: quietReporter(), resume: true });
  assert.equal(resumed.completed, true);
  assert.deepEqual(listCheckpoints(stageDir).map((e) => e.step), [2, 4]);
});

test('a process killed in the middle of a write leaves the previous checkpoint; the next save cleans up', async () => {
  const { stageDir } = await trainedRun('crash');
  const script = fileURLToPath(new URL('./crash-writer.js', import.meta.url));
  const child = spawnSync(process.execPath, [script, stageDir], { encoding: 'utf8' });
  assert.equal(child.status, 7, child.stderr);
  assert.ok(fs.readdirSync(stageDir).some((n) => n.startsWith('.tmp-step-')), 'the crash left its temporary folder');
  assert.deepEqual(listCheckpoints(stageDir).map((e) => e.step), [2]);
  await writeCheckpoint(stageDir, 9, [jsonFile('trainer.json', { note: 'next save' })]);
  assert.deepEqual(listCheckpoints(stageDir).map((e) => e.step), [2, 9]);
  assert.ok(fs.readdirSync(stageDir).every((n) => !n.startsWith('.tmp-')));
});

test('a full disk gives a clear error and keeps the previous checkpoint', async () => {
  const { stageDir } = await trainedRun('full', 2);
  const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  await assert.rejects(
    writeCheckpoint(stageDir, 3, [jsonFile('optimizer.json', {}), jsonFile('trainer.json', {})], { beforeFile: (name) => { if (name === 'trainer.json') throw full; } }),
    /cannot save checkpoint step-3 .*no space left on device, write \(the disk is full: free space or choose another outputDir\)\. The previous checkpoint .*step-2 is intact/,
  );
  assertLoadable(stageDir, 2);
});

test('an unusable output folder is reported before training starts', async () => {
  const root = tempDir('unwritable');
  const manifest = await makeTinyDataset(join(root, 'data'), 6);
  fs.writeFileSync(join(root, 'blocker'), 'a file where the output folder should be');
  await assert.rejects(
    train({ config: tinyConfig(join(root, 'blocker', 'run'), manifest), reporter: quietReporter() }),
    /output folder .*blocker.*run is not usable: .*\(a file is in the way of the output folder\)/,
  );
});

test('weights of another architecture are refused, listing the mismatched keys', async () => {
  const { root, manifest, stageDir } = await trainedRun('arch');
  // Same data, a different layer pattern ("AAM": two Transformer blocks) starting from that checkpoint.
  const config = tinyConfig(join(root, 'other'), manifest, { model: { layers: 'AAM' }, initFrom: join(stageDir, 'step-2') });
  await assert.rejects(train({ config, reporter: quietReporter() }), (error: unknown) => {
    assert.ok(error instanceof CheckpointError, String(error));
    assert.match(error.message, /holds weights of another architecture than this model \(stage 'base': Dimba-XS, layers AAM/);
    assert.match(error.message, /missing key: blocks\.1\.attn\.qkv\.weight/);
    return true;
  });
});
