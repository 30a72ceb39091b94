/**
 * Deterministic tensor lifetimes: scopes (T.tidy), keep(), and ownership by holders.
 *
 * Without scopes a tensor's storage goes when V8 collects the Tensor object (FinalizationRegistry):
 * on JS-heap pressure, never on device-memory pressure, and only between event-loop tasks. A
 * training loop that never yields would grow without bound, and GPU memory of dead intermediates
 * would stay reserved until some later collection. Scopes make release deterministic.
 *
 * The rules (one place; tidy, backward and the graph all follow them):
 *
 * - A tensor created while a scope is open belongs to it (the innermost one). Tensors created
 *   outside every scope are *free*: only dispose() or the garbage collector releases them.
 * - When a scope ends, each tensor it owns that has not been disposed
 *     1. survives if it is reachable from fn's result (arrays, plain objects, Maps, Sets) or was
 *        handed to the scope's caller as a survivor: it moves to the enclosing scope, or becomes
 *        free at top level;
 *     2. survives if a `.grad` slot holds it: it moves to the enclosing scope; at top level it is
 *        then *held-only*: released when the last `.grad` slot lets go of it (zeroGrad, or an
 *        assignment that replaces it), unless keep() claims it first;
 *     3. survives if an autograd node that is still live saved it for backward (live: reachable
 *        from a surviving tensor's graph): it becomes held-only by the graph, released as soon as
 *        every node that saved it has run backward (retainGraph false), or when an enclosing
 *        scope ends with those nodes unreachable;
 *     4. is disposed otherwise. Nodes recorded in the scope that are no longer reachable are
 *        released (their saved tensors go with them).
 * - keep(t) makes t free: no scope, graph or slot will dispose it.
 * - backward() is itself a scope: gradients it leaves in `.grad` survive (rule 2), intermediate
 *   gradients are disposed as soon as they are consumed, and the rest when it returns. Tensors a
 *   gradient hook receives survive backward (the hook may keep them).
 *
 * Storage is reference counted over views, so disposing one view never invalidates another.
 * Scopes are synchronous: tidy(fn) rejects an fn that returns a Promise, because work after an
 * await would run while unrelated code (another task) creates tensors.
 */
import type { Tensor } from './tensor.js';
import type { GradNode } from '../autograd/node.js';

/** Why a tensor was disposed, for the use-after-dispose error. */
export type DisposeReason = 'dispose' | 'scope' | 'graph' | 'grad';

/** The lifetime fields every Tensor carries (internal to the engine). */
export interface Owned {
  /** The scope that owns it; null when free or held-only. */
  _scope: Scope | null;
  /** `.grad` slots that currently hold it. */
  _holds: number;
  /** Unreleased graph nodes that saved it for backward. */
  _saves: number;
  /** Released when _holds and _saves both reach 0 (it outlived its scope only for those holders). */
  _heldOnly: boolean;
  readonly isDisposed: boolean;
  readonly gradFn: GradNode | null;
  disposeAs(reason: DisposeReason): void;
}

const DISPOSED_BY: Record<DisposeReason, string> = {
  dispose: 'by dispose()',
  scope: 'when the T.tidy scope that created it ended (return it from the scope or keep() it)',
  graph: 'by backward(), which released it after the last op that saved it for the gradient had run (keep() it to use it afterwards)',
  grad: 'when the .grad that held it was cleared or replaced (keep() a gradient to use it afterwards)',
};

/** Data access to a disposed tensor; `op` names the op (or the backward of one) that tried it. */
export class DisposedTensorError extends Error {
  override name = 'DisposedTensorError';
  constructor(readonly op: string, readonly tensor: string, readonly reason: DisposeReason) {
    super(`${op}: ${tensor} was used after it was disposed ${DISPOSED_BY[reason]}`);
  }
}

export class ScopeError extends Error {
  override name = 'ScopeError';
}

export class Scope {
  readonly tensors: Tensor[] = [];
  readonly nodes: GradNode[] = [];
  /** Tensors keep() took from this scope whose graphs must stay usable. */
  readonly keptRoots: Tensor[] = [];
  ended = false;

  /**
   * @param heldAtTop what a slot-held survivor becomes when this scope ends at top level:
   *   held-only (true, tidy) or free (false, backward called outside any scope, so that code which
   *   never uses scopes keeps the garbage-collected lifetime of its gradients).
   */
  constructor(readonly parent: Scope | null, readonly label: string, readonly heldAtTop: boolean) {}
}

let current: Scope | null = null;

/** The innermost open scope, or null. */
export function currentScope(): Scope | null {
  return current;
}

/** Called by the Tensor constructor. */
export function trackTensor(t: Tensor): void {
  if (current !== null) {
    t._scope = current;
    current.tensors.push(t);
  }
}

/** Called by the GradNode constructor. */
export function trackNode(node: GradNode): void {
  if (current !== null) {
    node.scope = current;
    current.nodes.push(node);
  }
}

export function openScope(label: string, heldAtTop: boolean): Scope {
  const scope = new Scope(current, label, heldAtTop);
  current = scope;
  return scope;
}

/**
 * Ends `scope` (the innermost open one), applying the rules above. `result` and `survivors` are
 * searched for tensors that survive.
 */
export function closeScope(scope: Scope, result?: unknown, survivors: Iterable<Tensor> = []): void {
  if (current !== scope || scope.ended) {
    throw new ScopeError(`scope '${scope.label}' closed out of order (scopes nest synchronously; was an await inside one?)`);
  }
  scope.ended = true;
  current = scope.parent;
  const parent = scope.parent;

  const kept = new Set<Tensor>();
  collectTensors(result, kept, new Set());
  for (const t of survivors) kept.add(t);

  // Graphs that must stay usable: those of survivors, of slot-held tensors and of kept() tensors.
  const roots: Tensor[] = [...kept, ...scope.keptRoots];
  for (const t of scope.tensors) if (t._scope === scope && t._holds > 0) roots.push(t);
  const live = liveNodes(roots, scope);
  for (const node of scope.nodes) {
    if (node.scope !== scope) continue;
    if (live.has(node)) {
      node.scope = parent;
      parent?.nodes.push(node);
    } else {
      node.release('scope');
    }
  }

  for (const t of scope.tensors) {
    if (t._scope !== scope || t.isDisposed) continue;
    const survives = kept.has(t);
    if (survives || t._holds > 0) {
      if (parent) {
        t._scope = parent;
        parent.tensors.push(t);
      } else {
        t._scope = null;
        t._heldOnly = !survives && scope.heldAtTop;
      }
    } else if (t._saves > 0) {
      t._scope = null;
      t._heldOnly = true;
    } else {
      t.disposeAs('scope');
    }
  }
}

/** Unreleased nodes recorded in `scope` that the roots' graphs reach. */
function liveNodes(roots: readonly Tensor[], scope: Scope): Set<GradNode> {
  const live = new Set<GradNode>();
  const stack: GradNode[] = [];
  const visit = (t: Tensor | null): void => {
    const node = t?.gradFn;
    if (node && node.scope === scope && !node.released && !live.has(node)) {
      live.add(node);
      stack.push(node);
    }
  };
  for (const t of roots) visit(t);
  while (stack.length > 0) for (const input of stack.pop()!.inputs) visit(input);
  return live;
}

/** Set to true on Tensor.prototype, so this module recognises tensors without importing the class. */
export const TENSOR_BRAND = Symbol.for('dimba.tensor');

function isTensor(value: object): value is Tensor {
  return (value as Record<symbol, unknown>)[TENSOR_BRAND] === true;
}

/** Tensors in arrays, plain objects, Maps (keys and values) and Sets, at any depth. */
function collectTensors(value: unknown, out: Set<Tensor>, seen: Set<object>): void {
  if (typeof value !== 'object' || value === null) return;
  if (isTensor(value)) {
    out.add(value);
    return;
  }
  if (seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value) || value instanceof Set) {
    for (const v of value) collectTensors(v, out, seen);
  } else if (value instanceof Map) {
    for (const [k, v] of value) {
      collectTensors(k, out, seen);
      collectTensors(v, out, seen);
    }
  } else {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto === Object.prototype || proto === null) for (const v of Object.values(value)) collectTensors(v, out, seen);
  }
}

/**
 * Runs fn in a new scope and disposes every tensor fn created that does not outlive it (see the
 * rules at the top of this file): what fn returns survives, so do kept, slot-held and
 * graph-saved tensors. Scopes nest. fn must be synchronous.
 */
export function tidy<R>(fn: () => R): R {
  const scope = openScope('tidy', true);
  let result: R;
  try {
    result = fn();
  } catch (error) {
    closeScope(scope);
    throw error;
  }
  if (typeof (result as { then?: unknown } | null)?.then === 'function') {
    closeScope(scope);
    throw new ScopeError('tidy: fn returned a Promise; scopes track synchronous work only. Await outside tidy and tidy the synchronous part');
  }
  closeScope(scope, result);
  return result;
}

/**
 * Takes `t` out of every automatic lifetime: no scope, graph or `.grad` slot will dispose it (its
 * storage then goes with dispose() or garbage collection). Returns t. Use it for tensors created
 * inside a scope that must outlive it without being returned, e.g. caches and persistent state.
 */
export function keep<T extends Tensor | null | undefined>(t: T): T {
  if (t) {
    const owner = t._scope;
    if (owner !== null) {
      if (t.gradFn) owner.keptRoots.push(t);
      t._scope = null;
    }
    t._heldOnly = false;
  }
  return t;
}

/** Called when a `.grad` slot or a graph node lets go of t: releases a held-only tensor with no holder left. */
export function releaseIfUnheld(t: Tensor, reason: DisposeReason): void {
  if (t._heldOnly && t._holds === 0 && t._saves === 0 && !t.isDisposed) t.disposeAs(reason);
}

/** A `.grad` slot (or code that borrows one) starts holding t. */
export function holdTensor(t: Tensor): void {
  t._holds++;
}

/** The holder lets go of t, releasing it if it was held-only and nothing else holds it. */
export function unholdTensor(t: Tensor, reason: DisposeReason): void {
  t._holds--;
  releaseIfUnheld(t, reason);
}
