/**
 * Launchers for scan.cu: the Mamba-1 selective scan, forward and backward. The kernels take one
 * storage type for u, delta, z, B, C and the gradient of the output (their shared dtype, or the
 * compute type when they differ) and the compute type (float32, or float64 when any input is
 * float64) for A, D, deltaBias, the final state and every gradient summed across rows.
 */
import type { Kernels, ScanGrads, ScanInputs } from '../../backend.js';
import type { DType } from '../../../tensor/dtype.js';
import type { Tensor } from '../../../tensor/tensor.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { Scratch, computeType, sharedType } from './scratch.js';
import { DTYPE_SUFFIX, SCAN_MODULE } from './source.js';
import { CudaNotImplementedError } from './unimplemented.js';

/** Threads per block and steps per chunk times states per lane (SCAN_THREADS, SCAN_STEPS in scan.cu). */
const SCAN_THREADS = 128;
const SCAN_STEPS = 32;

/** Lanes per row and states per lane for N states: the instantiations scan.cu provides. */
function laneConfig(nState: number): { lanes: number; perLane: number } {
  if (nState <= 16) return { lanes: 16, perLane: 1 };
  if (nState <= 32) return { lanes: 32, perLane: 1 };
  if (nState <= 64) return { lanes: 32, perLane: 2 };
  if (nState <= 128) return { lanes: 32, perLane: 4 };
  throw new CudaNotImplementedError(`selectiveScan with N = ${nState} states (the CUDA kernel takes at most 128)`);
}

interface Prepared {
  readonly batch: number;
  readonly dim: number;
  readonly len: number;
  readonly nState: number;
  readonly groups: number;
  readonly rows: number;
  readonly compute: 'float32' | 'float64';
  readonly storage: DType;
  readonly u: Tensor;
  readonly delta: Tensor;
  readonly A: Tensor;
  readonly B: Tensor;
  readonly C: Tensor;
  readonly D: Tensor | null;
  readonly z: Tensor | null;
  readonly deltaBias: Tensor | null;
  readonly kernel: string;
  readonly grid: number;
}

function prepare(s: Scratch, inputs: ScanInputs, direction: 'forward' | 'backward'): Prepared {
  const { u, delta, A, B, C, D, z, deltaBias } = inputs;
  const [batch, dim, len] = u.shape as [number, number, number];
  const nState = A.shape[1]!;
  const compute = computeType(u, delta, A, B, C, D, z, deltaBias);
  const storage = sharedType(compute, u, delta, B, C, z);
  const { lanes, perLane } = laneConfig(nState);
  const rows = batch * dim;
  const small = (t: Tensor | null) => (t ? s.input(t, compute) : null);
  return {
    batch, dim, len, nState, groups: B.shape[1]!, rows, compute, storage,
    u: s.input(u, storage), delta: s.input(delta, storage), B: s.input(B, storage), C: s.input(C, storage),
    z: z ? s.input(z, storage) : null,
    A: s.input(A, compute), D: small(D), deltaBias: small(deltaBias),
    kernel: `scan_${direction}_${DTYPE_SUFFIX[storage]}_${lanes}x${perLane}`,
    grid: Math.ceil(rows / (SCAN_THREADS / lanes)),
  };
}

const addr = (t: Tensor | null): number => (t ? addressOf(t) : 0);

export function scanKernels(rt: CudaRuntime): Pick<Kernels, 'selectiveScan' | 'selectiveScanBackward'> {
  return {
    selectiveScan(inputs, out0, lastState0) {
      const s = new Scratch(rt);
      const p = prepare(s, inputs, 'forward');
      const out = s.output(out0, p.storage);
      // An empty time axis leaves the state at its initial zero.
      const last = lastState0 ? s.output(lastState0, p.compute, p.len === 0) : null;
      if (p.rows > 0 && p.len > 0) {
        rt.params.begin().ptr(addressOf(p.u)).ptr(addressOf(p.delta)).ptr(addressOf(p.A)).ptr(addressOf(p.B)).ptr(addressOf(p.C))
          .ptr(addr(p.D)).ptr(addr(p.z)).ptr(addr(p.deltaBias)).ptr(addressOf(out)).ptr(addr(last))
          .i64(p.rows).i64(p.dim).i64(p.len).i64(p.nState).i64(p.groups).i32(inputs.deltaSoftplus ? 1 : 0);
        rt.launch(rt.fn(SCAN_MODULE, p.kernel), p.grid, SCAN_THREADS);
      }
      s.finish();
    },

    selectiveScanBackward(inputs, gy0, grads: ScanGrads) {
      const s = new Scratch(rt);
      const p = prepare(s, inputs, 'backward');
      const gy = s.input(gy0, p.storage);
      const du = s.output(grads.du, p.storage);
      const ddelta = s.output(grads.ddelta, p.storage);
      const dz = grads.dz ? s.output(grads.dz, p.storage) : null;
      // Summed across rows with atomicAdd: start from zero.
      const dA = s.output(grads.dA, p.compute, true);
      const dB = s.output(grads.dB, p.compute, true);
      const dC = s.output(grads.dC, p.compute, true);
      const dD = grads.dD ? s.output(grads.dD, p.compute, true) : null;
      const dBias = grads.ddeltaBias ? s.output(grads.ddeltaBias, p.compute, true) : null;
      if (p.rows > 0 && p.len > 0) {
        const chunkLen = SCAN_STEPS / laneConfig(p.nState).perLane;
        const chunks = Math.ceil(p.len / chunkLen);
        const bounds = s.buffer(p.u, [p.rows * chunks * p.nState], p.compute);
        rt.params.begin().ptr(addressOf(p.u)).ptr(addressOf(p.delta)).ptr(addressOf(p.A)).ptr(addressOf(p.B)).ptr(addressOf(p.C))
          .ptr(addr(p.D)).ptr(addr(p.z)).ptr(addr(p.deltaBias)).ptr(addressOf(gy))
          .ptr(addressOf(du)).ptr(addressOf(ddelta)).ptr(addr(dz))
          .ptr(addressOf(dA)).ptr(addressOf(dB)).ptr(addressOf(dC)).ptr(addr(dD)).ptr(addr(dBias)).ptr(addressOf(bounds))
          .i64(p.rows).i64(p.dim).i64(p.len).i64(p.nState).i64(p.groups).i32(inputs.deltaSoftplus ? 1 : 0);
        rt.launch(rt.fn(SCAN_MODULE, p.kernel), p.grid, SCAN_THREADS);
      }
      s.finish();
    },
  };
}
