/**
 * One whole optimizer step of the diffusion training loss, replayed from a CUDA graph: forward,
 * loss, backward, gradient-norm clipping, the optimizer's multi-tensor step (float32 master
 * weights for half-precision parameters), the EMA update and the release of the gradients,
 * captured once per batch signature (latent shape, dtype, caption length) and launched with one
 * cuGraphLaunch per step, so the host's per-kernel cost leaves the step.
 *
 * What changes per step lives in device memory that is written before each replay:
 * - the batch: latents, and the captions as token ids and masks (tokenised on the host; the text
 *   encoder runs inside the graph, so it still trains);
 * - random numbers: the warm-up step records every draw (generator, shape, distribution); before
 *   each replay the same draws are made with the same generators into static tensors, which the
 *   captured function copies where it drew (ops/random.ts interceptDraws). The generators
 *   therefore advance exactly as in an eager step, and the numbers are the same;
 * - the optimizer's coefficients (learning rate, bias corrections): OptimizerControl.prepare();
 * - the skip flag: set on the device when the loss or the gradient norm is not finite, read by
 *   every optimizer and EMA kernel of the step, which then change nothing (as the eager loop
 *   skips the update).
 * The host reads one small tensor per step (loss, norm, skip flag, loss terms), as the eager loop
 * reads the loss, and only then advances the step counts (optimizer, EMA).
 *
 * The first step of a signature runs the same function eagerly (a real step, which also compiles
 * kernels, creates optimizer state and library handles); the second captures and replays. A new
 * signature (say, a last partial batch) gets its own graph, up to `maxGraphs`; batches of further
 * signatures are left to the caller's eager step.
 *
 * When the step cannot be captured (no graph support, gradient accumulation, a text encoder
 * other than SmallTextEncoder, an optimizer or device without the multi-tensor kernels, or a
 * capture the device refuses under 'auto'), `fallback` says why and the caller runs its eager
 * step: run() returns null and has changed nothing (generators included).
 */
import * as T from '../index.js';
import { Tensor } from '../tensor/tensor.js';
import { keep, tidy } from '../tensor/lifetime.js';
import { noGrad } from '../autograd/grad-mode.js';
import { formatShape } from '../tensor/shape.js';
import type { DType } from '../tensor/dtype.js';
import type { Backend } from '../backends/backend.js';
import { captureReplayable, type Replayable } from '../backends/replayable.js';
import { interceptDraws, type DrawInterceptor } from '../ops/random.js';
import { assign_ } from '../ops/inplace.js';
import type { Generator } from '../random/generator.js';
import type { TextToImage } from '../pipeline/text-to-image.js';
import type { CaptionCondition } from '../pipeline/conditioning.js';
import { SmallTextEncoder } from '../models/text/small-encoder.js';
import { tokenizeBatch } from '../models/text/tokenizer.js';
import { OptimizerControl, type Optimizer } from '../optim/optimizer.js';
import { clipGradNormControlled, type ClipControl } from '../optim/clip-grad.js';
import { CacheKeys } from '../optim/fused.js';
import type { EMA } from '../optim/ema.js';
import { TrainingError } from './errors.js';

export type GraphSetting = boolean | 'auto';

/** What a captured step needs of its optimizer (AdamW and CAME have it). */
export type ControlledOptimizer = Pick<Optimizer<never>, 'createControl' | 'stepControlled' | 'controlProblem' | 'zeroGrad'>;

export interface GraphedStepOptions {
  pipeline: TextToImage;
  params: readonly Tensor[];
  optimizer: ControlledOptimizer;
  ema: EMA | null;
  /** clipGradNorm's maxNorm (null: no clipping; the norm is still computed and checked). */
  gradClip: number | null;
  minSnrGamma: number | null;
  /** The generator of the diffusion noise and timesteps (the loss's `generator`). */
  noise: Generator;
  /** 'auto': capture where possible, else report why and let the caller step eagerly; true: throw instead; false: never capture. */
  setting: GraphSetting;
  /** Micro-batches per step: graphs need 1 (each micro-batch's loss is checked before the next is drawn). */
  gradAccumulation?: number;
  /**
   * Signatures captured at most (default 2: the batch and a last partial one); batches of further
   * signatures return null from run() (the caller steps eagerly), fallback staying null.
   */
  maxGraphs?: number;
  label?: string;
  /** Called right before each graph launch (a bench records a CUDA event there to time the replay alone). */
  beforeReplay?: () => void;
}

export interface GraphedStepResult {
  /** The loss as the eager loop reads it (NaN/infinite: the device skipped the update). */
  loss: number;
  /** The gradient norm before clipping (null when the loss was not finite, as the eager loop reports). */
  gradNorm: number | null;
  skipped: boolean;
  /** Batch means of the loss terms ('mse', 'vb'). */
  terms: Record<string, number>;
  /** 'warmup': the signature's first step, run eagerly through the same function; 'replay': a graph launch. */
  mode: 'warmup' | 'replay';
}

export interface GraphedStepStats {
  steps: number;
  warmups: number;
  captures: number;
  replays: number;
  /** Batches left to the caller's eager step because maxGraphs signatures were already captured. */
  uncaptured: number;
  /** Why steps are not captured (null while they are). */
  fallback: string | null;
}

interface DrawRecord {
  readonly generator: Generator;
  readonly shape: readonly number[];
  readonly dist: 'uniform' | 'normal';
  readonly dtype: DType;
  readonly backend: Backend;
  /** An earlier draw this one repeats (same generator position: a checkpoint's recomputation), or -1. */
  readonly repeatOf: number;
  readonly offset: bigint;
  readonly seed: bigint;
}

/** The static tensors and device state of one captured signature. */
interface Entry {
  readonly key: string;
  /** latents, ids, token mask, keep mask, caption mask, null captions: the captured function's inputs. */
  readonly statics: Tensor[];
  readonly control: OptimizerControl;
  readonly clip: ClipControl;
  readonly emaKey: object;
  readonly draws: DrawTape;
  replayable: Replayable<Tensor> | null;
  termNames: string[];
}

/** Host-side caption tensors of one batch, as SmallTextEncoder.encode builds them. */
interface CaptionArrays {
  readonly ids: Int32Array;
  readonly tokenMask: Uint8Array;
  readonly keepMask: Uint8Array;
  readonly outMask: Uint8Array;
  readonly isNull: Uint8Array;
  readonly length: number;
}

/** SmallTextEncoder.encode's host half: tokens, the real-token mask, what is kept, the output mask. */
export function captionArrays(encoder: SmallTextEncoder, captions: readonly string[]): CaptionArrays {
  const batch = tokenizeBatch(encoder.tokenizer, captions, { maxTokens: encoder.maxTokens, padding: 'max' });
  const n = batch.batch * batch.length;
  const tokenMask = new Uint8Array(n);
  const keepMask = new Uint8Array(n);
  const outMask = new Uint8Array(n);
  batch.lengths.forEach((len, b) => {
    const row = b * batch.length;
    tokenMask.fill(1, row, row + len);
    if (batch.isNull[b]) outMask.fill(1, row, row + batch.length);
    else {
      keepMask.fill(1, row, row + len);
      outMask.fill(1, row, row + len);
    }
  });
  return { ids: batch.ids, tokenMask, keepMask, outMask, isNull: Uint8Array.from(batch.isNull, (v) => (v ? 1 : 0)), length: batch.length };
}

/** SmallTextEncoder.encode's device half plus encodeCaptions' condition, from the static caption tensors. */
export function encodeOnDevice(encoder: SmallTextEncoder, withGrad: boolean, ids: Tensor, tokenMask: Tensor, keepMask: Tensor,
  outMask: Tensor, isNull: Tensor): CaptionCondition {
  const run = () => T.where(keepMask, encoder.forward(ids, tokenMask), 0);
  const features = withGrad ? run() : noGrad(run);
  return { caption: features, captionMask: outMask, forceDropCaption: isNull };
}

function upload(dst: Tensor, data: Float32Array | Int32Array | Uint8Array, dtype: DType): void {
  const host = T.tensor(data, { dtype, shape: dst.shape });
  assign_(dst, host);
  host.dispose();
}

export class GraphedTrainStep {
  private readonly entries = new Map<string, Entry>();
  private reason: string | null = null;
  private readonly label: string;
  private readonly maxGraphs: number;
  private steps = 0;
  private warmups = 0;
  private uncaptured = 0;

  constructor(private readonly o: GraphedStepOptions) {
    this.label = o.label ?? 'training step';
    this.maxGraphs = o.maxGraphs ?? 2;
    if (!Number.isInteger(this.maxGraphs) || this.maxGraphs < 1) throw new TrainingError(`${this.label}: maxGraphs must be a positive integer, got ${String(o.maxGraphs)}`);
    const s = o.setting;
    if (s !== true && s !== false && s !== 'auto') throw new TrainingError(`${this.label}: cudaGraphs must be true, false or 'auto', got ${String(s)}`);
    this.reason = this.staticReason();
    if (this.reason !== null && s === true) throw new TrainingError(`${this.label}: cudaGraphs is true but the step cannot be captured: ${this.reason}`);
  }

  /** Why steps are not captured (null: they are, or will be at the next eligible batch). */
  get fallback(): string | null {
    return this.reason;
  }

  stats(): GraphedStepStats {
    let captures = 0;
    let replays = 0;
    for (const e of this.entries.values()) {
      if (e.replayable?.captured) captures++;
      replays += e.replayable?.replays ?? 0;
    }
    return { steps: this.steps, warmups: this.warmups, captures, replays, uncaptured: this.uncaptured, fallback: this.reason };
  }

  /** Reasons known before any step: the setting, the device, the parts. */
  private staticReason(): string | null {
    const o = this.o;
    if (o.setting === false) return 'cudaGraphs is false';
    const p = o.params[0];
    if (!p) return 'there are no parameters';
    const backend = p.backend;
    if (!backend.graphs) return `the ${p.deviceName} backend has no CUDA graphs`;
    if ((o.gradAccumulation ?? 1) !== 1) return `gradAccumulation is ${o.gradAccumulation}: each micro-batch's loss is checked on the host before the next is drawn`;
    if (!(o.pipeline.textEncoder instanceof SmallTextEncoder)) return 'the text encoder is not a SmallTextEncoder (its host-side encoding cannot be split from its device work)';
    const f = backend.fused;
    const missing = (['sumSquares', 'scaleTensors', 'gradNormCheck', 'emaUpdate'] as const).filter((k) => !f[k]);
    if (!f.adamwStep && !f.cameStep) missing.push('adamwStep' as never);
    if (missing.length > 0) return `${p.deviceName} lacks the multi-tensor kernels ${missing.join(', ')} (DIMBA_FUSED_OPTIM=0?)`;
    for (const q of o.params) {
      if (q.deviceName !== p.deviceName) return `parameters are on ${p.deviceName} and ${q.deviceName}`;
      if (!(q.dtype === 'float32' || q.dtype === 'bfloat16' || q.dtype === 'float16') || !q.isContiguous) {
        return `a parameter ${formatShape(q.shape)} is ${q.dtype}${q.isContiguous ? '' : ' and strided'}; the multi-tensor kernels take contiguous float32/bfloat16/float16`;
      }
    }
    return null;
  }

  /**
   * One training step on this batch, or null (nothing done) when steps are not captured: the
   * caller then runs its eager step. `images` may be released by the caller afterwards (it is
   * copied into the static input).
   */
  run(images: Tensor, captions: readonly string[]): GraphedStepResult | null {
    if (this.reason !== null) return null;
    if (images.ndim < 1 || captions.length !== images.shape[0]) {
      throw new TrainingError(`${this.label}: ${captions.length} captions for a batch of ${images.shape[0] ?? 'no'} images (${formatShape(images.shape)})`);
    }
    const encoder = this.o.pipeline.textEncoder as SmallTextEncoder;
    const host = captionArrays(encoder, captions);
    const key = `${formatShape(images.shape)}:${images.dtype}:${host.length}`;
    let entry = this.entries.get(key);
    if (!entry) {
      // More signatures than graphs (aspect buckets, say): the others step eagerly (the caller's
      // step), rather than evicting and re-capturing graphs all the time.
      if (this.entries.size >= this.maxGraphs) {
        this.uncaptured++;
        return null;
      }
      const problem = this.o.optimizer.controlProblem();
      if (problem !== null) return this.giveUp(new TrainingError(problem));
      try {
        entry = this.createEntry(key, images, host.length);
      } catch (e) {
        return this.giveUp(e);
      }
      this.entries.set(key, entry);
    }
    const [x, ids, tokenMask, keepMask, outMask, isNull] = entry.statics as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    assign_(x, images);
    upload(ids, host.ids, 'int32');
    upload(tokenMask, host.tokenMask, 'bool');
    upload(keepMask, host.keepMask, 'bool');
    upload(outMask, host.outMask, 'bool');
    upload(isNull, host.isNull, 'bool');
    entry.control.prepare();

    let out: Tensor;
    let mode: GraphedStepResult['mode'];
    const tape = entry.draws;
    if (!tape.recorded) {
      // Warm-up: the signature's first step, eagerly through the captured function, recording its draws.
      out = keep(tidy(() => tape.record(() => this.stepFn(entry)(...entry.statics))));
      this.warmups++;
      mode = 'warmup';
    } else {
      const saved = tape.generatorStates();
      tape.fill();
      try {
        if (entry.replayable === null) {
          entry.replayable = captureReplayable((...inputs) => this.stepFn(entry)(...inputs), entry.statics, { graph: true, warmup: 0, label: `${this.label} ${key}` });
        }
        const replayable = entry.replayable;
        // Capture must make every recorded draw; a replay makes none on a real graph (it calls no
        // JS), but a backend whose "replay" calls the function again gets the statics just filled.
        out = tape.substitute(() => {
          if (replayable.captured) this.o.beforeReplay?.();
          return replayable.run();
        }, { complete: !replayable.captured });
      } catch (e) {
        if (entry.replayable?.captured) throw e;
        // Nothing ran: put the generators back so the caller's eager step draws what this one would have.
        for (const [g, st] of saved) g.setState(st);
        for (const p of this.o.params) p.grad = null;
        return this.giveUp(e);
      }
      mode = 'replay';
    }
    const values = out.toFloat64Array();
    if (mode === 'warmup') out.dispose();
    const [loss, norm, skip, ...terms] = values as unknown as number[];
    const skipped = skip !== 0;
    entry.control.commit(skipped);
    if (!skipped) this.o.ema?.countUpdate();
    this.steps++;
    return {
      loss: loss!, gradNorm: Number.isFinite(loss!) ? norm! : null, skipped,
      terms: Object.fromEntries(entry.termNames.map((n, i) => [n, terms[i]!])), mode,
    };
  }

  private giveUp(e: unknown): null {
    if (this.o.setting === true) throw e;
    this.reason = `capture failed: ${e instanceof Error ? e.message : String(e)}`;
    for (const k of [...this.entries.keys()]) this.dropEntry(k);
    return null;
  }

  private createEntry(key: string, images: Tensor, length: number): Entry {
    const backend = images.backend;
    const b = images.shape[0]!;
    const empty = (shape: number[], dtype: DType) => keep(Tensor.empty(shape, dtype, backend));
    const statics = [
      empty([...images.shape], images.dtype), empty([b, length], 'int32'), empty([b, length], 'bool'),
      empty([b, length, 1], 'bool'), empty([b, length], 'bool'), empty([b], 'bool'),
    ];
    const skip = keep(T.zeros([], { dtype: 'int32', device: images.device }));
    const keys = new CacheKeys();
    const clip: ClipControl = {
      skip, norm: empty([], 'float64'), factor: empty([], 'float64'),
      cacheKeys: { sumSquares: keys.get('sumSquares'), scale: keys.get('scale') },
    };
    const control = this.o.optimizer.createControl(skip);
    return { key, statics, control, clip, emaKey: keys.get('ema'), draws: new DrawTape(this.label), replayable: null, termNames: [] };
  }

  private dropEntry(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    e.replayable?.dispose({ outputs: true });
    e.control.dispose();
    e.draws.dispose();
    for (const t of [...e.statics, e.clip.skip, e.clip.norm, e.clip.factor]) t.dispose();
  }

  /**
   * The captured function: loss, backward, clipping, optimizer and EMA updates, gradients
   * released; returns float64 [3 + terms]: loss, gradient norm, skip flag, the loss terms.
   */
  private stepFn(entry: Entry): (...inputs: Tensor[]) => Tensor {
    const o = this.o;
    return (x, ids, tokenMask, keepMask, outMask, isNull) => {
      const pipeline = o.pipeline;
      const out = tidy(() => {
        const cond = encodeOnDevice(pipeline.textEncoder as SmallTextEncoder, pipeline.trainTextEncoder, ids!, tokenMask!, keepMask!, outMask!, isNull!);
        return pipeline.lossWithCondition(x!, cond, o.minSnrGamma === null ? { generator: o.noise } : { generator: o.noise, minSnrGamma: o.minSnrGamma });
      });
      out.loss.backward();
      clipGradNormControlled(o.params, o.gradClip ?? Infinity, out.loss, entry.clip);
      o.optimizer.stepControlled(entry.control);
      o.ema?.updateControlled({ skip: entry.clip.skip }, entry.emaKey);
      o.optimizer.zeroGrad();
      for (const p of o.params) p.grad = null;
      entry.termNames = Object.keys(out.terms);
      return noGrad(() => T.stack([out.loss, entry.clip.norm, entry.clip.skip, ...Object.values(out.terms)].map((t) => T.cast(T.reshape(t, []), 'float64'))));
    };
  }

  /** Destroys the graphs and frees their static tensors and private memory. */
  dispose(): void {
    for (const k of [...this.entries.keys()]) this.dropEntry(k);
  }
}

/**
 * The random draws of a function that draws the same way at every call (shapes, distributions,
 * generators, order). record() runs it eagerly and notes each draw; afterwards fill() makes the
 * same draws again, from the generators' current positions, into static tensors (advancing the
 * generators exactly as the function would), and substitute() runs the function with each draw
 * replaced by a copy of its static tensor, advancing nothing. fill() then substitute() therefore
 * computes what a plain call computes, with the draws outside: a graph captured inside
 * substitute() replays correct numbers when fill() runs before each replay.
 *
 * A draw at a generator position already drawn from in the same call (activation checkpointing
 * rewinds the global generator to recompute dropout masks) repeats the earlier draw's tensor and
 * is not made again by fill().
 */
export class DrawTape {
  private records: DrawRecord[] | null = null;
  private statics: Tensor[] = [];

  constructor(private readonly label = 'DrawTape') {}

  get recorded(): boolean {
    return this.records !== null;
  }

  /** Draws noted by record(), including repeats. */
  get length(): number {
    return this.records?.length ?? 0;
  }

  /** Runs fn with its draws made as usual and noted; allocates the static tensors (kept). */
  record<T>(fn: () => T): T {
    if (this.records !== null) throw new TrainingError(`${this.label}: the draws were already recorded`);
    const records: DrawRecord[] = [];
    const result = interceptDraws((shape, dist, dtype, backend, generator) => {
      const offset = generator.offset;
      const seed = generator.seed;
      const repeatOf = records.findIndex((r) => r.generator === generator && r.offset === offset && r.seed === seed && r.dist === dist
        && r.dtype === dtype && r.shape.length === shape.length && r.shape.every((d, i) => d === shape[i]));
      records.push({ generator, shape: [...shape], dist, dtype, backend, repeatOf, offset, seed });
      return null;
    }, fn);
    this.records = records;
    this.statics = records.map((r) => keep(Tensor.empty(r.shape, r.dtype, r.backend)));
    return result;
  }

  /** The recorded draws again, from each generator's current position, into the static tensors (as ops/random.ts draws). */
  fill(): void {
    this.recordsOrThrow().forEach((r, k) => {
      if (r.repeatOf >= 0) return;
      const t = this.statics[k]!;
      const offset = r.generator.reserve(t.numel);
      if (t.numel > 0) t.backend.kernels.random(t, r.dist, r.generator.seed, offset);
    });
  }

  /**
   * Runs fn with its k-th draw replaced by a copy of the k-th static tensor; throws if fn draws
   * otherwise than recorded. The function may run several times inside (a capture followed by a
   * replay that runs it again, on a backend that replays so): each run starts over at draw 1.
   * `complete` (default true): fn must make the recorded draws at least once; false also accepts
   * none (a graph replay, which calls no JS).
   */
  substitute<T>(fn: () => T, options: { complete?: boolean } = {}): T {
    const records = this.recordsOrThrow();
    let k = 0;
    const interceptor: DrawInterceptor = (shape, dist, dtype, _backend, generator) => {
      const at = records.length === 0 ? k : k % records.length;
      const r = records[at];
      const where = `${this.label}: random draw ${at + 1} (${dist} ${formatShape(shape)} ${dtype})`;
      if (!r) throw new TrainingError(`${where} was not made by the recorded call (it made ${records.length}); the function draws differently each time`);
      if (r.generator !== generator || r.dist !== dist || r.dtype !== dtype || r.shape.length !== shape.length || r.shape.some((d, i) => d !== shape[i])) {
        throw new TrainingError(`${where} differs from the recorded draw ${at + 1} (${r.dist} ${formatShape(r.shape)} ${r.dtype}${r.generator !== generator ? ', another generator' : ''})`);
      }
      const source = this.statics[r.repeatOf >= 0 ? r.repeatOf : at]!;
      k++;
      return T.clone(source);
    };
    const result = interceptDraws(interceptor, fn);
    const whole = records.length === 0 ? k === 0 : k % records.length === 0;
    if (!whole || (options.complete !== false && records.length > 0 && k === 0)) {
      throw new TrainingError(`${this.label}: the call made ${k} random draws, the recorded one ${records.length}${k > records.length ? ' (over several runs)' : ''}; `
        + 'the function draws differently each time');
    }
    return result;
  }

  /** The states of the generators drawn from (to undo a fill()). */
  generatorStates(): [Generator, ReturnType<Generator['getState']>][] {
    const gens = [...new Set(this.recordsOrThrow().map((d) => d.generator))];
    return gens.map((g) => [g, g.getState()]);
  }

  dispose(): void {
    for (const t of this.statics) t.dispose();
    this.statics = [];
    this.records = null;
  }

  private recordsOrThrow(): DrawRecord[] {
    if (this.records === null) throw new TrainingError(`${this.label}: no draws recorded yet (record() first)`);
    return this.records;
  }
}
