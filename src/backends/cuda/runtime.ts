/**
 * Per-device CUDA state: context, stream, caching allocator, loaded modules, the kernel
 * parameter buffer, the cuBLAS handle and the device-side error word. Kernel launchers
 * (kernels/*.ts) reach the GPU only through this object.
 */
import { check, CUDA_ERROR_NOT_FOUND, CUDA_ERROR_OUT_OF_MEMORY, CU_MEMHOSTALLOC_DEVICEMAP, type DriverApi } from './ffi/driver.js';
import { bindNvrtc } from './ffi/nvrtc.js';
import { bindCublas, check as checkBlas, CUBLAS_DEFAULT_MATH, type CublasApi } from './ffi/cublas.js';
import { koffi, outU64, outU64b, takeU64 } from './ffi/koffi.js';
import { CachingAllocator, RawOutOfMemory, type RawAllocator } from './allocator.js';
import { chooseTarget, KernelCompiler, type CompileTarget } from './compiler.js';
import { CudaDriver, type CudaDeviceInfo } from './device.js';
import { KernelParams } from './params.js';
import { Stream } from './streams.js';
import { kernelPart, partDefines, readKernelSource, type KernelModule, type KernelPart } from './kernels/source.js';
import { captureError, type CaptureHint } from './capture.js';

export interface CudaRuntimeOptions {
  /** Let float32 matmuls use TF32 tensor cores (about 1e-3 relative error). Default false. */
  readonly allowTf32?: boolean;
}

let compiler: KernelCompiler | undefined;
/** NVRTC is loaded on the first kernel compile, once per process. */
function sharedCompiler(): KernelCompiler {
  compiler ??= new KernelCompiler(bindNvrtc());
  return compiler;
}

let currentContext = -1;

/** How a loaded module (or one part of a type-split module) is known: scan.cu[bf16]. */
function moduleKey(module: KernelModule, part?: KernelPart): string {
  return part === undefined ? `${module.name}.cu` : `${module.name}.cu[${part}]`;
}

/** Op codes the index kernels report with (indexing.cu). */
const INDEX_ERROR_OPS = ['', 'indexSelect', 'indexAdd', 'gather', 'scatterAdd'];

export class CudaRuntime {
  readonly api: DriverApi;
  readonly info: CudaDeviceInfo;
  readonly label: string;
  readonly context: number;
  readonly stream: Stream;
  readonly allocator: CachingAllocator;
  readonly params = new KernelParams();
  readonly allowTf32: boolean;
  /** Device address of the error word the index kernels write (mapped host memory). */
  readonly errorWord: number;
  private readonly errorView: BigInt64Array;
  private readonly modules = new Map<string, number>();
  private readonly functions = new Map<string, number>();
  private target: CompileTarget | null = null;
  private blasState: { api: CublasApi; handle: number } | null = null;

  constructor(readonly index: number, options: CudaRuntimeOptions = {}) {
    const driver = CudaDriver.get();
    this.api = driver.api;
    this.info = driver.deviceInfo(index);
    this.label = `cuda:${index}`;
    this.allowTf32 = options.allowTf32 ?? false;
    this.context = driver.primaryContext(index);
    this.activate();
    this.stream = Stream.create(this.api);
    this.allocator = new CachingAllocator(this.rawAllocator(), this.label);
    check(this.api, 'cuMemHostAlloc', this.api.cuMemHostAlloc(outU64, 64, CU_MEMHOSTALLOC_DEVICEMAP));
    const host = takeU64();
    this.errorView = new BigInt64Array(koffi().view(host, 64));
    this.errorView.fill(0n);
    check(this.api, 'cuMemHostGetDevicePointer', this.api.cuMemHostGetDevicePointer(outU64, host, 0));
    this.errorWord = takeU64();
  }

  /** Makes this device's context current on the calling thread (a no-op when it already is). */
  activate(): void {
    if (currentContext === this.context) return;
    check(this.api, 'cuCtxSetCurrent', this.api.cuCtxSetCurrent(this.context));
    currentContext = this.context;
  }

  private rawAllocator(): RawAllocator {
    const api = this.api;
    return {
      malloc(bytes: number): number {
        const status = api.cuMemAlloc(outU64, bytes);
        if (status === CUDA_ERROR_OUT_OF_MEMORY) throw new RawOutOfMemory(`cuMemAlloc(${bytes})`);
        check(api, 'cuMemAlloc', status);
        return takeU64();
      },
      free(address: number): void {
        check(api, 'cuMemFree', api.cuMemFree(address));
      },
      memInfo(): { free: number; total: number } {
        check(api, 'cuMemGetInfo', api.cuMemGetInfo(outU64, outU64b));
        return { free: takeU64(outU64), total: takeU64(outU64b) };
      },
    };
  }

  /** NVRTC's target for this device: its own sm_XY, or PTX for the newest older one NVRTC knows. */
  compileTarget(): CompileTarget {
    this.target ??= chooseTarget(this.info.arch, sharedCompiler().supportedArchs());
    return this.target;
  }

  /**
   * Loads a kernel module once (a type-split module: the given part, one storage type), compiling
   * it with NVRTC unless the disk cache has it. Returns how it went (for warm-up reports): compile
   * milliseconds, 0 when cached or already loaded.
   */
  loadModule(module: KernelModule, part?: KernelPart): { module: string; compileMs: number; fromCache: boolean } {
    if (module.typeSplit && (part === undefined || !module.typeSplit.includes(part))) {
      throw new Error(`kernel module ${module.name}.cu is compiled per storage type: name one of its parts (${module.typeSplit.join(', ')}), not ${part}`);
    }
    if (!module.typeSplit && part !== undefined) throw new Error(`kernel module ${module.name}.cu is not compiled per storage type (part ${part})`);
    const key = moduleKey(module, part);
    if (this.modules.has(key)) return { module: key, compileMs: 0, fromCache: true };
    this.refuseDuringCapture(`loading kernel module ${key}`, 'moduleLoad');
    this.activate();
    const defines = module.typeSplit ? partDefines(part!) : [];
    const compiled = sharedCompiler().compile(readKernelSource(module), this.compileTarget(), defines, key);
    check(this.api, `cuModuleLoadData(${key})`, this.api.cuModuleLoadData(outU64, compiled.image));
    this.modules.set(key, takeU64());
    return { module: key, compileMs: compiled.ms, fromCache: compiled.fromCache };
  }

  /** The CUfunction `name` of a kernel module, loading the module (or its part) on first use. */
  fn(module: KernelModule, name: string): number {
    const key = `${module.name}/${name}`;
    const cached = this.functions.get(key);
    if (cached !== undefined) return cached;
    this.refuseDuringCapture(`resolving kernel ${name} of ${module.name}.cu`, 'moduleLoad');
    const fn = module.typeSplit ? this.partFunction(module, name) : this.moduleFunction(module, name);
    this.functions.set(key, fn);
    return fn;
  }

  private moduleFunction(module: KernelModule, name: string): number {
    this.loadModule(module);
    const fn = this.findFunction(this.modules.get(moduleKey(module))!, name);
    if (fn === null) throw new Error(`cuModuleGetFunction(${name}): ${module.name}.cu defines no kernel ${name}`);
    return fn;
  }

  /**
   * A type-split module's kernel: from its own part, else from a part already loaded that also
   * defines it (causal-conv1d's float reduction serves the bf16 part; a kernel whose name has no
   * type is in every part), else its part (or, untyped, the module's first) compiled now.
   */
  private partFunction(module: KernelModule, name: string): number {
    const parts = module.typeSplit!;
    const named = kernelPart(name);
    if (named !== null && !parts.includes(named)) throw new Error(`kernel ${name}: ${module.name}.cu is not compiled for ${named}`);
    const own = named ?? parts[0]!;
    for (const part of [own, ...parts.filter((p) => p !== own)]) {
      const handle = this.modules.get(moduleKey(module, part));
      const fn = handle === undefined ? null : this.findFunction(handle, name);
      if (fn !== null) return fn;
    }
    this.loadModule(module, own);
    const fn = this.findFunction(this.modules.get(moduleKey(module, own))!, name);
    if (fn === null) throw new Error(`cuModuleGetFunction(${name}): ${moduleKey(module, own)} defines no kernel ${name}`);
    return fn;
  }

  private findFunction(handle: number, name: string): number | null {
    const status = this.api.cuModuleGetFunction(outU64, handle, name);
    if (status === CUDA_ERROR_NOT_FOUND) return null;
    check(this.api, `cuModuleGetFunction(${name})`, status);
    return takeU64();
  }

  /** Blocks of `block` threads for a grid-stride loop over n items: enough to fill the GPU, no more. */
  gridFor(n: number, block = 256): number {
    return Math.max(1, Math.min(Math.ceil(n / block), this.info.multiprocessors * 32));
  }

  /** Launches `fn` with the parameters last written into `this.params`. */
  launch(fn: number, grid: number, block: number, sharedBytes = 0): void {
    check(this.api, 'cuLaunchKernel', this.api.cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, sharedBytes,
      this.stream.handle, this.params.pointerArray, 0));
  }

  /** cuBLAS, created on first use and bound to this device's stream. */
  blas(): { api: CublasApi; handle: number } {
    if (this.blasState === null) {
      this.refuseDuringCapture('creating the cuBLAS handle', 'blas');
      const api = bindCublas();
      checkBlas(api, 'cublasCreate', api.cublasCreate(outU64));
      const handle = takeU64();
      checkBlas(api, 'cublasSetStream', api.cublasSetStream(handle, this.stream.handle));
      checkBlas(api, 'cublasSetMathMode', api.cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
      this.blasState = { api, handle };
    }
    return this.blasState;
  }

  /**
   * Throws CudaGraphCaptureError naming `what` while a CUDA graph capture is under way on this
   * device (graph.ts): the calls that cannot be captured check here first, so the capture ends
   * with a clear error rather than being invalidated by the driver.
   */
  refuseDuringCapture(what: string, hint: CaptureHint): void {
    const pool = this.allocator.capturing;
    if (pool !== null) throw captureError(what, hint, pool.label);
  }

  synchronize(): void {
    this.refuseDuringCapture('synchronize()', 'synchronize');
    this.activate();
    this.stream.synchronize();
    this.checkErrors();
  }

  /** Raises the first bad index a kernel reported (call after work has completed). */
  checkErrors(): void {
    const code = Number(this.errorView[0]!);
    if (code === 0) return;
    const index = this.errorView[1]!;
    const size = this.errorView[2]!;
    this.errorView.fill(0n);
    const op = INDEX_ERROR_OPS[code] ?? `kernel error ${code}`;
    throw new RangeError(`${op}: index ${index} is out of range for size ${size} (detected on ${this.label}; `
      + 'GPU errors surface at the next synchronisation, so the failing op may precede this call)');
  }
}
