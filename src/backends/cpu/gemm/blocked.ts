/**
 * The blocked fp32 GEMM over the wasm heap: layout of one problem's packed operands and C
 * buffer, packing, and the tile loop that calls the macro-kernel (kernel.ts).
 *
 * Layout (all in the heap, addresses in bytes, K split into blocks of KC, each padded to a
 * multiple of K_UNROLL; `kp` = padded start of a K block):
 *   packed A  [K blocks][Mp / MR panels][kcp][MR]   panel (kb, ir) at aBase + 4*(kp*Mp + ir*MR*kcp)
 *   packed B  [K blocks][Np / NR panels][kcp][NR]   panel (kb, jr) at bBase + 4*(kp*Np + jr*NR*kcp)
 *   C buffer  [Mp][ldc] with Mp, Np the sizes rounded up to MR, NR
 *
 * Work is split into tiles of C of mc x nc (a tile is one thread's unit of work and loops over
 * all K blocks itself, so tiles are independent and threads never synchronise mid-job).
 * Within a tile and K block, the macro-kernel keeps one KC x NR panel of B in L1 while it
 * streams the mc x KC block of A from L2: KC = 256, mc = 120 gives a 120 KiB A block and 8 KiB
 * B panel, sized for 1 MiB L2 / 32 KiB L1 per core (see bench/NOTES.md for the measurements).
 */

import { K_UNROLL, MR, NR, type GemmExports } from './kernel.js';
import { packPanels, roundUp, type PanelSource } from './pack.js';

/** K block length (a multiple of K_UNROLL). */
export const KC = 256;
/** Rows of C per tile (a multiple of MR). */
export const MC = 120;
/** Columns of C per tile at most (a multiple of NR). */
export const NC = 512;

export interface GemmLayout {
  M: number; N: number; K: number;
  /** M, N rounded up to MR, NR; K rounded up per block to K_UNROLL. */
  mp: number; np: number; kp: number;
  /** Tile size (multiples of MR, NR) and tile grid. */
  mc: number; nc: number; mTiles: number; nTiles: number;
  /** Byte addresses. */
  aBase: number; bBase: number; cBase: number;
  /** C buffer row stride in floats. */
  ldc: number;
  /** Bytes used from `base` on. */
  bytes: number;
}

function paddedK(K: number): number {
  const full = Math.floor(K / KC) * KC;
  return full + roundUp(K - full, K_UNROLL);
}

/**
 * Plans one problem at byte address `base` (16-byte aligned). `minTiles` asks for at least that
 * many tiles (narrower tiles) so that several threads can share the work.
 */
export function planGemm(M: number, N: number, K: number, base: number, minTiles = 1): GemmLayout {
  const mp = roundUp(M, MR);
  const np = roundUp(N, NR);
  const kp = paddedK(K);
  let mc = Math.min(MC, mp);
  let nc = Math.min(NC, np);
  const tiles = (): number => Math.ceil(mp / mc) * Math.ceil(np / nc);
  while (tiles() < minTiles && nc > 8 * NR) nc = roundUp(nc / 2, NR);
  while (tiles() < minTiles && mc > 4 * MR) mc = roundUp(mc / 2, MR);
  // A row stride that is a multiple of 4 KiB makes the MR rows of a C tile alias in L1.
  const ldc = (np * 4) % 4096 === 0 ? np + NR : np;
  const aBase = base;
  const bBase = aBase + 4 * kp * mp;
  const cBase = bBase + 4 * kp * np;
  const end = cBase + 4 * mp * ldc;
  return {
    M, N, K, mp, np, kp, mc, nc, mTiles: Math.ceil(mp / mc), nTiles: Math.ceil(np / nc),
    aBase, bBase, cBase, ldc, bytes: end - base,
  };
}

/** Packs op(A) and op(B) completely into the layout's regions of `heap`. */
export function packOperands(heap: Float32Array, p: GemmLayout, a: PanelSource, b: PanelSource): void {
  for (let k0 = 0; k0 < p.K; k0 += KC) {
    const kc = Math.min(KC, p.K - k0);
    const kcp = roundUp(kc, K_UNROLL);
    packPanels(a, 0, p.M, k0, kc, kcp, MR, heap, p.aBase / 4 + k0 * p.mp);
    packPanels(b, 0, p.N, k0, kc, kcp, NR, heap, p.bBase / 4 + k0 * p.np);
  }
  // Rows/columns of padding (M..mp, N..np) are zero-filled by packPanels.
}

/** Computes tile `item` (of mTiles * nTiles, column-of-tiles major) of C over all of K. */
export function computeTile(kernel: GemmExports, p: GemmLayout, item: number): void {
  const i0 = (item % p.mTiles) * p.mc;
  const j0 = Math.floor(item / p.mTiles) * p.nc;
  const mc = Math.min(p.mc, p.mp - i0);
  const nc = Math.min(p.nc, p.np - j0);
  const cAddr = p.cBase + 4 * (i0 * p.ldc + j0);
  for (let k0 = 0; k0 < p.K; k0 += KC) {
    const kcp = roundUp(Math.min(KC, p.K - k0), K_UNROLL);
    kernel.macro(p.aBase + 4 * (k0 * p.mp + i0 * kcp), p.bBase + 4 * (k0 * p.np + j0 * kcp), cAddr, 4 * p.ldc,
      mc / MR, nc / NR, kcp, k0 === 0 ? 1 : 0);
  }
}

/** Serialises a layout into task arguments (and back, on the worker side). */
export function layoutArgs(p: GemmLayout): number[] {
  return [p.M, p.N, p.K, p.mp, p.np, p.kp, p.mc, p.nc, p.mTiles, p.nTiles, p.aBase, p.bBase, p.cBase, p.ldc, p.bytes];
}

export const LAYOUT_ARGS = 15;

export function layoutFromArgs(args: Float64Array, at = 0): GemmLayout {
  const v = (i: number): number => args[at + i]!;
  return {
    M: v(0), N: v(1), K: v(2), mp: v(3), np: v(4), kp: v(5), mc: v(6), nc: v(7), mTiles: v(8), nTiles: v(9),
    aBase: v(10), bBase: v(11), cBase: v(12), ldc: v(13), bytes: v(14),
  };
}
