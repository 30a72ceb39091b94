/** The linear noise schedule, forward noising, timestep spacing and min-SNR weights against closed forms. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, randn, Generator, diffusion } from '../../src/index.js';

const { NoiseSchedule, spacedTimesteps } = diffusion;

function close(actual: number, expected: number, rtol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= rtol * Math.abs(expected), `${what}: got ${actual}, expected ${expected} (rtol ${rtol})`);
}

describe('linear schedule (PixArt / Dimba: 1000 steps, β from 1e-4 to 0.02, float64)', () => {
  const s = NoiseSchedule.linear();

  test('betas and ᾱ match numpy float64 values', () => {
    assert.equal(s.numTimesteps, 1000);
    assert.equal(s.betas[0], 1e-4);
    assert.equal(s.betas[999], 0.02);
    close(s.betas[500]!, 1e-4 + (500 * (0.02 - 1e-4)) / 999, 1e-15, 'β_500');
    // numpy: np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[999] = 4.035829765375676e-05 (we match it bit for bit)
    close(s.alphasCumprod[999]!, 4.035829765375676e-5, 1e-13, 'ᾱ_999');
    close(s.alphasCumprod[0]!, 0.9999, 1e-15, 'ᾱ_0');
    // numpy: ... [500] = 0.07779665836502389
    close(s.alphasCumprod[500]!, 0.07779665836502389, 1e-13, 'ᾱ_500');
    // numpy: posterior variance β_1 (1 - ᾱ_0) / (1 - ᾱ_1) = 5.4531876613021935e-05
    close(s.posteriorVariance[1]!, 5.4531876613021935e-5, 1e-12, 'β̃_1');
    assert.equal(s.posteriorVariance[0], 0);
    assert.equal(s.posteriorLogVarianceClipped[0], Math.log(s.posteriorVariance[1]!));
  });

  test('posterior q(x_{t-1} | x_t, x_0) coefficients equal Gaussian conditioning', () => {
    for (const t of [1, 2, 37, 500, 999]) {
      const abarPrev = s.alphasCumprod[t - 1]!;
      const beta = s.betas[t]!;
      // x_{t-1} | x_0 ~ N(√ᾱ_{t-1} x_0, 1 - ᾱ_{t-1});  x_t | x_{t-1} ~ N(√α_t x_{t-1}, β_t)
      const precision = 1 / (1 - abarPrev) + (1 - beta) / beta;
      const variance = 1 / precision;
      close(s.posteriorVariance[t]!, variance, 1e-9, `β̃_${t}`);
      close(s.posteriorMeanCoef1[t]!, (variance * Math.sqrt(abarPrev)) / (1 - abarPrev), 1e-9, `coef1_${t}`);
      close(s.posteriorMeanCoef2[t]!, (variance * Math.sqrt(1 - beta)) / beta, 1e-9, `coef2_${t}`);
    }
  });

  test('α, σ, λ and SNR are consistent', () => {
    for (const t of [0, 250, 999]) {
      close(s.alpha(t) ** 2 + s.sigma(t) ** 2, 1, 1e-14, `α² + σ² at ${t}`);
      close(Math.exp(2 * s.lambda(t)), s.snr(t), 1e-12, `e^{2λ} = SNR at ${t}`);
    }
    assert.throws(() => s.alpha(1000), /integer in \[0, 1000\)/);
    assert.throws(() => s.sigma(2.5), /integer/);
  });

  test('a 100-step schedule scales the betas by 10 (improved DDPM)', () => {
    const short = NoiseSchedule.linear(100);
    close(short.betas[0]!, 1e-3, 1e-15, 'β_0');
    close(short.betas[99]!, 0.2, 1e-15, 'β_99');
  });

  test('rejects betas outside (0, 1]', () => {
    assert.throws(() => new NoiseSchedule(Float64Array.from([0.1, 0])), /betas\[1\] = 0/);
    assert.throws(() => new NoiseSchedule(Float64Array.from([0.1, 1.5])), /outside \(0, 1\]/);
  });
});

describe('addNoise (DDPM eq. 4)', () => {
  const s = NoiseSchedule.linear();

  test('per-sample timesteps give √ᾱ_t x_0 + √(1 - ᾱ_t) ε', () => {
    const x0 = randn([3, 2, 2], { dtype: 'float64', generator: new Generator(1) });
    const noise = randn([3, 2, 2], { dtype: 'float64', generator: new Generator(2) });
    const ts = [0, 421, 999];
    const xt = s.addNoise(x0, noise, tensor(ts, { dtype: 'int32' })).toFloat64Array();
    const a = x0.toFloat64Array();
    const e = noise.toFloat64Array();
    for (let i = 0; i < 12; i++) {
      const abar = s.alphasCumprod[ts[Math.floor(i / 4)]!]!;
      close(xt[i]!, Math.sqrt(abar) * a[i]! + Math.sqrt(1 - abar) * e[i]!, 1e-12, `x_t[${i}]`);
    }
    const one = s.addNoise(x0, noise, 421).toFloat64Array();
    for (let i = 4; i < 8; i++) close(one[i]!, xt[i]!, 1e-14, `scalar-t x_t[${i}]`);
  });

  test('float32 batches gather float32 coefficients', () => {
    const x0 = randn([2, 3], { generator: new Generator(3) });
    const out = s.addNoise(x0, x0, tensor([5, 6], { dtype: 'int64' }));
    assert.equal(out.dtype, 'float32');
    assert.deepEqual(out.shape, [2, 3]);
  });

  test('shape errors name the argument', () => {
    const x0 = randn([2, 3]);
    assert.throws(() => s.addNoise(x0, randn([2, 4]), 3), /noise \[2, 4\] must match x0 \[2, 3\]/);
    assert.throws(() => s.addNoise(x0, x0, tensor([1, 2, 3], { dtype: 'int32' })), /timesteps \[3\] must be \[B\]/);
    assert.throws(() => s.addNoise(x0, x0, tensor([1, 2])), /int32 or int64/);
  });
});

describe('timestep spacing (values from diffusers\' numpy formulas)', () => {
  const cases: [number, number[], number[], number[]][] = [
    [5, [999, 749, 500, 250, 0], [800, 600, 400, 200, 0], [999, 799, 599, 399, 199]],
    [7, [999, 832, 666, 500, 333, 166, 0], [852, 710, 568, 426, 284, 142, 0], [999, 856, 713, 570, 428, 285, 142]],
    [20,
      [999, 946, 894, 841, 789, 736, 684, 631, 578, 526, 473, 421, 368, 315, 263, 210, 158, 105, 53, 0],
      [950, 900, 850, 800, 750, 700, 650, 600, 550, 500, 450, 400, 350, 300, 250, 200, 150, 100, 50, 0],
      [999, 949, 899, 849, 799, 749, 699, 649, 599, 549, 499, 449, 399, 349, 299, 249, 199, 149, 99, 49]],
  ];
  for (const [n, lin, lead, trail] of cases) {
    test(`${n} steps`, () => {
      assert.deepEqual(spacedTimesteps('linspace', 1000, n), lin);
      assert.deepEqual(spacedTimesteps('leading', 1000, n), lead);
      assert.deepEqual(spacedTimesteps('trailing', 1000, n), trail);
    });
  }

  test('round half to even, as numpy (linspace(0, 999, 3) = [0, 499.5, 999])', () => {
    assert.deepEqual(spacedTimesteps('linspace', 1000, 3), [999, 500, 0]);
    assert.equal(diffusion.roundHalfEven(2.5), 2);
    assert.equal(diffusion.roundHalfEven(3.5), 4);
  });

  test('trailing gives exactly n steps where numpy.arange would give n + 1 (n = 61)', () => {
    const ts = spacedTimesteps('trailing', 1000, 61);
    assert.equal(ts.length, 61);
    assert.equal(ts[0], 999);
    assert.ok(ts[60]! >= 0);
  });

  test('DPM-Solver visits an (n+1)-point grid without its final 0 (diffusers\' default linspace)', () => {
    const s = new diffusion.DPMSolverMultistepScheduler(NoiseSchedule.linear());
    s.setTimesteps(5);
    assert.deepEqual(s.timesteps, [999, 799, 599, 400, 200]);
    s.setTimesteps(20);
    assert.deepEqual(s.timesteps, [999, 949, 899, 849, 799, 749, 699, 649, 599, 549, 500, 450, 400, 350, 300, 250, 200, 150, 100, 50]);
  });

  test('bad step counts are rejected', () => {
    assert.throws(() => spacedTimesteps('linspace', 1000, 0), /count must be an integer in \[1, 1000\], got 0/);
    assert.throws(() => spacedTimesteps('linspace', 1000, 1.5), /got 1.5/);
  });
});

describe('min-SNR-γ weights (Hang et al. 2023)', () => {
  const s = NoiseSchedule.linear();
  const ts = [0, 100, 300, 600, 999];
  const t = tensor(ts, { dtype: 'int32' });
  for (const prediction of ['epsilon', 'v', 'sample'] as const) {
    test(prediction, () => {
      const w = diffusion.minSnrWeights(s, t, { gamma: 5, prediction }).toFloat64Array();
      ts.forEach((step, i) => {
        const abar = s.alphasCumprod[step]!;
        const snr = abar / (1 - abar);
        const expected = prediction === 'epsilon' ? Math.min(snr, 5) / snr : prediction === 'v' ? Math.min(snr, 5) / (snr + 1) : Math.min(snr, 5);
        close(w[i]!, expected, 1e-6, `w(${step})`);
      });
    });
  }
  test('ε weights are 1 where SNR <= γ and γ/SNR above', () => {
    const w = diffusion.minSnrWeights(s, t).toFloat64Array();
    assert.ok(w[0]! < 1e-3 && w[4] === 1, `weights ${Array.from(w).join(', ')}`);
  });
});
