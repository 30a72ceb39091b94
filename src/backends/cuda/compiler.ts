/**
 * Run-time compilation of kernel sources with NVRTC, for the device's own architecture, with a
 * disk cache. Cache key: SHA-256 of the source, its headers, the NVRTC options (which name the
 * architecture) and the NVRTC version, so an edited kernel, another GPU or another NVRTC never
 * picks up a stale image. Directory: $DIMBA_CACHE_DIR/nvrtc, else $XDG_CACHE_HOME/dimba/nvrtc,
 * else ~/.cache/dimba/nvrtc.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { check, NVRTC_SUCCESS, NvrtcError, type NvrtcApi } from './ffi/nvrtc.js';
import { cString, outI32, outI32b, outU64, takeU64 } from './ffi/koffi.js';
import type { KernelSource } from './kernels/source.js';

export interface CompileTarget {
  /** Compute capability as major * 10 + minor (90 for sm_90). */
  readonly arch: number;
  /** 'cubin' when NVRTC knows the device's architecture; else PTX for the newest one it knows, which the driver compiles on load. */
  readonly kind: 'cubin' | 'ptx';
}

export function chooseTarget(deviceArch: number, supported: readonly number[]): CompileTarget {
  if (supported.includes(deviceArch)) return { arch: deviceArch, kind: 'cubin' };
  const older = supported.filter((a) => a <= deviceArch);
  if (older.length === 0) {
    throw new Error(`NVRTC supports architectures ${supported.join(', ')}, none of which runs on a compute capability ${deviceArch / 10} GPU`);
  }
  return { arch: Math.max(...older), kind: 'ptx' };
}

export function compileOptions(target: CompileTarget): string[] {
  return [`--gpu-architecture=${target.kind === 'cubin' ? 'sm' : 'compute'}_${target.arch}`, '--std=c++17'];
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DIMBA_CACHE_DIR) return join(env.DIMBA_CACHE_DIR, 'nvrtc');
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'dimba', 'nvrtc');
}

export function cacheKey(source: KernelSource, options: readonly string[], nvrtcVersion: string): string {
  const h = createHash('sha256');
  const field = (s: string) => { h.update(String(s.length)); h.update(':'); h.update(s); };
  field(nvrtcVersion);
  field(options.join(' '));
  field(source.source);
  for (const name of Object.keys(source.headers).sort()) {
    field(name);
    field(source.headers[name]!);
  }
  return h.digest('hex');
}

/** Compiled images on disk, one file per key. Failures to write are ignored: a read-only home only costs recompiles. */
export class DiskCache {
  constructor(readonly dir: string | null) {}

  get(key: string): Uint8Array | null {
    if (this.dir === null) return null;
    try {
      return new Uint8Array(readFileSync(join(this.dir, `${key}.bin`)));
    } catch {
      return null;
    }
  }

  put(key: string, image: Uint8Array): void {
    if (this.dir === null) return;
    try {
      mkdirSync(this.dir, { recursive: true });
      // Write then rename, so a concurrent reader (parallel test files) never sees half a file.
      const tmp = join(this.dir, `${key}.${process.pid}.${Date.now()}.tmp`);
      writeFileSync(tmp, image);
      renameSync(tmp, join(this.dir, `${key}.bin`));
    } catch {
      // Cache is an optimisation only.
    }
  }
}

/** A kernel compile the cache could not serve: its start, then how long it took. */
export type CompileEvent =
  | { readonly phase: 'start'; readonly label: string; readonly cacheDir: string | null }
  | { readonly phase: 'done'; readonly label: string; readonly ms: number };

let compileListener: ((event: CompileEvent) => void) | null = null;

/**
 * Hears every NVRTC compile (cache hits are silent), e.g. so the CLI can say why a first run
 * waits; null stops. One listener per process.
 */
export function setCompileListener(listener: ((event: CompileEvent) => void) | null): void {
  compileListener = listener;
}

export interface CompiledImage {
  readonly image: Uint8Array;
  readonly key: string;
  readonly fromCache: boolean;
  /** Compile time (0 on a cache hit). */
  readonly ms: number;
}

export class KernelCompiler {
  readonly version: string;
  private archs: number[] | null = null;

  constructor(readonly nvrtc: NvrtcApi, readonly cache: DiskCache = new DiskCache(defaultCacheDir())) {
    check(nvrtc, 'nvrtcVersion', nvrtc.nvrtcVersion(outI32, outI32b));
    this.version = `${outI32[0]}.${outI32b[0]}`;
  }

  supportedArchs(): number[] {
    if (this.archs === null) {
      check(this.nvrtc, 'nvrtcGetNumSupportedArchs', this.nvrtc.nvrtcGetNumSupportedArchs(outI32));
      const archs = new Int32Array(outI32[0]!);
      check(this.nvrtc, 'nvrtcGetSupportedArchs', this.nvrtc.nvrtcGetSupportedArchs(archs));
      this.archs = Array.from(archs);
    }
    return this.archs;
  }

  /**
   * `defines`: extra -D options (a type-split module's part); they are part of the cache key.
   * `label` names the compile to the listener (scan.cu[bf16]).
   */
  compile(source: KernelSource, target: CompileTarget, defines: readonly string[] = [], label = source.name): CompiledImage {
    const options = [...compileOptions(target), ...defines];
    const key = cacheKey(source, options, this.version);
    const cached = this.cache.get(key);
    if (cached) return { image: cached, key, fromCache: true, ms: 0 };
    compileListener?.({ phase: 'start', label, cacheDir: this.cache.dir });
    const t0 = performance.now();
    const image = this.build(source, options, target);
    const ms = performance.now() - t0;
    compileListener?.({ phase: 'done', label, ms });
    this.cache.put(key, image);
    return { image, key, fromCache: false, ms };
  }

  private build(source: KernelSource, options: string[], target: CompileTarget): Uint8Array {
    const api = this.nvrtc;
    const names = Object.keys(source.headers);
    check(api, 'nvrtcCreateProgram', api.nvrtcCreateProgram(outU64, source.source, source.name, names.length,
      names.map((n) => source.headers[n]!), names));
    const program = takeU64();
    try {
      const status = api.nvrtcCompileProgram(program, options.length, options);
      if (status !== NVRTC_SUCCESS) {
        throw new NvrtcError('nvrtcCompileProgram', status,
          `NVRTC could not compile ${source.name} (${options.join(' ')}): ${api.nvrtcGetErrorString(status)} (${status})`,
          this.log(program));
      }
      const cubin = target.kind === 'cubin';
      const size = new BigUint64Array(1);
      check(api, cubin ? 'nvrtcGetCUBINSize' : 'nvrtcGetPTXSize',
        cubin ? api.nvrtcGetCUBINSize(program, size) : api.nvrtcGetPTXSize(program, size));
      const image = new Uint8Array(Number(size[0]));
      check(api, cubin ? 'nvrtcGetCUBIN' : 'nvrtcGetPTX', cubin ? api.nvrtcGetCUBIN(program, image) : api.nvrtcGetPTX(program, image));
      return image;
    } finally {
      const handle = new BigUint64Array([BigInt(program)]);
      api.nvrtcDestroyProgram(handle);
    }
  }

  private log(program: number): string {
    const size = new BigUint64Array(1);
    if (this.nvrtc.nvrtcGetProgramLogSize(program, size) !== NVRTC_SUCCESS) return '';
    const buf = new Uint8Array(Number(size[0]));
    if (this.nvrtc.nvrtcGetProgramLog(program, buf) !== NVRTC_SUCCESS) return '';
    return cString(buf);
  }
}
