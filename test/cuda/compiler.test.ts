/** NVRTC cache keys, the disk cache and compile-error reporting, with a stand-in NVRTC (runs everywhere). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheKey, chooseTarget, compileOptions, defaultCacheDir, DiskCache, KernelCompiler, setCompileListener, type CompileEvent } from '../../src/backends/cuda/compiler.js';
import { compileNotices } from '../../src/cli/device.js';
import { NvrtcError, type NvrtcApi } from '../../src/backends/cuda/ffi/nvrtc.js';
import { ALL_MODULES, kernelPart, partDefines, readKernelSource, COPY_MODULE, type KernelSource } from '../../src/backends/cuda/kernels/source.js';

const source: KernelSource = { name: 'k.cu', source: 'extern "C" __global__ void k() {}', headers: { 'common.cuh': '// h' } };

test('cache keys change with the source, a header, the options and the NVRTC version', () => {
  const opts = compileOptions({ arch: 90, kind: 'cubin' });
  assert.deepEqual(opts, ['--gpu-architecture=sm_90', '--std=c++17']);
  const base = cacheKey(source, opts, '13.0');
  assert.match(base, /^[0-9a-f]{64}$/);
  assert.equal(cacheKey({ ...source }, [...opts], '13.0'), base);
  assert.notEqual(cacheKey({ ...source, source: source.source + ' ' }, opts, '13.0'), base);
  assert.notEqual(cacheKey({ ...source, headers: { 'common.cuh': '// h2' } }, opts, '13.0'), base);
  assert.notEqual(cacheKey(source, compileOptions({ arch: 100, kind: 'cubin' }), '13.0'), base);
  assert.notEqual(cacheKey(source, opts, '13.1'), base);
});

test('target: the device arch when NVRTC knows it, else PTX for the newest older arch', () => {
  assert.deepEqual(chooseTarget(90, [75, 80, 86, 89, 90, 100]), { arch: 90, kind: 'cubin' });
  assert.deepEqual(chooseTarget(121, [75, 80, 90, 100, 120]), { arch: 120, kind: 'ptx' });
  assert.deepEqual(compileOptions({ arch: 120, kind: 'ptx' }), ['--gpu-architecture=compute_120', '--std=c++17']);
  assert.throws(() => chooseTarget(50, [75, 80]), /none of which runs/);
});

test('cache directory: DIMBA_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache', () => {
  assert.equal(defaultCacheDir({ DIMBA_CACHE_DIR: '/x/y' }), '/x/y/nvrtc');
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/c' }), '/c/dimba/nvrtc');
  assert.match(defaultCacheDir({}), /\.cache\/dimba\/nvrtc$/);
});

/** An NVRTC stand-in: "compiles" by echoing the source bytes, or fails with a log when the source says FAIL. */
function fakeNvrtc(): NvrtcApi & { compiles: number; lastOptions: string[] } {
  const programs = new Map<number, string>();
  let next = 1;
  const api = {
    compiles: 0,
    lastOptions: [] as string[],
    library: { handle: null as never, path: 'fake' },
    nvrtcVersion(major: Int32Array, minor: Int32Array) { major[0] = 13; minor[0] = 0; return 0; },
    nvrtcGetNumSupportedArchs(count: Int32Array) { count[0] = 2; return 0; },
    nvrtcGetSupportedArchs(archs: Int32Array) { archs.set([80, 90]); return 0; },
    nvrtcCreateProgram(program: BigUint64Array, src: string, _name: string, n: number, headers: string[], names: string[]) {
      assert.equal(headers.length, n);
      assert.deepEqual(names, ['common.cuh']);
      programs.set(next, src);
      program[0] = BigInt(next++);
      return 0;
    },
    nvrtcCompileProgram(program: number, n: number, options: string[]) {
      assert.equal(options.length, n);
      api.compiles++;
      api.lastOptions = options;
      return programs.get(program)!.includes('FAIL') ? 6 : 0;
    },
    nvrtcGetProgramLogSize(_p: number, size: BigUint64Array) { size[0] = 32n; return 0; },
    nvrtcGetProgramLog(_p: number, log: Uint8Array) { log.set(new TextEncoder().encode('k.cu(1): error: expected a ;\0')); return 0; },
    nvrtcGetCUBINSize(p: number, size: BigUint64Array) { size[0] = BigInt(programs.get(p)!.length); return 0; },
    nvrtcGetCUBIN(p: number, image: Uint8Array) { image.set(new TextEncoder().encode(programs.get(p)!)); return 0; },
    nvrtcGetPTXSize() { return 0; },
    nvrtcGetPTX() { return 0; },
    nvrtcDestroyProgram(program: BigUint64Array) { programs.delete(Number(program[0])); return 0; },
    nvrtcGetErrorString: (s: number) => (s === 6 ? 'NVRTC_ERROR_COMPILATION' : `status ${s}`),
  };
  return api;
}

test('compiled images are cached on disk and reused by a fresh compiler; failures carry the compile log', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dimba-nvrtc-'));
  try {
    const nvrtc = fakeNvrtc();
    const target = { arch: 90, kind: 'cubin' } as const;
    const first = new KernelCompiler(nvrtc, new DiskCache(dir));
    assert.equal(first.version, '13.0');
    assert.deepEqual(first.supportedArchs(), [80, 90]);
    const a = first.compile(source, target);
    assert.equal(a.fromCache, false);
    assert.equal(new TextDecoder().decode(a.image), source.source);
    assert.equal(readdirSync(dir).filter((f) => f.endsWith('.bin')).length, 1);
    const b = new KernelCompiler(nvrtc, new DiskCache(dir)).compile(source, target);
    assert.equal(b.fromCache, true);
    assert.deepEqual(b.image, a.image);
    assert.equal(nvrtc.compiles, 1);
    assert.throws(() => first.compile({ ...source, source: 'FAIL' }, target), (e: unknown) => {
      assert.ok(e instanceof NvrtcError);
      assert.match(e.message, /NVRTC could not compile k\.cu \(--gpu-architecture=sm_90 --std=c\+\+17\): NVRTC_ERROR_COMPILATION \(6\)/);
      assert.match(e.message, /--- NVRTC log ---\nk\.cu\(1\): error: expected a ;/);
      return true;
    });
    // A cache without a directory (or an unwritable one) only costs recompiles.
    new KernelCompiler(nvrtc, new DiskCache(null)).compile(source, target);
    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, 'not a folder');
    new KernelCompiler(nvrtc, new DiskCache(join(blocker, 'nvrtc'))).compile(source, target);
    assert.equal(nvrtc.compiles, 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a type-split module part: its -DDIMBA_ONLY_TYPE reaches NVRTC and keys its own cache entry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dimba-nvrtc-'));
  try {
    const nvrtc = fakeNvrtc();
    const compiler = new KernelCompiler(nvrtc, new DiskCache(dir));
    const target = { arch: 90, kind: 'cubin' } as const;
    compiler.compile(source, target);
    assert.deepEqual(nvrtc.lastOptions, ['--gpu-architecture=sm_90', '--std=c++17']);
    assert.equal(compiler.compile(source, target, partDefines('bf16')).fromCache, false);
    assert.deepEqual(nvrtc.lastOptions, ['--gpu-architecture=sm_90', '--std=c++17', '-DDIMBA_ONLY_TYPE=2']);
    assert.equal(compiler.compile(source, target, partDefines('f32')).fromCache, false);
    assert.equal(compiler.compile(source, target, partDefines('bf16')).fromCache, true);
    assert.equal(nvrtc.compiles, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the compile listener hears each NVRTC compile (start, then its time) and nothing on a cache hit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dimba-nvrtc-'));
  const events: CompileEvent[] = [];
  setCompileListener((e) => events.push(e));
  try {
    const compiler = new KernelCompiler(fakeNvrtc(), new DiskCache(dir));
    const target = { arch: 90, kind: 'cubin' } as const;
    compiler.compile(source, target, partDefines('bf16'), 'k.cu[bf16]');
    assert.equal(events.length, 2);
    assert.deepEqual(events[0], { phase: 'start', label: 'k.cu[bf16]', cacheDir: dir });
    assert.equal(events[1]!.phase, 'done');
    assert.equal(events[1]!.label, 'k.cu[bf16]');
    assert.ok(events[1]!.phase === 'done' && events[1]!.ms >= 0);
    compiler.compile(source, target, partDefines('bf16'), 'k.cu[bf16]');
    assert.equal(events.length, 2, 'a cache hit is silent');
    compiler.compile(source, target);
    assert.equal(events[2]!.label, 'k.cu', 'the label defaults to the source name');
  } finally {
    setCompileListener(null);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the CLI announces the first compile once, with the cache folder, then one line per module', () => {
  const lines: string[] = [];
  const notice = compileNotices((m) => lines.push(m));
  notice({ phase: 'start', label: 'scan.cu[bf16]', cacheDir: '/c/nvrtc' });
  notice({ phase: 'done', label: 'scan.cu[bf16]', ms: 8421 });
  notice({ phase: 'start', label: 'copy.cu', cacheDir: '/c/nvrtc' });
  notice({ phase: 'done', label: 'copy.cu', ms: 2854 });
  assert.deepEqual(lines, [
    'compiling CUDA kernels for this GPU (first use only; cached in /c/nvrtc)',
    '  scan.cu[bf16] compiled in 8.4 s',
    '  copy.cu compiled in 2.9 s',
  ]);
  const noCache: string[] = [];
  compileNotices((m) => noCache.push(m))({ phase: 'start', label: 'x.cu', cacheDir: null });
  assert.match(noCache[0]!, /memory only: no cache directory/);
});

test('kernelPart: the first storage-type token of a kernel name picks its part', () => {
  assert.equal(kernelPart('scan_fwd_pair_bf16_8x2'), 'bf16');
  assert.equal(kernelPart('cc1d_fwd_walk_f16_k4_v8'), 'f16');
  assert.equal(kernelPart('cc1d_reduce_f32'), 'f32');
  assert.equal(kernelPart('norm_modulate_backward_f64_v2_k8'), 'f64');
  assert.equal(kernelPart('attn_fwd_bf16_d80'), 'bf16');
  assert.equal(kernelPart('scan_f32x_thing'), null);
  assert.equal(kernelPart('copy_strided'), null);
  assert.equal(kernelPart('reduce_cols_finish_f64'), 'f64');
  assert.equal(kernelPart('binary_cmp_strided_bool'), 'bool');
  assert.equal(kernelPart('where_strided_8'), null);
  assert.deepEqual(ALL_MODULES.filter((m) => m.typeSplit).map((m) => m.name).sort(),
    ['attention', 'causal-conv1d', 'elementwise', 'modulate', 'reduce', 'scan']);
});

test('kernel sources are found from the compiled module and bring their header', () => {
  const src = readKernelSource(COPY_MODULE);
  assert.equal(src.name, 'copy.cu');
  assert.match(src.source, /#include "common.cuh"/);
  assert.match(src.headers['common.cuh']!, /struct Dims/);
});
