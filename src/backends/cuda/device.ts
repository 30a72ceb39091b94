/** The CUDA driver (loaded and initialised once per process) and what it says about each device. */
import { ATTR, bindDriver, check, CUDA_ERROR_NO_DEVICE, CUDA_SUCCESS, type DriverApi } from './ffi/driver.js';
import { cString, outI32, outU64, takeU64 } from './ffi/koffi.js';

export interface CudaDeviceInfo {
  readonly index: number;
  readonly name: string;
  readonly totalMemoryBytes: number;
  readonly computeCapability: readonly [number, number];
  /** major * 10 + minor (90 for an H100). */
  readonly arch: number;
  readonly multiprocessors: number;
  readonly l2CacheBytes: number;
  readonly maxThreadsPerBlock: number;
  readonly maxSharedMemoryPerBlockOptin: number;
}

export class CudaUnavailableError extends Error {
  override name = 'CudaUnavailableError';
}

/** "13.0" from the driver's 13000. */
export function cudaVersionString(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

export class CudaDriver {
  private static instance: CudaDriver | undefined;

  /** CUDA version the driver supports (e.g. 13000). */
  readonly version: number;
  /** False when cuInit found no device (the driver is installed but no GPU is visible). */
  readonly hasDevices: boolean;

  private constructor(readonly api: DriverApi) {
    const status = api.cuInit(0);
    if (status !== CUDA_SUCCESS && status !== CUDA_ERROR_NO_DEVICE) check(api, 'cuInit', status);
    this.hasDevices = status === CUDA_SUCCESS;
    check(api, 'cuDriverGetVersion', api.cuDriverGetVersion(outI32));
    this.version = outI32[0]!;
  }

  /** Loads libcuda and runs cuInit on first call; throws LibraryNotFoundError or CudaError. */
  static get(): CudaDriver {
    CudaDriver.instance ??= new CudaDriver(bindDriver());
    return CudaDriver.instance;
  }

  deviceCount(): number {
    if (!this.hasDevices) return 0;
    check(this.api, 'cuDeviceGetCount', this.api.cuDeviceGetCount(outI32));
    return outI32[0]!;
  }

  /** The CUdevice handle of ordinal `index`, with a clear error when there is no such device. */
  device(index: number): number {
    const count = this.deviceCount();
    if (!Number.isInteger(index) || index < 0 || index >= count) {
      throw new CudaUnavailableError(count === 0
        ? `no CUDA device is visible (the driver, CUDA ${cudaVersionString(this.version)}, found none)`
        : `CUDA device ${index} does not exist: ${count} device${count === 1 ? '' : 's'} visible (cuda:0${count > 1 ? `..cuda:${count - 1}` : ''})`);
    }
    check(this.api, 'cuDeviceGet', this.api.cuDeviceGet(outI32, index));
    return outI32[0]!;
  }

  deviceInfo(index: number): CudaDeviceInfo {
    const dev = this.device(index);
    const api = this.api;
    const attr = (a: number, what: string) => {
      check(api, `cuDeviceGetAttribute(${what})`, api.cuDeviceGetAttribute(outI32, a, dev));
      return outI32[0]!;
    };
    const nameBuf = new Uint8Array(256);
    check(api, 'cuDeviceGetName', api.cuDeviceGetName(nameBuf, nameBuf.length, dev));
    check(api, 'cuDeviceTotalMem', api.cuDeviceTotalMem(outU64, dev));
    const totalMemoryBytes = takeU64();
    const major = attr(ATTR.computeCapabilityMajor, 'COMPUTE_CAPABILITY_MAJOR');
    const minor = attr(ATTR.computeCapabilityMinor, 'COMPUTE_CAPABILITY_MINOR');
    return {
      index,
      name: cString(nameBuf),
      totalMemoryBytes,
      computeCapability: [major, minor],
      arch: major * 10 + minor,
      multiprocessors: attr(ATTR.multiprocessorCount, 'MULTIPROCESSOR_COUNT'),
      l2CacheBytes: attr(ATTR.l2CacheSize, 'L2_CACHE_SIZE'),
      maxThreadsPerBlock: attr(ATTR.maxThreadsPerBlock, 'MAX_THREADS_PER_BLOCK'),
      maxSharedMemoryPerBlockOptin: attr(ATTR.maxSharedMemoryPerBlockOptin, 'MAX_SHARED_MEMORY_PER_BLOCK_OPTIN'),
    };
  }

  /** The device's primary context (shared with cuBLAS, which uses the runtime API), retained. */
  primaryContext(index: number): number {
    const dev = this.device(index);
    check(this.api, 'cuDevicePrimaryCtxRetain', this.api.cuDevicePrimaryCtxRetain(outU64, dev));
    return takeU64();
  }
}
