/**
 * A recorded op in the autograd graph. `backward` maps the gradients of the op's outputs to the
 * gradients of its inputs, in input order (null where an input needs none). Broadcast inputs get
 * full-shape gradients back; the engine reduces them (un-broadcasting happens once, there).
 *
 * A node lists the tensors its backward reads (`saved`), so that their lifetime can follow the
 * graph: a tensor that outlived its scope only because a node saved it is released once every
 * node that saved it has been released (after running backward, or when its graph became
 * unreachable at a scope's end). See src/tensor/lifetime.ts.
 */
import type { DType } from '../tensor/dtype.js';
import type { Shape } from '../tensor/shape.js';
import type { GradHook, Tensor } from '../tensor/tensor.js';
import { DisposedTensorError, releaseIfUnheld, trackNode, type Scope } from '../tensor/lifetime.js';

export type BackwardFn = (grads: Tensor[]) => readonly (Tensor | null | undefined)[];

export class GraphFreedError extends Error {
  override name = 'GraphFreedError';
}

export type ReleaseReason = 'backward' | 'scope';

export class GradNode {
  /** Inputs that take part in differentiation (null entries are constants). */
  readonly inputs: readonly (Tensor | null)[];
  readonly inputShapes: readonly Shape[];
  readonly inputDTypes: readonly DType[];
  readonly outputShapes: readonly Shape[];
  readonly outputDTypes: readonly DType[];
  /** @internal The scope that owns this node until it ends (lifetime.ts), or null. */
  scope: Scope | null = null;
  private fn: BackwardFn | null;
  private saved: readonly Tensor[];
  private releasedBy: ReleaseReason | null = null;
  private hooks: Map<number, GradHook[]> | null = null;

  constructor(readonly name: string, inputs: readonly Tensor[], outputs: readonly Tensor[], fn: BackwardFn,
    readonly onceDifferentiable = false, saved: readonly Tensor[] = []) {
    this.inputs = inputs.map((t) => (t.requiresGrad ? t : null));
    this.inputShapes = inputs.map((t) => t.shape);
    this.inputDTypes = inputs.map((t) => t.dtype);
    this.outputShapes = outputs.map((t) => t.shape);
    this.outputDTypes = outputs.map((t) => t.dtype);
    this.fn = fn;
    this.saved = saved;
    for (const t of saved) t._saves++;
    trackNode(this);
  }

  get numOutputs(): number {
    return this.outputShapes.length;
  }

  get released(): boolean {
    return this.releasedBy !== null;
  }

  apply(grads: Tensor[]): readonly (Tensor | null | undefined)[] {
    if (!this.fn) {
      throw new GraphFreedError(this.releasedBy === 'scope'
        ? `backward through '${this.name}': its graph was released when the T.tidy scope that recorded it ended; return the output (or keep() it) from the scope to run backward later`
        : `backward through '${this.name}' a second time: the graph was freed; pass retainGraph: true to the first backward()`);
    }
    try {
      return this.fn(grads);
    } catch (error) {
      // Name the node: the stack alone would only say that backward() was running.
      if (error instanceof DisposedTensorError && !error.op.startsWith('backward of')) {
        throw new DisposedTensorError(`backward of '${this.name}'`, error.tensor, error.reason);
      }
      throw error;
    }
  }

  /** Drops the backward and lets go of the saved tensors (releasing those only the graph held). */
  release(reason: ReleaseReason = 'backward'): void {
    if (this.releasedBy !== null) return;
    this.releasedBy = reason;
    this.fn = null;
    const saved = this.saved;
    this.saved = [];
    for (const t of saved) {
      t._saves--;
      releaseIfUnheld(t, 'graph');
    }
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
