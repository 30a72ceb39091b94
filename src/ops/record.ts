/** Connects an op's outputs to the autograd graph when gradients are being recorded. */
import { GradNode, type BackwardFn } from '../autograd/node.js';
import { isGradEnabled } from '../autograd/grad-mode.js';
import { isFloating } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';

export function needsGrad(...inputs: readonly (Tensor | null | undefined)[]): boolean {
  if (!isGradEnabled()) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

/**
 * Records `outputs = name(inputs)`; `backward` receives the output gradients and returns one
 * gradient (or null) per input, in order.
 */
export interface RecordOptions {
  /** Record even when no input requires grad: the op may close over trainable tensors (checkpoint). */
  always?: boolean;
  /** The backward runs kernels directly, so it cannot itself be differentiated (createGraph refuses it). */
  onceDifferentiable?: boolean;
  /**
   * Every tensor whose values `backward` reads (inputs, outputs or op-internal intermediates),
   * like PyTorch's save_for_backward. Shapes, dtypes and devices stay readable on any tensor, so
   * a tensor backward uses only for those need not be listed. The graph keeps listed tensors
   * alive after their scope ends and releases them once this node has run (lifetime.ts); a
   * tensor read but not listed may be disposed under the node, which backward then reports.
   */
  saved?: readonly (Tensor | null | undefined)[];
}

export function record(name: string, inputs: readonly Tensor[], outputs: readonly Tensor[], backward: BackwardFn,
  options: RecordOptions = {}): void {
  if (options.always ? !isGradEnabled() : !needsGrad(...inputs)) return;
  const saved = options.saved ? options.saved.filter((t): t is Tensor => t !== null && t !== undefined) : [];
  const node = new GradNode(name, inputs, outputs, backward, options.onceDifferentiable ?? false, saved);
  outputs.forEach((out, i) => {
    if (!isFloating(out.dtype)) return;
    out.requiresGrad = true;
    out.gradFn = node;
    out.outputIndex = i;
  });
}
