/** Scalar special functions the CPU kernels need and JavaScript lacks. */

const TWO_OVER_SQRT_PI = 1.1283791670955126;

/**
 * erf to about 1e-15: Maclaurin series for |x| < 2.5, continued fraction for erfc beyond
 * (float64 accuracy matters: gradient checks difference GELU in float64).
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 80; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return TWO_OVER_SQRT_PI * sum;
  }
  if (ax > 6) return Math.sign(x);
  // erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), evaluated bottom-up.
  let frac = 0;
  for (let k = 60; k >= 1; k--) frac = (k / 2) / (ax + frac);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + frac);
  return Math.sign(x) * (1 - erfc);
}

const INV_SQRT2 = 0.7071067811865476;
const INV_SQRT_2PI = 0.3989422804014327;
const GELU_TANH_C = 0.7978845608028654; // sqrt(2 / pi)

export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x * INV_SQRT2));
}

export function geluGrad(x: number): number {
  return 0.5 * (1 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_TANH_C * (x + 0.044715 * x * x * x)));
}

export function geluTanhGrad(x: number): number {
  const t = Math.tanh(GELU_TANH_C * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_TANH_C * (1 + 3 * 0.044715 * x * x);
}

export function sigmoid(x: number): number {
  // exp of -|x| never overflows; one exp serves both branches.
  const e = Math.exp(-Math.abs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/** softplus with PyTorch's default threshold (linear above 20). */
export function softplus(x: number): number {
  return x > 20 ? x : Math.log1p(Math.exp(x));
}

/** 2^(j/64) for j in [0, 64). */
const EXP2_FRACTION = Float64Array.from({ length: 64 }, (_, j) => 2 ** (j / 64));
/** 2^i for i in [-1022, 1023], at index i + 1022. */
const EXP2_INTEGER = Float64Array.from({ length: 2046 }, (_, i) => 2 ** (i - 1022));
const EXP_SCALE = 64 / Math.LN2;
const EXP_STEP = Math.LN2 / 64;
/** 1.5 * 2^52: (y + S) - S rounds y to the nearest integer (ties to even) for |y| < 2^51. */
const ROUNDING_SHIFTER = 6755399441055744;

/**
 * exp(x) to a relative error below 1e-10: x = (64 i + j) ln2/64 + r with |r| <= ln2/128, so
 * exp(x) = 2^i 2^(j/64) exp(r), two table lookups and a degree-3 polynomial (the first omitted
 * term, r^4/24, is < 4e-11). About 3x cheaper than Math.exp in V8 (a call into C), which the
 * selective scan pays once per state update. Only for float32 compute: float64 kernels keep
 * Math.exp so that they stay the exact reference. Outside [-708, 709] (overflow, subnormal
 * results) and for NaN it defers to Math.exp.
 */
export function expFast(x: number): number {
  if (!(x >= -708 && x <= 709)) return Math.exp(x);
  // Not Math.round: V8 lowers it to a ceil and a data-dependent branch, which mispredicts on
  // every other call for scan inputs and made this function slower than Math.exp.
  const kf = x * EXP_SCALE + ROUNDING_SHIFTER - ROUNDING_SHIFTER;
  const r = x - kf * EXP_STEP;
  const k = kf | 0;
  return EXP2_INTEGER[(k >> 6) + 1022]! * EXP2_FRACTION[k & 63]! * (1 + r * (1 + r * (0.5 + r * (1 / 6))));
}

/** sigmoid with `expFast`, for float32 compute. */
export function sigmoidFast(x: number): number {
  const e = expFast(-Math.abs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/** softplus (PyTorch's threshold) with `expFast`, for float32 compute. */
export function softplusFast(x: number): number {
  return x > 20 ? x : Math.log1p(expFast(x));
}
