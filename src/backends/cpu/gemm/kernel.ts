/**
 * The fp32 GEMM compute kernel, built as WebAssembly (128-bit SIMD) at first use.
 *
 * Blocking scheme (the GotoBLAS/BLIS layering; see pack-kernel.ts for the packed layouts):
 *
 *   for each tile of C of mc rows x nc columns             (a work item; threads claim these)
 *     for each K block of KC steps                         (packed A block mc x KC: L2-resident)
 *       macro(): for each NR-wide B micro-panel (KC x NR: L1-resident)
 *                  for each MR-tall A micro-panel (MR x KC, streamed from L2)
 *                    micro(): C[MR, NR] (+)= A_panel @ B_panel
 *
 * The micro-kernel keeps the MR x NR tile of C in MR * NR/4 v128 locals, which V8's TurboFan
 * keeps in xmm registers. Per k step it loads NR/4 vectors of B, broadcasts each of the MR
 * values of A (`v128.load32_splat`, one vbroadcastss) and does MR * NR/4 multiply-adds. Fused
 * multiply-add (relaxed SIMD) is not enabled in Node 20 without flags, so each is an
 * f32x4.mul followed by an f32x4.add.
 *
 * Register budget, and why the tile is only 4x8: x86-64 has 16 xmm registers and V8 keeps one
 * as scratch. TurboFan keeps the (effectful, ordered) loads of a basic block at its top and
 * sinks the pure arithmetic to its uses, so every value loaded in a block is live at once:
 * accumulators + loads of one block + ~2 temporaries must fit in 15. 4x8 uses 8 + 6 + 2. A 6x8
 * tile (12 + 8 + 2) or a plainly unrolled loop (all steps' loads hoisted) spills to the stack
 * and ran at ~25 GFLOP/s against ~45 for this one (bench/NOTES.md).
 * So the k loop is unrolled K_UNROLL times but tests its counter after every step: each step is
 * its own basic block, its loads cannot be hoisted above the previous step's exit test, and
 * any kc >= 1 works (no padding of K). Pointers advance once per unrolled iteration; steps use
 * constant memarg offsets.
 *
 * The kernel accumulates into a padded C buffer (row stride in bytes `ldc`, rows and columns
 * padded to MR and NR): `first` = 1 stores the tile, `first` = 0 adds to what is there (later
 * K blocks). Scaling by alpha/beta and copying into the caller's C happen in JS afterwards.
 */

import { FunctionBody, ModuleBuilder } from './wasm-assembler.js';
import { buildPackContiguous, buildPackEdge, buildPackStrided } from './pack-kernel.js';
import { wasm, type WasmMemory, type WasmModule } from './wasm-api.js';

/** Rows of C per micro-tile. */
export const MR = 4;
/** Columns of C per micro-tile (two f32x4 vectors). */
export const NR = 8;
/** k-loop unroll factor (the counter is still tested after every step). */
export const K_UNROLL = 8;

/** Wasm page size in bytes. */
export const PAGE_BYTES = 65536;
/**
 * Maximum memory: 2 GiB, so every byte address is a non-negative i32 (JS passes addresses
 * as numbers) and the virtual reservation for a shared memory stays modest.
 */
export const MAX_PAGES = 32768;

export interface KernelShape {
  mr: number; nr: number; kUnroll: number;
  /**
   * Test the k counter after every unrolled step (the default). Without it (a bench variant
   * only) kc must be a multiple of kUnroll and all steps' loads share one basic block.
   */
  splitSteps?: boolean;
}

export interface GemmExports {
  /**
   * Computes one block of C from packed panels: `mTiles` A micro-panels at `a` (each MR x kc,
   * consecutive) against `nTiles` B micro-panels at `b` (each kc x NR, consecutive), into C at
   * byte address `c` with row stride `ldc` bytes. Addresses in bytes; kc >= 1.
   */
  macro(a: number, b: number, c: number, ldc: number, mTiles: number, nTiles: number, kc: number, first: number): void;
  /** Pack one full micro-panel (see pack-kernel.ts): (src, ldBytes, dst, kc), byte addresses. */
  packAContiguous(src: number, ld: number, dst: number, kc: number): void;
  packAStrided(src: number, ld: number, dst: number, kc: number): void;
  packBContiguous(src: number, ld: number, dst: number, kc: number): void;
  packBStrided(src: number, ld: number, dst: number, kc: number): void;
  packEdge(src: number, kStride: number, wStride: number, dst: number, kc: number, lanes: number, width: number): void;
}

const EXPORTS = ['macro', 'packAContiguous', 'packAStrided', 'packBContiguous', 'packBStrided', 'packEdge'] as const;

/** The micro-kernel: C[mr, nr] at `c` (+)= sum over kc of A_panel[k] (x) B_panel[k]; (a, b, c, ldc, kc, first). */
function buildMicroKernel({ mr, nr, kUnroll, splitSteps = true }: KernelShape): FunctionBody {
  const nv = nr / 4;
  const f = new FunctionBody(['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], []);
  const [a, b, c, ldc, kc, first] = [0, 1, 2, 3, 4, 5];
  const acc: number[][] = [];
  for (let i = 0; i < mr; i++) acc.push(Array.from({ length: nv }, () => f.local('v128')));
  const bv = Array.from({ length: nv }, () => f.local('v128'));
  const av = f.local('v128');
  const row = f.local('i32');

  // Accumulators start at zero (wasm zero-initialises locals).
  f.block().loop();
  for (let u = 0; u < kUnroll; u++) {
    for (let j = 0; j < nv; j++) f.get(b).v128Load((u * nr + 4 * j) * 4).set(bv[j]!);
    for (let i = 0; i < mr; i++) {
      f.get(a).v128Load32Splat((u * mr + i) * 4).set(av);
      for (let j = 0; j < nv; j++) {
        f.get(acc[i]![j]!).get(av).get(bv[j]!).f32x4Mul().f32x4Add().set(acc[i]![j]!);
      }
    }
    // The exit test ends the step's basic block: the next step's loads stay below it.
    if (splitSteps && u + 1 < kUnroll) f.get(kc).i32Const(1).i32Sub().tee(kc).i32Eqz().brIf(1);
  }
  f.get(a).i32Const(kUnroll * mr * 4).i32Add().set(a);
  f.get(b).i32Const(kUnroll * nr * 4).i32Add().set(b);
  f.get(kc).i32Const(splitSteps ? 1 : kUnroll).i32Sub().tee(kc).brIf(0);
  f.end().end();

  // Write the tile: store on the first K block, add to C afterwards.
  const writeTile = (accumulate: boolean): void => {
    f.get(c).set(row);
    for (let i = 0; i < mr; i++) {
      for (let j = 0; j < nv; j++) {
        f.get(row);
        if (accumulate) f.get(row).v128Load(16 * j).get(acc[i]![j]!).f32x4Add();
        else f.get(acc[i]![j]!);
        f.v128Store(16 * j);
      }
      if (i + 1 < mr) f.get(row).get(ldc).i32Add().set(row);
    }
  };
  f.get(first).if();
  writeTile(false);
  f.else();
  writeTile(true);
  f.end();
  return f;
}

/** The macro-kernel: loops over B micro-panels (outer, L1-resident) and A micro-panels. */
function buildMacroKernel({ mr, nr }: KernelShape, microIndex: number): FunctionBody {
  const f = new FunctionBody(['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'], []);
  const [a, b, c, ldc, mTiles, nTiles, kc, first] = [0, 1, 2, 3, 4, 5, 6, 7];
  const ap = f.local('i32');
  const cp = f.local('i32');
  const ir = f.local('i32');
  const jr = f.local('i32');
  const aStride = f.local('i32');
  const bStride = f.local('i32');
  const cStride = f.local('i32');

  f.get(kc).i32Const(mr * 4).i32Mul().set(aStride);
  f.get(kc).i32Const(nr * 4).i32Mul().set(bStride);
  f.get(ldc).i32Const(mr).i32Mul().set(cStride);

  f.get(nTiles).set(jr);
  f.loop(); // over B micro-panels
  f.get(a).set(ap);
  f.get(c).set(cp);
  f.get(mTiles).set(ir);
  f.loop(); // over A micro-panels
  f.get(ap).get(b).get(cp).get(ldc).get(kc).get(first).call(microIndex);
  f.get(ap).get(aStride).i32Add().set(ap);
  f.get(cp).get(cStride).i32Add().set(cp);
  f.get(ir).i32Const(1).i32Sub().tee(ir).brIf(0);
  f.end();
  f.get(b).get(bStride).i32Add().set(b);
  f.get(c).i32Const(nr * 4).i32Add().set(c);
  f.get(jr).i32Const(1).i32Sub().tee(jr).brIf(0);
  f.end();
  return f;
}

/** Encodes the kernel module for a tile shape (the default is the tuned MR x NR). */
export function encodeGemmModule(shape: KernelShape = { mr: MR, nr: NR, kUnroll: K_UNROLL, splitSteps: true }): Uint8Array {
  if (shape.nr % 4 !== 0) throw new RangeError(`kernel NR must be a multiple of 4, got ${shape.nr}`);
  const module = new ModuleBuilder(MAX_PAGES);
  const micro = module.addFunction(buildMicroKernel(shape));
  module.addFunction(buildMacroKernel(shape, micro), 'macro');
  module.addFunction(buildPackContiguous(shape.mr), 'packAContiguous');
  module.addFunction(buildPackStrided(shape.mr), 'packAStrided');
  module.addFunction(buildPackContiguous(shape.nr), 'packBContiguous');
  module.addFunction(buildPackStrided(shape.nr), 'packBStrided');
  module.addFunction(buildPackEdge(), 'packEdge');
  return module.encode();
}

let compiled: WasmModule | undefined;

/** The compiled default kernel module (compiled once per thread; workers receive it by message). */
export function gemmModule(): WasmModule {
  compiled ??= new wasm.Module(encodeGemmModule());
  return compiled;
}

export function instantiateGemm(module: WasmModule, memory: WasmMemory): GemmExports {
  const instance = new wasm.Instance(module, { env: { memory } });
  const out: Partial<Record<(typeof EXPORTS)[number], unknown>> = {};
  for (const name of EXPORTS) {
    const fn = instance.exports[name];
    if (typeof fn !== 'function') throw new Error(`GEMM wasm module does not export '${name}'`);
    out[name] = fn;
  }
  return out as GemmExports;
}
