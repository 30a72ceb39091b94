/**
 * Model FLOPs of Dimba and of attention, and the bytes a selective scan must move: the formulas
 * behind issue 7's MFU, TFLOP/s and bandwidth figures. bench/reference/flops.py computes the same
 * model and attention numbers for the PyTorch side (test/bench/flops.test.ts checks they agree).
 *
 * Convention (PaLM's MFU, FlashAttention's TFLOP/s): 2 FLOPs per multiply-add of every matrix
 * product (linear layers, convolutions, attention scores and values); elementwise work (norms,
 * activations, modulation, softmax) is not counted. A training step counts 3x the forward (the
 * backward forms gradients for both operands of every product); attention forward+backward 3.5x
 * its forward (two products forward, five backward). The selective scan counts 9 FLOPs per
 * (token, channel, state) plus 2 per (token, channel) for the D skip and the z gate, as mamba_ssm's
 * flops_selective_scan_fn does.
 *
 * Per image, with N = (res / 8 / p)^2 tokens, hidden C, caption tokens Lc of Cc channels, MLP
 * width M = floor(C * mlpRatio), Mamba width Di = expand * C, dt rank R = ceil(C / 16), S states,
 * conv width K:
 *   embed       2 N (4 p^2) C + 2 (256 C + C^2) + 2 C (6C) + 2 Lc (Cc C + C^2)
 *   attn block  2 N C (3C) + 4 N^2 C + 2 N C^2                     self-attention
 *             + 2 N C^2 + 2 Lc C (2C) + 4 N Lc C + 2 N C^2         cross-attention
 *             + 4 N C M                                          MLP
 *   mamba block 2 N C (2 Di) + 2 N Di C                          in_proj, out_proj
 *             + 2 x [2 N Di K + 2 N Di (R + 2S) + 2 N R Di + 9 N Di S + 2 N Di]   per direction
 *   final       2 N C (p^2 outChannels)
 */
import { layerPattern, type DimbaConfig } from '../../src/models/dimba/config.js';

/** Dense bf16 tensor-core peak of an H100 SXM (and H200), TFLOP/s. */
export const H100_BF16_DENSE_TFLOPS = 989;
/** Copy bandwidth measured on the H100 (read + write, 1 GiB; ../shared/GPU.md), bytes/s. */
export const H100_COPY_BYTES_PER_S = 3.0e12;
const LATENT_DOWNSAMPLE = 8;
const TIMESTEP_FREQUENCIES = 256;

export interface DimbaFlops {
  tokens: number;
  embed: number;
  attentionBlock: number;
  mambaBlock: number;
  scanPerDirection: number;
  final: number;
  attentionBlocks: number;
  mambaBlocks: number;
  /** Forward FLOPs per image. */
  forward: number;
  /** Training step FLOPs per image (3x forward). */
  train: number;
}

export function dimbaFlops(c: DimbaConfig, res: number): DimbaFlops {
  const unit = LATENT_DOWNSAMPLE * c.patchSize;
  if (!Number.isInteger(res) || res <= 0 || res % unit !== 0) throw new RangeError(`dimbaFlops: res must be a positive multiple of ${unit}, got ${res}`);
  const grid = res / unit;
  const n = grid * grid;
  const C = c.hiddenSize;
  const lc = c.captionTokens;
  const cc = c.captionChannels;
  const m = Math.floor(C * c.mlpRatio);
  const di = c.expand * C;
  const r = Math.ceil(C / 16);
  const s = c.dState;
  const k = c.dConv;
  const outCh = c.learnSigma ? 2 * c.inChannels : c.inChannels;
  const pattern = layerPattern(c);
  const attentionBlocks = pattern.filter((l) => l === 'A').length;
  const mambaBlocks = pattern.length - attentionBlocks;
  const embed = 2 * n * (c.inChannels * c.patchSize ** 2) * C
    + 2 * (TIMESTEP_FREQUENCIES * C + C * C) + 2 * C * 6 * C
    + 2 * lc * (cc * C + C * C);
  const attentionBlock = 2 * n * C * 3 * C + 4 * n * n * C + 2 * n * C * C
    + 2 * n * C * C + 2 * lc * C * 2 * C + 4 * n * lc * C + 2 * n * C * C
    + 4 * n * C * m;
  const scanPerDirection = scanFlops(1, di, n, s);
  const direction = 2 * n * di * k + 2 * n * di * (r + 2 * s) + 2 * n * r * di + scanPerDirection;
  const mambaBlock = 2 * n * C * 2 * di + 2 * n * di * C + 2 * direction;
  const final = 2 * n * C * c.patchSize ** 2 * outCh;
  const forward = embed + attentionBlocks * attentionBlock + mambaBlocks * mambaBlock + final;
  return { tokens: n, embed, attentionBlock, mambaBlock, scanPerDirection, final, attentionBlocks, mambaBlocks, forward, train: 3 * forward };
}

/** Selective-scan forward FLOPs (mamba_ssm's count). */
export function scanFlops(batch: number, dim: number, length: number, nState: number): number {
  return 9 * batch * dim * length * nState + 2 * batch * dim * length;
}

/** QK^T and PV: 4 B H Lq Lk E forward; forward+backward 3.5x that. */
export function attentionFlops(batch: number, heads: number, lq: number, lk: number, headDim: number, backward: boolean): number {
  const fwd = 4 * batch * heads * lq * lk * headDim;
  return backward ? 3.5 * fwd : fwd;
}

/** Model-FLOPs utilisation: achieved training FLOP/s over the card's peak. */
export function mfu(trainFlopsPerImage: number, imagesPerSecond: number, peakTflops = H100_BF16_DENSE_TFLOPS): number {
  return (trainFlopsPerImage * imagesPerSecond) / (peakTflops * 1e12);
}

export interface ScanShape {
  batch: number;
  dim: number;
  length: number;
  nState: number;
  /** Groups of B and C (1 = shared by every channel, as in Mamba-1). */
  groups?: number;
  /** Bytes per element of u, delta, z, B, C, the output and its gradient (2 for bf16). */
  elementBytes: number;
  /** Bytes per element of A, D, deltaBias and their gradients (4: float32). */
  paramBytes?: number;
}

export interface ScanBytes {
  forward: number;
  backward: number;
}

/**
 * The bytes one scan direction must move at least, each tensor read or written once (the state
 * lives in registers and is recomputed in backward, never stored), with T = batch * dim * L
 * elements per activation, G groups of N states per step for B and C, e the element size:
 *   forward:  read u, delta, z (3 T e) + B, C (2 batch G N L e) + A, D, bias; write out (T e)
 *   backward: read u, delta, z, dout (4 T e) + B, C; write du, ddelta, dz (3 T e) + dB, dC
 *             (2 batch G N L e); A, D, bias read and dA, dD, dbias written once
 * Forward 4 T e + 2 batch G N L e + params; backward 7 T e + 4 batch G N L e + 2 params, with
 * params = (dim N + 2 dim) * paramBytes.
 */
export function scanBytes(s: ScanShape): ScanBytes {
  const t = s.batch * s.dim * s.length;
  const bc = s.batch * (s.groups ?? 1) * s.nState * s.length;
  const params = (s.dim * s.nState + 2 * s.dim) * (s.paramBytes ?? 4);
  return {
    forward: 4 * t * s.elementBytes + 2 * bc * s.elementBytes + params,
    backward: 7 * t * s.elementBytes + 4 * bc * s.elementBytes + 2 * params,
  };
}

/** Fraction of `bytesPerSecond` achieved by moving `bytes` in `ms`. */
export function bandwidthFraction(bytes: number, ms: number, bytesPerSecond = H100_COPY_BYTES_PER_S): number {
  return bytes / (ms / 1000) / bytesPerSecond;
}

/**
 * mamba_ssm's compiled selective scan on the H100 (../shared/GPU.md, 2026-11-25): one direction,
 * bf16 u/delta/z, fp32 A, N = 16, Di = 2304, z gating, softplus; forward / backward ms.
 */
export const MAMBA_SSM_MS: readonly { batch: number; length: number; fwd: number; bwd: number }[] = [
  { batch: 16, length: 1024, fwd: 0.632, bwd: 2.688 },
  { batch: 4, length: 4096, fwd: 0.662, bwd: 2.775 },
  { batch: 1, length: 16384, fwd: 0.950, bwd: 3.105 },
  { batch: 64, length: 256, fwd: 0.646, bwd: 3.215 },
];
