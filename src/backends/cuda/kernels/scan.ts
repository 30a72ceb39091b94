/**
 * Launchers for scan.cu: the Mamba-1 selective scan, forward and backward. The kernels take one
 * storage type for u, delta, z, B, C and the gradient of the output (their shared dtype, or the
 * compute type when they differ, in which case they are cast first) and the compute type (float32,
 * or float64 when any input is float64) for A, D, deltaBias, the final state and every gradient
 * summed across rows. u, delta, z, B, C and gy go to the kernels as the views they are (element
 * strides of any sign), so the Mamba mixer's transposed and flipped operands need no copies.
 * With ScanInputs.aLog the kernels take A_log for A (A = -exp(A_log) in-kernel) and write the
 * gradient w.r.t. A_log into grads.dA.
 */
import type { FusedKernels, Kernels, ScanGrads, ScanInputs } from '../../backend.js';
import type { DType } from '../../../tensor/dtype.js';
import type { Tensor } from '../../../tensor/tensor.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { Scratch, computeType, sharedType } from './scratch.js';
import { DTYPE_SUFFIX, SCAN_MODULE } from './source.js';
import { CudaNotImplementedError } from './unimplemented.js';

/** Bits of the kernels' flags argument (scan.cu SCAN_SOFTPLUS, SCAN_A_LOG). */
export const SCAN_FLAG_SOFTPLUS = 1;
export const SCAN_FLAG_A_LOG = 2;

/** The flags word of a problem: softplus on Δ, A given as A_log. */
export function scanFlags(inputs: Pick<ScanInputs, 'deltaSoftplus' | 'aLog'>): number {
  return (inputs.deltaSoftplus ? SCAN_FLAG_SOFTPLUS : 0) | (inputs.aLog ? SCAN_FLAG_A_LOG : 0);
}

/** Most states per row scan.cu serves (32 lanes of 4). */
export const SCAN_MAX_STATES = 128;

export interface ScanProblem {
  readonly batch: number;
  readonly dim: number;
  readonly len: number;
  readonly nState: number;
  readonly groups: number;
}

/**
 * How a row's states are spread over lanes: 'wide' = 4 states a lane (4, 8, 16 or 32 lanes a row),
 * 'split' = 2 states a lane for up to 16 states (8 lanes a row; twice the warps per row, which
 * pays when the batch has too few rows to fill the GPU: the sampler's batch 1), 'auto' picks.
 */
export type ScanLayout = 'auto' | 'wide' | 'split';

/**
 * 'auto' takes the split layout when the wide one would not fill one wave at 3 blocks (12 warps) a
 * multiprocessor: below that, each warp walks the whole sequence with nothing to hide its latency.
 */
const SPLIT_BELOW_BLOCKS_PER_SM = 3;

/** DIMBA_SCAN_LAYOUT=auto|wide|split (benchmarks compare the two layouts on one shape). */
export function scanLayoutFromEnv(value = process.env.DIMBA_SCAN_LAYOUT): ScanLayout {
  const v = (value ?? 'auto').trim() || 'auto';
  if (v !== 'auto' && v !== 'wide' && v !== 'split') {
    throw new RangeError(`DIMBA_SCAN_LAYOUT=${JSON.stringify(value)}: expected auto, wide or split`);
  }
  return v;
}

/** How scan.cu splits one problem (mirrors ScanCfg there; pure, so the CPU tests check it). */
export interface ScanGeometry {
  /** Lanes of a warp per (batch, channel) row. */
  readonly lanes: number;
  /** States each lane holds: 4, or 2 in the split layout. */
  readonly statesPerLane: number;
  /** States per row rounded up to lanes * statesPerLane (the kernels' padded state count). */
  readonly paddedStates: number;
  readonly threads: number;
  /**
   * Time steps per chunk of the backward (ScanCfg; its chunk-entry states are stored). The
   * forward (ScanFwdCfg) takes 32 in float for 16 states: it stores nothing per chunk.
   */
  readonly chunk: number;
  readonly rowsPerBlock: number;
  /** Blocks over the channels of one group (a block never spans groups or batch entries). */
  readonly blocksPerGroup: number;
  readonly blocks: number;
  readonly chunks: number;
  /** Elements of the backward's buffer of states entering chunks 1.. (0 when there is one chunk). */
  readonly boundsElements: number;
}

/**
 * multiprocessors: the device's count, for the 'auto' layout (0 = unknown: wide). The split layout
 * exists for float compute and up to 16 states; elsewhere it falls back to wide.
 */
export function scanGeometry(p: ScanProblem, compute: 'float32' | 'float64', layout: ScanLayout = 'wide', multiprocessors = 0): ScanGeometry {
  const { batch, dim, len, nState, groups } = p;
  if (!Number.isInteger(nState) || nState < 1) throw new RangeError(`selectiveScan: N = ${nState} states; need at least 1`);
  if (nState > SCAN_MAX_STATES) {
    throw new CudaNotImplementedError(`selectiveScan with N = ${nState} states (the CUDA kernel takes at most ${SCAN_MAX_STATES})`);
  }
  if (groups < 1 || dim % groups !== 0) throw new RangeError(`selectiveScan: ${groups} groups do not divide dim = ${dim}`);
  const double = compute === 'float64';
  const threads = double ? 64 : 128;
  const wideLanes = nState <= 16 ? 4 : nState <= 32 ? 8 : nState <= 64 ? 16 : 32;
  const wideBlocks = batch * groups * Math.ceil(dim / groups / (threads / wideLanes));
  const splitFits = !double && nState <= 16;
  const split = splitFits && (layout === 'split'
    || (layout === 'auto' && multiprocessors > 0 && wideBlocks < SPLIT_BELOW_BLOCKS_PER_SM * multiprocessors));
  const lanes = split ? 8 : wideLanes;
  const statesPerLane = split ? 2 : 4;
  const chunk = double ? 4 : lanes <= 8 ? 16 : lanes === 16 ? 8 : 4;
  const rowsPerBlock = threads / lanes;
  const blocksPerGroup = Math.ceil(dim / groups / rowsPerBlock);
  const chunks = Math.ceil(len / chunk);
  const paddedStates = lanes * statesPerLane;
  return {
    lanes, statesPerLane, paddedStates, threads, chunk, rowsPerBlock, blocksPerGroup,
    blocks: batch * groups * blocksPerGroup,
    chunks,
    boundsElements: Math.max(0, chunks - 1) * batch * dim * paddedStates,
  };
}

/** Kernel names of one instantiation in scan.cu ("8x2" for the split layout). */
export function scanKernelName(direction: 'fwd' | 'bwd', storage: DType, lanes: number, statesPerLane = 4): string {
  return `scan_${direction}_${DTYPE_SUFFIX[storage]}_${lanes}${statesPerLane === 4 ? '' : `x${statesPerLane}`}`;
}

interface Prepared {
  readonly problem: ScanProblem;
  readonly geometry: ScanGeometry;
  readonly compute: 'float32' | 'float64';
  readonly storage: DType;
  readonly u: Tensor;
  readonly delta: Tensor;
  readonly B: Tensor;
  readonly C: Tensor;
  readonly z: Tensor | null;
  readonly A: Tensor;
  readonly D: Tensor | null;
  readonly deltaBias: Tensor | null;
}

/** The problem's sizes and compute type, before any operand is staged. */
function problemOf(inputs: ScanInputs): { problem: ScanProblem; compute: 'float32' | 'float64' } {
  const { u, delta, A, B, C, D, z, deltaBias } = inputs;
  const [batch, dim, len] = u.shape as [number, number, number];
  return { problem: { batch, dim, len, nState: A.shape[1]!, groups: B.shape[1]! }, compute: computeType(u, delta, A, B, C, D, z, deltaBias) };
}

function prepareFor(s: Scratch, inputs: ScanInputs, layout: ScanLayout, multiprocessors: number): Prepared {
  const { u, delta, A, B, C, D, z, deltaBias } = inputs;
  const { problem, compute } = problemOf(inputs);
  const storage = sharedType(compute, u, delta, B, C, z);
  // Views of the storage type go as they are; others are cast (into contiguous scratch).
  const operand = (t: Tensor) => (t.dtype === storage ? t : s.input(t, storage));
  const small = (t: Tensor | null) => (t ? s.input(t, compute) : null);
  return {
    problem, geometry: scanGeometry(problem, compute, layout, multiprocessors), compute, storage,
    u: operand(u), delta: operand(delta), B: operand(B), C: operand(C), z: z ? operand(z) : null,
    A: s.input(A, compute), D: small(D), deltaBias: small(deltaBias),
  };
}

const addr = (t: Tensor | null): number => (t ? addressOf(t) : 0);

/** Element strides (batch, channel, time) of a [B, D, L] view, or zeros for an absent operand. */
export function rowStrides(t: Tensor | null): [number, number, number] {
  return t ? [t.strides[0]!, t.strides[1]!, t.strides[2]!] : [0, 0, 0];
}

/** Element strides (batch, group, state, time) of a [B, G, N, L] view. */
export function bcStrides(t: Tensor): [number, number, number, number] {
  return [t.strides[0]!, t.strides[1]!, t.strides[2]!, t.strides[3]!];
}

/** One problem's ScanFwdArgs (scan.cu): 32 int64 words. */
function forwardWords(p: Prepared, out: Tensor, flags: number): number[] {
  const { dim, len, nState, groups } = p.problem;
  return [
    addressOf(p.u), addressOf(p.delta), addr(p.z), addressOf(p.B), addressOf(p.C), addressOf(p.A), addr(p.D), addr(p.deltaBias),
    addressOf(out), 0, dim, len, nState, groups,
    ...rowStrides(p.u), ...rowStrides(p.delta), ...rowStrides(p.z), ...bcStrides(p.B), ...bcStrides(p.C), flags,
  ];
}

/** Whether two problems can share one paired launch: the same shape, types and flags. */
function pairable(a: Prepared, b: Prepared, fa: number, fb: number): boolean {
  const [x, y] = [a.problem, b.problem];
  return x.batch === y.batch && x.dim === y.dim && x.len === y.len && x.nState === y.nState && x.groups === y.groups
    && a.storage === b.storage && a.compute === b.compute && fa === fb;
}

/**
 * The paired forward kernel for a layout (scan.cu's DIMBA_SCAN_PAIR: float compute, up to 16
 * states, which the split layout the launcher pairs in implies).
 */
export function scanPairKernelName(storage: DType, g: ScanGeometry): string {
  return `scan_fwd_pair_${DTYPE_SUFFIX[storage]}_${g.lanes}${g.statesPerLane === 4 ? '' : `x${g.statesPerLane}`}`;
}

/**
 * Whether two problems of this shape go in one paired launch: only where one problem of twice the
 * batch (the launch holds both problems' rows) still takes the split layout, i.e. where the
 * device is short of rows; at batch 8 the paired launch measured 1.5 % slower end to end than two
 * calls (H100, sample.js --batch 8).
 */
export function scanPairPays(problem: ScanProblem, compute: 'float32' | 'float64', layout: ScanLayout, multiprocessors: number): boolean {
  if (problem.batch * problem.dim === 0 || problem.len === 0) return false;
  return scanGeometry({ ...problem, batch: 2 * problem.batch }, compute, layout, multiprocessors).statesPerLane === 2;
}

/** DIMBA_SCAN_PAIR=0 leaves the paired launch out (the mixer's directions then scan one after the other). */
export function scanPairDisabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DIMBA_SCAN_PAIR === '0';
}

export function scanKernels(rt: CudaRuntime): Pick<Kernels, 'selectiveScan' | 'selectiveScanBackward'>
  & Required<Pick<FusedKernels, 'selectiveScanPair'>> {
  const layout = scanLayoutFromEnv();
  const prepare = (s: Scratch, inputs: ScanInputs) => prepareFor(s, inputs, layout, rt.info.multiprocessors);
  return {
    selectiveScanPair(a, b, outA0, outB0) {
      // Decided on the sizes before anything is staged.
      const { problem, compute } = problemOf(a);
      if (!scanPairPays(problem, compute, layout, rt.info.multiprocessors)) return false;
      const s = new Scratch(rt);
      try {
        const pa0 = prepare(s, a);
        const pb0 = prepare(s, b);
        const [fa, fb] = [scanFlags(a), scanFlags(b)];
        if (!pairable(pa0, pb0, fa, fb)) return false;
        // Half the rows of the doubled problem take the split layout too.
        const g = pa0.geometry;
        const name = scanPairKernelName(pa0.storage, g);
        const outA = s.output(outA0, pa0.storage);
        const outB = s.output(outB0, pa0.storage);
        rt.params.begin().i64Struct(forwardWords(pa0, outA, fa)).i64Struct(forwardWords(pb0, outB, fb)).i64(g.blocks);
        rt.launch(rt.fn(SCAN_MODULE, name), 2 * g.blocks, g.threads);
        return true;
      } finally {
        s.finish();
      }
    },

    selectiveScan(inputs, out0, lastState0) {
      const s = new Scratch(rt);
      const p = prepare(s, inputs);
      const { batch, dim, len, nState, groups } = p.problem;
      const out = s.output(out0, p.storage);
      // An empty time axis leaves the state at its initial zero.
      const last = lastState0 ? s.output(lastState0, p.compute, len === 0) : null;
      if (batch * dim > 0 && len > 0) {
        rt.params.begin().ptr(addressOf(p.u)).ptr(addressOf(p.delta)).ptr(addr(p.z)).ptr(addressOf(p.B)).ptr(addressOf(p.C))
          .ptr(addressOf(p.A)).ptr(addr(p.D)).ptr(addr(p.deltaBias)).ptr(addressOf(out)).ptr(addr(last))
          .i64(dim).i64(len).i64(nState).i64(groups)
          .i64Struct(rowStrides(p.u)).i64Struct(rowStrides(p.delta)).i64Struct(rowStrides(p.z))
          .i64Struct(bcStrides(p.B)).i64Struct(bcStrides(p.C))
          .i32(scanFlags(inputs));
        rt.launch(rt.fn(SCAN_MODULE, scanKernelName('fwd', p.storage, p.geometry.lanes, p.geometry.statesPerLane)), p.geometry.blocks, p.geometry.threads);
      }
      s.finish();
    },

    selectiveScanBackward(inputs, gy0, grads: ScanGrads) {
      const s = new Scratch(rt);
      const p = prepare(s, inputs);
      const { batch, dim, len, nState, groups } = p.problem;
      const gy = gy0.dtype === p.storage ? gy0 : s.input(gy0, p.storage);
      const du = s.output(grads.du, p.storage);
      const ddelta = s.output(grads.ddelta, p.storage);
      const dz = grads.dz ? s.output(grads.dz, p.storage) : null;
      // Summed across rows with atomics: start from zero.
      const dA = s.output(grads.dA, p.compute, true);
      const dB = s.output(grads.dB, p.compute, true);
      const dC = s.output(grads.dC, p.compute, true);
      const dD = grads.dD ? s.output(grads.dD, p.compute, true) : null;
      const dBias = grads.ddeltaBias ? s.output(grads.ddeltaBias, p.compute, true) : null;
      if (batch * dim > 0 && len > 0) {
        const g = p.geometry;
        const bounds = g.boundsElements > 0 ? s.buffer(p.u, [g.boundsElements], p.compute) : null;
        rt.params.begin().ptr(addressOf(p.u)).ptr(addressOf(p.delta)).ptr(addr(p.z)).ptr(addressOf(gy))
          .ptr(addressOf(p.B)).ptr(addressOf(p.C)).ptr(addressOf(p.A)).ptr(addr(p.D)).ptr(addr(p.deltaBias))
          .ptr(addressOf(du)).ptr(addressOf(ddelta)).ptr(addr(dz))
          .ptr(addressOf(dA)).ptr(addressOf(dB)).ptr(addressOf(dC)).ptr(addr(dD)).ptr(addr(dBias)).ptr(addr(bounds))
          .i64(batch).i64(dim).i64(len).i64(nState).i64(groups)
          .i64Struct(rowStrides(p.u)).i64Struct(rowStrides(p.delta)).i64Struct(rowStrides(p.z)).i64Struct(rowStrides(gy))
          .i64Struct(bcStrides(p.B)).i64Struct(bcStrides(p.C))
          .i32(scanFlags(inputs));
        rt.launch(rt.fn(SCAN_MODULE, scanKernelName('bwd', p.storage, g.lanes, g.statesPerLane)), g.blocks, g.threads);
      }
      s.finish();
    },
  };
}
