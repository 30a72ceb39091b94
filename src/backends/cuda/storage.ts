/** CUDA storage: a block from the caching allocator; release() hands it back (Tensor calls it when no view is left). */
import type { Backend, Storage } from '../backend.js';
import { itemSize, type DType } from '../../tensor/dtype.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Block, CachingAllocator } from './allocator.js';

export class CudaStorage implements Storage {
  private block: Block | null;

  constructor(readonly backend: Backend, readonly dtype: DType, readonly numel: number, block: Block,
    private readonly allocator: CachingAllocator) {
    this.block = block;
  }

  get released(): boolean {
    return this.block === null;
  }

  /** Device address of element 0. */
  get address(): number {
    if (this.block === null) throw new Error(`CUDA storage (${this.numel} x ${this.dtype}) used after release`);
    return this.block.address;
  }

  release(): void {
    if (this.block === null) return;
    this.allocator.release(this.block);
    this.block = null;
  }
}

/** Device address of a tensor's first element (its storage plus offset). */
export function addressOf(t: Tensor): number {
  const s = t.storage;
  if (!(s instanceof CudaStorage)) throw new TypeError(`CUDA kernel got a tensor on ${t.deviceName}; move it with .to('cuda')`);
  return s.address + t.offset * itemSize(t.dtype);
}
