/**
 * Activation checkpointing: run `fn` without recording, keep only its inputs, and recompute it
 * (with the random generator rewound, so dropout masks repeat) when the gradient is needed.
 * Parameters that `fn` closes over receive their gradients during that recomputation; any other
 * tensor that needs a gradient must be passed as an input (the recomputation detaches inputs).
 * So must any other tensor fn reads that is not persistent (parameters, buffers, kept tensors):
 * the graph keeps the inputs alive until backward, but a closed-over intermediate may be released
 * when the T.tidy scope that made it ends.
 *
 * Both runs of fn are scopes: the forward keeps only fn's outputs, and the recomputation's
 * activations are released as its backward passes them, so a checkpointed block holds at most one
 * block's activations at a time.
 */
import { isGradEnabled, enableGrad, noGrad } from './grad-mode.js';
import { backward } from './engine.js';
import { record } from '../ops/record.js';
import { detach } from '../ops/layout.js';
import { mul } from '../ops/elementwise.js';
import { sum } from '../ops/reduce.js';
import { add } from '../ops/elementwise.js';
import { defaultGenerator } from '../random/generator.js';
import { tidy } from '../tensor/lifetime.js';
import type { Tensor } from '../tensor/tensor.js';

export function checkpoint(fn: (...inputs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor;
export function checkpoint(fn: (...inputs: Tensor[]) => Tensor[], ...inputs: Tensor[]): Tensor[];
export function checkpoint(fn: (...inputs: Tensor[]) => Tensor | Tensor[], ...inputs: Tensor[]): Tensor | Tensor[] {
  if (!isGradEnabled()) return fn(...inputs);
  const rngState = defaultGenerator.getState();
  const out = tidy(() => noGrad(() => fn(...inputs)));
  const outs = Array.isArray(out) ? out : [out];
  // Fresh tensor objects, so that recording never marks something fn returned unchanged.
  const results = outs.map(detach);
  record('checkpoint', inputs, results, (grads) => {
    const detached = inputs.map((t) => {
      const d = detach(t);
      if (t.requiresGrad) d.requiresGrad_(true);
      return d;
    });
    const resumeState = defaultGenerator.getState();
    defaultGenerator.setState(rngState);
    try {
      // One backward for all outputs: d/dθ Σ_i <out_i, g_i> gives Σ_i J_iᵀ g_i. Built in a scope, so
      // the recomputed activations belong to its graph and go as that backward passes them.
      const objective = tidy(() => {
        const again = enableGrad(() => fn(...detached));
        const recomputed = Array.isArray(again) ? again : [again];
        let total: Tensor | null = null;
        recomputed.forEach((r, i) => {
          if (!r.requiresGrad) return;
          const term = enableGrad(() => sum(mul(r, grads[i]!)));
          total = total ? enableGrad(() => add(total!, term)) : term;
        });
        return total as Tensor | null;
      });
      if (objective) backward(objective);
    } finally {
      defaultGenerator.setState(resumeState);
    }
    return detached.map((d) => {
      const g = d.grad;
      // The detached inputs are discarded; their gradients now belong to the outer backward.
      d.grad = null;
      return g;
    });
  }, { always: true, onceDifferentiable: true, saved: inputs });
  return Array.isArray(out) ? results : results[0]!;
}
