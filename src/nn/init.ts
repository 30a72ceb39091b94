/**
 * Weight initialisers, as torch.nn.init defines them. Each writes into the tensor in place
 * (through assign_, outside autograd) and returns it. Random ones draw from `generator` (the
 * default generator otherwise), so a seeded generator gives the same weights on every backend.
 */
import { noGrad } from '../autograd/grad-mode.js';
import { tensor } from '../ops/create.js';
import { add, clamp, mul } from '../ops/elementwise.js';
import { assign_ } from '../ops/inplace.js';
import { rand, randn } from '../ops/random.js';
import { isFloating } from '../tensor/dtype.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/lifetime.js';
import type { Generator } from '../random/generator.js';
import { erfinv, normalCdf } from './erf.js';

export class InitError extends Error {
  override name = 'InitError';
}

export interface InitOptions {
  generator?: Generator;
}

export type Nonlinearity = 'linear' | 'conv1d' | 'conv2d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu';

/** Samples in float64 for float64 tensors (gradient checks), float32 otherwise (halves round on copy). */
function drawDType(t: Tensor): 'float32' | 'float64' {
  return t.dtype === 'float64' ? 'float64' : 'float32';
}

function checkFloating(op: string, t: Tensor): void {
  if (!isFloating(t.dtype)) throw new InitError(`${op}: tensor must be floating, got ${t.dtype}`);
}

export function constant_(t: Tensor, value: number): Tensor {
  return assign_(t, value);
}

export function zeros_(t: Tensor): Tensor {
  return assign_(t, 0);
}

export function ones_(t: Tensor): Tensor {
  return assign_(t, 1);
}

/** Uniform on [low, high). */
export function uniform_(t: Tensor, low = 0, high = 1, options: InitOptions = {}): Tensor {
  checkFloating('uniform_', t);
  if (!(high >= low)) throw new InitError(`uniform_: need low <= high, got [${low}, ${high})`);
  // tidy: the draw and its scaled copy go as soon as t holds the values (no wait for the GC).
  noGrad(() => tidy(() => {
    const u = rand(t.shape, { dtype: drawDType(t), device: t.device, generator: options.generator });
    assign_(t, add(mul(u, high - low), low));
  }));
  return t;
}

export function normal_(t: Tensor, mean = 0, std = 1, options: InitOptions = {}): Tensor {
  checkFloating('normal_', t);
  if (!(std >= 0)) throw new InitError(`normal_: std must be >= 0, got ${std}`);
  noGrad(() => tidy(() => {
    const z = randn(t.shape, { dtype: drawDType(t), device: t.device, generator: options.generator });
    assign_(t, add(mul(z, std), mean));
  }));
  return t;
}

export interface TruncNormalOptions extends InitOptions {
  mean?: number;
  std?: number;
  /** Absolute bounds (not in units of std), as torch's trunc_normal_: default [-2, 2]. */
  a?: number;
  b?: number;
}

/**
 * Normal(mean, std) restricted to [a, b] by inverse-CDF sampling: u ~ U(Φ(α), Φ(β)) with
 * α = (a - mean)/std, β = (b - mean)/std, then x = mean + std·√2·erfinv(2u - 1). Exact for any
 * interval, unlike rejection sampling. The inverse CDF runs on the host (an initialiser, not a
 * hot path); the clamp guards against rounding just outside [a, b].
 */
export function truncNormal_(t: Tensor, options: TruncNormalOptions = {}): Tensor {
  checkFloating('truncNormal_', t);
  const { mean = 0, std = 1, a = -2, b = 2 } = options;
  if (!(std > 0) || !(b > a)) throw new InitError(`truncNormal_: need std > 0 and a < b, got std=${std}, [${a}, ${b}]`);
  const lo = 2 * normalCdf((a - mean) / std) - 1;
  const hi = 2 * normalCdf((b - mean) / std) - 1;
  noGrad(() => tidy(() => {
    const u = rand(t.shape, { dtype: 'float64', device: 'cpu', generator: options.generator }).toFloat64Array();
    const values = u.map((v) => mean + std * Math.SQRT2 * erfinv(lo + (hi - lo) * v));
    assign_(t, clamp(tensor(values, { dtype: 'float64', shape: t.shape }), a, b));
  }));
  return t;
}

/**
 * fan_in / fan_out of a weight as torch computes them: dims 1 and 0 times the receptive field
 * (product of the remaining dims), so Linear [out, in] has fan_in = in and Conv2d
 * [out, in/groups, kh, kw] has fan_in = in/groups·kh·kw.
 */
export function calculateFanInAndFanOut(t: Tensor): { fanIn: number; fanOut: number } {
  if (t.ndim < 2) throw new InitError(`fan in/out: tensor must have at least 2 dims, got ${formatShape(t.shape)}`);
  const receptive = t.shape.slice(2).reduce((p, d) => p * d, 1);
  return { fanIn: t.shape[1]! * receptive, fanOut: t.shape[0]! * receptive };
}

/** torch.nn.init.calculate_gain; `param` is leaky_relu's negative slope (default 0.01). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'conv1d': case 'conv2d': case 'sigmoid': return 1;
    case 'tanh': return 5 / 3;
    case 'relu': return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case 'selu': return 3 / 4;
  }
}

export interface XavierOptions extends InitOptions {
  gain?: number;
}

/** Glorot & Bengio (2010): Var = gain²·2/(fan_in + fan_out); uniform bound = √3·std. */
export function xavierUniform_(t: Tensor, options: XavierOptions = {}): Tensor {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  const std = (options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut));
  const bound = Math.sqrt(3) * std;
  return uniform_(t, -bound, bound, options);
}

export function xavierNormal_(t: Tensor, options: XavierOptions = {}): Tensor {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  return normal_(t, 0, (options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut)), options);
}

export interface KaimingOptions extends InitOptions {
  /** Negative slope of the leaky ReLU that follows (torch's `a`). */
  a?: number;
  mode?: 'fanIn' | 'fanOut';
  nonlinearity?: Nonlinearity;
}

/** He et al. (2015): std = gain/√fan. torch's Linear/Conv default is a = √5, giving bound 1/√fan_in. */
function kaimingStd(op: string, t: Tensor, options: KaimingOptions): number {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  const fan = (options.mode ?? 'fanIn') === 'fanIn' ? fanIn : fanOut;
  if (fan === 0) throw new InitError(`${op}: cannot initialise a tensor with zero elements, shape ${formatShape(t.shape)}`);
  return calculateGain(options.nonlinearity ?? 'leaky_relu', options.a ?? 0) / Math.sqrt(fan);
}

export function kaimingUniform_(t: Tensor, options: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd('kaimingUniform_', t, options);
  return uniform_(t, -bound, bound, options);
}

export function kaimingNormal_(t: Tensor, options: KaimingOptions = {}): Tensor {
  return normal_(t, 0, kaimingStd('kaimingNormal_', t, options), options);
}
