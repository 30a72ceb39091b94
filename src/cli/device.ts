/**
 * `--device cpu|cuda|auto` → a device name. The CUDA backend is loaded only when asked for, by
 * a dynamic import, so the CPU path never touches native GPU libraries.
 */
export class DeviceChoiceError extends Error {
  override name = 'DeviceChoiceError';
}

export const DEVICE_CHOICES = ['cpu', 'cuda', 'auto'] as const;

interface CudaModule {
  useCuda(): void;
  isCudaAvailable(): boolean;
  setCompileListener(listener: (event: CompileNotice) => void): void;
}

/** The CUDA backend's compile events (compiler.ts CompileEvent), as far as the CLI reads them. */
export type CompileNotice =
  | { readonly phase: 'start'; readonly label: string; readonly cacheDir: string | null }
  | { readonly phase: 'done'; readonly label: string; readonly ms: number };

/**
 * Says why a first run on a GPU waits: one line when the first kernel compile starts (where the
 * cache is), then one per module compiled. Runs served from the cache print nothing.
 */
export function compileNotices(note: (message: string) => void): (event: CompileNotice) => void {
  let announced = false;
  return (event) => {
    if (event.phase === 'start') {
      if (!announced) note(`compiling CUDA kernels for this GPU (first use only; cached in ${event.cacheDir ?? 'memory only: no cache directory'})`);
      announced = true;
      return;
    }
    note(`  ${event.label} compiled in ${(event.ms / 1000).toFixed(1)} s`);
  };
}

async function loadCudaModule(): Promise<CudaModule> {
  // The specifier is a variable so that the CPU build does not depend on the CUDA sources' types.
  const specifier = '../backends/cuda/index.js';
  const mod: unknown = await import(specifier);
  if (typeof mod !== 'object' || mod === null) throw new DeviceChoiceError('the CUDA backend module could not be loaded');
  const useCuda: unknown = Reflect.get(mod, 'useCuda');
  const isCudaAvailable: unknown = Reflect.get(mod, 'isCudaAvailable');
  const setCompileListener: unknown = Reflect.get(mod, 'setCompileListener');
  if (typeof useCuda !== 'function' || typeof isCudaAvailable !== 'function' || typeof setCompileListener !== 'function') {
    throw new DeviceChoiceError('the CUDA backend module lacks useCuda/isCudaAvailable/setCompileListener');
  }
  return {
    useCuda: () => { useCuda(); },
    isCudaAvailable: () => isCudaAvailable() === true,
    setCompileListener: (listener) => { setCompileListener(listener); },
  };
}

/** Resolves the option; 'auto' takes CUDA when a GPU can be used and says so through `note`. */
export async function resolveDevice(choice: string, note: (message: string) => void): Promise<string> {
  if (choice === 'cpu') return 'cpu';
  if (choice !== 'cuda' && choice !== 'auto') throw new DeviceChoiceError(`--device must be one of ${DEVICE_CHOICES.join(', ')}, got '${choice}'`);
  let cuda: CudaModule;
  try {
    cuda = await loadCudaModule();
  } catch (error) {
    if (choice === 'auto') return 'cpu';
    throw new DeviceChoiceError(`--device cuda: the CUDA backend is not available (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!cuda.isCudaAvailable()) {
    if (choice === 'auto') return 'cpu';
    throw new DeviceChoiceError('--device cuda: no usable CUDA GPU (driver missing or no device); run `dimba doctor` for details');
  }
  cuda.useCuda();
  cuda.setCompileListener(compileNotices(note));
  if (choice === 'auto') note('using the CUDA GPU (--device auto)');
  return 'cuda';
}
