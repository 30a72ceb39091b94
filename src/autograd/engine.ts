/**
 * Reverse-mode differentiation: topological walk from the root, summing gradients per node
 * output, reducing broadcast gradients to input shapes, and accumulating into leaves (whose hooks
 * fire as soon as their gradient for this pass is complete).
 */
import { GradNode } from './node.js';
import { isGradEnabled, noGrad, enableGrad } from './grad-mode.js';
import { closeScope, holdTensor, openScope, tidy, unholdTensor, type Scope } from '../tensor/lifetime.js';
import type { GradHook, Tensor } from '../tensor/tensor.js';
import { formatShape, shapesEqual, type Shape } from '../tensor/shape.js';
import * as ops from '../ops/index.js';

export interface BackwardOptions {
  retainGraph?: boolean;
  /** Record the backward pass itself (for higher-order gradients). */
  createGraph?: boolean;
}

/** Sums `grad` over the dims that broadcasting added or expanded, giving `shape`. */
export function unbroadcast(grad: Tensor, shape: Shape): Tensor {
  if (shapesEqual(grad.shape, shape)) return grad;
  const lead = grad.ndim - shape.length;
  if (lead < 0) throw new Error(`unbroadcast: gradient ${formatShape(grad.shape)} has fewer dims than input ${formatShape(shape)}`);
  const dims: number[] = [];
  for (let i = 0; i < grad.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && grad.shape[i] !== 1)) dims.push(i);
  }
  const summed = dims.length > 0 ? ops.sum(grad, dims, true) : grad;
  return ops.reshape(summed, shape);
}

/** Nodes reachable from `root`, each after every node that consumes its outputs. */
function topologicalOrder(root: GradNode): GradNode[] {
  const order: GradNode[] = [];
  const visited = new Set<GradNode>();
  const stack: [GradNode, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [node, i] = top;
    if (i < node.inputs.length) {
      top[1]++;
      const child = node.inputs[i]?.gradFn;
      if (child && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(node);
    }
  }
  return order.reverse();
}

export function backward(root: Tensor, grad?: Tensor, options: BackwardOptions = {}): void {
  if (!root.requiresGrad) {
    throw new Error('backward: the tensor does not require grad (no input was marked requiresGrad_, or it was computed under noGrad)');
  }
  if (grad && !shapesEqual(grad.shape, root.shape)) {
    throw new Error(`backward: gradient shape ${formatShape(grad.shape)} does not match output ${formatShape(root.shape)}`);
  }
  if (!grad && root.numel !== 1) throw new Error(`backward: implicit gradient needs a scalar output, got shape ${formatShape(root.shape)}; pass a gradient`);
  // backward is a scope: gradients left in .grad survive it, everything else it creates goes.
  const pass = new Pass(openScope('backward', false));
  try {
    // As in PyTorch, building a differentiable backward keeps the forward graph it refers to.
    const run = () => pass.run(root, grad ?? ops.onesLike(root), options.retainGraph ?? options.createGraph ?? false, options.createGraph ?? false);
    if (options.createGraph) enableGrad(run);
    else noGrad(run);
  } finally {
    closeScope(pass.scope, undefined, pass.escaped);
  }
}

/**
 * One backward pass. Gradient tensors it creates are its own: each is disposed as soon as nothing
 * needs it any more (no pending sum, no .grad slot, no graph that saved it, not given to a hook).
 * The same tensor object may sit in several places at once (add's backward hands g to both inputs),
 * so `pending` counts the places per object.
 */
class Pass {
  /** Tensors given to gradient hooks: they outlive the pass (a hook may have kept them). */
  readonly escaped = new Set<Tensor>();
  private readonly pending = new Map<Tensor, number>();

  constructor(readonly scope: Scope) {}

  private hold(t: Tensor): void {
    this.pending.set(t, (this.pending.get(t) ?? 0) + 1);
  }

  private drop(t: Tensor): void {
    const n = this.pending.get(t)! - 1;
    if (n === 0) this.pending.delete(t);
    else this.pending.set(t, n);
  }

  /** Disposes t if this pass created it and nothing needs it. */
  private done(t: Tensor | null | undefined): void {
    if (t && t._scope === this.scope && t._holds === 0 && t._saves === 0 && !this.pending.has(t) && !this.escaped.has(t)) {
      t.disposeAs('scope');
    }
  }

  private runHooks(hooks: readonly GradHook[], grad: Tensor): Tensor {
    let g = grad;
    for (const hook of hooks) {
      this.escaped.add(g);
      const input = g;
      g = tidy(() => hook(input) ?? input);
    }
    return g;
  }

  private accumulateLeaf(leaf: Tensor, grad: Tensor): void {
    const g = leaf.gradHooks.length > 0 ? this.runHooks(leaf.gradHooks, grad) : grad;
    const prev = leaf.grad;
    leaf.grad = prev ? tidy(() => ops.add(prev, g)) : g;
    this.done(g);
    if (g !== grad) this.done(grad);
  }

  run(root: Tensor, seed: Tensor, retainGraph: boolean, createGraph: boolean): void {
    if (root.isLeaf) {
      this.accumulateLeaf(root, seed);
      return;
    }
    const order = topologicalOrder(root.gradFn!);
    // Count, per leaf, how many graph edges feed it, so its hooks fire once its gradient is final.
    const pendingLeafEdges = new Map<Tensor, number>();
    for (const node of order) {
      for (const input of node.inputs) {
        if (input && input.isLeaf) pendingLeafEdges.set(input, (pendingLeafEdges.get(input) ?? 0) + 1);
      }
    }
    const leafGrads = new Map<Tensor, Tensor>();
    const nodeGrads = new Map<GradNode, (Tensor | null)[]>();
    nodeGrads.set(root.gradFn!, Array.from({ length: root.gradFn!.numOutputs }, (_, i) => (i === root.outputIndex ? seed : null)));
    this.hold(seed);

    for (const node of order) {
      const slots = nodeGrads.get(node);
      nodeGrads.delete(node);
      if (!slots) continue;
      const outGrads = slots.map((g, i) => {
        const full = g ?? ops.zeros(node.outputShapes[i]!, { dtype: node.outputDTypes[i]!, device: seed.device });
        const hooks = node.outputHooks(i);
        return hooks.length > 0 ? this.runHooks(hooks, full) : full;
      });
      if (createGraph && node.onceDifferentiable) {
        throw new Error(`backward with createGraph: '${node.name}' has a kernel backward that cannot be differentiated again`);
      }
      // The backward's own intermediates go when it returns; only the input gradients leave.
      const inGrads = tidy(() => node.apply(outGrads));
      if (!retainGraph) node.release();
      node.inputs.forEach((input, i) => {
        if (!input) return;
        const raw = inGrads[i];
        // In a scope: the reduction's copies and views would otherwise pin memory until backward returns.
        const g = raw ? tidy(() => {
          const reduced = unbroadcast(raw, node.inputShapes[i]!);
          return reduced.dtype === input.dtype ? reduced : ops.cast(reduced, input.dtype);
        }) : raw;
        if (input.isLeaf) {
          if (g) this.addTo(leafGrads, input, g);
          const left = pendingLeafEdges.get(input)! - 1;
          pendingLeafEdges.set(input, left);
          const complete = leafGrads.get(input);
          if (left === 0 && complete) {
            leafGrads.delete(input);
            this.drop(complete);
            this.accumulateLeaf(input, complete);
          }
        } else if (g) {
          const producer = input.gradFn!;
          let target = nodeGrads.get(producer);
          if (!target) {
            target = new Array<Tensor | null>(producer.numOutputs).fill(null);
            nodeGrads.set(producer, target);
          }
          const prev = target[input.outputIndex];
          target[input.outputIndex] = this.sum(prev ?? null, g);
        }
      });
      // Output and input gradients are consumed now, unless they moved on unchanged into a slot.
      // (Not earlier: one tensor may be the gradient of several inputs.)
      slots.forEach((g) => { if (g) this.drop(g); });
      outGrads.forEach((g, i) => {
        this.done(g);
        if (slots[i] && slots[i] !== g) this.done(slots[i]);
      });
      for (const g of inGrads) this.done(g);
    }
  }

  private addTo(map: Map<Tensor, Tensor>, key: Tensor, g: Tensor): void {
    map.set(key, this.sum(map.get(key) ?? null, g));
  }

  /** prev + g as a held slot value, releasing what the sum consumed. */
  private sum(prev: Tensor | null, g: Tensor): Tensor {
    if (!prev) {
      this.hold(g);
      return g;
    }
    const total = tidy(() => ops.add(prev, g));
    this.hold(total);
    this.drop(prev);
    this.done(prev);
    this.done(g);
    return total;
  }
}

/** Gradients of `outputs` with respect to `inputs` without touching `.grad` (like torch.autograd.grad). */
export function grad(output: Tensor, inputs: Tensor[], gradOutput?: Tensor, options: BackwardOptions = {}): (Tensor | null)[] {
  for (const t of inputs) {
    if (!t.isLeaf) throw new Error('grad: inputs must be leaf tensors (detach intermediate values first)');
  }
  // Borrow the .grad slots; holding the old gradients meanwhile keeps a held-only one alive.
  const saved = inputs.map((t) => t.grad);
  for (const g of saved) if (g) holdTensor(g);
  try {
    for (const t of inputs) t.grad = null;
    backward(output, gradOutput, options);
    return inputs.map((t) => t.grad);
  } finally {
    inputs.forEach((t, i) => {
      t.grad = saved[i]!;
    });
    for (const g of saved) if (g) unholdTensor(g, 'grad');
  }
}

export { isGradEnabled };
