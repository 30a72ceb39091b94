/**
 * The selective scan's per-channel loops in JavaScript; kernels/scan.ts has the readable
 * reference and the equations. Same arithmetic in the same order as the reference (float64
 * results are bit-identical to it), scheduled differently:
 *  - four state indices n are scanned together, so four independent recurrences hide each
 *    other's latency; sums over n (y_t, ∂/∂Δ_t, ∂/∂u_t) still add the terms in n order;
 *  - the backward recomputes and reverse-sweeps four states at a time, keeping their states and
 *    decays in an L x 4 scratch that stays in L1 instead of an N x L one;
 *  - for float32 compute (no float64 operand) every exp (the decays exp(Δ_t A_dn), and inside
 *    the softplus and sigmoids) is `expFast` (relative error < 1e-10).
 * The per-channel steps around the state loops (discretise, gate, ∂Δ) are shared with the
 * WebAssembly path for float32 compute (quads.ts). All arrays are float64.
 */

import { expFast, sigmoid, sigmoidFast, softplus, softplusFast } from '../kernels/math.js';

/** PyTorch's softplus threshold (see kernels/scan.ts). */
const SOFTPLUS_THRESHOLD = 20;

export interface ScanShape {
  readonly batch: number;
  readonly dim: number;
  readonly len: number;
  readonly nState: number;
  readonly groups: number;
  readonly softplus: boolean;
  /**
   * Float32 compute (no float64 operand): every exp here is `expFast`, and the work items send
   * channels four at a time to the WebAssembly kernel (quads.ts).
   */
  readonly float32: boolean;
  /** Threads of the pool running the job (each has its own scratch for the wasm path). */
  readonly threads: number;
}

export interface ScanOperands {
  readonly u: Float64Array;        // [B, D, L]
  readonly delta: Float64Array;    // [B, D, L]
  readonly A: Float64Array;        // [D, N]
  readonly B: Float64Array;        // [B, G, N, L]
  readonly C: Float64Array;        // [B, G, N, L]
  readonly D: Float64Array | null; // [D]
  readonly z: Float64Array | null; // [B, D, L]
  readonly deltaBias: Float64Array | null; // [D]
}

export interface ScanForwardResults {
  readonly out: Float64Array;         // [B, D, L]
  readonly last: Float64Array | null; // [B, D, N]
}

export interface ScanBackwardResults {
  readonly g: Float64Array;        // ∂loss/∂out [B, D, L] (an input)
  readonly du: Float64Array;       // [B, D, L]
  readonly ddelta: Float64Array;   // [B, D, L]
  readonly dz: Float64Array | null; // [B, D, L]
  /** Summed over channels by the item of their (batch entry, group); zero on entry. */
  readonly dB: Float64Array;       // [B, G, N, L]
  readonly dC: Float64Array;       // [B, G, N, L]
  /** Per batch entry; summed over b afterwards. */
  readonly dA: Float64Array;       // [B, D, N]
  readonly dD: Float64Array;       // [B, D]
  readonly ddeltaBias: Float64Array; // [B, D]
}

/** One channel's scratch, grown on demand. */
export class Scratch {
  len = -1;
  dt = new Float64Array(0);
  dtu = new Float64Array(0);
  y = new Float64Array(0);
  gy = new Float64Array(0);
  gdt = new Float64Array(0);
  du = new Float64Array(0);
  sg = new Float64Array(0);
  /**
   * States and decays exp(Δ_t A) of four state indices, interleaved: decays[4t + k] and
   * states[4t + 4 + k] = x_t of state n0 + k; states[0..3] = x_{-1} = 0.
   */
  states = new Float64Array(0);
  decays = new Float64Array(0);

  fit(len: number): this {
    if (len > this.len) {
      this.len = len;
      for (const k of ['dt', 'dtu', 'y', 'gy', 'gdt', 'du', 'sg'] as const) this[k] = new Float64Array(len);
      this.states = new Float64Array(4 * len + 4);
      this.decays = new Float64Array(4 * len);
    }
    return this;
  }
}

/** Δ_t and Δ_t u_t of one row (reference: discretiseRow). */
export function discretise(s: ScanShape, x: ScanOperands, row: number, d: number, w: Scratch): void {
  const bias = x.deltaBias ? x.deltaBias[d]! : 0;
  const { dt, dtu } = w;
  for (let t = 0; t < s.len; t++) {
    const pre = x.delta[row + t]! + bias;
    const v = s.softplus ? (s.float32 ? softplusFast(pre) : softplus(pre)) : pre;
    dt[t] = v;
    dtu[t] = v * x.u[row + t]!;
  }
}

/**
 * Runs states [n0, n0 + 4) of one row forward: adds C_t x_t to y in n order and, when `keep`,
 * stores the four states' x_t and decays in w.states / w.decays (see Scratch). The final states
 * go to `last` (row offset lastAt) when given.
 */
function scanFour(s: ScanShape, x: ScanOperands, d: number, bc: number, n0: number, w: Scratch, keep: boolean,
  last: Float64Array | null, lastAt: number): void {
  const { len, nState, float32: fastExp } = s;
  const { dt, dtu, y, states, decays } = w;
  const B = x.B;
  const C = x.C;
  const a0 = x.A[d * nState + n0]!;
  const a1 = x.A[d * nState + n0 + 1]!;
  const a2 = x.A[d * nState + n0 + 2]!;
  const a3 = x.A[d * nState + n0 + 3]!;
  const o0 = bc + n0 * len;
  const o1 = o0 + len;
  const o2 = o1 + len;
  const o3 = o2 + len;
  let x0 = 0;
  let x1 = 0;
  let x2 = 0;
  let x3 = 0;
  for (let t = 0; t < len; t++) {
    const dtt = dt[t]!;
    const dtut = dtu[t]!;
    const e0 = fastExp ? expFast(dtt * a0) : Math.exp(dtt * a0);
    const e1 = fastExp ? expFast(dtt * a1) : Math.exp(dtt * a1);
    const e2 = fastExp ? expFast(dtt * a2) : Math.exp(dtt * a2);
    const e3 = fastExp ? expFast(dtt * a3) : Math.exp(dtt * a3);
    x0 = e0 * x0 + dtut * B[o0 + t]!;
    x1 = e1 * x1 + dtut * B[o1 + t]!;
    x2 = e2 * x2 + dtut * B[o2 + t]!;
    x3 = e3 * x3 + dtut * B[o3 + t]!;
    y[t] = y[t]! + C[o0 + t]! * x0 + C[o1 + t]! * x1 + C[o2 + t]! * x2 + C[o3 + t]! * x3;
    if (keep) {
      const q = 4 * t;
      decays[q] = e0;
      decays[q + 1] = e1;
      decays[q + 2] = e2;
      decays[q + 3] = e3;
      states[q + 4] = x0;
      states[q + 5] = x1;
      states[q + 6] = x2;
      states[q + 7] = x3;
    }
  }
  if (last) {
    last[lastAt + n0] = x0;
    last[lastAt + n0 + 1] = x1;
    last[lastAt + n0 + 2] = x2;
    last[lastAt + n0 + 3] = x3;
  }
}

/** One state index (the N mod 4 left over), slot 0 of the scratch. */
function scanOne(s: ScanShape, x: ScanOperands, d: number, bc: number, n: number, w: Scratch, keep: boolean,
  last: Float64Array | null, lastAt: number): void {
  const { len, nState, float32: fastExp } = s;
  const { dt, dtu, y, states, decays } = w;
  const a = x.A[d * nState + n]!;
  const off = bc + n * len;
  let xs = 0;
  for (let t = 0; t < len; t++) {
    const e = fastExp ? expFast(dt[t]! * a) : Math.exp(dt[t]! * a);
    xs = e * xs + dtu[t]! * x.B[off + t]!;
    y[t] = y[t]! + x.C[off + t]! * xs;
    if (keep) {
      decays[4 * t] = e;
      states[4 * t + 4] = xs;
    }
  }
  if (last) last[lastAt + n] = xs;
}

/** out = (y + D u) silu(z) for one row, y from w.y (reference: the end of selectiveScan). */
export function writeOutput(s: ScanShape, x: ScanOperands, r: ScanForwardResults, d: number, row: number, w: Scratch): void {
  const skip = x.D ? x.D[d]! : 0;
  const { y } = w;
  const out = r.out;
  const z = x.z;
  for (let t = 0; t < s.len; t++) {
    const pre = y[t]! + skip * x.u[row + t]!;
    if (z) {
      const zv = z[row + t]!;
      out[row + t] = pre * zv * (s.float32 ? sigmoidFast(zv) : sigmoid(zv));
    } else out[row + t] = pre;
  }
}

/** The forward of channel d of batch entry b, states in JS. */
export function forwardChannel(s: ScanShape, x: ScanOperands, r: ScanForwardResults, b: number, d: number, w: Scratch): void {
  const { dim, len, nState, groups } = s;
  const row = (b * dim + d) * len;
  const bc = (b * groups + Math.floor(d / (dim / groups))) * nState * len;
  const lastAt = (b * dim + d) * nState;
  discretise(s, x, row, d, w);
  w.y.fill(0, 0, len);
  let n = 0;
  for (; n + 4 <= nState; n += 4) scanFour(s, x, d, bc, n, w, false, r.last, lastAt);
  for (; n < nState; n++) scanOne(s, x, d, bc, n, w, false, r.last, lastAt);
  writeOutput(s, x, r, d, row, w);
}

/**
 * Reverse-time sweep of the four states kept in w.states / w.decays (states n0..n0+3) with the
 * adjoint λ (reference: adjointSweep). x_{t-1}, loaded at step t, is step t-1's x_t.
 */
function sweepFour(s: ScanShape, x: ScanOperands, r: ScanBackwardResults, b: number, d: number, row: number, bc: number,
  n0: number, w: Scratch): void {
  const { len, nState } = s;
  const { dt, dtu, gy, gdt, du, states, decays } = w;
  const B = x.B;
  const C = x.C;
  const u = x.u;
  const dB = r.dB;
  const dC = r.dC;
  const a0 = x.A[d * nState + n0]!;
  const a1 = x.A[d * nState + n0 + 1]!;
  const a2 = x.A[d * nState + n0 + 2]!;
  const a3 = x.A[d * nState + n0 + 3]!;
  const o0 = bc + n0 * len;
  const o1 = o0 + len;
  const o2 = o1 + len;
  const o3 = o2 + len;
  let l0 = 0;
  let l1 = 0;
  let l2 = 0;
  let l3 = 0;
  let n0d = 0;
  let n1d = 0;
  let n2d = 0;
  let n3d = 0;
  let dA0 = 0;
  let dA1 = 0;
  let dA2 = 0;
  let dA3 = 0;
  let c0 = states[4 * len]!;
  let c1 = states[4 * len + 1]!;
  let c2 = states[4 * len + 2]!;
  let c3 = states[4 * len + 3]!;
  for (let t = len - 1; t >= 0; t--) {
    const q = 4 * t;
    const g = gy[t]!;
    const dtt = dt[t]!;
    const dtut = dtu[t]!;
    const ut = u[row + t]!;
    const b0 = B[o0 + t]!;
    const b1 = B[o1 + t]!;
    const b2 = B[o2 + t]!;
    const b3 = B[o3 + t]!;
    l0 = l0 * n0d + g * C[o0 + t]!;
    l1 = l1 * n1d + g * C[o1 + t]!;
    l2 = l2 * n2d + g * C[o2 + t]!;
    l3 = l3 * n3d + g * C[o3 + t]!;
    dC[o0 + t] += g * c0;
    dC[o1 + t] += g * c1;
    dC[o2 + t] += g * c2;
    dC[o3 + t] += g * c3;
    const e0 = decays[q]!;
    const e1 = decays[q + 1]!;
    const e2 = decays[q + 2]!;
    const e3 = decays[q + 3]!;
    c0 = states[q]!;
    c1 = states[q + 1]!;
    c2 = states[q + 2]!;
    c3 = states[q + 3]!;
    // ∂x_t/∂(Δ_t A) = e x_{t-1}; ∂x_t/∂Δ_t = A e x_{t-1} + B_t u_t.
    const lex0 = l0 * e0 * c0;
    const lex1 = l1 * e1 * c1;
    const lex2 = l2 * e2 * c2;
    const lex3 = l3 * e3 * c3;
    gdt[t] = gdt[t]! + (a0 * lex0 + l0 * b0 * ut) + (a1 * lex1 + l1 * b1 * ut) + (a2 * lex2 + l2 * b2 * ut) + (a3 * lex3 + l3 * b3 * ut);
    dA0 += dtt * lex0;
    dA1 += dtt * lex1;
    dA2 += dtt * lex2;
    dA3 += dtt * lex3;
    dB[o0 + t] += l0 * dtut;
    dB[o1 + t] += l1 * dtut;
    dB[o2 + t] += l2 * dtut;
    dB[o3 + t] += l3 * dtut;
    du[t] = du[t]! + l0 * dtt * b0 + l1 * dtt * b1 + l2 * dtt * b2 + l3 * dtt * b3;
    n0d = e0;
    n1d = e1;
    n2d = e2;
    n3d = e3;
  }
  const at = (b * s.dim + d) * nState + n0;
  r.dA[at] = dA0;
  r.dA[at + 1] = dA1;
  r.dA[at + 2] = dA2;
  r.dA[at + 3] = dA3;
}

/** sweepFour for one state (slot 0 of the scratch). */
function sweepOne(s: ScanShape, x: ScanOperands, r: ScanBackwardResults, b: number, d: number, row: number, bc: number,
  n: number, w: Scratch): void {
  const { len, nState } = s;
  const { dt, dtu, gy, gdt, du, states, decays } = w;
  const a = x.A[d * nState + n]!;
  const off = bc + n * len;
  let lambda = 0;
  let nextDecay = 0;
  let dA = 0;
  for (let t = len - 1; t >= 0; t--) {
    const bv = x.B[off + t]!;
    lambda = lambda * nextDecay + gy[t]! * x.C[off + t]!;
    r.dC[off + t] += gy[t]! * states[4 * t + 4]!;
    const e = decays[4 * t]!;
    const lex = lambda * e * states[4 * t]!;
    gdt[t] = gdt[t]! + (a * lex + lambda * bv * x.u[row + t]!);
    dA += dt[t]! * lex;
    r.dB[off + t] += lambda * dtu[t]!;
    du[t] = du[t]! + lambda * dt[t]! * bv;
    nextDecay = e;
  }
  r.dA[(b * s.dim + d) * nState + n] = dA;
}

/**
 * The gate's backward before the states (reference: gateBackward): ∂loss/∂y into w.gy, the skip
 * path's ∂u into w.du, σ(z) into w.sg, and the row's ∂D term. ∂loss/∂z needs y: finishBackward.
 */
export function gateBackward(s: ScanShape, x: ScanOperands, r: ScanBackwardResults, b: number, d: number, row: number, w: Scratch): void {
  const { gy, du, sg } = w;
  const skip = x.D ? x.D[d]! : 0;
  const z = x.z;
  let dD = 0;
  for (let t = 0; t < s.len; t++) {
    const uv = x.u[row + t]!;
    let gyv = r.g[row + t]!;
    if (z) {
      const zv = z[row + t]!;
      const sgv = s.float32 ? sigmoidFast(zv) : sigmoid(zv);
      sg[t] = sgv;
      gyv *= zv * sgv;
    }
    gy[t] = gyv;
    du[t] = gyv * skip;
    dD += gyv * uv;
  }
  r.dD[b * s.dim + d] = dD;
}

/**
 * After the states (w.y, w.gdt, w.du complete): ∂z, ∂Δ through the softplus and bias
 * (reference: the end of gateBackward, deltaBackward), and the row's ∂u.
 */
export function finishBackward(s: ScanShape, x: ScanOperands, r: ScanBackwardResults, b: number, d: number, row: number, w: Scratch): void {
  const { len } = s;
  const { du, sg, y, gdt } = w;
  const skip = x.D ? x.D[d]! : 0;
  const z = x.z;
  if (z && r.dz) {
    for (let t = 0; t < len; t++) {
      const zv = z[row + t]!;
      const sgv = sg[t]!;
      // d silu(z)/dz = σ(z) (1 + z (1 - σ(z)))
      r.dz[row + t] = r.g[row + t]! * (y[t]! + skip * x.u[row + t]!) * sgv * (1 + zv * (1 - sgv));
    }
  }
  const bias = x.deltaBias ? x.deltaBias[d]! : 0;
  let dBias = 0;
  for (let t = 0; t < len; t++) {
    let gd = gdt[t]!;
    if (s.softplus) {
      const pre = x.delta[row + t]! + bias;
      if (pre <= SOFTPLUS_THRESHOLD) gd *= s.float32 ? sigmoidFast(pre) : sigmoid(pre);
    }
    r.ddelta[row + t] = gd;
    r.du[row + t] = du[t]!;
    dBias += gd;
  }
  r.ddeltaBias[b * s.dim + d] = dBias;
}

/** The backward of channel d of batch entry b (its group's B/C rows at bc), states in JS. */
export function backwardChannel(s: ScanShape, x: ScanOperands, r: ScanBackwardResults, b: number, d: number, bc: number, w: Scratch): void {
  const { len, nState } = s;
  const row = (b * s.dim + d) * len;
  discretise(s, x, row, d, w);
  gateBackward(s, x, r, b, d, row, w);
  w.y.fill(0, 0, len);
  w.gdt.fill(0, 0, len);
  let n = 0;
  for (; n + 4 <= nState; n += 4) {
    scanFour(s, x, d, bc, n, w, true, null, 0);
    sweepFour(s, x, r, b, d, row, bc, n, w);
  }
  for (; n < nState; n++) {
    scanOne(s, x, d, bc, n, w, true, null, 0);
    sweepOne(s, x, r, b, d, row, bc, n, w);
  }
  finishBackward(s, x, r, b, d, row, w);
}
