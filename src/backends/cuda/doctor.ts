/**
 * What CUDA this machine offers dimba: driver, devices, NVRTC and cuBLAS (required), cuBLASLt
 * (used for matmuls when present), cuDNN and NCCL (optional), each found or not and why. Never throws: a machine without a GPU
 * gets a report that says so, and a missing optional library is reported with where it was looked
 * for but does not make CUDA unavailable.
 */
import { CudaDriver, cudaVersionString, type CudaDeviceInfo } from './device.js';
import { bindNvrtc, check as checkNvrtc } from './ffi/nvrtc.js';
import { bindCublas, check as checkBlas, MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL } from './ffi/cublas.js';
import { bindCublasLt, cublasLtVersionString } from './ffi/cublaslt.js';
import { bindCudnn, cudnnVersionString } from './ffi/cudnn.js';
import { bindNccl, check as checkNccl, ncclVersionString } from './ffi/nccl.js';
import { LibraryNotFoundError, loadedPath, type OpenedLibrary } from './ffi/loader.js';
import { outI32, outI32b } from './ffi/koffi.js';
import { formatBytes } from './allocator.js';

export interface LibraryReport {
  readonly found: boolean;
  readonly path?: string;
  readonly version?: string;
  /** Why it was not found or could not be used. */
  readonly error?: string;
  /** Places searched, when not found. */
  readonly looked?: readonly string[];
  /** True for libraries dimba can run without (cuDNN, NCCL). */
  readonly optional?: boolean;
}

export interface CudnnReport extends LibraryReport {
  /** Sub-libraries loaded from the folder cuDNN came from. */
  readonly parts?: readonly string[];
  /** Sub-libraries absent from that folder, or there but failing to load (name: reason). */
  readonly missingParts?: readonly string[];
  readonly failedParts?: readonly string[];
}

export interface DeviceReport {
  readonly index: number;
  readonly name: string;
  readonly totalMemoryBytes: number;
  readonly computeCapability: string;
  readonly multiprocessors: number;
  readonly l2CacheBytes: number;
}

export interface CudaReport {
  /** True when a GPU, the driver, NVRTC and cuBLAS are all usable. */
  readonly available: boolean;
  /** One plain sentence. */
  readonly summary: string;
  readonly driver: LibraryReport & { readonly cudaVersion?: string };
  readonly devices: readonly DeviceReport[];
  readonly nvrtc: LibraryReport;
  readonly cublas: LibraryReport;
  readonly cublasLt: LibraryReport;
  readonly cudnn: CudnnReport;
  readonly nccl: LibraryReport;
}

function failure(e: unknown): LibraryReport {
  if (e instanceof LibraryNotFoundError) return { found: false, error: `looked for ${e.library.names.join(', ')}`, looked: e.looked };
  return { found: false, error: e instanceof Error ? e.message : String(e) };
}

function found(library: OpenedLibrary, version: string): LibraryReport {
  return { found: true, path: loadedPath(library), version };
}

function probe(fn: () => LibraryReport): LibraryReport {
  try {
    return fn();
  } catch (e) {
    return failure(e);
  }
}

function deviceReport(d: CudaDeviceInfo): DeviceReport {
  return {
    index: d.index, name: d.name, totalMemoryBytes: d.totalMemoryBytes, computeCapability: d.computeCapability.join('.'),
    multiprocessors: d.multiprocessors, l2CacheBytes: d.l2CacheBytes,
  };
}

export function probeCuda(): CudaReport {
  let driver: CudaReport['driver'];
  let devices: DeviceReport[] = [];
  let deviceError: string | undefined;
  try {
    const d = CudaDriver.get();
    driver = { ...found(d.api.library, cudaVersionString(d.version)), cudaVersion: cudaVersionString(d.version) };
    try {
      const count = d.deviceCount();
      devices = Array.from({ length: count }, (_, i) => deviceReport(d.deviceInfo(i)));
    } catch (e) {
      deviceError = e instanceof Error ? e.message : String(e);
    }
  } catch (e) {
    driver = failure(e);
  }
  const nvrtc = probe(() => {
    const api = bindNvrtc();
    checkNvrtc(api, 'nvrtcVersion', api.nvrtcVersion(outI32, outI32b));
    return found(api.library, `${outI32[0]}.${outI32b[0]}`);
  });
  let cublasLibrary: OpenedLibrary | undefined;
  const cublas = probe(() => {
    const api = bindCublas();
    cublasLibrary = api.library;
    const part = (p: number, what: string) => {
      checkBlas(api, `cublasGetProperty(${what})`, api.cublasGetProperty(p, outI32));
      return outI32[0]!;
    };
    return found(api.library, `${part(MAJOR_VERSION, 'MAJOR_VERSION')}.${part(MINOR_VERSION, 'MINOR_VERSION')}.${part(PATCH_LEVEL, 'PATCH_LEVEL')}`);
  });
  const cublasLt = probe(() => {
    const api = bindCublasLt(cublasLibrary);
    return found(api.library, cublasLtVersionString(api.cublasLtGetVersion()));
  });
  const cudnn: CudnnReport = { ...probe(() => {
    const api = bindCudnn();
    const lib = api.library;
    const base = found(lib, cudnnVersionString(api.cudnnGetVersion()));
    return { ...base, parts: lib.parts, missingParts: lib.missingParts, failedParts: lib.failedParts };
  }), optional: true };
  const nccl: LibraryReport = { ...probe(() => {
    const api = bindNccl();
    checkNccl(api, 'ncclGetVersion', api.ncclGetVersion(outI32));
    return found(api.library, ncclVersionString(outI32[0]!));
  }), optional: true };

  const available = driver.found && devices.length > 0 && nvrtc.found && cublas.found;
  let summary: string;
  if (!driver.found) {
    summary = driver.looked
      ? 'No GPU: no CUDA driver is installed on this machine (libcuda not found); dimba runs on the CPU.'
      : `No GPU: the CUDA driver could not be used (${driver.error}); dimba runs on the CPU.`;
  } else if (devices.length === 0) {
    summary = `No GPU: the CUDA driver (CUDA ${driver.cudaVersion}) sees no device${deviceError ? ` (${deviceError})` : ''}; dimba runs on the CPU.`;
  } else if (!available) {
    const missing = [nvrtc.found ? '' : 'NVRTC', cublas.found ? '' : 'cuBLAS'].filter((s) => s).join(' and ');
    summary = `${devices.length} GPU${devices.length > 1 ? 's' : ''} found, but ${missing} could not be loaded, so dimba cannot use CUDA yet.`;
  } else {
    summary = `CUDA is ready: ${devices.length} GPU${devices.length > 1 ? 's' : ''} (${devices.map((d) => `cuda:${d.index}`).join(', ')}).`;
  }
  return { available, summary, driver, devices, nvrtc, cublas, cublasLt, cudnn, nccl };
}

function libraryLine(label: string, r: LibraryReport, versionPrefix = ''): string {
  const head = `${label.padEnd(13)}`;
  if (!r.found) return `${head}${r.looked ? 'not found' : 'unusable'}${r.optional ? ' (optional)' : ''}: ${r.error ?? 'unknown error'}`;
  return `${head}${versionPrefix}${r.version} (${r.path})`;
}

export function formatCudaReport(r: CudaReport): string {
  const lines = [r.summary, '', libraryLine('CUDA driver', r.driver, 'supports CUDA ')];
  for (const d of r.devices) {
    lines.push(`${`GPU ${d.index}`.padEnd(13)}${d.name}: ${formatBytes(d.totalMemoryBytes)}, compute capability ${d.computeCapability}, `
      + `${d.multiprocessors} multiprocessors, ${formatBytes(d.l2CacheBytes)} L2`);
  }
  lines.push(libraryLine('NVRTC', r.nvrtc), libraryLine('cuBLAS', r.cublas), libraryLine('cuBLASLt', r.cublasLt),
    libraryLine('cuDNN', r.cudnn), libraryLine('NCCL', r.nccl));
  if (r.cudnn.found) {
    const gaps = [...(r.cudnn.missingParts ?? []).map((p) => `${p} (absent)`), ...(r.cudnn.failedParts ?? [])];
    lines.push(`${''.padEnd(13)}${r.cudnn.parts?.length ?? 0} sub-libraries from that folder${gaps.length > 0 ? `; not loaded: ${gaps.join(', ')}` : ''}`);
  }
  const looked = [['CUDA driver', r.driver], ['NVRTC', r.nvrtc], ['cuBLAS', r.cublas], ['cuBLASLt', r.cublasLt],
    ['cuDNN', r.cudnn], ['NCCL', r.nccl]] as const;
  for (const [what, lib] of looked) {
    if (lib.looked) lines.push(`Searched for ${what} in:`, ...lib.looked.map((l) => `  - ${l}`));
  }
  return lines.join('\n');
}
