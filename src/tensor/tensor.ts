/**
 * Tensor: a strided view of backend storage plus autograd bookkeeping. Every computation goes
 * through src/ops (each op defined once); the methods here are conveniences that call them.
 */
import type { Backend, Storage } from '../backends/backend.js';
import { getBackend } from '../backends/registry.js';
import { allocHost, isFloating, type DType, type HostArray } from './dtype.js';
import { deviceKey, type Device } from './device.js';
import { contiguousStrides, formatShape, isContiguousLayout, numelOf, type Shape } from './shape.js';
import type { GradNode } from '../autograd/node.js';
import * as ops from '../ops/index.js';

export type GradHook = (grad: Tensor) => Tensor | void;

/** Tensors share storage through views; storage is released when the last tensor using it goes. */
const storageRefs = new WeakMap<Storage, number>();
const finalizer = new FinalizationRegistry<Storage>((storage) => dropStorageRef(storage));

function addStorageRef(storage: Storage): void {
  storageRefs.set(storage, (storageRefs.get(storage) ?? 0) + 1);
}

function dropStorageRef(storage: Storage): void {
  const n = (storageRefs.get(storage) ?? 1) - 1;
  if (n <= 0) {
    storageRefs.delete(storage);
    storage.release();
  } else storageRefs.set(storage, n);
}

export class Tensor {
  readonly storage: Storage;
  readonly shape: Shape;
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  /** Leaf tensors with requiresGrad receive `.grad` from backward(). */
  requiresGrad = false;
  grad: Tensor | null = null;
  /** The node that produced this tensor (null for leaves), and which of its outputs it is. */
  gradFn: GradNode | null = null;
  outputIndex = 0;
  /** Hooks run on this leaf's gradient after it is accumulated (data-parallel all-reduce hooks in here). */
  readonly gradHooks: GradHook[] = [];
  private disposed = false;

  constructor(storage: Storage, shape: Shape, strides?: readonly number[], offset = 0) {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
    this.dtype = storage.dtype;
    addStorageRef(storage);
    finalizer.register(this, storage, this);
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

  get backend(): Backend { return this.storage.backend; }
  get device(): Device { return this.storage.backend.device; }
  get deviceName(): string { return deviceKey(this.device); }
  get ndim(): number { return this.shape.length; }
  get numel(): number { return numelOf(this.shape); }
  get isLeaf(): boolean { return this.gradFn === null; }
  get isContiguous(): boolean { return isContiguousLayout(this.shape, this.strides); }
  get isDisposed(): boolean { return this.disposed; }

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

  /** Releases this tensor's hold on its storage now rather than at garbage collection. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    finalizer.unregister(this);
    dropStorageRef(this.storage);
  }

  /** Copies the elements to the host as a contiguous array of the tensor's dtype. */
  toHost(): HostArray {
    const t = this.isContiguous ? this : ops.contiguous(this);
    if (t.numel === 0) return allocHost(this.dtype, 0);
    return this.backend.toHost(t.storage, t.offset, t.numel);
  }

  /** Elements as float64 numbers, for inspection and tests (half types decoded, int64 via Number). */
  toFloat64Array(): Float64Array {
    const host = ops.cast(this, 'float64').toHost();
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
