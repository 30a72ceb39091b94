/**
 * Samplers against exact denoisers: for Gaussian and Gaussian-mixture data the optimal ε / v / velocity
 * predictors are known in closed form (exact-denoisers.ts), so any error is the sampler's.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, zeros, full, cat, randn, Generator, diffusion } from '../../src/index.js';
import { GaussianMixture, vpDenoiser, flowDenoiser, moments } from './exact-denoisers.js';

const schedule = diffusion.NoiseSchedule.linear();
const gaussian = new GaussianMixture([{ weight: 1, mean: [1.5, -0.5], std: [0.5, 1.2] }]);
const mixture = new GaussianMixture([
  { weight: 0.5, mean: [-2, 0], std: [0.5, 0.3] },
  { weight: 0.3, mean: [2, 1], std: [0.4, 0.6] },
  { weight: 0.2, mean: [0, -2.5], std: [0.3, 0.3] },
]);
const N = 4000;
const noCond = zeros([N, 1]);

type Run = (model: (xt: Tensor, t: Tensor, c: Tensor) => Tensor, steps: number, extra?: { noise?: Tensor; generator?: Generator; cond?: Tensor }) => Tensor;
const ddim: Run = (model, steps, extra = {}) => diffusion.sampleDDIM({ model, shape: extra.noise?.shape ?? [N, 2], steps, cond: extra.cond ?? noCond, ...extra });
const dpm: Run = (model, steps, extra = {}) => diffusion.sampleDPMSolver({ model, shape: extra.noise?.shape ?? [N, 2], steps, cond: extra.cond ?? noCond, ...extra });
const euler: Run = (model, steps, extra = {}) => diffusion.sampleFlowEuler({ model, shape: extra.noise?.shape ?? [N, 2], steps, cond: extra.cond ?? noCond, ...extra });

const samplers: { name: string; run: Run; model: (d: GaussianMixture) => (xt: Tensor, t: Tensor, c: Tensor) => Tensor; steps: number; w2At50: number }[] = [
  { name: 'DDIM', run: ddim, model: (d) => vpDenoiser(schedule, () => d), steps: 100, w2At50: 0.06 },
  { name: 'DPM-Solver++(2M)', run: dpm, model: (d) => vpDenoiser(schedule, () => d), steps: 50, w2At50: 0.01 },
  { name: 'flow Euler', run: euler, model: (d) => flowDenoiser(() => d), steps: 100, w2At50: 0.04 },
];

/**
 * Sample moments against the target: means within 4 standard errors + 0.01, each covariance entry
 * within 4 standard errors (√((Σ_ii Σ_jj + Σ_ij²) / N)) + 4% of √(Σ_ii Σ_jj) for the sampler's own bias
 * at these step counts (under 3% in variance for every sampler here).
 */
function assertMoments(what: string, dist: GaussianMixture, samples: Tensor): void {
  const { mean, cov } = moments(samples);
  const m = dist.mean();
  const c = dist.covariance();
  const n = samples.shape[0]!;
  for (let i = 0; i < dist.dim; i++) {
    const tol = 4 * Math.sqrt(c[i]![i]! / n) + 0.01;
    assert.ok(Math.abs(mean[i]! - m[i]!) < tol, `${what}: mean[${i}] = ${mean[i]}, target ${m[i]} ± ${tol}`);
    for (let j = 0; j < dist.dim; j++) {
      const scale = Math.sqrt(c[i]![i]! * c[j]![j]!);
      const ctol = 4 * Math.sqrt((scale ** 2 + c[i]![j]! ** 2) / n) + 0.04 * scale;
      assert.ok(Math.abs(cov[i]![j]! - c[i]![j]!) < ctol, `${what}: cov[${i}][${j}] = ${cov[i]![j]}, target ${c[i]![j]} ± ${ctol}`);
    }
  }
}

/** Fraction of samples nearest (in each component's own scale) to each component, within 4 standard errors. */
function assertWeights(what: string, dist: GaussianMixture, samples: Tensor): void {
  const x = samples.toFloat64Array();
  const n = samples.shape[0]!;
  const counts = dist.components.map(() => 0);
  for (let i = 0; i < n; i++) {
    const d = dist.components.map((c) => c.mean.reduce((s, mu, j) => s + ((x[i * 2 + j]! - mu) / c.std[j]!) ** 2, 0));
    counts[d.indexOf(Math.min(...d))]! += 1;
  }
  dist.components.forEach((c, k) => {
    const tol = 4 * Math.sqrt((c.weight * (1 - c.weight)) / n);
    assert.ok(Math.abs(counts[k]! / n - c.weight) < tol, `${what}: component ${k} has ${counts[k]! / n} of the samples, weight ${c.weight} ± ${tol}`);
  });
}

/**
 * For Gaussian data every step is affine in x, so the sampler maps x_T to A x_T + b per dimension and
 * its output law is exactly N(b, A²). Running it on x_T = 0 and x_T = 1 reads off A and b; the
 * 2-Wasserstein distance to N(μ, s²) is then √(Σ (b - μ)² + (|A| - s)²), with no sampling noise.
 */
function affineW2(run: Run, model: (xt: Tensor, t: Tensor, c: Tensor) => Tensor, steps: number): { w2: number; a: number[]; b: number[] } {
  const out = run(model, steps, { noise: tensor([[0, 0], [1, 1]], { dtype: 'float64' }), cond: zeros([2, 1]) }).toFloat64Array();
  const b = [out[0]!, out[1]!];
  const a = [out[2]! - out[0]!, out[3]! - out[1]!];
  const c = gaussian.components[0]!;
  const w2 = Math.sqrt(b.reduce((s, v, j) => s + (v - c.mean[j]!) ** 2 + (Math.abs(a[j]!) - c.std[j]!) ** 2, 0));
  return { w2, a, b };
}

describe('samplers reproduce the data distribution from an exact denoiser', () => {
  for (const s of samplers) {
    test(`${s.name}: Gaussian N(μ, diag(s²)), ${s.steps} steps, ${N} samples`, () => {
      assertMoments(s.name, gaussian, s.run(s.model(gaussian), s.steps, { generator: new Generator(1) }));
    });
    test(`${s.name}: mixture of 3 Gaussians in 2-D, ${s.steps} steps, ${N} samples`, () => {
      const out = s.run(s.model(mixture), s.steps, { generator: new Generator(2) });
      assertMoments(s.name, mixture, out);
      assertWeights(s.name, mixture, out);
    });
    test(`${s.name}: the W2 error falls from 5 to 10 to 50 steps`, () => {
      const errors = [5, 10, 50].map((n) => affineW2(s.run, s.model(gaussian), n).w2);
      assert.ok(errors[0]! > errors[1]! && errors[1]! > errors[2]!, `W2 at 5, 10, 50 steps: ${errors.join(', ')}`);
      assert.ok(errors[2]! < s.w2At50, `W2 at 50 steps ${errors[2]} >= ${s.w2At50}`);
    });
    test(`${s.name}: on the mixture, paths from the same x_T approach a 500-step reference`, () => {
      const noise = randn([300, 2], { dtype: 'float64', generator: new Generator(3) });
      const model = s.model(mixture);
      const ref = s.run(model, 500, { noise, cond: zeros([300, 1]) }).toFloat64Array();
      const errors = [5, 10, 50].map((n) => {
        const x = s.run(model, n, { noise, cond: zeros([300, 1]) }).toFloat64Array();
        return x.reduce((acc, v, i) => acc + Math.abs(v - ref[i]!), 0) / x.length;
      });
      assert.ok(errors[0]! > errors[1]! && errors[1]! > errors[2]!, `mean |x_n - x_ref| at 5, 10, 50 steps: ${errors.join(', ')}`);
    });
  }

  test('DDIM and DPM-Solver++ converge to the exact probability-flow map A* = s / √(ᾱ_T s² + 1 - ᾱ_T), b* = μ - A* √ᾱ_T μ', () => {
    const c = gaussian.components[0]!;
    const abarT = schedule.alphasCumprod[999]!;
    const aStar = c.std.map((s) => s / Math.sqrt(abarT * s * s + 1 - abarT));
    const bStar = c.mean.map((mu, j) => mu - aStar[j]! * Math.sqrt(abarT) * mu);
    const tolerances: [Run, number, number][] = [[dpm, 100, 2e-3], [ddim, 500, 1e-2]];
    for (const [run, steps, tol] of tolerances) {
      const { a, b } = affineW2(run, vpDenoiser(schedule, () => gaussian), steps);
      for (let j = 0; j < 2; j++) {
        assert.ok(Math.abs(a[j]! - aStar[j]!) < tol && Math.abs(b[j]! - bStar[j]!) < tol, `A ${a} vs ${aStar}, b ${b} vs ${bStar}`);
      }
    }
  });

  test('DPM-Solver++ at 10 steps is closer than DDIM at 10 steps (second order)', () => {
    const model = vpDenoiser(schedule, () => gaussian);
    const d = affineW2(dpm, model, 10).w2;
    const e = affineW2(ddim, model, 10).w2;
    assert.ok(d < 0.6 * e, `DPM-Solver++ ${d}, DDIM ${e}`);
  });

  test('DDIM with v-prediction and with x_0-prediction follows the same path as with ε-prediction', () => {
    const noise = randn([50, 2], { dtype: 'float64', generator: new Generator(4) });
    const cond = zeros([50, 1]);
    const eps = diffusion.sampleDDIM({ model: vpDenoiser(schedule, () => mixture), shape: [50, 2], steps: 20, cond, noise }).toFloat64Array();
    for (const prediction of ['v', 'sample'] as const) {
      const other = diffusion.sampleDDIM({ model: vpDenoiser(schedule, () => mixture, prediction), prediction, shape: [50, 2], steps: 20, cond, noise }).toFloat64Array();
      const worst = other.reduce((m, v, i) => Math.max(m, Math.abs(v - eps[i]!)), 0);
      assert.ok(worst < 1e-9, `${prediction}: max difference ${worst}`);
    }
  });

  test('learned-σ models: only the ε half of the 2x-channel output is used', () => {
    const noise = randn([20, 2], { generator: new Generator(5) });
    const cond = zeros([20, 1]);
    const base = vpDenoiser(schedule, () => gaussian);
    const withSigma = (xt: Tensor, t: Tensor, c: Tensor) => cat([base(xt, t, c), full([20, 2], 123, { dtype: 'float64' })], 1);
    for (const run of [diffusion.sampleDDIM, diffusion.sampleDPMSolver]) {
      const a = run({ model: base, shape: [20, 2], steps: 8, cond, noise }).toArray();
      const b = run({ model: withSigma, shape: [20, 2], steps: 8, cond, noise, learnedSigma: true }).toArray();
      assert.deepEqual(b, a);
    }
    assert.throws(() => diffusion.sampleDDIM({ model: base, shape: [20, 2], steps: 8, cond, noise, learnedSigma: true }),
      /model output \[20, 2\] should be \[20, 4\]/);
  });
});

describe('DDIM with η > 0', () => {
  test('reproduces the Gaussian at 250 steps and is reproducible per generator', () => {
    const model = vpDenoiser(schedule, () => gaussian);
    const out = diffusion.sampleDDIM({ model, shape: [N, 2], steps: 250, eta: 1, cond: noCond, generator: new Generator(6) });
    assertMoments('DDIM η=1', gaussian, out);
    const start = randn([10, 2], { generator: new Generator(7) });
    const run = (seed: number) => diffusion.sampleDDIM({ model, shape: [10, 2], steps: 10, eta: 0.5, cond: zeros([10, 1]), noise: start, generator: new Generator(seed) }).toArray();
    assert.deepEqual(run(8), run(8));
    assert.notDeepEqual(run(8), run(9));
  });
});

describe('classifier-free guidance', () => {
  // Class c ∈ {0, 1} selects the data distribution; c = 2 is the null condition (their 50/50 mixture).
  const classes = [
    new GaussianMixture([{ weight: 1, mean: [2, 0], std: [0.5, 0.5] }]),
    new GaussianMixture([{ weight: 1, mean: [-2, 1], std: [0.7, 0.4] }]),
    new GaussianMixture([{ weight: 0.5, mean: [2, 0], std: [0.5, 0.5] }, { weight: 0.5, mean: [-2, 1], std: [0.7, 0.4] }]),
  ];
  const model = vpDenoiser(schedule, (c) => classes[c]!);
  const B = 16;
  const cond = tensor(Array.from({ length: B }, (_, i) => [i % 2]), { dtype: 'float32' });
  const uncond = full([B, 1], 2);
  const noise = randn([B, 2], { dtype: 'float64', generator: new Generator(10) });

  test('guidance scale 1 equals the conditional-only sampler', () => {
    for (const run of [diffusion.sampleDDIM, diffusion.sampleDPMSolver]) {
      const plain = run({ model, shape: [B, 2], steps: 10, cond, noise }).toFloat64Array();
      const guided = run({ model, shape: [B, 2], steps: 10, cond, uncond, guidanceScale: 1, noise }).toFloat64Array();
      const worst = guided.reduce((m, v, i) => Math.max(m, Math.abs(v - plain[i]!)), 0);
      assert.ok(worst < 1e-12, `max difference ${worst}`);
    }
  });

  test('one batched call per step: [x; x] with [uncond; cond], combined as uncond + s (cond - uncond)', () => {
    const calls: number[] = [];
    const spy = (xt: Tensor, t: Tensor, c: Tensor) => {
      calls.push(xt.shape[0]!);
      assert.deepEqual(c.toArray(), [...uncond.toArray(), ...cond.toArray()]);
      assert.deepEqual(xt.narrow(0, 0, B).toArray(), xt.narrow(0, B, B).toArray());
      return model(xt, t, c);
    };
    const s = 4.5;
    const guided = diffusion.sampleDDIM({ model: spy, shape: [B, 2], steps: 6, cond, uncond, guidanceScale: s, noise }).toFloat64Array();
    assert.deepEqual(calls, new Array(6).fill(2 * B));
    // The same guidance from two separate unbatched calls.
    const separate = (xt: Tensor, t: Tensor, c: Tensor) => {
      const u = model(xt, t, uncond).toFloat64Array();
      const k = model(xt, t, c).toFloat64Array();
      return tensor(u.map((v, i) => v + s * (k[i]! - v)), { dtype: 'float64', shape: [...xt.shape] });
    };
    const reference = diffusion.sampleDDIM({ model: separate, shape: [B, 2], steps: 6, cond, noise }).toFloat64Array();
    const worst = guided.reduce((m, v, i) => Math.max(m, Math.abs(v - reference[i]!)), 0);
    assert.ok(worst < 1e-10, `max difference ${worst}`);
  });

  test('named conditions are concatenated field by field', () => {
    const named = (xt: Tensor, t: Tensor, c: { y: Tensor; mask: Tensor }) => {
      assert.deepEqual(c.mask.shape, [2 * B, 3]);
      return model(xt, t, c.y);
    };
    const mask = zeros([B, 3]);
    const a = diffusion.sampleDDIM({ model: named, shape: [B, 2], steps: 4, cond: { y: cond, mask }, uncond: { y: uncond, mask }, guidanceScale: 2, noise }).toArray();
    const b = diffusion.sampleDDIM({ model, shape: [B, 2], steps: 4, cond, uncond, guidanceScale: 2, noise }).toArray();
    assert.deepEqual(a, b);
  });
});

describe('scheduler protocol', () => {
  test('DPM-Solver-1 (first step) is a DDIM step; later steps are the 2M update', () => {
    const s = new diffusion.DPMSolverMultistepScheduler(schedule);
    s.setTimesteps(20);
    const x = tensor([[0.3, -1.2]], { dtype: 'float64' });
    const e1 = tensor([[0.5, 0.1]], { dtype: 'float64' });
    const e2 = tensor([[-0.2, 0.7]], { dtype: 'float64' });
    const [t0, t1, t2] = [999, 949, 899];
    const ab = (t: number) => schedule.alphasCumprod[t]!;
    const x0 = (xv: number, ev: number, t: number) => (xv - Math.sqrt(1 - ab(t)) * ev) / Math.sqrt(ab(t));
    const x1 = s.step(e1, t0, x).toFloat64Array();
    const xs = x.toFloat64Array();
    const e1s = e1.toFloat64Array();
    const ddimStep = [0, 1].map((j) => Math.sqrt(ab(t1)) * x0(xs[j]!, e1s[j]!, t0) + Math.sqrt(1 - ab(t1)) * e1s[j]!);
    [0, 1].forEach((j) => assert.ok(Math.abs(x1[j]! - ddimStep[j]!) < 1e-12, `first step ${x1[j]} vs DDIM ${ddimStep[j]}`));
    const x2 = s.step(e2, t1, tensor([Array.from(x1)], { dtype: 'float64' })).toFloat64Array();
    const lam = (t: number) => 0.5 * Math.log(ab(t) / (1 - ab(t)));
    const h = lam(t2) - lam(t1);
    const r = (lam(t1) - lam(t0)) / h;
    const e2s = e2.toFloat64Array();
    [0, 1].forEach((j) => {
      const d = (1 + 1 / (2 * r)) * x0(x1[j]!, e2s[j]!, t1) - (1 / (2 * r)) * x0(xs[j]!, e1s[j]!, t0);
      const want = (Math.sqrt(1 - ab(t2)) / Math.sqrt(1 - ab(t1))) * x1[j]! - Math.sqrt(ab(t2)) * Math.expm1(-h) * d;
      assert.ok(Math.abs(x2[j]! - want) < 1e-12, `2M step ${x2[j]} vs ${want}`);
    });
  });

  test('flow Euler visits σ = linspace(1, 1/1000, n) (then 0) as model times σ·1000, with SD3 shift', () => {
    const s = new diffusion.FlowMatchEulerScheduler();
    s.setTimesteps(4);
    assert.deepEqual(s.timesteps.map((t) => Math.round(t * 1e9) / 1e9), [1000, 667, 334, 1]);
    const shifted = new diffusion.FlowMatchEulerScheduler({ shift: 3 });
    shifted.setTimesteps(4);
    assert.ok(Math.abs(shifted.runSigmas[1]! - (3 * 0.667) / (1 + 2 * 0.667)) < 1e-12);
    const x0 = tensor([[1, 2]]);
    const eps = tensor([[3, -2]]);
    assert.deepEqual(s.addNoise(x0, eps, 250).toArray(), [1.5, 1]);
    assert.deepEqual(s.addNoise(x0, eps, tensor([500], { dtype: 'int32' })).toArray(), [2, 0]);
  });

  test('step order is checked', () => {
    const s = new diffusion.DDIMScheduler(schedule);
    const x = zeros([1, 2]);
    assert.throws(() => s.step(x, 999, x), /call setTimesteps before step/);
    s.setTimesteps(2);
    assert.deepEqual(s.timesteps, [999, 0]);
    assert.throws(() => s.step(x, 0, x), /expected timestep 999 \(step 0 of 2\), got 0/);
    s.step(x, 999, x);
    s.step(x, 0, x);
    assert.throws(() => s.step(x, 0, x), /all 2 steps are done/);
    assert.throws(() => s.setTimesteps(0), /numSteps must be an integer in \[1, 1000\], got 0/);
  });

  test('onStep reports every step, and argument errors name the argument', () => {
    const seen: number[] = [];
    const model = vpDenoiser(schedule, () => gaussian);
    diffusion.sampleDPMSolver({ model, shape: [3, 2], steps: 5, cond: zeros([3, 1]), onStep: (i) => seen.push(i.timestep) });
    assert.deepEqual(seen, [999, 799, 599, 400, 200]);
    assert.throws(() => diffusion.sampleDDIM({ model, shape: [3, 2], steps: 5, cond: zeros([4, 1]) }), /cond: condition \[4, 1\] must have batch size 3/);
    assert.throws(() => diffusion.sampleDDIM({ model, shape: [3], steps: 5, cond: zeros([3, 1]) }), /shape must be \[B, C, \.\.\.\]/);
    assert.throws(() => diffusion.sampleDDIM({ model, shape: [3, 2], steps: 5, cond: zeros([3, 1]), guidanceScale: NaN }), /guidanceScale must be finite/);
  });
});
