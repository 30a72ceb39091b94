/**
 * The blocked fp32 GEMM over the wasm heap: layout of one problem, copying the caller's
 * operands in, packing, and the tile loop that calls the macro-kernel (kernel.ts).
 *
 * Layout (all in the heap, addresses in bytes, K split into blocks of KC steps; the block
 * starting at step k0 has kc = min(KC, K - k0) steps):
 *   raw A, raw B  the operands as the caller stores them, rows made contiguous (ld = columns)
 *   packed A      [K blocks][Mp / MR panels][kc][MR]   panel (k0, ir) at aBase + 4*(k0*Mp + ir*MR*kc)
 *   packed B      [K blocks][Np / NR panels][kc][NR]   panel (k0, jr) at bBase + 4*(k0*Np + jr*NR*kc)
 *   C buffer      [Mp][ldc] with Mp, Np the sizes rounded up to MR, NR
 * The raw copy exists because worker threads can only read shared memory; packing from it
 * runs in wasm (pack-kernel.ts) and can be split across threads like the compute.
 *
 * Work is split into tiles of C of mc x nc (a tile is one thread's unit of work and loops over
 * all K blocks itself, so tiles are independent and threads never synchronise mid-job).
 * Within a tile and K block, the macro-kernel keeps one KC x NR panel of B in L1 while it
 * streams the mc x KC block of A from L2: KC = 256, mc = 120 gives a 120 KiB A block and 8 KiB
 * B panel, sized for 1 MiB L2 / 32 KiB L1 per core (see bench/NOTES.md for the measurements).
 */

import { MR, NR, type GemmExports } from './kernel.js';

/** Rounds `n` up to a multiple of `m`. */
export function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/** K block length. */
export const KC = 256;
/** Rows of C per tile (a multiple of MR). */
export const MC = 120;
/** Columns of C per tile at most (a multiple of NR). */
export const NC = 512;
/** Micro-panels packed per work item of a packing job. */
const PANELS_PER_ITEM = 8;

export interface GemmLayout {
  M: number; N: number; K: number;
  /** M, N rounded up to MR, NR. */
  mp: number; np: number;
  /** Tile size (multiples of MR, NR) and tile grid. */
  mc: number; nc: number; mTiles: number; nTiles: number;
  /** Raw operand copies: byte address, leading dimension (floats), orientation. */
  rawA: number; lda: number; aContiguous: boolean;
  rawB: number; ldb: number; bContiguous: boolean;
  /** Packed operands and C buffer (byte addresses); C row stride in floats. */
  aBase: number; bBase: number; cBase: number; ldc: number;
  /** Bytes used from the plan's base on. */
  bytes: number;
}

export interface PlanOptions {
  /** Ask for at least this many tiles (narrower tiles) so that several threads share the work. */
  minTiles?: number;
  /**
   * Cap on a tile's work (mc * nc * K multiply-adds): a thread cannot hand back a tile it has
   * claimed, so the others may wait up to one tile at the end of a job.
   */
  maxTileWork?: number;
  /** Leave out the raw copies (the caller places them elsewhere and sets rawA/rawB). */
  withoutRaw?: boolean;
}

/** Stored shape (rows, columns) of A and B. */
export function storedShapes(transA: boolean, transB: boolean, M: number, N: number, K: number): { a: [number, number]; b: [number, number] } {
  return { a: transA ? [K, M] : [M, K], b: transB ? [N, K] : [K, N] };
}

const align64 = (n: number): number => roundUp(n, 64);

/** Plans one problem at byte address `base` (64-byte aligned). */
export function planGemm(transA: boolean, transB: boolean, M: number, N: number, K: number, base: number, options: PlanOptions = {}): GemmLayout {
  const mp = roundUp(M, MR);
  const np = roundUp(N, NR);
  let mc = Math.min(MC, mp);
  let nc = Math.min(NC, np);
  const minTiles = options.minTiles ?? 1;
  const maxTileWork = options.maxTileWork ?? Infinity;
  const tiles = (): number => Math.ceil(mp / mc) * Math.ceil(np / nc);
  while ((tiles() < minTiles || mc * nc * K > maxTileWork) && nc > 8 * NR) nc = roundUp(nc / 2, NR);
  while ((tiles() < minTiles || mc * nc * K > maxTileWork) && mc > 4 * MR) mc = roundUp(mc / 2, MR);
  // A row stride that is a multiple of 4 KiB makes the MR rows of a C tile alias in L1.
  const ldc = (np * 4) % 4096 === 0 ? np + NR : np;
  const { a, b } = storedShapes(transA, transB, M, N, K);
  const raw = options.withoutRaw !== true;
  const rawA = base;
  const rawB = align64(rawA + (raw ? 4 * a[0] * a[1] : 0));
  const aBase = align64(rawB + (raw ? 4 * b[0] * b[1] : 0));
  const bBase = aBase + 4 * K * mp;
  const cBase = bBase + 4 * K * np;
  const end = cBase + 4 * mp * ldc;
  return {
    M, N, K, mp, np, mc, nc, mTiles: Math.ceil(mp / mc), nTiles: Math.ceil(np / nc),
    rawA, lda: a[1], aContiguous: transA, rawB, ldb: b[1], bContiguous: !transB,
    aBase, bBase, cBase, ldc, bytes: end - base,
  };
}

/** Copies a rows x cols matrix (leading dimension ld) to float index `at` of the heap, rows contiguous. */
export function copyIn(heap: Float32Array, at: number, X: Float32Array, off: number, ld: number, rows: number, cols: number): void {
  if (ld === cols || rows === 1) {
    heap.set(X.subarray(off, off + (rows - 1) * ld + cols), at);
    return;
  }
  for (let r = 0; r < rows; r++) heap.set(X.subarray(off + r * ld, off + r * ld + cols), at + r * cols);
}

function kBlocks(K: number): number {
  return Math.ceil(K / KC);
}

function panelGroups(p: GemmLayout): { a: number; b: number } {
  return { a: Math.ceil(p.mp / MR / PANELS_PER_ITEM), b: Math.ceil(p.np / NR / PANELS_PER_ITEM) };
}

/** Work items of packing both operands (each: up to PANELS_PER_ITEM panels of one K block). */
export function packItemCount(p: GemmLayout): number {
  const g = panelGroups(p);
  return kBlocks(p.K) * (g.a + g.b);
}

/** Packs work item `item` (see packItemCount) from the raw copies (wasm only: safe on workers). */
export function packItem(kernel: GemmExports, p: GemmLayout, item: number): void {
  const g = panelGroups(p);
  const perBlock = g.a + g.b;
  const k0 = Math.floor(item / perBlock) * KC;
  const kc = Math.min(KC, p.K - k0);
  const r = item % perBlock;
  const isA = r < g.a;
  const first = (isA ? r : r - g.a) * PANELS_PER_ITEM;
  const width = isA ? MR : NR;
  const lanes = isA ? p.M : p.N;
  const panels = Math.min(first + PANELS_PER_ITEM, (isA ? p.mp : p.np) / width);
  const raw = isA ? p.rawA : p.rawB;
  const ld = isA ? p.lda : p.ldb;
  const contiguous = isA ? p.aContiguous : p.bContiguous;
  const blockBase = (isA ? p.aBase : p.bBase) + 4 * k0 * (isA ? p.mp : p.np);
  const packFull = isA
    ? (contiguous ? kernel.packAContiguous : kernel.packAStrided)
    : (contiguous ? kernel.packBContiguous : kernel.packBStrided);
  for (let t = first; t < panels; t++) {
    const w0 = t * width;
    const dst = blockBase + 4 * w0 * kc;
    const src = raw + 4 * (contiguous ? k0 * ld + w0 : w0 * ld + k0);
    if (w0 + width <= lanes) {
      packFull(src, 4 * ld, dst, kc);
    } else {
      const [kStride, wStride] = contiguous ? [4 * ld, 4] : [4, 4 * ld];
      kernel.packEdge(src, kStride, wStride, dst, kc, lanes - w0, width);
    }
  }
}

/** Computes tile `item` (of mTiles * nTiles, column-of-tiles major) of C over all of K. */
export function computeTile(kernel: GemmExports, p: GemmLayout, item: number): void {
  const i0 = (item % p.mTiles) * p.mc;
  const j0 = Math.floor(item / p.mTiles) * p.nc;
  const mc = Math.min(p.mc, p.mp - i0);
  const nc = Math.min(p.nc, p.np - j0);
  const cAddr = p.cBase + 4 * (i0 * p.ldc + j0);
  for (let k0 = 0; k0 < p.K; k0 += KC) {
    const kc = Math.min(KC, p.K - k0);
    kernel.macro(p.aBase + 4 * (k0 * p.mp + i0 * kc), p.bBase + 4 * (k0 * p.np + j0 * kc), cAddr, 4 * p.ldc,
      mc / MR, nc / NR, kc, k0 === 0 ? 1 : 0);
  }
}

/** Packs and computes a whole problem on the calling thread. */
export function gemmOnThread(kernel: GemmExports, p: GemmLayout): void {
  const packs = packItemCount(p);
  for (let i = 0; i < packs; i++) packItem(kernel, p, i);
  const tiles = p.mTiles * p.nTiles;
  for (let t = 0; t < tiles; t++) computeTile(kernel, p, t);
}

/** Serialises a layout into task arguments (and back, on the worker side). */
export function layoutArgs(p: GemmLayout): number[] {
  return [
    p.M, p.N, p.K, p.mp, p.np, p.mc, p.nc, p.mTiles, p.nTiles,
    p.rawA, p.lda, p.aContiguous ? 1 : 0, p.rawB, p.ldb, p.bContiguous ? 1 : 0,
    p.aBase, p.bBase, p.cBase, p.ldc, p.bytes,
  ];
}

/** Number of task arguments a layout takes. */
export const LAYOUT_ARGS = 20;

export function layoutFromArgs(args: Float64Array, at = 0): GemmLayout {
  const v = (i: number): number => args[at + i]!;
  return {
    M: v(0), N: v(1), K: v(2), mp: v(3), np: v(4), mc: v(5), nc: v(6), mTiles: v(7), nTiles: v(8),
    rawA: v(9), lda: v(10), aContiguous: v(11) === 1, rawB: v(12), ldb: v(13), bContiguous: v(14) === 1,
    aBase: v(15), bBase: v(16), cBase: v(17), ldc: v(18), bytes: v(19),
  };
}
