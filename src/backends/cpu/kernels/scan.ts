/**
 * CPU selective scan (Mamba-1, the semantics of mamba_ssm's selective_scan_fn). For each
 * (batch b, channel d) row and state index n, with Δ_t = softplus(delta_t + deltaBias_d) (or
 * without the softplus) and the zero-order-hold discretisation of the Mamba paper (eq. 4):
 *   x_t = exp(Δ_t A_dn) x_{t-1} + Δ_t B_nt u_t,   y_t = Σ_n C_nt x_t,   out_t = (y_t + D_d u_t) silu(z_t).
 * All arithmetic is float64 (JS numbers), which covers the float32 compute type of the CUDA kernel.
 * The forward keeps one running state per n and stores no history. The backward recomputes one
 * row's states into scratch, then sweeps time in reverse carrying the adjoint state
 * λ_t = ∂loss/∂x_t = C_t gy_t + exp(Δ_{t+1} A) λ_{t+1}, as the fused CUDA kernel does per chunk.
 * This is also the numerical reference other backends are tested against.
 *
 * With inputs.aLog the A operand is A_log: A = -exp(A_log) is formed once (scanA) and the A
 * gradient is taken to A_log, ∂/∂A_log = ∂/∂A · A, after the float64 sum (chainALog).
 *
 * Problems above a few thousand state updates run instead on ../scan, spread over the thread
 * pool: with float64 operands the same arithmetic bit for bit, scheduled for speed; otherwise
 * float32 compute as the CUDA kernel does (WebAssembly SIMD state loops). These loops remain the
 * reference for it and run the small problems.
 */
import type { Kernels, ScanGrads, ScanInputs } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readNumbers, withOutput, writeNumbers, type NumArray } from '../access.js';
import { callerOnlyPool } from '../arena.js';
import { chainALog, scanA } from '../scan/a-log.js';
import { selectiveScanBackwardParallel, selectiveScanParallel } from '../scan/index.js';
import { threadPool } from '../threads/index.js';
import { sigmoid, softplus } from './math.js';

/** PyTorch's softplus threshold, which the CUDA kernel also uses: linear (slope 1) above it. */
const SOFTPLUS_THRESHOLD = 20;

interface ScanData {
  readonly batch: number;
  readonly dim: number;
  readonly len: number;
  readonly nState: number;
  readonly groups: number;
  readonly channelsPerGroup: number;
  readonly u: NumArray;
  readonly delta: NumArray;
  /** A itself (-exp(A_log) when the operand is A_log). */
  readonly A: NumArray;
  readonly B: NumArray;
  readonly C: NumArray;
  readonly D: NumArray | null;
  readonly z: NumArray | null;
  readonly deltaBias: NumArray | null;
  readonly softplus: boolean;
}

function readInputs(inputs: ScanInputs): ScanData {
  const [batch, dim, len] = inputs.u.shape as [number, number, number];
  const groups = inputs.B.shape[1]!;
  return {
    batch, dim, len,
    nState: inputs.A.shape[1]!,
    groups,
    channelsPerGroup: dim / groups,
    u: readNumbers(inputs.u),
    delta: readNumbers(inputs.delta),
    A: scanA(inputs),
    B: readNumbers(inputs.B),
    C: readNumbers(inputs.C),
    D: inputs.D ? readNumbers(inputs.D) : null,
    z: inputs.z ? readNumbers(inputs.z) : null,
    deltaBias: inputs.deltaBias ? readNumbers(inputs.deltaBias) : null,
    softplus: inputs.deltaSoftplus,
  };
}

/** Element offset of the B/C rows (n = 0) that channel d of batch entry b reads. */
function groupOffset(s: ScanData, b: number, d: number): number {
  const g = Math.floor(d / s.channelsPerGroup);
  return (b * s.groups + g) * s.nState * s.len;
}

/** dt[t] = Δ_t and dtu[t] = Δ_t u_t for the row starting at `row` (channel d). */
function discretiseRow(s: ScanData, row: number, d: number, dt: Float64Array, dtu: Float64Array): void {
  const bias = s.deltaBias ? s.deltaBias[d]! : 0;
  for (let t = 0; t < s.len; t++) {
    const pre = s.delta[row + t]! + bias;
    const v = s.softplus ? softplus(pre) : pre;
    dt[t] = v;
    dtu[t] = v * s.u[row + t]!;
  }
}

/** State updates (B·D·L·N) from which ../scan runs the scan, and from which it uses every pool thread. */
export const FAST_SCAN_WORK = 1 << 14;
export const PARALLEL_SCAN_WORK = 1 << 17;

export function selectiveScanReference(inputs: ScanInputs, out: Tensor, lastState: Tensor | null): void {
  const s = readInputs(inputs);
  const { batch, dim, len, nState } = s;
  const dt = new Float64Array(len);
  const dtu = new Float64Array(len);
  const y = new Float64Array(len);
  const last = lastState ? new Float64Array(batch * dim * nState) : null;
  withOutput(out, (o) => {
    for (let b = 0; b < batch; b++) {
      for (let d = 0; d < dim; d++) {
        const row = (b * dim + d) * len;
        discretiseRow(s, row, d, dt, dtu);
        y.fill(0);
        const bc = groupOffset(s, b, d);
        // n outer, t inner: B and C rows are contiguous in t, and y accumulates over n.
        for (let n = 0; n < nState; n++) {
          const a = s.A[d * nState + n]!;
          const off = bc + n * len;
          let x = 0;
          for (let t = 0; t < len; t++) {
            x = Math.exp(dt[t]! * a) * x + dtu[t]! * s.B[off + t]!;
            y[t] += s.C[off + t]! * x;
          }
          if (last) last[(b * dim + d) * nState + n] = x;
        }
        const skip = s.D ? s.D[d]! : 0;
        for (let t = 0; t < len; t++) {
          const pre = y[t]! + skip * s.u[row + t]!;
          if (s.z) {
            const zv = s.z[row + t]!;
            o[row + t] = pre * zv * sigmoid(zv);
          } else o[row + t] = pre;
        }
      }
    }
  });
  if (lastState && last) writeNumbers(lastState, last);
}

/** Per-call scratch and accumulators; gradients are summed in float64 and written once at the end. */
interface BackwardBuffers {
  readonly dt: Float64Array;
  readonly dtu: Float64Array;
  /** y_t before the skip term and the gate. */
  readonly y: Float64Array;
  /** ∂loss/∂y_t (after undoing the gate). */
  readonly gy: Float64Array;
  /** ∂loss/∂Δ_t (after the softplus). */
  readonly gdt: Float64Array;
  /** One row's states x_{t,n} and decays exp(Δ_t A_dn), [N, L]. */
  readonly states: Float64Array;
  readonly decays: Float64Array;
  readonly du: Float64Array;
  readonly ddelta: Float64Array;
  readonly dA: Float64Array;
  readonly dB: Float64Array;
  readonly dC: Float64Array;
  readonly dD: Float64Array;
  readonly dz: Float64Array;
  readonly ddeltaBias: Float64Array;
}

function backwardBuffers(s: ScanData): BackwardBuffers {
  const rows = s.batch * s.dim * s.len;
  const bc = s.batch * s.groups * s.nState * s.len;
  return {
    dt: new Float64Array(s.len),
    dtu: new Float64Array(s.len),
    y: new Float64Array(s.len),
    gy: new Float64Array(s.len),
    gdt: new Float64Array(s.len),
    states: new Float64Array(s.nState * s.len),
    decays: new Float64Array(s.nState * s.len),
    du: new Float64Array(rows),
    ddelta: new Float64Array(rows),
    dA: new Float64Array(s.dim * s.nState),
    dB: new Float64Array(bc),
    dC: new Float64Array(bc),
    dD: new Float64Array(s.dim),
    dz: new Float64Array(s.z ? rows : 0),
    ddeltaBias: new Float64Array(s.dim),
  };
}

/** Recomputes the row's states and decays into scratch and its pre-gate output y. */
function recomputeRow(s: ScanData, w: BackwardBuffers, d: number, bc: number): void {
  const { len, nState } = s;
  const { dt, dtu, y, states, decays } = w;
  y.fill(0);
  for (let n = 0; n < nState; n++) {
    const a = s.A[d * nState + n]!;
    const off = bc + n * len;
    const sn = n * len;
    let x = 0;
    for (let t = 0; t < len; t++) {
      const e = Math.exp(dt[t]! * a);
      x = e * x + dtu[t]! * s.B[off + t]!;
      decays[sn + t] = e;
      states[sn + t] = x;
      y[t] += s.C[off + t]! * x;
    }
  }
}

/** Undoes out = (y + D u) silu(z): fills w.gy, seeds du with the skip path, accumulates dD and dz. */
function gateBackward(s: ScanData, w: BackwardBuffers, g: NumArray, row: number, d: number): void {
  const skip = s.D ? s.D[d]! : 0;
  let dD = 0;
  for (let t = 0; t < s.len; t++) {
    const i = row + t;
    const uv = s.u[i]!;
    let gyv = g[i]!;
    if (s.z) {
      const zv = s.z[i]!;
      const sg = sigmoid(zv);
      // d silu(z)/dz = σ(z) (1 + z (1 - σ(z)))
      w.dz[i] = gyv * (w.y[t]! + skip * uv) * sg * (1 + zv * (1 - sg));
      gyv *= zv * sg;
    }
    w.gy[t] = gyv;
    w.du[i] = gyv * skip;
    dD += gyv * uv;
  }
  w.dD[d] += dD;
}

/** Reverse-time sweep over each state index n with the adjoint λ (see the file comment). */
function adjointSweep(s: ScanData, w: BackwardBuffers, row: number, d: number, bc: number): void {
  const { len, nState } = s;
  const { dt, dtu, gy, gdt, states, decays, du, dB, dC } = w;
  gdt.fill(0);
  for (let n = 0; n < nState; n++) {
    const a = s.A[d * nState + n]!;
    const off = bc + n * len;
    const sn = n * len;
    let lambda = 0;
    let nextDecay = 0;
    let dA = 0;
    for (let t = len - 1; t >= 0; t--) {
      const c = s.C[off + t]!;
      const bv = s.B[off + t]!;
      lambda = lambda * nextDecay + gy[t]! * c;
      dC[off + t] += gy[t]! * states[sn + t]!;
      const e = decays[sn + t]!;
      const xPrev = t > 0 ? states[sn + t - 1]! : 0;
      // ∂x_t/∂(Δ_t A) = e x_{t-1}; ∂x_t/∂Δ_t = A e x_{t-1} + B_t u_t.
      const lex = lambda * e * xPrev;
      gdt[t] += a * lex + lambda * bv * s.u[row + t]!;
      dA += dt[t]! * lex;
      dB[off + t] += lambda * dtu[t]!;
      du[row + t] += lambda * dt[t]! * bv;
      nextDecay = e;
    }
    w.dA[d * nState + n] += dA;
  }
}

/** Takes ∂loss/∂Δ back through the softplus and bias into ddelta and ddeltaBias. */
function deltaBackward(s: ScanData, w: BackwardBuffers, row: number, d: number): void {
  const bias = s.deltaBias ? s.deltaBias[d]! : 0;
  let dBias = 0;
  for (let t = 0; t < s.len; t++) {
    let gd = w.gdt[t]!;
    if (s.softplus) {
      const pre = s.delta[row + t]! + bias;
      if (pre <= SOFTPLUS_THRESHOLD) gd *= sigmoid(pre);
    }
    w.ddelta[row + t] = gd;
    dBias += gd;
  }
  w.ddeltaBias[d] += dBias;
}

export function selectiveScanBackwardReference(inputs: ScanInputs, gyTensor: Tensor, grads: ScanGrads): void {
  const s = readInputs(inputs);
  const g = readNumbers(gyTensor);
  const w = backwardBuffers(s);
  for (let b = 0; b < s.batch; b++) {
    for (let d = 0; d < s.dim; d++) {
      const row = (b * s.dim + d) * s.len;
      const bc = groupOffset(s, b, d);
      discretiseRow(s, row, d, w.dt, w.dtu);
      recomputeRow(s, w, d, bc);
      gateBackward(s, w, g, row, d);
      adjointSweep(s, w, row, d, bc);
      deltaBackward(s, w, row, d);
    }
  }
  writeNumbers(grads.du, w.du);
  writeNumbers(grads.ddelta, w.ddelta);
  writeNumbers(grads.dA, chainALog(inputs, w.dA, s.A));
  writeNumbers(grads.dB, w.dB);
  writeNumbers(grads.dC, w.dC);
  if (grads.dD) writeNumbers(grads.dD, w.dD);
  if (grads.dz) writeNumbers(grads.dz, w.dz);
  if (grads.ddeltaBias) writeNumbers(grads.ddeltaBias, w.ddeltaBias);
}

function scanWork(inputs: ScanInputs): number {
  const [batch, dim, len] = inputs.u.shape as [number, number, number];
  return batch * dim * len * inputs.A.shape[1]!;
}

const pick = (work: number) => (work >= PARALLEL_SCAN_WORK ? threadPool() : callerOnlyPool());

export const scanKernels: Pick<Kernels, 'selectiveScan' | 'selectiveScanBackward'> = {
  // Problems too large for the kernel arena (2 GiB) fall back to the reference loops.
  selectiveScan: (inputs, out, lastState) => {
    const work = scanWork(inputs);
    const done = work >= FAST_SCAN_WORK && selectiveScanParallel(inputs, out, lastState, pick(work));
    if (!done) selectiveScanReference(inputs, out, lastState);
  },
  selectiveScanBackward: (inputs, gy, grads) => {
    const work = scanWork(inputs);
    const done = work >= FAST_SCAN_WORK && selectiveScanBackwardParallel(inputs, gy, grads, pick(work));
    if (!done) selectiveScanBackwardReference(inputs, gy, grads);
  },
};
