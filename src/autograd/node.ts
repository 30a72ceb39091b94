/**
 * A recorded op in the autograd graph. `backward` maps the gradients of the op's outputs to the
 * gradients of its inputs, in input order (null where an input needs none). Broadcast inputs get
 * full-shape gradients back; the engine reduces them (un-broadcasting happens once, there).
 */
import type { DType } from '../tensor/dtype.js';
import type { Shape } from '../tensor/shape.js';
import type { GradHook, Tensor } from '../tensor/tensor.js';

export type BackwardFn = (grads: Tensor[]) => readonly (Tensor | null | undefined)[];

export class GraphFreedError extends Error {
  override name = 'GraphFreedError';
}

export class GradNode {
  /** Inputs that take part in differentiation (null entries are constants). */
  readonly inputs: readonly (Tensor | null)[];
  readonly inputShapes: readonly Shape[];
  readonly inputDTypes: readonly DType[];
  readonly outputShapes: readonly Shape[];
  readonly outputDTypes: readonly DType[];
  private fn: BackwardFn | null;
  private hooks: Map<number, GradHook[]> | null = null;

  constructor(readonly name: string, inputs: readonly Tensor[], outputs: readonly Tensor[], fn: BackwardFn,
    readonly onceDifferentiable = false) {
    this.inputs = inputs.map((t) => (t.requiresGrad ? t : null));
    this.inputShapes = inputs.map((t) => t.shape);
    this.inputDTypes = inputs.map((t) => t.dtype);
    this.outputShapes = outputs.map((t) => t.shape);
    this.outputDTypes = outputs.map((t) => t.dtype);
    this.fn = fn;
  }

  get numOutputs(): number {
    return this.outputShapes.length;
  }

  apply(grads: Tensor[]): readonly (Tensor | null | undefined)[] {
    if (!this.fn) {
      throw new GraphFreedError(`backward through '${this.name}' a second time: the graph was freed; pass retainGraph: true to the first backward()`);
    }
    return this.fn(grads);
  }

  /** Drops saved tensors so their memory can go. */
  release(): void {
    this.fn = null;
  }

  addOutputHook(index: number, hook: GradHook): () => void {
    this.hooks ??= new Map();
    const list = this.hooks.get(index) ?? [];
    list.push(hook);
    this.hooks.set(index, list);
    return () => {
      const i = list.indexOf(hook);
      if (i >= 0) list.splice(i, 1);
    };
  }

  outputHooks(index: number): readonly GradHook[] {
    return this.hooks?.get(index) ?? [];
  }
}
