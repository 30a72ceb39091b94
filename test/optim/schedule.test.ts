import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor } from '../../src/index.js';
import { AdamW, LrScheduler, constantWithWarmup, cosineWithWarmup, lrAt } from '../../src/optim/index.js';

const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-15 + 1e-12 * Math.abs(b), `${what}: ${a} vs ${b}`);

describe('learning-rate schedules', () => {
  test('constant with linear warmup (diffusers convention: lr(step) = base * step / warmup)', () => {
    const lrs = [0, 1, 2, 3, 4, 5, 100].map((s) => constantWithWarmup(s, 2e-4, 4));
    [0, 5e-5, 1e-4, 1.5e-4, 2e-4, 2e-4, 2e-4].forEach((want, i) => near(lrs[i]!, want, `step ${i}`));
    assert.equal(constantWithWarmup(0, 1e-3, 0), 1e-3);
    assert.throws(() => constantWithWarmup(-1, 1e-3, 0), /step must be an integer >= 0/);
  });

  test('cosine with warmup decays from the base lr to minLr and stays there', () => {
    const base = 1e-3;
    const min = 1e-5;
    near(cosineWithWarmup(0, base, 10, 110, min), 0, 'start of warmup');
    near(cosineWithWarmup(5, base, 10, 110, min), 5e-4, 'mid warmup');
    near(cosineWithWarmup(10, base, 10, 110, min), base, 'end of warmup');
    near(cosineWithWarmup(60, base, 10, 110, min), min + (base - min) / 2, 'half way');
    near(cosineWithWarmup(35, base, 10, 110, min), min + (base - min) * 0.5 * (1 + Math.cos(Math.PI / 4)), 'a quarter');
    near(cosineWithWarmup(110, base, 10, 110, min), min, 'end');
    near(cosineWithWarmup(500, base, 10, 110, min), min, 'past the end');
    // Monotone after warmup.
    for (let s = 10; s < 110; s++) assert.ok(cosineWithWarmup(s + 1, base, 10, 110, min) <= cosineWithWarmup(s, base, 10, 110, min));
    near(cosineWithWarmup(110, base, 10, 110), 0, 'default floor 0');
  });

  test('the scheduler sets every group from its own base lr and resumes from its state', () => {
    const p = tensor([1, 2], { requiresGrad: true });
    const q = tensor([3], { requiresGrad: true });
    const schedule = { kind: 'cosine', warmupSteps: 3, totalSteps: 20, minLr: 1e-5 } as const;
    const opt = new AdamW([{ params: [p], lr: 1e-3 }, { params: [q], lr: 1e-4 }]);
    const sched = new LrScheduler(opt, schedule);
    assert.deepEqual(opt.paramGroups.map((g) => g.options.lr), [0, 0]);
    for (let s = 0; s < 7; s++) sched.step();
    assert.equal(sched.lastStep, 7);
    assert.deepEqual(opt.paramGroups.map((g) => g.options.lr), [lrAt(schedule, 7, 1e-3), lrAt(schedule, 7, 1e-4)]);

    const opt2 = new AdamW([{ params: [p], lr: 5 }, { params: [q], lr: 5 }]);
    const sched2 = new LrScheduler(opt2, schedule);
    sched2.loadStateDict(JSON.parse(JSON.stringify(sched.stateDict())));
    for (let s = 0; s < 5; s++) { sched.step(); sched2.step(); }
    assert.deepEqual(opt2.paramGroups.map((g) => g.options.lr), opt.paramGroups.map((g) => g.options.lr));
    assert.throws(() => sched2.loadStateDict({ step: 1, baseLrs: [1] }), /1 base lrs for 2 parameter groups/);
    assert.throws(() => new LrScheduler(opt, { kind: 'cosine', warmupSteps: 5, totalSteps: 2 }), /totalSteps/);
  });
});
