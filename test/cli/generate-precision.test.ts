/**
 * `dimba generate --precision`: bf16 is refused on the CPU (it is a CUDA mode) and unknown
 * values are named; the library path casts the denoiser and records nothing else differently.
 * (The CUDA side — bf16 sampling close to float32 — is in test/cuda/train.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { train } from '../../src/train/train.js';
import { loadTrainedModel } from '../../src/train/load-model.js';
import { makeTinyDataset, quietReporter, tempDir, tinyConfig } from '../train/helpers.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('--precision: bf16 on the CPU and unknown values give usage errors naming them', async () => {
  const root = tempDir('precision');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const run = await train({ config: tinyConfig(join(root, 'run'), manifest, { steps: 2 }), reporter: quietReporter() });
  const bf16 = spawnSync(process.execPath, [MAIN, 'generate', 'a red square', '--model', run.checkpoint!, '--precision', 'bf16', '--out', join(root, 'a.png')], { encoding: 'utf8' });
  assert.equal(bf16.status, 2, bf16.stderr);
  assert.match(bf16.stderr, /--precision bf16 needs a CUDA device/);
  const odd = spawnSync(process.execPath, [MAIN, 'generate', 'a red square', '--model', run.checkpoint!, '--precision', 'fp8', '--out', join(root, 'b.png')], { encoding: 'utf8' });
  assert.equal(odd.status, 2, odd.stderr);
  assert.match(odd.stderr, /--precision must be float32 or bf16, got 'fp8'/);

  const loaded = await loadTrainedModel(run.checkpoint!, { precision: 'bf16' });
  const dtypes = new Set(loaded.pipeline.model.parameters().map((p) => p.dtype));
  assert.deepEqual([...dtypes].sort(), ['bfloat16', 'float32'], 'bf16 weights plus the float32 scan parameters');
  await assert.rejects(loadTrainedModel(run.checkpoint!, { precision: 'half' as 'bf16' }), /precision must be 'float32' or 'bf16', got 'half'/);
});
