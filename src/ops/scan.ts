/**
 * Mamba-1 selective scan with the semantics of mamba_ssm's selective_scan_fn:
 *   Δ = softplus(delta + deltaBias) (softplus only with deltaSoftplus),
 *   x_t = exp(Δ_t A) x_{t-1} + Δ_t B_t u_t,  y_t = C_t · x_t,  out = (y + D u) silu(z).
 * Shapes: u, delta, z [batch, dim, L]; A [dim, N] (real); B, C [batch, N, L] or
 * [batch, G, N, L] with G groups of dim / G channels; D, deltaBias [dim].
 * With aLog, the A operand is Mamba's A_log: the scan uses A = -exp(A_log) (inside the kernels, so
 * no exp/neg launches and no [dim, N] temporaries) and A_log receives the gradient.
 * One autograd node covers the whole scan; its backward recomputes the states (no history is
 * stored). For a reverse-direction (bidirectional) scan, flip the inputs along L and the output back.
 */
import { isFloating } from '../tensor/dtype.js';
import { ShapeError, formatShape, shapesEqual } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { ScanGrads, ScanInputs } from '../backends/backend.js';
import { needsGrad, record } from './record.js';
import { contiguous, reshape } from './layout.js';

export interface SelectiveScanOptions {
  /** Skip connection weight [dim]. */
  D?: Tensor | null;
  /** Gate [batch, dim, L]: the output is multiplied by silu(z). */
  z?: Tensor | null;
  /** Added to delta (per channel) before the softplus. */
  deltaBias?: Tensor | null;
  deltaSoftplus?: boolean;
  /**
   * The A operand holds A_log: the scan uses A = -exp(A_log), as selectiveScan(…, neg(exp(A_log)), …)
   * would, and the gradient goes to A_log. Default false (A as given).
   */
  aLog?: boolean;
  /** Also return the final state [batch, dim, N] (not differentiable), as mamba_ssm does. */
  returnLastState?: boolean;
}

const OP = 'selectiveScan';

function checkTensor(name: string, t: Tensor, device: string): void {
  if (!isFloating(t.dtype)) throw new TypeError(`${OP}: ${name} must be a floating tensor, got ${t.dtype}`);
  if (t.deviceName !== device) throw new TypeError(`${OP}: ${name} is on ${t.deviceName}, u on ${device}`);
}

function expectShape(name: string, t: Tensor, want: readonly number[], wantText: string): void {
  if (!shapesEqual(t.shape, want)) {
    throw new ShapeError(`${OP}: ${name} must be ${wantText} = ${formatShape(want)}, got ${formatShape(t.shape)}`);
  }
}

/** B or C as [batch, G, N, L], checked against u and A. */
function groupedInput(name: 'B' | 'C', t: Tensor, batch: number, dim: number, nState: number, len: number): Tensor {
  if (t.ndim !== 3 && t.ndim !== 4) {
    throw new ShapeError(`${OP}: ${name} must be input-dependent, [batch, N, L] or [batch, groups, N, L], got ${formatShape(t.shape)}`);
  }
  const grouped = t.ndim === 3 ? reshape(t, [t.shape[0]!, 1, t.shape[1]!, t.shape[2]!]) : t;
  const groups = grouped.shape[1]!;
  if (groups < 1 || dim % groups !== 0) {
    throw new ShapeError(`${OP}: ${name} has ${groups} groups, which do not divide dim = ${dim} (shape ${formatShape(t.shape)})`);
  }
  const want = [batch, groups, nState, len];
  if (!shapesEqual(grouped.shape, want)) {
    const text = t.ndim === 3 ? '[batch, N, L]' : '[batch, groups, N, L]';
    const shown = t.ndim === 3 ? [batch, nState, len] : want;
    throw new ShapeError(`${OP}: ${name} must be ${text} = ${formatShape(shown)}, got ${formatShape(t.shape)}`);
  }
  return grouped;
}

function present<T>(t: T | null): t is T {
  return t !== null;
}

/** Gradient buffer shaped and typed like `t`. */
function like(t: Tensor): Tensor {
  return Tensor.empty(t.shape, t.dtype, t.backend);
}

export function selectiveScan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
  options: SelectiveScanOptions & { returnLastState: true }): [Tensor, Tensor];
export function selectiveScan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
  options?: SelectiveScanOptions & { returnLastState?: false }): Tensor;
export function selectiveScan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
  options?: SelectiveScanOptions): Tensor | [Tensor, Tensor];
export function selectiveScan(u0: Tensor, delta0: Tensor, A0: Tensor, B0: Tensor, C0: Tensor,
  options: SelectiveScanOptions = {}): Tensor | [Tensor, Tensor] {
  const inputs = scanInputs(u0, delta0, A0, B0, C0, options);
  const out = runScan(inputs, options.returnLastState ?? false);
  return out.last ? [out.y, out.last] : out.y;
}

/** The scan of checked inputs, recorded for autograd; the final state too when asked. */
function runScan(inputs: ScanInputs, withLastState: boolean): { y: Tensor; last: Tensor | null } {
  const { u } = inputs;
  const [batch, dim] = u.shape as [number, number, number];
  const backend = u.backend;
  const y = Tensor.empty(u.shape, u.dtype, backend);
  // The state lives in the compute type: float64 for float64 u, float32 otherwise.
  const last = withLastState
    ? Tensor.empty([batch, dim, inputs.A.shape[1]!], u.dtype === 'float64' ? 'float64' : 'float32', backend)
    : null;
  backend.kernels.selectiveScan(inputs, y, last);
  recordScan(inputs, y);
  return { y, last };
}

/** One scan of a pair: selectiveScan's arguments. */
export interface SelectiveScanCall {
  readonly u: Tensor;
  readonly delta: Tensor;
  readonly A: Tensor;
  readonly B: Tensor;
  readonly C: Tensor;
  readonly options?: SelectiveScanOptions;
}

/**
 * Two independent scans, e.g. a bidirectional mixer's two directions: [selectiveScan(first),
 * selectiveScan(second)]. Where nothing needs a gradient and the backend has
 * FusedKernels.selectiveScanPair (CUDA), both run in one launch, which fills twice the device of
 * one small-batch call (the sampler's batch 1); otherwise, or when the kernels decline the pair
 * (the two differ in shape, types, deltaSoftplus or aLog), they run one after the other. The results are the same either way.
 */
export function selectiveScanPair(first: SelectiveScanCall, second: SelectiveScanCall): [Tensor, Tensor] {
  const a = callInputs(first);
  const b = callInputs(second);
  const pair = a.u.backend.fused.selectiveScanPair;
  const operands = (i: ScanInputs) => [i.u, i.delta, i.A, i.B, i.C, i.D, i.z, i.deltaBias];
  if (pair && a.u.backend === b.u.backend && !needsGrad(...operands(a), ...operands(b))) {
    const outA = Tensor.empty(a.u.shape, a.u.dtype, a.u.backend);
    const outB = Tensor.empty(b.u.shape, b.u.dtype, b.u.backend);
    if (pair(a, b, outA, outB)) return [outA, outB];
    outA.dispose();
    outB.dispose();
  }
  return [runScan(a, false).y, runScan(b, false).y];
}

/** selectiveScan(c.u, c.delta, c.A, c.B, c.C, c.options) without the final state. */
export function selectiveScanCall(c: SelectiveScanCall): Tensor {
  return runScan(callInputs(c), false).y;
}

function callInputs(c: SelectiveScanCall): ScanInputs {
  return scanInputs(c.u, c.delta, c.A, c.B, c.C, c.options ?? {});
}

/** Checks selectiveScan's operands and puts them in the form the kernels take. */
function scanInputs(u0: Tensor, delta0: Tensor, A0: Tensor, B0: Tensor, C0: Tensor, options: SelectiveScanOptions): ScanInputs {
  if (u0.ndim !== 3) throw new ShapeError(`${OP}: u must be [batch, dim, L], got ${formatShape(u0.shape)}`);
  const [batch, dim, len] = u0.shape as [number, number, number];
  if (A0.ndim !== 2 || A0.shape[0] !== dim) {
    throw new ShapeError(`${OP}: A must be [dim, N] with dim = ${dim} (from u ${formatShape(u0.shape)}), got ${formatShape(A0.shape)}`);
  }
  const nState = A0.shape[1]!;
  const device = u0.deviceName;
  const named: [string, Tensor | null | undefined][] = [
    ['u', u0], ['delta', delta0], ['A', A0], ['B', B0], ['C', C0],
    ['D', options.D], ['z', options.z], ['deltaBias', options.deltaBias],
  ];
  for (const [name, t] of named) if (t) checkTensor(name, t, device);
  expectShape('delta', delta0, u0.shape, '[batch, dim, L] like u');
  if (options.z) expectShape('z', options.z, u0.shape, '[batch, dim, L] like u');
  if (options.D) expectShape('D', options.D, [dim], '[dim]');
  if (options.deltaBias) expectShape('deltaBias', options.deltaBias, [dim], '[dim]');

  // u, delta, z, B and C go to the kernels as the views they are (backends read them through
  // their strides): the Mamba mixer passes transposed and flipped views, which would otherwise
  // each cost a copy per call and keep that copy saved for the backward.
  return {
    u: u0,
    delta: delta0,
    A: contiguous(A0),
    B: groupedInput('B', B0, batch, dim, nState, len),
    C: groupedInput('C', C0, batch, dim, nState, len),
    D: options.D ? contiguous(options.D) : null,
    z: options.z ?? null,
    deltaBias: options.deltaBias ? contiguous(options.deltaBias) : null,
    deltaSoftplus: options.deltaSoftplus ?? false,
    aLog: options.aLog ?? false,
  };
}

/** The scan's autograd node: its backward recomputes the states (kernels' selectiveScanBackward). */
function recordScan(inputs: ScanInputs, out: Tensor): void {
  const backend = inputs.u.backend;
  const optional = [inputs.D, inputs.z, inputs.deltaBias];
  record(OP, [inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, ...optional.filter(present)], [out], ([g]) => {
    const grads: ScanGrads = {
      du: like(inputs.u), ddelta: like(inputs.delta), dA: like(inputs.A), dB: like(inputs.B), dC: like(inputs.C),
      dD: inputs.D && like(inputs.D), dz: inputs.z && like(inputs.z), ddeltaBias: inputs.deltaBias && like(inputs.deltaBias),
    };
    backend.kernels.selectiveScanBackward(inputs, g!, grads);
    const optionalGrads = [grads.dD, grads.dz, grads.ddeltaBias];
    return [grads.du, grads.ddelta, grads.dA, grads.dB, grads.dC, ...optionalGrads.filter(present)];
  }, { onceDifferentiable: true, saved: [inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, ...optional] });
}
