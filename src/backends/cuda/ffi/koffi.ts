/**
 * The koffi FFI, loaded on first use. dimba drives CUDA straight from TypeScript: koffi calls the
 * driver API, NVRTC and cuBLAS shared libraries without a C++ addon to build, so installing dimba
 * needs no compiler and no CUDA headers. Loading lazily keeps `import` of the CUDA backend free
 * of native code on machines that never use it.
 */
import { createRequire } from 'node:module';

export type Koffi = typeof import('koffi');
export type LibraryHandle = ReturnType<Koffi['load']>;

let cached: Koffi | undefined;

export function koffi(): Koffi {
  if (cached === undefined) {
    const require = createRequire(import.meta.url);
    cached = require('koffi') as Koffi;
  }
  return cached;
}

/** Scratch out-parameters for the single-value outputs of C calls (one JS thread, so sharing is safe). */
export const outU64 = new BigUint64Array(1);
export const outU64b = new BigUint64Array(1);
export const outI32 = new Int32Array(1);
export const outI32b = new Int32Array(1);

/** The value a C call wrote into an out-parameter, as a JS number (addresses and sizes stay below 2^53). */
export function takeU64(out: BigUint64Array = outU64): number {
  return Number(out[0]!);
}

/** Reads a NUL-terminated string from a byte buffer a C call filled. */
export function cString(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return new TextDecoder().decode(end < 0 ? buf : buf.subarray(0, end));
}
