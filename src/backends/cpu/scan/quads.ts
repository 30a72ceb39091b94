/**
 * Float32-compute scan of four channels at once with the WebAssembly state loops (wasm.ts): the
 * per-channel steps run in JS (rows.ts: discretise, gate, ∂Δ), their results are interleaved
 * into the thread's scratch in the arena, the kernel runs the N x L state loops, and the
 * results are taken back per channel. The group's B and C rows are converted to float32 once
 * per group and job; ∂B and ∂C collect per-lane float32 partial sums over the group's quads,
 * added into the float64 results (lanes in order) when the group is done.
 */

import type { ScanWasm } from './wasm.js';
import {
  Scratch, discretise, finishBackward, gateBackward, writeOutput,
  type ScanBackwardResults, type ScanForwardResults, type ScanOperands, type ScanShape,
} from './rows.js';

/** Offsets (float32 elements) of the arrays in a thread's quad scratch. */
interface QuadLayout {
  dt: number; dtu: number; u: number; gy: number; y: number; gdt: number; du: number; decays: number;
  /** L + 1 steps (states[0] = x_{-1}). */
  states: number;
  a: number;
  /** last (forward) or dA (backward), N steps. */
  perState: number;
  /** The group's B and C as float32 [N, L]. */
  B: number; C: number;
  /** Per-lane partial sums of ∂B and ∂C, quad [N, L]. */
  dB: number; dC: number;
  size: number;
}

function quadLayout(len: number, nState: number): QuadLayout {
  const q = 4 * len;
  const nl = nState * len;
  const states = 8 * q;
  const a = states + q + 4;
  const perState = a + 4 * nState;
  const B = perState + 4 * nState;
  const C = B + nl;
  const dB = C + nl;
  const dC = dB + 4 * nl;
  return {
    dt: 0, dtu: q, u: 2 * q, gy: 3 * q, y: 4 * q, gdt: 5 * q, du: 6 * q, decays: 7 * q, states, a, perState, B, C, dB, dC,
    // Rounded to 16 floats: every thread's scratch starts on a cache line.
    size: Math.ceil((dC + 4 * nl) / 16) * 16,
  };
}

/** Bytes of one thread's quad scratch. */
export function quadScratchBytes(len: number, nState: number): number {
  return 4 * quadLayout(len, nState).size;
}

const lanes = [new Scratch(), new Scratch(), new Scratch(), new Scratch()] as const;

/** Writes values[t] into lane `lane` of the quad array at heap index `at`. */
function interleave(heap: Float32Array, at: number, lane: number, values: ArrayLike<number>, count: number): void {
  for (let t = 0; t < count; t++) heap[at + 4 * t + lane] = values[t]!;
}

function deinterleave(heap: Float32Array, at: number, lane: number, out: Float64Array, count: number): void {
  for (let t = 0; t < count; t++) out[t] = heap[at + 4 * t + lane]!;
}

/** The kernel and one thread's scratch for one job. */
export class QuadKernel {
  /** Index b * G + g of the group whose B and C rows are in the scratch (-1: none yet). */
  private group = -1;

  /**
   * @param heap the whole arena as float32
   * @param constants byte address of the kernel's constant table
   * @param scratch byte address of this thread's scratch
   */
  constructor(private readonly wasm: ScanWasm, private readonly heap: Float32Array, private readonly constants: number,
    private readonly scratch: number) {}

  /** Byte address of a scratch array. */
  private addr(offset: number): number {
    return this.scratch + 4 * offset;
  }

  /** Makes the scratch hold group g of batch entry b as float32 (x.B, x.C rows at bc). */
  private useGroup(s: ScanShape, x: ScanOperands, o: QuadLayout, b: number, g: number): void {
    const key = b * s.groups + g;
    if (this.group === key) return;
    const bc = key * s.nState * s.len;
    const base = this.scratch / 4;
    const count = s.nState * s.len;
    this.heap.set(x.B.subarray(bc, bc + count), base + o.B);
    this.heap.set(x.C.subarray(bc, bc + count), base + o.C);
    this.group = key;
  }

  /** Channels d..d+3 (one group) of batch entry b. */
  forward(s: ScanShape, x: ScanOperands, r: ScanForwardResults, b: number, d: number): void {
    const { dim, len, nState } = s;
    const o = quadLayout(len, nState);
    const base = this.scratch / 4;
    const heap = this.heap;
    this.useGroup(s, x, o, b, Math.floor(d / (dim / s.groups)));
    for (let lane = 0; lane < 4; lane++) {
      const w = lanes[lane]!.fit(len);
      discretise(s, x, (b * dim + d + lane) * len, d + lane, w);
      interleave(heap, base + o.dt, lane, w.dt, len);
      interleave(heap, base + o.dtu, lane, w.dtu, len);
      interleave(heap, base + o.a, lane, x.A.subarray((d + lane) * nState), nState);
    }
    this.wasm.forward(this.addr(o.dt), this.addr(o.dtu), this.addr(o.a), this.addr(o.B), this.addr(o.C),
      this.addr(o.y), this.addr(o.perState), this.constants, nState, len);
    for (let lane = 0; lane < 4; lane++) {
      const w = lanes[lane]!;
      deinterleave(heap, base + o.y, lane, w.y, len);
      writeOutput(s, x, r, d + lane, (b * dim + d + lane) * len, w);
      if (r.last) {
        const at = (b * dim + d + lane) * nState;
        for (let n = 0; n < nState; n++) r.last[at + n] = heap[base + o.perState + 4 * n + lane]!;
      }
    }
  }

  /** Starts the backward of group g of batch entry b: zeroes the ∂B, ∂C partial sums. */
  beginBackwardGroup(s: ScanShape, x: ScanOperands, b: number, g: number): void {
    const o = quadLayout(s.len, s.nState);
    this.useGroup(s, x, o, b, g);
    const base = this.scratch / 4;
    this.heap.fill(0, base + o.dB, base + o.dC + 4 * s.nState * s.len);
  }

  /** Channels d..d+3 of the group begun with beginBackwardGroup. */
  backward(s: ScanShape, x: ScanOperands, r: ScanBackwardResults, b: number, d: number): void {
    const { dim, len, nState } = s;
    const o = quadLayout(len, nState);
    const base = this.scratch / 4;
    const heap = this.heap;
    for (let lane = 0; lane < 4; lane++) {
      const w = lanes[lane]!.fit(len);
      const row = (b * dim + d + lane) * len;
      discretise(s, x, row, d + lane, w);
      gateBackward(s, x, r, b, d + lane, row, w);
      interleave(heap, base + o.dt, lane, w.dt, len);
      interleave(heap, base + o.dtu, lane, w.dtu, len);
      interleave(heap, base + o.u, lane, x.u.subarray(row), len);
      interleave(heap, base + o.gy, lane, w.gy, len);
      interleave(heap, base + o.du, lane, w.du, len);
      interleave(heap, base + o.a, lane, x.A.subarray((d + lane) * nState), nState);
    }
    const at = (offset: number): number => this.addr(offset);
    this.wasm.backward(at(o.dt), at(o.dtu), at(o.u), at(o.gy), at(o.a), at(o.B), at(o.C), at(o.dB), at(o.dC),
      at(o.y), at(o.gdt), at(o.du), at(o.perState), at(o.states), at(o.decays), this.constants, nState, len);
    for (let lane = 0; lane < 4; lane++) {
      const w = lanes[lane]!;
      deinterleave(heap, base + o.y, lane, w.y, len);
      deinterleave(heap, base + o.gdt, lane, w.gdt, len);
      deinterleave(heap, base + o.du, lane, w.du, len);
      finishBackward(s, x, r, b, d + lane, (b * dim + d + lane) * len, w);
      const dA = (b * dim + d + lane) * nState;
      for (let n = 0; n < nState; n++) r.dA[dA + n] = heap[base + o.perState + 4 * n + lane]!;
    }
  }

  /** Adds the group's ∂B, ∂C partial sums (lanes in order) into the results. */
  endBackwardGroup(s: ScanShape, r: ScanBackwardResults, b: number, g: number): void {
    const o = quadLayout(s.len, s.nState);
    const base = this.scratch / 4;
    const heap = this.heap;
    const bc = (b * s.groups + g) * s.nState * s.len;
    const count = s.nState * s.len;
    for (const [parts, out] of [[base + o.dB, r.dB], [base + o.dC, r.dC]] as const) {
      for (let i = 0; i < count; i++) {
        const p = parts + 4 * i;
        out[bc + i] += heap[p]! + heap[p + 1]! + heap[p + 2]! + heap[p + 3]!;
      }
    }
  }
}
