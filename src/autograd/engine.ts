/**
 * Reverse-mode differentiation: topological walk from the root, summing gradients per node
 * output, reducing broadcast gradients to input shapes, and accumulating into leaves (whose hooks
 * fire as soon as their gradient for this pass is complete).
 */
import { GradNode } from './node.js';
import { isGradEnabled, noGrad, enableGrad } from './grad-mode.js';
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

function runHooks(hooks: readonly GradHook[], grad: Tensor): Tensor {
  let g = grad;
  for (const hook of hooks) g = hook(g) ?? g;
  return g;
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

function accumulateLeaf(leaf: Tensor, grad: Tensor): void {
  const g = runHooksOnLeaf(leaf, grad);
  leaf.grad = leaf.grad ? ops.add(leaf.grad, g) : g;
}

function runHooksOnLeaf(leaf: Tensor, grad: Tensor): Tensor {
  return leaf.gradHooks.length > 0 ? runHooks(leaf.gradHooks, grad) : grad;
}

export function backward(root: Tensor, grad?: Tensor, options: BackwardOptions = {}): void {
  if (!root.requiresGrad) {
    throw new Error('backward: the tensor does not require grad (no input was marked requiresGrad_, or it was computed under noGrad)');
  }
  let seed = grad;
  if (!seed) {
    if (root.numel !== 1) throw new Error(`backward: implicit gradient needs a scalar output, got shape ${formatShape(root.shape)}; pass a gradient`);
    seed = ops.onesLike(root);
  } else if (!shapesEqual(seed.shape, root.shape)) {
    throw new Error(`backward: gradient shape ${formatShape(seed.shape)} does not match output ${formatShape(root.shape)}`);
  }
  // As in PyTorch, building a differentiable backward keeps the forward graph it refers to.
  const run = () => backwardFrom(root, seed!, options.retainGraph ?? options.createGraph ?? false, options.createGraph ?? false);
  if (options.createGraph) enableGrad(run);
  else noGrad(run);
}

function backwardFrom(root: Tensor, seed: Tensor, retainGraph: boolean, createGraph: boolean): void {
  if (root.isLeaf) {
    accumulateLeaf(root, seed);
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

  for (const node of order) {
    const slots = nodeGrads.get(node);
    nodeGrads.delete(node);
    if (!slots) continue;
    const outGrads = slots.map((g, i) => {
      const full = g ?? ops.zeros(node.outputShapes[i]!, { dtype: node.outputDTypes[i]!, device: seed.device });
      const hooks = node.outputHooks(i);
      return hooks.length > 0 ? runHooks(hooks, full) : full;
    });
    if (createGraph && node.onceDifferentiable) {
      throw new Error(`backward with createGraph: '${node.name}' has a kernel backward that cannot be differentiated again`);
    }
    const inGrads = node.apply(outGrads);
    if (!retainGraph) node.release();
    node.inputs.forEach((input, i) => {
      if (!input) return;
      let g = inGrads[i];
      if (g) {
        g = unbroadcast(g, node.inputShapes[i]!);
        if (g.dtype !== input.dtype) g = ops.cast(g, input.dtype);
      }
      if (input.isLeaf) {
        if (g) {
          const prev = leafGrads.get(input);
          leafGrads.set(input, prev ? ops.add(prev, g) : g);
        }
        const left = pendingLeafEdges.get(input)! - 1;
        pendingLeafEdges.set(input, left);
        const done = leafGrads.get(input);
        if (left === 0 && done) {
          leafGrads.delete(input);
          accumulateLeaf(input, done);
        }
        return;
      }
      if (!g) return;
      const producer = input.gradFn!;
      let target = nodeGrads.get(producer);
      if (!target) {
        target = new Array<Tensor | null>(producer.numOutputs).fill(null);
        nodeGrads.set(producer, target);
      }
      const prev = target[input.outputIndex];
      target[input.outputIndex] = prev ? ops.add(prev, g) : g;
    });
  }
}

/** Gradients of `outputs` with respect to `inputs` without touching `.grad` (like torch.autograd.grad). */
export function grad(output: Tensor, inputs: Tensor[], gradOutput?: Tensor, options: BackwardOptions = {}): (Tensor | null)[] {
  const saved = inputs.map((t) => ({ grad: t.grad, hooks: [...t.gradHooks] }));
  for (const t of inputs) {
    if (!t.isLeaf) throw new Error('grad: inputs must be leaf tensors (detach intermediate values first)');
    t.grad = null;
  }
  try {
    backward(output, gradOutput, options);
    return inputs.map((t) => t.grad);
  } finally {
    inputs.forEach((t, i) => {
      t.grad = saved[i]!.grad;
    });
  }
}

export { isGradEnabled };
