/**
 * Activation checkpointing: run `fn` without recording, keep only its inputs, and recompute it
 * (with the random generator rewound, so dropout masks repeat) when the gradient is needed.
 * Parameters that `fn` closes over receive their gradients during that recomputation.
 */
import { isGradEnabled, enableGrad, noGrad } from './grad-mode.js';
import { backward } from './engine.js';
import { record } from '../ops/record.js';
import { detach } from '../ops/layout.js';
import { defaultGenerator } from '../random/generator.js';
import type { Tensor } from '../tensor/tensor.js';

export function checkpoint(fn: (...inputs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  const rngState = defaultGenerator.getState();
  const out = noGrad(() => fn(...inputs));
  // The output must be its own tensor so that recording does not mark an input in place.
  const result = detach(out);
  record('checkpoint', inputs, [result], ([g]) => {
    const detached = inputs.map((t) => {
      const d = detach(t);
      if (t.requiresGrad) d.requiresGrad_(true);
      return d;
    });
    const resumeState = defaultGenerator.getState();
    defaultGenerator.setState(rngState);
    try {
      const recomputed = enableGrad(() => fn(...detached));
      if (recomputed.requiresGrad) backward(recomputed, g!);
    } finally {
      defaultGenerator.setState(resumeState);
    }
    return detached.map((d) => d.grad);
  }, { always: true });
  return result;
}
