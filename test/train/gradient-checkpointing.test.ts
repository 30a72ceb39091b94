/**
 * The activation-checkpointing switch (config model.gradientCheckpointing) through the trainer:
 * on and off give the same weights bit for bit on the CPU, and the switch reaches the model.
 *
 * Why bitwise: a checkpointed block's recomputation runs the same kernels on the same inputs
 * (the CPU kernels are deterministic), with the global generator rewound so drop-path draws the
 * same masks, and the block's parameter gradients come from one backward of Σ<out, grad>, whose
 * incoming gradient is exactly grad (times 1). Nothing is summed in a different order.
 *
 * How the switch is seen to reach the model: with it on, each step runs every block's forward a
 * second time during backward, so the step allocates visibly more tensor storage (counted by
 * T.memoryStats) than with it off. A trainer that ignored the key would allocate the same.
 *
 * Since the switch changes no value, it is not part of a run's trajectory: a run may resume with
 * it flipped (to get past an out-of-memory stop) and still end bit for bit where it would have.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as T from '../../src/index.js';
import { train } from '../../src/train/train.js';
import type { TrainConfig } from '../../src/train/config.js';
import { checkpointBytes, makeTinyDataset, quietReporter, tempDir, tinyConfig } from './helpers.js';

const STEPS = 4;

function config(out: string, manifest: string, on: boolean): TrainConfig {
  return tinyConfig(out, manifest, {
    steps: STEPS,
    // Drop-path draws from the global generator inside the blocks: the recomputation must rewind it.
    model: { gradientCheckpointing: on, layers: 'AMM', dropPath: 0.3 },
    // Activations grow with the batch, the optimizer's temporaries do not: a large batch makes the
    // recomputation stand out in the allocation counts.
    batchSize: 12,
    checkpoint: { every: 0 },
    samples: { prompts: [] },
  });
}

async function run(root: string, manifest: string, on: boolean): Promise<{ dir: string; forward: number; backward: number; losses: number[] }> {
  const out = join(root, on ? 'on' : 'off');
  const c = config(out, manifest, on);
  assert.equal(c.stages[0]!.model.gradientCheckpointing, on);
  const reporter = quietReporter();
  // Storage allocated by each step's forward (from the end of the previous step to the loss) and
  // by its backward and update (from the loss to the end of the step), summed over steps 2..STEPS.
  let forward = 0;
  let backward = 0;
  let mark = 0;
  const allocated = () => T.memoryStats('cpu').allocatedBytes;
  const result = await train({
    config: c, reporter,
    hooks: {
      lossValue: (_stage, step, value) => {
        if (step > 1) forward += allocated() - mark;
        mark = allocated();
        return value;
      },
      onStep: (_stage, step) => {
        if (step > 1) backward += allocated() - mark;
        mark = allocated();
      },
    },
  });
  assert.equal(result.completed, true);
  const losses = reporter.events.flatMap((e) => (e.event === 'step' ? [e.loss] : []));
  return { dir: join(out, 'base', `step-${STEPS}`), forward, backward, losses };
}

test('gradientCheckpointing on and off train to identical weights, and the switch reaches the model', async () => {
  const root = tempDir('grad-ckpt');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const off = await run(root, manifest, false);
  const on = await run(root, manifest, true);

  assert.deepEqual(on.losses, off.losses);
  const a = checkpointBytes(off.dir);
  const b = checkpointBytes(on.dir);
  assert.deepEqual([...b.keys()], [...a.keys()]);
  assert.ok(a.has('model.safetensors') && a.has('model.ema.safetensors'), [...a.keys()].join(', '));
  for (const [name, bytes] of a) assert.ok(bytes.equals(b.get(name)!), `${name} differs between checkpointing on and off`);

  // The recomputed forward allocates its activations a second time, in backward.
  const extra = on.backward - off.backward;
  assert.ok(extra > 0.25 * off.forward,
    `with checkpointing the backward passes allocated ${on.backward} bytes, without ${off.backward}, the forward passes ${off.forward}: `
    + 'the switch did not reach the model');
});

test('a run may switch gradientCheckpointing on or off when it resumes, and ends where a straight run does', async () => {
  const root = tempDir('grad-ckpt-resume');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const straight = join(root, 'straight');
  await train({ config: config(straight, manifest, false), reporter: quietReporter() });
  // The first half ran out of memory, say: it stops, and the run goes on with checkpointing on.
  const split = join(root, 'split');
  const controller = new AbortController();
  const first = await train({
    config: config(split, manifest, false), reporter: quietReporter(), signal: controller.signal,
    hooks: { onStep: (_s, step) => { if (step === STEPS / 2) controller.abort(); } },
  });
  assert.equal(first.completed, false);
  const second = await train({ config: config(split, manifest, true), reporter: quietReporter(), resume: true });
  assert.deepEqual([second.completed, second.stages[0]!.steps], [true, STEPS]);
  const a = checkpointBytes(join(straight, 'base', `step-${STEPS}`));
  const b = checkpointBytes(join(split, 'base', `step-${STEPS}`));
  for (const [name, bytes] of a) assert.ok(bytes.equals(b.get(name)!), `${name} differs after resuming with checkpointing switched on`);
});
