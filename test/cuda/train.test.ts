/**
 * The trainer and sampler on the GPU (issue 4 item 6, issue 6 item 3): a tiny hybrid Dimba
 * trained with `device: 'cuda'` in float32 agrees with the same run on the CPU; bf16 mixed
 * precision (bf16 weights and compute, float32 master weights and optimizer state) trains, and a
 * run of N steps equals N/2 steps + stop + resume within bf16 tolerance; a checkpoint generates
 * the same images on CUDA as on the CPU.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { train } from '../../src/train/train.js';
import { loadStateDictFile } from '../../src/nn/serialize.js';
import { loadTrainedModel } from '../../src/train/load-model.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { cast } from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { makeTinyDataset, quietReporter, tempDir, tinyConfig } from '../train/helpers.js';
import { cudaSkip } from './helpers.js';

function values(t: Tensor): Float64Array {
  return cast(t.to('cpu'), 'float64').toFloat64Array();
}

interface Difference { maxAbs: number; worst: string; fractionAbove: number }

/** Element-wise differences of two checkpoint files' tensors (same names and shapes required). */
async function compareFiles(a: string, b: string, threshold: number): Promise<Difference> {
  const ta = await loadStateDictFile(a);
  const tb = await loadStateDictFile(b);
  assert.deepEqual([...tb.keys()].sort(), [...ta.keys()].sort());
  let maxAbs = 0; let worst = ''; let above = 0; let total = 0;
  for (const [name, x] of ta) {
    const y = tb.get(name)!;
    assert.deepEqual(y.shape, x.shape, name);
    const vx = values(x); const vy = values(y);
    for (let i = 0; i < vx.length; i++) {
      const d = Math.abs(vx[i]! - vy[i]!);
      assert.ok(Number.isFinite(d), `${name}[${i}] is not finite (${vx[i]} vs ${vy[i]})`);
      if (d > maxAbs) { maxAbs = d; worst = `${name}[${i}]`; }
      if (d > threshold) above++;
      total++;
    }
  }
  return { maxAbs, worst, fractionAbove: above / total };
}

const LR = 0.002;
const LR_BF16 = 0.005;
const STEPS = 40;

describe('training on CUDA', { skip: cudaSkip }, () => {
  test('float32 on CUDA follows the CPU run (losses within 1e-3, weights within Adam sign flips)', async () => {
    const root = tempDir('cuda-f32');
    const manifest = await makeTinyDataset(join(root, 'data'));
    const overrides = { steps: 3, optimizer: { lr: LR }, emaDecay: null, checkpoint: { every: 0, keepLast: 1 } };
    const cpu = await train({ config: tinyConfig(join(root, 'cpu'), manifest, overrides), reporter: quietReporter() });
    const gpu = await train({ config: tinyConfig(join(root, 'gpu'), manifest, overrides), reporter: quietReporter(), device: 'cuda' });
    assert.equal(gpu.completed, true);
    const lossCpu = new MetricsLog(join(root, 'cpu', 'metrics.jsonl')).read().map((r) => r['loss'] as number);
    const lossGpu = new MetricsLog(join(root, 'gpu', 'metrics.jsonl')).read().map((r) => r['loss'] as number);
    assert.equal(lossGpu.length, 3);
    // Step 1's loss sees identical weights and data: only summation order differs.
    assert.ok(Math.abs(lossGpu[0]! - lossCpu[0]!) <= 1e-4 * Math.max(1, Math.abs(lossCpu[0]!)), `step 1 loss ${lossGpu[0]} (cuda) vs ${lossCpu[0]} (cpu)`);
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(lossGpu[i]! - lossCpu[i]!) <= 1e-3 * Math.max(1, Math.abs(lossCpu[i]!)), `step ${i + 1} loss ${lossGpu[i]} vs ${lossCpu[i]}`);
    // Adam's first steps move each weight by about ±lr, so a gradient element near zero whose sign
    // differs between the two backends may differ by up to 2·lr per step; nearly all must agree closely.
    const d = await compareFiles(join(cpu.checkpoint!, 'model.safetensors'), join(gpu.checkpoint!, 'model.safetensors'), 1e-4);
    console.log(`# float32 cpu vs cuda after 3 steps: max |Δw| ${d.maxAbs.toExponential(2)} at ${d.worst}, ${(d.fractionAbove * 100).toFixed(3)}% above 1e-4`);
    assert.ok(d.maxAbs <= 2 * LR * 3 + 1e-6, `max |Δw| ${d.maxAbs} at ${d.worst}`);
    assert.ok(d.fractionAbove < 0.01, `${(d.fractionAbove * 100).toFixed(2)}% of weights differ by more than 1e-4`);
  });

  test('bf16 mixed precision: loss falls; N steps straight ≈ N/2 + stop + --resume (bf16 tolerance)', async () => {
    const root = tempDir('cuda-bf16');
    const manifest = await makeTinyDataset(join(root, 'data'));
    const overrides = { steps: STEPS, precision: 'bf16', optimizer: { lr: LR_BF16 }, checkpoint: { every: 0, keepLast: 2 } };
    const straight = await train({ config: tinyConfig(join(root, 'straight'), manifest, overrides), reporter: quietReporter(), device: 'cuda' });
    assert.equal(straight.completed, true);
    const losses = new MetricsLog(join(root, 'straight', 'metrics.jsonl')).read().map((r) => r['loss'] as number);
    const head = losses.slice(0, 8).reduce((a, b) => a + b, 0) / 8;
    const tail = losses.slice(-8).reduce((a, b) => a + b, 0) / 8;
    console.log(`# bf16 on cuda: mean loss of steps 1-8 ${head.toFixed(4)}, of the last 8 ${tail.toFixed(4)}`);
    assert.ok(losses.every(Number.isFinite));
    assert.ok(tail < head * 0.8, `loss did not fall: ${head} → ${tail}`);

    // The saved weights are the bf16 parameters; the optimizer file holds float32 masters.
    const weights = await loadStateDictFile(join(straight.checkpoint!, 'model.safetensors'));
    assert.ok([...weights.values()].some((t) => t.dtype === 'bfloat16'), 'bf16 run saved no bfloat16 weights');

    const controller = new AbortController();
    const splitConfig = tinyConfig(join(root, 'split'), manifest, overrides);
    const first = await train({
      config: splitConfig, reporter: quietReporter(), device: 'cuda', signal: controller.signal,
      hooks: { onStep: (_s, step) => { if (step === STEPS / 2) controller.abort('test stop'); } },
    });
    assert.equal(first.completed, false);
    const second = await train({ config: splitConfig, reporter: quietReporter(), device: 'cuda', resume: true });
    assert.equal(second.completed, true);
    // CUDA's atomics make runs differ in the last bits; after STEPS Adam steps the two runs must still
    // agree to a few bf16 ulps nearly everywhere (a resume that lost state would differ by ~lr per step).
    const d = await compareFiles(join(straight.checkpoint!, 'model.safetensors'), join(second.checkpoint!, 'model.safetensors'), 0.02 * LR_BF16 * STEPS);
    console.log(`# bf16 straight vs resumed after ${STEPS} steps: max |Δw| ${d.maxAbs.toExponential(2)} at ${d.worst}, ${(d.fractionAbove * 100).toFixed(3)}% above ${0.02 * LR_BF16 * STEPS}`);
    assert.ok(d.fractionAbove < 0.01, `${(d.fractionAbove * 100).toFixed(2)}% of weights differ by more than ${0.02 * LR_BF16 * STEPS}`);
    assert.ok(d.maxAbs <= 2 * LR_BF16 * STEPS, `max |Δw| ${d.maxAbs} at ${d.worst}`);
    const lossB = new MetricsLog(join(root, 'split', 'metrics.jsonl')).read().map((r) => r['loss'] as number);
    assert.equal(lossB.length, STEPS);
    for (let i = 0; i < STEPS / 2; i++) assert.ok(Math.abs(lossB[i]! - losses[i]!) <= 0.05 * Math.abs(losses[i]!) + 1e-3, `step ${i + 1}: ${lossB[i]} vs ${losses[i]}`);

    // Generation from the bf16 checkpoint: CUDA and CPU give the same images (float32 sampling
    // of the stored weights on both).
    const options = { prompts: ['a red square', 'a blue square'], steps: 4, sampler: 'dpm++' as const, guidanceScale: 2, seed: 5, height: 8, width: 8 };
    const onCpu = (await loadTrainedModel(straight.checkpoint!)).pipeline.generate(options);
    const onGpu = (await loadTrainedModel(straight.checkpoint!, { device: 'cuda' })).pipeline.generate(options);
    assert.equal(onGpu.device.kind, 'cuda');
    const a = values(onCpu); const b = values(onGpu.to('cpu'));
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    console.log(`# generate cpu vs cuda: max |Δ| ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-3, `generated images differ by ${worst}`);
    // bf16 sampling on CUDA: the same images up to bf16 rounding of weights and activations.
    const onGpu16 = (await loadTrainedModel(straight.checkpoint!, { device: 'cuda', precision: 'bf16' })).pipeline.generate(options);
    const c = values(onGpu16.to('cpu'));
    // This barely trained model's samples are far outside [-1, 1] (|x| ~ 100): compare relatively.
    let mean16 = 0; let scale = 0;
    for (let i = 0; i < a.length; i++) { mean16 += Math.abs(a[i]! - c[i]!) / a.length; scale += Math.abs(a[i]!) / a.length; }
    console.log(`# generate bf16 (cuda) vs float32 (cpu): mean |Δ| ${mean16.toExponential(2)} of mean |x| ${scale.toExponential(2)}`);
    assert.ok(mean16 < 0.03 * scale, `bf16 images differ from float32 by mean ${mean16} (mean |x| ${scale})`);
  });
});
