/**
 * The CUDA backend: device memory from the caching allocator, host copies through the driver,
 * and kernels from kernels/*.ts (NVRTC-compiled CUDA C, cuBLAS for matmul). Every kernel call
 * first makes this device's context current, so tensors on several GPUs can be used in turn.
 */
import type { Backend, FusedKernels, GraphCapability, Kernels, Storage } from '../backend.js';
import { allocHost, itemSize, type DType, type HostArray } from '../../tensor/dtype.js';
import type { Device } from '../../tensor/device.js';
import { check } from './ffi/driver.js';
import type { MemoryStats } from './allocator.js';
import { CudaRuntime, type CudaRuntimeOptions } from './runtime.js';
import { CudaStorage } from './storage.js';
import { copyKernels } from './kernels/copy.js';
import { elementwiseKernels } from './kernels/elementwise.js';
import { reduceKernels } from './kernels/reduce.js';
import { rowKernels } from './kernels/rows.js';
import { indexingKernels } from './kernels/indexing.js';
import { randomKernels } from './kernels/random.js';
import { matmulKernels } from './kernels/matmul.js';
import { scanKernels, scanPairDisabled } from './kernels/scan.js';
import { causalConv1dKernels } from './kernels/causal-conv1d.js';
import { convKernels } from './kernels/conv.js';
import { interpolateKernels } from './kernels/interpolate.js';
import { attentionKernels } from './kernels/attention.js';
import { optimKernels } from './kernels/optim.js';
import { modulateKernels } from './kernels/modulate.js';
import { linearGeluKernels } from './kernels/linear-gelu.js';
import { addRmsNormKernels } from './kernels/add-rms-norm.js';
import type { CudaDeviceInfo } from './device.js';
import { CudaGraph } from './graph.js';

/** Wraps each kernel so it runs with this device's context current. */
function activating(rt: CudaRuntime, kernels: Kernels): Kernels {
  const wrapped = { ...kernels };
  for (const name of Object.keys(kernels) as (keyof Kernels)[]) {
    const fn: (...args: never[]) => void = kernels[name];
    Object.assign(wrapped, { [name]: (...args: never[]) => { rt.activate(); fn(...args); } });
  }
  return wrapped;
}

export class CudaBackend implements Backend {
  readonly runtime: CudaRuntime;
  readonly kernels: Kernels;
  /** Flash attention (kernels/attention.ts; DIMBA_FLASH=0 leaves it out and attention composes). */
  readonly fused: FusedKernels = attentionKernels(() => this.runtime);

  /** CUDA graphs: capture the kernels a function queues on this device's stream, then replay them (graph.ts). */
  readonly graphs: GraphCapability = {
    capture: <T>(fn: () => T, label?: string) => CudaGraph.capture(this.runtime, fn, label),
  };

  constructor(readonly device: Device, options: CudaRuntimeOptions = {}) {
    this.runtime = new CudaRuntime(device.index, options);
    const rt = this.runtime;
    // Multi-tensor optimizer kernels (kernels/optim.ts; DIMBA_FUSED_OPTIM=0 leaves them out).
    Object.assign(this.fused, optimKernels(rt));
    // adaLN norm + modulate and gated residual (kernels/modulate.ts; DIMBA_FUSED_MODULATE=0 leaves them out).
    Object.assign(this.fused, modulateKernels(rt));
    // Linear + GELU-tanh on cuBLASLt's GELU / DGELU epilogues (kernels/linear-gelu.ts; DIMBA_FUSED_GELU=0 leaves them out).
    Object.assign(this.fused, linearGeluKernels(rt));
    // Residual add + RMSNorm of the Mamba blocks (kernels/add-rms-norm.ts; DIMBA_FUSED_ADD_RMSNORM=0 leaves them out).
    Object.assign(this.fused, addRmsNormKernels(rt));
    // Both directions of the bidirectional mixer's scan in one launch at inference (kernels/scan.ts).
    if (!scanPairDisabled()) Object.assign(this.fused, { selectiveScanPair: scanKernels(rt).selectiveScanPair });
    const kernels = activating(rt, {
      ...copyKernels(rt),
      ...elementwiseKernels(rt),
      ...reduceKernels(rt),
      ...rowKernels(rt),
      ...indexingKernels(rt),
      ...randomKernels(rt),
      ...matmulKernels(rt),
      ...scanKernels(rt),
      ...causalConv1dKernels(rt),
      ...convKernels(rt),
      ...interpolateKernels(rt),
    });
    this.kernels = {
      ...kernels,
      random(out, dist, seed, offset) {
        rt.refuseDuringCapture('drawing random numbers', 'random');
        kernels.random(out, dist, seed, offset);
      },
    };
  }

  get info(): CudaDeviceInfo {
    return this.runtime.info;
  }

  alloc(dtype: DType, numel: number): Storage {
    return this.allocStorage(dtype, numel);
  }

  private allocStorage(dtype: DType, numel: number): CudaStorage {
    if (!Number.isSafeInteger(numel) || numel < 0) throw new RangeError(`alloc: bad element count ${numel}`);
    this.runtime.activate();
    return new CudaStorage(this, dtype, numel, this.runtime.allocator.alloc(numel * itemSize(dtype)), this.runtime.allocator);
  }

  fromHost(dtype: DType, data: HostArray): Storage {
    if (allocHost(dtype, 0).constructor !== data.constructor) {
      throw new TypeError(`fromHost: ${data.constructor.name} does not hold ${dtype} elements`);
    }
    if (data.length > 0) this.runtime.refuseDuringCapture(`copying ${data.length} ${dtype} values from the host`, 'hostWrite');
    const storage = this.allocStorage(dtype, data.length);
    if (data.length > 0) {
      const rt = this.runtime;
      // Synchronous on the legacy stream: ordered after queued kernels (which may still be
      // reading a cached block this storage reuses), and the host array may change after return.
      check(rt.api, 'cuMemcpyHtoD', rt.api.cuMemcpyHtoD(storage.address, data, data.byteLength));
    }
    return storage;
  }

  toHost(storage: Storage, offset: number, numel: number): HostArray {
    if (!(storage instanceof CudaStorage) || storage.backend !== this) {
      throw new TypeError(`toHost: storage does not belong to ${this.runtime.label}`);
    }
    const out = allocHost(storage.dtype, numel);
    if (numel === 0) return out;
    const rt = this.runtime;
    rt.refuseDuringCapture(`reading ${numel} ${storage.dtype} values to the host`, 'hostRead');
    rt.activate();
    // A synchronous copy on the legacy stream: it waits for every kernel queued on our stream.
    check(rt.api, 'cuMemcpyDtoH', rt.api.cuMemcpyDtoH(out, storage.address + offset * itemSize(storage.dtype), out.byteLength));
    rt.checkErrors();
    return out;
  }

  synchronize(): void {
    this.runtime.synchronize();
  }

  memoryStats(): MemoryStats {
    return this.runtime.allocator.stats();
  }

  /** Returns cached device memory to the driver; gives the bytes released. */
  emptyCache(): number {
    this.runtime.refuseDuringCapture('emptyCache()', 'emptyCache');
    this.runtime.synchronize();
    return this.runtime.allocator.emptyCache();
  }

  resetPeakMemoryStats(): void {
    this.runtime.allocator.resetPeakStats();
  }
}
