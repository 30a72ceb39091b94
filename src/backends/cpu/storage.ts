/** CPU storage: a host typed array (see tensor/dtype.ts for the array type per dtype). */
import type { Backend, Storage } from '../backend.js';
import { allocHost, type DType, type HostArray } from '../../tensor/dtype.js';
import type { Tensor } from '../../tensor/tensor.js';

export class CpuStorage implements Storage {
  constructor(readonly backend: Backend, readonly dtype: DType, readonly data: HostArray) {}

  get numel(): number {
    return this.data.length;
  }

  release(): void {
    // Host memory goes with the garbage collector.
  }

  static alloc(backend: Backend, dtype: DType, numel: number): CpuStorage {
    return new CpuStorage(backend, dtype, allocHost(dtype, numel));
  }
}

/** The host array behind a CPU tensor (error if the tensor lives elsewhere). */
export function hostOf(t: Tensor): HostArray {
  const s = t.storage;
  if (!(s instanceof CpuStorage)) throw new TypeError(`CPU kernel got a tensor on ${t.deviceName}`);
  return s.data;
}
