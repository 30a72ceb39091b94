/**
 * The sampling loop's per-step scopes (src/diffusion/sampling.ts): live tensor memory stays flat
 * over the steps without garbage collection, for every sampler (DPM-Solver keeps its own copy of
 * the previous x̂_0), and results equal a hand-written loop without scopes.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { vpDenoiser, flowDenoiser, GaussianMixture } from './exact-denoisers.js';

const schedule = T.diffusion.NoiseSchedule.linear();
const dist = new GaussianMixture([{ weight: 1, mean: [1.5, -0.5], std: [0.5, 1.2] }]);
const live = (): number => T.memoryStats('cpu').liveBytes;

type Sampler = (o: T.diffusion.SampleOptions<Tensor>) => Tensor;
const cases: [string, Sampler, (xt: Tensor, t: Tensor, c: Tensor) => Tensor, T.diffusion.Scheduler][] = [
  ['DDIM', (o) => T.diffusion.sampleDDIM({ ...o, schedule }), vpDenoiser(schedule, () => dist), new T.diffusion.DDIMScheduler(schedule)],
  ['DPM-Solver++(2M)', (o) => T.diffusion.sampleDPMSolver({ ...o, schedule }), vpDenoiser(schedule, () => dist), new T.diffusion.DPMSolverMultistepScheduler(schedule)],
  ['flow Euler', (o) => T.diffusion.sampleFlowEuler(o), flowDenoiser(() => dist), new T.diffusion.FlowMatchEulerScheduler()],
];

describe('sampling loop memory', () => {
  for (const [name, sample, model, scheduler] of cases) {
    test(`${name}: live bytes are the same after every step, and the sample equals an unscoped loop`, () => {
      const cond = T.zeros([64, 1]);
      const noise = T.randn([64, 2], { generator: new T.Generator(3) });
      const seen: number[] = [];
      const before = live();
      const x = sample({ model, shape: [64, 2], steps: 12, cond, noise, onStep: () => seen.push(live()) });
      assert.equal(seen.length, 12);
      // (DPM-Solver drops its history after the last step.)
      assert.deepEqual(seen.slice(0, -1), new Array(11).fill(seen[0]), `live bytes after each step: ${seen.join(', ')}`);
      assert.ok(seen[11]! <= seen[0]!);
      assert.equal(live() - before, x.numel * (x.dtype === 'float64' ? 8 : 4), 'only the sample remains');
      assert.equal(noise.isDisposed, false, "the caller's noise is never disposed");

      T.noGrad(() => {
        scheduler.setTimesteps(12);
        let y = T.mul(noise, scheduler.initNoiseSigma);
        for (const t of scheduler.timesteps) y = scheduler.step(model(y, T.full([64], t), cond), t, y);
        assert.deepEqual(x.toArray(), y.toArray());
      });
    });
  }
});
