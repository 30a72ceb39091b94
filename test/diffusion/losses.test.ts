/** Training objectives: the learned-variance hybrid loss against a direct computation, gradient routing, v and flow targets, dropout. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, randn, zeros, sum, mean, Generator, diffusion } from '../../src/index.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';

const { NoiseSchedule, epsilonLoss } = diffusion;
const schedule = NoiseSchedule.linear();

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${what}: got ${actual}, expected ${expected}`);
}

/** The linear schedule's ᾱ recomputed here from β_t = 1e-4 + t (0.02 - 1e-4) / 999, independently of the library. */
const betas = Array.from({ length: 1000 }, (_, t) => 1e-4 + (t * (0.02 - 1e-4)) / 999);
const abars: number[] = [];
betas.reduce((p, b) => { const next = p * (1 - b); abars.push(next); return next; }, 1);

/** Φ by the tanh approximation, the discretised decoder likelihood, and KL of scalars. */
const cdf = (x: number) => 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
function decoderLogLik(x: number, m: number, logScale: number): number {
  const inv = Math.exp(-logScale);
  const plus = cdf(inv * (x - m + 1 / 255));
  const minus = cdf(inv * (x - m - 1 / 255));
  if (x < -0.999) return Math.log(Math.max(plus, 1e-12));
  if (x > 0.999) return Math.log(Math.max(1 - minus, 1e-12));
  return Math.log(Math.max(plus - minus, 1e-12));
}
const kl = (m1: number, v1: number, m2: number, v2: number) => 0.5 * (Math.log(v2 / v1) + v1 / v2 + (m1 - m2) ** 2 / v2 - 1);

/** improved DDPM's L_t for one sample, element by element, in bits per dimension. */
function directVb(t: number, x0: number[], noise: number[], epsHat: number[], v: number[]): number {
  const abar = abars[t]!;
  const abarPrev = t > 0 ? abars[t - 1]! : 1;
  const beta = betas[t]!;
  const posteriorVar = (k: number) => (betas[k]! * (1 - abars[k - 1]!)) / (1 - abars[k]!);
  const logTilde = Math.log(t > 0 ? posteriorVar(t) : posteriorVar(1));
  let total = 0;
  x0.forEach((x, i) => {
    const xt = Math.sqrt(abar) * x + Math.sqrt(1 - abar) * noise[i]!;
    const x0Hat = (xt - Math.sqrt(1 - abar) * epsHat[i]!) / Math.sqrt(abar);
    const c1 = (beta * Math.sqrt(abarPrev)) / (1 - abar);
    const c2 = ((1 - abarPrev) * Math.sqrt(1 - beta)) / (1 - abar);
    const frac = (v[i]! + 1) / 2;
    const logVar = frac * Math.log(beta) + (1 - frac) * logTilde;
    const modelMean = c1 * x0Hat + c2 * xt;
    const trueMean = c1 * x + c2 * xt;
    total += t === 0 ? -decoderLogLik(x, modelMean, 0.5 * logVar) : kl(trueMean, Math.exp(logTilde), modelMean, Math.exp(logVar));
  });
  return total / x0.length / Math.LN2;
}

/** A "model" whose output is a fixed leaf tensor (so its gradient is the loss's gradient w.r.t. the output). */
const constantModel = (out: Tensor) => () => out;

describe('ε-prediction with learned-range variance (improved DDPM hybrid loss, PixArt LossType.MSE)', () => {
  // Batch of 3 samples, C = 2 channels of 2 values; timesteps 0 (decoder NLL), 10 and 500 (KL).
  const ts = [0, 10, 500];
  const x0Values = [-1, 1, 0.3, -0.2, 0.5, -0.7, 0.1, 0.9, -0.4, 0.05, 1, -1];
  const x0 = tensor(x0Values, { dtype: 'float64', shape: [3, 2, 2] });
  const noise = randn([3, 2, 2], { dtype: 'float64', generator: new Generator(7) });
  const out = randn([3, 4, 2], { dtype: 'float64', generator: new Generator(8) });
  const t = tensor(ts, { dtype: 'int32' });
  const channelValues = (values: Float64Array, i: number, c0: number): number[] => Array.from(values.subarray(i * 8 + c0 * 2, i * 8 + c0 * 2 + 4));

  test('VLB term and MSE match a direct element-by-element computation', () => {
    const clamped = out.toFloat64Array().map((v, j) => (Math.floor(j / 2) % 4 >= 2 ? Math.tanh(v) : v));
    const output = tensor(clamped, { dtype: 'float64', shape: [3, 4, 2] });
    const r = epsilonLoss(schedule, { model: constantModel(output), x0, noise, t, cond: zeros([3, 1]) });
    const vb = r.terms.vb!.toFloat64Array();
    const mse = r.terms.mse.toFloat64Array();
    const e = noise.toFloat64Array();
    let lossSum = 0;
    ts.forEach((step, i) => {
      const x = x0Values.slice(i * 4, i * 4 + 4);
      const eps = Array.from(e.subarray(i * 4, i * 4 + 4));
      const epsHat = channelValues(clamped, i, 0);
      const v = channelValues(clamped, i, 2);
      const expectedVb = directVb(step, x, eps, epsHat, v);
      const expectedMse = eps.reduce((s, n, j) => s + (n - epsHat[j]!) ** 2, 0) / 4;
      close(vb[i]!, expectedVb, 1e-10, `vb at t=${step}`);
      close(mse[i]!, expectedMse, 1e-12, `mse at t=${step}`);
      lossSum += expectedVb + expectedMse;
    });
    close(r.loss.item(), lossSum / 3, 1e-10, 'loss');
  });

  test('KL is zero when ε̂ = ε and the variance is the true posterior one (v = -1)', () => {
    const tt = tensor([10, 500], { dtype: 'int32' });
    const x = tensor(x0Values.slice(0, 8), { dtype: 'float64', shape: [2, 2, 2] });
    const n = randn([2, 2, 2], { dtype: 'float64', generator: new Generator(9) });
    const xt = schedule.addNoise(x, n, tt);
    const vb = diffusion.variationalBoundTerm(schedule, x, xt, tt, n, zeros([2, 2, 2], { dtype: 'float64' }).sub(1)).toFloat64Array();
    assert.ok(Math.abs(vb[0]!) < 1e-12 && Math.abs(vb[1]!) < 1e-12, `KL ${vb[0]}, ${vb[1]}`);
  });

  test('gradients: the ε half learns from the MSE only, the variance half from the VLB only', () => {
    const leaf = () => out.detach().requiresGrad_();
    const run = (which: 'loss' | 'mse' | 'vb') => {
      const o = leaf();
      const r = epsilonLoss(schedule, { model: constantModel(o), x0, noise, t, cond: zeros([3, 1]) });
      sum(which === 'loss' ? r.terms.loss : which === 'mse' ? r.terms.mse : r.terms.vb!).backward();
      const g = o.grad!.toFloat64Array();
      const part = (c0: number) => Array.from(g).filter((_, j) => (Math.floor(j / 2) % 4 >= 2) === (c0 === 2));
      return { eps: part(0), variance: part(2) };
    };
    const all = run('loss');
    assert.ok(all.eps.every((v) => v !== 0) && all.variance.every((v) => v !== 0), 'both halves get gradient from the full loss');
    const vbOnly = run('vb');
    assert.ok(vbOnly.eps.every((v) => v === 0), 'the VLB uses a stop-gradient copy of ε̂');
    assert.ok(vbOnly.variance.some((v) => v !== 0), 'the VLB trains the variance');
    const mseOnly = run('mse');
    assert.ok(mseOnly.variance.every((v) => v === 0), 'the MSE does not see the variance');
    assert.ok(mseOnly.eps.every((v) => v !== 0));
  });

  test('finite-difference gradient of L_t w.r.t. ε̂ (without stop-gradient) and v, at t = 0 and t > 0', () => {
    const x = tensor(x0Values.slice(0, 8), { dtype: 'float64', shape: [2, 2, 2] });
    const n = randn([2, 2, 2], { dtype: 'float64', generator: new Generator(10) });
    for (const pair of [[0, 3], [40, 700]]) {
      const tt = tensor(pair, { dtype: 'int32' });
      const xt = schedule.addNoise(x, n, tt);
      gradcheck(`vb t=${pair.join(',')}`, (eps, v) => diffusion.variationalBoundTerm(schedule, x, xt, tt, eps, v),
        [rand64([2, 2, 2], 11, 0.3), rand64([2, 2, 2], 12, 0.5)], { atol: 1e-5, rtol: 1e-4 });
    }
  });

  test('vbRescale multiplies L_t by T / 1000 (LossType.RESCALED_MSE)', () => {
    const short = NoiseSchedule.linear(100);
    const tt = tensor([0, 10, 50], { dtype: 'int32' });
    const args = { model: constantModel(out), x0, noise, t: tt, cond: zeros([3, 1]) };
    const plain = epsilonLoss(short, args).terms.vb!.toFloat64Array();
    const rescaled = epsilonLoss(short, args, { vbRescale: 'timesteps' }).terms.vb!.toFloat64Array();
    plain.forEach((v, i) => close(rescaled[i]!, 0.1 * v, 1e-12, `rescaled vb[${i}]`));
    const full = epsilonLoss(schedule, { ...args, t }, { vbRescale: 'timesteps' }).terms.vb!.toFloat64Array();
    const fullPlain = epsilonLoss(schedule, { ...args, t }).terms.vb!.toFloat64Array();
    assert.deepEqual(Array.from(full), Array.from(fullPlain));
  });

  test('the model sees x_t from addNoise and float32 timesteps', () => {
    let seen: [Tensor, Tensor] | null = null;
    epsilonLoss(schedule, { model: (xt, tm) => { seen = [xt, tm]; return out; }, x0, noise, t, cond: zeros([3, 1]) });
    const [xt, tm] = seen!;
    assert.equal(tm.dtype, 'float32');
    assert.deepEqual(tm.toArray(), ts);
    assert.deepEqual(Array.from(xt.toFloat64Array()), Array.from(schedule.addNoise(x0, noise, t).toFloat64Array()));
  });

  test('min-SNR weights scale the MSE, not the VLB', () => {
    const weights = tensor([0.5, 2, 3], { dtype: 'float64' });
    const r = epsilonLoss(schedule, { model: constantModel(out), x0, noise, t, cond: zeros([3, 1]), weights });
    const [l, m, v] = [r.terms.loss, r.terms.mse, r.terms.vb!].map((x) => x.toFloat64Array());
    [0.5, 2, 3].forEach((w, i) => close(l![i]!, w * m![i]! + v![i]!, 1e-12, `weighted loss[${i}]`));
  });

  test('fixed-variance ε loss and output-shape errors', () => {
    const eps = narrowEps(out);
    const r = epsilonLoss(schedule, { model: constantModel(eps), x0, noise, t, cond: zeros([3, 1]) }, { learnedSigma: false });
    assert.equal(r.terms.vb, undefined);
    close(r.loss.item(), mean(eps.sub(noise).square()).item(), 1e-12, 'plain ε MSE');
    assert.throws(() => epsilonLoss(schedule, { model: constantModel(eps), x0, noise, t, cond: zeros([3, 1]) }),
      /model output \[3, 2, 2\] should be \[3, 4, 2\]/);
    assert.throws(() => epsilonLoss(schedule, { model: constantModel(out), x0, noise, t: tensor([1, 2, 3]), cond: zeros([3, 1]) }),
      /integer timesteps/);
  });
});

function narrowEps(out: Tensor): Tensor {
  return out.narrow(1, 0, 2).contiguous();
}

describe('v-prediction and flow matching', () => {
  const x0 = randn([4, 3], { dtype: 'float64', generator: new Generator(20) });
  const noise = randn([4, 3], { dtype: 'float64', generator: new Generator(21) });

  test('v target α_t ε - σ_t x_0 gives zero loss, and the MSE of an offset is its square', () => {
    const ts = [0, 200, 600, 999];
    const t = tensor(ts, { dtype: 'int32' });
    const target = (offset: number) => () => {
      const a = x0.toFloat64Array();
      const e = noise.toFloat64Array();
      return tensor(a.map((x, j) => {
        const k = ts[Math.floor(j / 3)]!;
        return Math.sqrt(abars[k]!) * e[j]! - Math.sqrt(1 - abars[k]!) * x + offset;
      }), { dtype: 'float64', shape: [4, 3] });
    };
    assert.ok(diffusion.vPredictionLoss(schedule, { model: target(0), x0, noise, t, cond: zeros([4, 1]) }).loss.item() < 1e-20);
    close(diffusion.vPredictionLoss(schedule, { model: target(0.5), x0, noise, t, cond: zeros([4, 1]) }).loss.item(), 0.25, 1e-12, 'offset loss');
  });

  test('flow: x_t = (1 - t) x_0 + t ε, model time t·1000, target ε - x_0', () => {
    const tv = [0, 0.25, 0.5, 1];
    const t = tensor(tv, { dtype: 'float64' });
    let seen: [Tensor, Tensor] | null = null;
    const model = (xt: Tensor, tm: Tensor) => { seen = [xt, tm]; return zeros([4, 3], { dtype: 'float64' }); };
    const r = diffusion.flowMatchingLoss({ model, x0, noise, t, cond: zeros([4, 1]) });
    const [xt, tm] = seen!;
    assert.deepEqual(tm.toArray(), [0, 250, 500, 1000]);
    const a = x0.toFloat64Array();
    const e = noise.toFloat64Array();
    const x = xt.toFloat64Array();
    let total = 0;
    for (let j = 0; j < 12; j++) {
      const s = tv[Math.floor(j / 3)]!;
      close(x[j]!, (1 - s) * a[j]! + s * e[j]!, 1e-14, `x_t[${j}]`);
      total += (e[j]! - a[j]!) ** 2;
    }
    close(r.loss.item(), total / 12, 1e-12, 'flow loss with v̂ = 0');
    assert.throws(() => diffusion.flowMatchingLoss({ model, x0, noise, t: tensor([1, 2, 3, 4], { dtype: 'int32' }), cond: zeros([4, 1]) }), /floating tensor/);
  });

  test('flow times: uniform in [0, 1), logit-normal with logit mean m and std s', () => {
    const u = diffusion.sampleFlowTimes(20000, { distribution: 'uniform', generator: new Generator(30) }).toFloat64Array();
    assert.ok(u.every((v) => v >= 0 && v < 1));
    close(u.reduce((a, b) => a + b, 0) / u.length, 0.5, 0.01, 'uniform mean');
    const ln = diffusion.sampleFlowTimes(20000, { mean: 0.5, std: 0.8, generator: new Generator(31) }).toFloat64Array();
    const logits = Array.from(ln, (v) => Math.log(v / (1 - v)));
    const m = logits.reduce((a, b) => a + b, 0) / logits.length;
    const sd = Math.sqrt(logits.reduce((a, b) => a + (b - m) ** 2, 0) / (logits.length - 1));
    // 4 standard errors: 0.8 / √20000 ≈ 0.0057 for the mean, 0.8 / √40000 = 0.004 for the std.
    assert.ok(Math.abs(m - 0.5) < 0.023 && Math.abs(sd - 0.8) < 0.016, `logit mean ${m}, std ${sd}`);
  });

  test('training timesteps are integers in [0, T)', () => {
    const t = diffusion.sampleTimesteps(5000, 1000, { generator: new Generator(32) });
    assert.equal(t.dtype, 'int32');
    const v = t.toFloat64Array();
    assert.ok(v.every((x) => Number.isInteger(x) && x >= 0 && x < 1000));
    assert.ok(Math.min(...v) < 10 && Math.max(...v) > 990);
  });
});

describe('condition dropout for classifier-free guidance', () => {
  const cond = randn([4, 1, 3, 2], { generator: new Generator(40) });
  const nullCond = randn([3, 2], { generator: new Generator(41) });

  test('a mask selects the null embedding per sample, and gradients reach both inputs', () => {
    const c = cond.detach().requiresGrad_();
    const n = nullCond.detach().requiresGrad_();
    const r = diffusion.dropConditions(c, n, { mask: tensor([true, false, true, false]) });
    const got = r.cond.toFloat64Array();
    const src = cond.toFloat64Array();
    const nul = nullCond.toFloat64Array();
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 6; j++) assert.equal(got[i * 6 + j], i % 2 === 0 ? nul[j] : src[i * 6 + j]);
    }
    sum(r.cond).backward();
    assert.deepEqual(n.grad!.toArray(), new Array(6).fill(2));
    assert.deepEqual(c.grad!.toArray(), [0, 1, 0, 1].flatMap((k) => new Array(6).fill(k)));
  });

  test('a probability drops about that fraction, reproducibly from a generator', () => {
    const big = zeros([20000, 1]);
    const nul = tensor([1]);
    const a = diffusion.dropConditions(big, nul, { probability: 0.1, generator: new Generator(42) });
    const b = diffusion.dropConditions(big, nul, { probability: 0.1, generator: new Generator(42) });
    const frac = a.cond.toFloat64Array().reduce((s, v) => s + v, 0) / 20000;
    assert.ok(Math.abs(frac - 0.1) < 0.01, `dropped fraction ${frac}`);
    assert.deepEqual(a.dropped.toArray(), b.dropped.toArray());
    assert.ok(diffusion.dropConditions(big, nul, { probability: 0 }).dropped.toArray().every((v) => v === 0));
    assert.ok(diffusion.dropConditions(big, nul, { probability: 1 }).dropped.toArray().every((v) => v === 1));
  });

  test('errors name the argument', () => {
    assert.throws(() => diffusion.dropConditions(cond, nullCond, { probability: 1.5 }), /probability must be in \[0, 1\], got 1.5/);
    assert.throws(() => diffusion.dropConditions(cond, randn([2, 3, 2]), { probability: 0.1 }), /must broadcast to a sample of cond/);
    assert.throws(() => diffusion.dropConditions(cond, nullCond, { mask: tensor([true, false]) }), /mask must be \[4\]/);
  });
});
