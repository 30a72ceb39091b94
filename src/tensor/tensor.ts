/**
 * Tensor: a strided view of backend storage plus autograd bookkeeping. Every computation goes
 * through src/ops (each op defined once); the methods here are conveniences that call them.
 *
 * Lifetime: views share a storage, which is released when the last tensor using it is disposed
 * (dispose(), the end of a T.tidy scope, the graph or `.grad` slot that held it letting go; see
 * lifetime.ts) or garbage-collected. A disposed tensor keeps its metadata (shape, dtype, device,
 * graph links) but any access to its data throws DisposedTensorError naming the op.
 */
import type { Backend, Storage } from '../backends/backend.js';
import { getBackend } from '../backends/registry.js';
import { allocHost, isFloating, type DType, type HostArray } from './dtype.js';
import { deviceKey, type Device } from './device.js';
import { contiguousStrides, formatShape, isContiguousLayout, numelOf, type Shape } from './shape.js';
import type { GradNode } from '../autograd/node.js';
import {
  DisposedTensorError, TENSOR_BRAND, holdTensor, trackTensor, unholdTensor, type DisposeReason, type Owned, type Scope,
} from './lifetime.js';
import { countStorage } from './memory.js';
import * as ops from '../ops/index.js';

export type GradHook = (grad: Tensor) => Tensor | void;

/** Tensors share storage through views; storage is released when the last tensor using it goes. */
const storageRefs = new WeakMap<Storage, number>();
const finalizer = new FinalizationRegistry<Storage>((storage) => dropStorageRef(storage));

function addStorageRef(storage: Storage): void {
  const n = storageRefs.get(storage) ?? 0;
  if (n === 0) countStorage(storage, 1);
  storageRefs.set(storage, n + 1);
}

function dropStorageRef(storage: Storage): void {
  const n = (storageRefs.get(storage) ?? 1) - 1;
  if (n <= 0) {
    storageRefs.delete(storage);
    countStorage(storage, -1);
    storage.release();
  } else storageRefs.set(storage, n);
}

/** The outermost engine function on the stack (the op the caller invoked), for error messages. */
function callingOp(): string | null {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 60;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  let name: string | null = null;
  let seenEngine = false;
  for (const line of stack.split('\n').slice(1)) {
    const m = /^\s*at (?:(.+?) \()?(.*?):\d+:\d+\)?$/.exec(line);
    if (!m) continue;
    const inEngine = /[\\/]src[\\/](ops|tensor|backends|autograd)[\\/]/.test(m[2]!);
    if (!inEngine) {
      if (seenEngine) break;
      continue;
    }
    seenEngine = true;
    const fn = m[1]?.replace(/^(new |async )/, '').split('.').pop();
    if (fn && fn !== '<anonymous>' && !fn.startsWith('get ') && fn !== 'storage') name = fn;
  }
  return name;
}

export class Tensor implements Owned {
  #storage: Storage | null;
  readonly backend: Backend;
  readonly shape: Shape;
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  /** Leaf tensors with requiresGrad receive `.grad` from backward(). */
  requiresGrad = false;
  #grad: Tensor | null = null;
  /** The node that produced this tensor (null for leaves), and which of its outputs it is. */
  gradFn: GradNode | null = null;
  outputIndex = 0;
  /** Hooks run on this leaf's gradient after it is accumulated (data-parallel all-reduce hooks in here). */
  readonly gradHooks: GradHook[] = [];
  #disposedBy: DisposeReason | null = null;
  /** @internal Lifetime bookkeeping (lifetime.ts). */
  _scope: Scope | null = null;
  /** @internal */
  _holds = 0;
  /** @internal */
  _saves = 0;
  /** @internal */
  _heldOnly = false;

  constructor(storage: Storage, shape: Shape, strides?: readonly number[], offset = 0) {
    this.#storage = storage;
    this.backend = storage.backend;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
    this.dtype = storage.dtype;
    addStorageRef(storage);
    finalizer.register(this, storage, this);
    trackTensor(this);
  }

  /** The backend memory; throws DisposedTensorError once this tensor has been disposed. */
  get storage(): Storage {
    const s = this.#storage;
    if (s === null) throw new DisposedTensorError(callingOp() ?? 'an op', this.toString(), this.#disposedBy!);
    return s;
  }

  /**
   * The gradient backward() accumulated (leaves). A gradient that outlived its T.tidy scope only
   * because this slot held it is released when the slot is cleared or replaced (lifetime.ts).
   */
  get grad(): Tensor | null {
    return this.#grad;
  }

  set grad(g: Tensor | null) {
    const old = this.#grad;
    if (g === old) return;
    if (g) holdTensor(g);
    this.#grad = g;
    if (old) unholdTensor(old, 'grad');
  }

  /** New uninitialised contiguous tensor on a backend. */
  static empty(shape: Shape, dtype: DType, backend: Backend): Tensor {
    return new Tensor(backend.alloc(dtype, numelOf(shape)), shape);
  }

  /** Wraps host data (copied) as a contiguous tensor. */
  static fromHost(data: HostArray, shape: Shape, dtype: DType, device: string | Device = 'cpu'): Tensor {
    if (data.length !== numelOf(shape)) {
      throw new RangeError(`fromHost: ${data.length} values do not fill shape ${formatShape(shape)}`);
    }
    const backend = getBackend(device);
    return new Tensor(backend.fromHost(dtype, data), shape);
  }

  get device(): Device { return this.backend.device; }
  get deviceName(): string { return deviceKey(this.device); }
  get ndim(): number { return this.shape.length; }
  get numel(): number { return numelOf(this.shape); }
  get isLeaf(): boolean { return this.gradFn === null; }
  get isContiguous(): boolean { return isContiguousLayout(this.shape, this.strides); }
  get isDisposed(): boolean { return this.#storage === null; }

  size(dim: number): number {
    return this.shape[dim < 0 ? dim + this.ndim : dim]!;
  }

  /** A tensor sharing this one's storage with another layout (no autograd; ops/view.ts adds it). */
  withLayout(shape: Shape, strides: readonly number[], offset: number): Tensor {
    return new Tensor(this.storage, shape, strides, offset);
  }

  /** Marks a leaf as trainable. */
  requiresGrad_(flag = true): this {
    if (flag && !isFloating(this.dtype)) throw new TypeError(`requiresGrad_: only floating tensors can require grad, got ${this.dtype}`);
    if (!this.isLeaf && !flag) throw new Error('requiresGrad_(false) on a non-leaf tensor: use detach()');
    this.requiresGrad = flag;
    return this;
  }

  registerHook(hook: GradHook): () => void {
    if (!this.isLeaf) {
      const node = this.gradFn!;
      return node.addOutputHook(this.outputIndex, hook);
    }
    this.gradHooks.push(hook);
    return () => {
      const i = this.gradHooks.indexOf(hook);
      if (i >= 0) this.gradHooks.splice(i, 1);
    };
  }

  /**
   * Releases this tensor's hold on its storage now rather than at garbage collection (other views
   * keep the storage alive). Later use of this tensor's data throws; disposing twice is a no-op.
   */
  dispose(): void {
    this.disposeAs('dispose');
  }

  /** @internal dispose() recording why, for the use-after-dispose message. */
  disposeAs(reason: DisposeReason): void {
    const s = this.#storage;
    if (s === null) return;
    this.#storage = null;
    this.#disposedBy = reason;
    this._scope = null;
    // A disposed tensor's gradient is unreachable through it: let it go (a held-only one is released).
    this.grad = null;
    finalizer.unregister(this);
    dropStorageRef(s);
  }

  /** Copies the elements to the host as a contiguous array of the tensor's dtype. */
  toHost(): HostArray {
    if (this.numel === 0) return allocHost(this.dtype, 0);
    if (this.isContiguous) return this.backend.toHost(this.storage, this.offset, this.numel);
    // The copy is ours alone: release it now rather than at garbage collection.
    const t = ops.contiguous(this);
    try {
      return this.backend.toHost(t.storage, t.offset, t.numel);
    } finally {
      t.dispose();
    }
  }

  /** Elements as float64 numbers, for inspection and tests (half types decoded, int64 via Number). */
  toFloat64Array(): Float64Array {
    const wide = ops.cast(this, 'float64');
    const host = wide.toHost();
    if (wide !== this) wide.dispose();
    return host instanceof Float64Array ? host : Float64Array.from(host as ArrayLike<number>);
  }

  toArray(): number[] {
    return Array.from(this.toFloat64Array());
  }

  item(): number {
    if (this.numel !== 1) throw new RangeError(`item: tensor has ${this.numel} elements, expected 1`);
    return this.toFloat64Array()[0]!;
  }

  toString(): string {
    return `Tensor(shape=${formatShape(this.shape)}, dtype=${this.dtype}, device=${this.deviceName}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }

  // ---- conveniences over src/ops ------------------------------------------------------------
  backward(grad?: Tensor, options?: { retainGraph?: boolean }): void { ops.backward(this, grad, options); }
  detach(): Tensor { return ops.detach(this); }
  contiguous(): Tensor { return ops.contiguous(this); }
  clone(): Tensor { return ops.clone(this); }
  to(target: string | DType): Tensor { return ops.to(this, target); }
  cast(dtype: DType): Tensor { return ops.cast(this, dtype); }
  reshape(...shape: number[]): Tensor { return ops.reshape(this, shape); }
  view(...shape: number[]): Tensor { return ops.view(this, shape); }
  flatten(startDim = 0, endDim = -1): Tensor { return ops.flatten(this, startDim, endDim); }
  permute(...dims: number[]): Tensor { return ops.permute(this, dims); }
  transpose(d0: number, d1: number): Tensor { return ops.transpose(this, d0, d1); }
  get T(): Tensor { return ops.transpose(this, -2, -1); }
  unsqueeze(dim: number): Tensor { return ops.unsqueeze(this, dim); }
  squeeze(dim?: number): Tensor { return ops.squeeze(this, dim); }
  expand(...shape: number[]): Tensor { return ops.expand(this, shape); }
  narrow(dim: number, start: number, length: number): Tensor { return ops.narrow(this, dim, start, length); }
  flip(...dims: number[]): Tensor { return ops.flip(this, dims); }
  chunk(chunks: number, dim = 0): Tensor[] { return ops.chunk(this, chunks, dim); }
  add(other: Tensor | number): Tensor { return ops.add(this, other); }
  sub(other: Tensor | number): Tensor { return ops.sub(this, other); }
  mul(other: Tensor | number): Tensor { return ops.mul(this, other); }
  div(other: Tensor | number): Tensor { return ops.div(this, other); }
  neg(): Tensor { return ops.neg(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  square(): Tensor { return ops.square(this); }
  matmul(other: Tensor): Tensor { return ops.matmul(this, other); }
  sum(dims?: number | number[], keepdim = false): Tensor { return ops.sum(this, dims, keepdim); }
  mean(dims?: number | number[], keepdim = false): Tensor { return ops.mean(this, dims, keepdim); }
}

Object.defineProperty(Tensor.prototype, TENSOR_BRAND, { value: true });
