/** NVRTC declarations (nvrtc.h), bound through koffi. Program handles travel as JS numbers. */
import { openLibrary, NVRTC_LIBRARY, type OpenedLibrary } from './loader.js';

export const NVRTC_SUCCESS = 0;
export const NVRTC_ERROR_COMPILATION = 6;

export interface NvrtcApi {
  readonly library: OpenedLibrary;
  nvrtcVersion(major: Int32Array, minor: Int32Array): number;
  nvrtcGetNumSupportedArchs(count: Int32Array): number;
  nvrtcGetSupportedArchs(archs: Int32Array): number;
  nvrtcCreateProgram(program: BigUint64Array, source: string, name: string, numHeaders: number,
    headers: string[], includeNames: string[]): number;
  nvrtcCompileProgram(program: number, numOptions: number, options: string[]): number;
  nvrtcGetProgramLogSize(program: number, size: BigUint64Array): number;
  nvrtcGetProgramLog(program: number, log: Uint8Array): number;
  nvrtcGetCUBINSize(program: number, size: BigUint64Array): number;
  nvrtcGetCUBIN(program: number, image: Uint8Array): number;
  nvrtcGetPTXSize(program: number, size: BigUint64Array): number;
  nvrtcGetPTX(program: number, image: Uint8Array): number;
  nvrtcDestroyProgram(program: BigUint64Array): number;
  nvrtcGetErrorString(status: number): string;
}

export class NvrtcError extends Error {
  override name = 'NvrtcError';
  constructor(readonly call: string, readonly status: number, message: string, readonly log: string = '') {
    super(log ? `${message}\n--- NVRTC log ---\n${log.trimEnd()}` : message);
  }
}

/** Throws an NvrtcError naming the call and NVRTC's error string; `log` is the compile log where there is one. */
export function check(api: NvrtcApi, call: string, status: number, log = ''): void {
  if (status === NVRTC_SUCCESS) return;
  throw new NvrtcError(call, status, `${call} failed: ${api.nvrtcGetErrorString(status)} (${status})`, log);
}

export function bindNvrtc(library: OpenedLibrary = openLibrary(NVRTC_LIBRARY)): NvrtcApi {
  const lib = library.handle;
  const h = 'uintptr_t';
  return {
    library,
    nvrtcVersion: lib.func('nvrtcVersion', 'int', ['void *', 'void *']),
    nvrtcGetNumSupportedArchs: lib.func('nvrtcGetNumSupportedArchs', 'int', ['void *']),
    nvrtcGetSupportedArchs: lib.func('nvrtcGetSupportedArchs', 'int', ['void *']),
    nvrtcCreateProgram: lib.func('nvrtcCreateProgram', 'int',
      ['void *', 'const char *', 'const char *', 'int', 'const char **', 'const char **']),
    nvrtcCompileProgram: lib.func('nvrtcCompileProgram', 'int', [h, 'int', 'const char **']),
    nvrtcGetProgramLogSize: lib.func('nvrtcGetProgramLogSize', 'int', [h, 'void *']),
    nvrtcGetProgramLog: lib.func('nvrtcGetProgramLog', 'int', [h, 'void *']),
    nvrtcGetCUBINSize: lib.func('nvrtcGetCUBINSize', 'int', [h, 'void *']),
    nvrtcGetCUBIN: lib.func('nvrtcGetCUBIN', 'int', [h, 'void *']),
    nvrtcGetPTXSize: lib.func('nvrtcGetPTXSize', 'int', [h, 'void *']),
    nvrtcGetPTX: lib.func('nvrtcGetPTX', 'int', [h, 'void *']),
    nvrtcDestroyProgram: lib.func('nvrtcDestroyProgram', 'int', ['void *']),
    nvrtcGetErrorString: lib.func('nvrtcGetErrorString', 'const char *', ['int']),
  };
}
