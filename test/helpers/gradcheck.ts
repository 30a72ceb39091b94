/**
 * Finite-difference gradient checks in float64 on the CPU. The scalar loss is
 * sum(f(inputs) * w) with a fixed random w, so every output element takes part.
 */
import assert from 'node:assert/strict';
import { Tensor, tensor, noGrad, mul, sum, randn, Generator } from '../../src/index.js';

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  /** Indices of inputs to check (default: every floating input that requires grad). */
  only?: number[];
}

/** Random float64 tensor that requires grad. */
export function rand64(shape: number[], seed: number, scale = 1, shift = 0): Tensor {
  const g = new Generator(seed);
  const base = randn(shape, { dtype: 'float64', generator: g }).toFloat64Array();
  return tensor(base.map((v) => v * scale + shift), { dtype: 'float64', shape, requiresGrad: true });
}

function lossOf(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], weights: Tensor | null): { loss: Tensor; weights: Tensor } {
  const out = f(...inputs);
  const w = weights ?? randn(out.shape, { dtype: 'float64', generator: new Generator(1234) });
  return { loss: sum(mul(out, w)), weights: w };
}

/** Asserts that autograd gradients of f match central differences for each checked input. */
export function gradcheck(name: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], options: GradcheckOptions = {}): void {
  const eps = options.eps ?? 1e-6;
  const atol = options.atol ?? 1e-6;
  const rtol = options.rtol ?? 1e-5;
  for (const t of inputs) t.grad = null;
  const { loss, weights } = lossOf(f, inputs, null);
  loss.backward();
  const checked = options.only ?? inputs.map((_, i) => i).filter((i) => inputs[i]!.requiresGrad);
  for (const i of checked) {
    const x = inputs[i]!;
    const analytic = x.grad ? x.grad.toFloat64Array() : new Float64Array(x.numel);
    const values = x.toFloat64Array();
    const numeric = new Float64Array(x.numel);
    for (let j = 0; j < x.numel; j++) {
      const at = (delta: number) => {
        const v = Float64Array.from(values);
        v[j] += delta;
        const probe = inputs.map((t, k) => (k === i ? tensor(v, { dtype: 'float64', shape: [...x.shape] }) : t.detach()));
        return noGrad(() => lossOf(f, probe, weights).loss.item());
      };
      numeric[j] = (at(eps) - at(-eps)) / (2 * eps);
    }
    for (let j = 0; j < x.numel; j++) {
      const a = analytic[j]!;
      const n = numeric[j]!;
      if (!(Math.abs(a - n) <= atol + rtol * Math.abs(n))) {
        assert.fail(`${name}: gradient of input ${i} (shape [${x.shape.join(', ')}]) differs at element ${j}: autograd ${a}, finite difference ${n}`);
      }
    }
  }
}
