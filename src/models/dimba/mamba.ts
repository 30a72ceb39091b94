/**
 * The Mamba block (`mamba_blocks.{j}`): RMSNorm pre-norm with a float32 residual stream, and the
 * bidirectional "v2" mixer of Vision Mamba that Dimba uses (mamba_ssm Mamba, bimamba_type="v2").
 *
 * Block (released Block with fused_add_norm, rms_norm, residual_in_fp32):
 *   residual = x (first block) or residual + x, kept in float32
 *   x        = mixer(rmsnorm(residual))
 * and returns both: the next layer receives the mixer output alone, the residual travels on.
 *
 * Mixer, per direction (the backward one on the time-flipped sequence with its own weights):
 *   x, z   = in_proj(h) split in two (shared in_proj, no bias)
 *   u      = silu(causal depthwise conv1d_k4(x) + bias)
 *   dbc    = x_proj(u) -> (dt [R], B [N], C [N])
 *   delta  = dt_proj.weight @ dt   (its bias enters the scan as delta_bias, with softplus)
 *   y      = selective_scan(u, delta, -exp(A_log), B, C, D, z)
 * out = out_proj(y_fwd + flip(y_bwd)).
 */
import * as T from '../../index.js';
import { Module, Linear, RMSNorm, Parameter, init, assign_ } from '../../nn/index.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Generator } from '../../random/generator.js';
import { dropPath } from './drop-path.js';
import { needsGrad } from '../../ops/record.js';

function atLeastF32(t: Tensor): Tensor {
  return t.dtype === 'float64' ? t : T.cast(t, 'float32');
}

export interface MambaOptions {
  dState: number;
  dConv: number;
  expand: number;
  dtMin?: number;
  dtMax?: number;
  dtInitFloor?: number;
}

/** Depthwise conv1d parameters with nn.Conv1d's names (weight [D, 1, K], bias [D]). */
class DepthwiseConv1d extends Module {
  weight: Parameter;
  bias: Parameter;

  constructor(channels: number, kernel: number, generator?: Generator) {
    super();
    // nn.Conv1d(d, d, k, groups=d) default init: U(±1/sqrt(fan_in)) with fan_in = k.
    const bound = 1 / Math.sqrt(kernel);
    this.weight = this.registerParameter('weight', new Parameter(T.uniform([channels, 1, kernel], -bound, bound, { generator })));
    this.bias = this.registerParameter('bias', new Parameter(T.uniform([channels], -bound, bound, { generator }), { noWeightDecay: true }));
  }
}

/** One direction's layers, read from the mixer's fields at call time (casts may replace parameters). */
interface Direction {
  conv: DepthwiseConv1d;
  xProj: Linear;
  dtProj: Linear;
  aLog: Parameter;
  d: Parameter;
}

/** A = -[1..N] per channel (S4D-real), stored as its log. */
function s4dRealLog(channels: number, dState: number): Parameter {
  const a = T.expand(T.unsqueeze(T.arange(1, dState + 1, 1, { dtype: 'float32' }), 0), [channels, dState]);
  return new Parameter(T.log(T.contiguous(a)), { noWeightDecay: true, keepFloat32: true });
}

/**
 * The step-size bias enters softplus(Δ + bias) for every token, so it stays float32 under
 * Module.cast('bfloat16'), as A_log and D do (mamba_ssm keeps them float32 under autocast).
 */
function keepBiasFloat32(linear: Linear): Linear {
  linear.bias = linear.registerParameter('bias', new Parameter(linear.bias!, { noWeightDecay: true, keepFloat32: true }));
  return linear;
}

export class BiMambaMixer extends Module {
  readonly dInner: number;
  readonly dtRank: number;
  readonly inProj: Linear;
  readonly outProj: Linear;
  readonly conv1d: DepthwiseConv1d;
  readonly conv1dB: DepthwiseConv1d;
  readonly xProj: Linear;
  readonly xProjB: Linear;
  readonly dtProj: Linear;
  readonly dtProjB: Linear;
  aLog: Parameter;
  aBLog: Parameter;
  d: Parameter;
  dB: Parameter;

  constructor(readonly dModel: number, readonly options: MambaOptions, generator?: Generator) {
    super();
    const { dState, dConv } = options;
    const di = options.expand * dModel;
    this.dInner = di;
    this.dtRank = Math.ceil(dModel / 16);
    // Registration order = the released state-dict order (own parameters first, then children).
    this.aLog = this.registerParameter('A_log', s4dRealLog(di, dState));
    this.d = this.registerParameter('D', new Parameter(T.ones([di]), { noWeightDecay: true, keepFloat32: true }));
    this.aBLog = this.registerParameter('A_b_log', s4dRealLog(di, dState));
    this.dB = this.registerParameter('D_b', new Parameter(T.ones([di]), { noWeightDecay: true, keepFloat32: true }));
    this.inProj = this.registerModule('in_proj', new Linear(dModel, di * 2, { bias: false, generator }));
    this.conv1d = this.registerModule('conv1d', new DepthwiseConv1d(di, dConv, generator));
    this.xProj = this.registerModule('x_proj', new Linear(di, this.dtRank + 2 * dState, { bias: false, generator }));
    this.dtProj = this.registerModule('dt_proj', keepBiasFloat32(new Linear(this.dtRank, di, { generator })));
    this.conv1dB = this.registerModule('conv1d_b', new DepthwiseConv1d(di, dConv, generator));
    this.xProjB = this.registerModule('x_proj_b', new Linear(di, this.dtRank + 2 * dState, { bias: false, generator }));
    this.dtProjB = this.registerModule('dt_proj_b', keepBiasFloat32(new Linear(this.dtRank, di, { generator })));
    this.outProj = this.registerModule('out_proj', new Linear(di, dModel, { bias: false, generator }));
    this.initDtProj(this.dtProj, generator);
    this.initDtProj(this.dtProjB, generator);
  }

  private direction(backward: boolean): Direction {
    return backward
      ? { conv: this.conv1dB, xProj: this.xProjB, dtProj: this.dtProjB, aLog: this.aBLog, d: this.dB }
      : { conv: this.conv1d, xProj: this.xProj, dtProj: this.dtProj, aLog: this.aLog, d: this.d };
  }

  /**
   * dt_proj: weight U(±dt_rank^-1/2); bias = softplus^-1(dt) with dt log-uniform in
   * [dt_min, dt_max] (floored), so the initial step sizes span that range.
   */
  initDtProj(dtProj: Linear, generator?: Generator): void {
    const { dtMin = 0.001, dtMax = 0.1, dtInitFloor = 1e-4 } = this.options;
    const std = this.dtRank ** -0.5;
    init.uniform_(dtProj.weight, -std, std, { generator });
    const u = T.rand([this.dInner], { generator, dtype: 'float64' }).toFloat64Array();
    const inv = u.map((r) => {
      const dt = Math.max(Math.exp(r * (Math.log(dtMax) - Math.log(dtMin)) + Math.log(dtMin)), dtInitFloor);
      return dt + Math.log(-Math.expm1(-dt));
    });
    assign_(dtProj.bias!, T.tensor(inv, { dtype: 'float64' }));
  }

  /** xz [B, 2*Di, L] (already flipped for the backward direction) -> the scan's operands for y [B, Di, L]. */
  private scanOperands(xz: Tensor, dir: Direction): T.SelectiveScanCall {
    const { dState } = this.options;
    const [x, z] = T.chunk(xz, 2, 1) as [Tensor, Tensor];
    const u = T.causalConv1d(x, dir.conv.weight, dir.conv.bias, 'silu');
    const dbc = T.linear(T.transpose(u, 1, 2), dir.xProj.weight); // [B, L, R + 2N]
    const [dt, bMat, cMat] = T.split(dbc, [this.dtRank, dState, dState], 2) as [Tensor, Tensor, Tensor];
    const delta = T.transpose(T.linear(dt, dir.dtProj.weight), 1, 2); // [B, Di, L]
    // A, D and the delta bias stay in (at least) float32 under mixed precision, as released. The
    // scan takes A_log and forms A = -exp(A_log) itself (aLog), sparing two launches each way.
    return {
      u, delta, A: atLeastF32(dir.aLog), B: T.transpose(bMat, 1, 2), C: T.transpose(cMat, 1, 2),
      options: { D: atLeastF32(dir.d), z, deltaBias: atLeastF32(dir.dtProj.bias!), deltaSoftplus: true, aLog: true },
    };
  }

  /** h [B, L, C] -> [B, L, C]. */
  forward(h: Tensor): Tensor {
    const xz = T.transpose(this.inProj.forward(h), 1, 2); // [B, 2Di, L]
    const forward = () => this.scanOperands(xz, this.direction(false));
    const backward = () => this.scanOperands(T.flip(xz, [2]), this.direction(true));
    // At inference the two directions' scans can share one launch (the backend pairs them where
    // that pays: small batches); otherwise each direction is scanned right after its operands
    // are made, while they are fresh in L2.
    const pairable = !!xz.backend.fused.selectiveScanPair && !needsGrad(xz, ...this.parameters());
    const [yf, yb] = pairable ? T.selectiveScanPair(forward(), backward())
      : [T.selectiveScanCall(forward()), T.selectiveScanCall(backward())];
    return this.outProj.forward(T.transpose(T.add(yf, T.flip(yb, [2])), 1, 2));
  }
}

export interface MambaBlockOutput {
  hidden: Tensor;
  /** The float32 residual stream. */
  residual: Tensor;
}

export class MambaBlock extends Module {
  readonly mixer: BiMambaMixer;
  readonly norm: RMSNorm;

  constructor(dModel: number, options: MambaOptions, readonly dropPathProb: number, generator?: Generator) {
    super();
    this.mixer = this.registerModule('mixer', new BiMambaMixer(dModel, options, generator));
    this.norm = this.registerModule('norm', new RMSNorm(dModel, { eps: 1e-5 }));
  }

  forward(hidden: Tensor, residual: Tensor | null): MambaBlockOutput {
    if (!this.training || this.dropPathProb === 0) {
      // One op (add, float32 stream, RMSNorm, cast) where drop-path is inactive: a fused kernel
      // each way on backends that have it (src/ops/add-rms-norm.ts).
      const { residual: res, normed } = T.addRmsNorm(residual, hidden, this.norm.weight, this.norm.eps);
      return { hidden: this.mixer.forward(normed), residual: res };
    }
    const h32 = atLeastF32(hidden);
    const res = residual ? T.add(residual, dropPath(h32, this.dropPathProb, this.training)) : h32;
    const normed = T.cast(this.norm.forward(res), hidden.dtype);
    return { hidden: this.mixer.forward(normed), residual: res };
  }
}

