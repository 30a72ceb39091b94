/**
 * The meta backend: storage without data. Every kernel is a no-op, so building a model on 'meta'
 * costs no memory and no time; shapes, dtypes and parameter names are exact, values are not
 * (reading one gives zeros). `dimba info` uses it to describe models of any size.
 */
import type { Backend, FusedKernels, Kernels, Storage } from '../backend.js';
import { allocHost, type DType, type HostArray } from '../../tensor/dtype.js';
import type { Device } from '../../tensor/device.js';

class MetaStorage implements Storage {
  constructor(readonly backend: Backend, readonly dtype: DType, readonly numel: number) {}
  release(): void {}
}

const noop = (): void => {};

const kernels: Kernels = {
  copy: noop, fill: noop, arange: noop, unary: noop, unaryBackward: noop, binary: noop, where: noop,
  reduceRows: noop, reduceColumns: noop, matmul: noop, softmax: noop, softmaxBackward: noop, normRows: noop, normRowsBackward: noop,
  indexSelect: noop, indexAdd: noop, gather: noop, scatterAdd: noop, random: noop,
  conv2d: noop, conv2dBackwardInput: noop, conv2dBackwardWeight: noop, causalConv1d: noop, causalConv1dBackward: noop,
  interpolate2d: noop, interpolate2dBackward: noop, selectiveScan: noop, selectiveScanBackward: noop,
};

export class MetaBackend implements Backend {
  readonly kernels = kernels;
  readonly fused: FusedKernels = {};

  constructor(readonly device: Device) {}

  alloc(dtype: DType, numel: number): Storage {
    return new MetaStorage(this, dtype, numel);
  }

  fromHost(dtype: DType, data: HostArray): Storage {
    return new MetaStorage(this, dtype, data.length);
  }

  toHost(storage: Storage, _offset: number, numel: number): HostArray {
    return allocHost(storage.dtype, numel);
  }

  synchronize(): void {}
}
