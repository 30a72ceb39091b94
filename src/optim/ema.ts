/**
 * Exponential moving average of weights (the EMA model PixArt and Dimba sample from):
 * shadow <- decay * shadow + (1 - decay) * param after each optimizer step. Shadows are float32
 * (float64 for float64 parameters) on each parameter's device, so bf16 training still averages
 * in full precision.
 */
import type { Tensor } from '../tensor/tensor.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { noGrad } from '../autograd/grad-mode.js';
import { tidy } from '../tensor/lifetime.js';
import { cast, clone } from '../ops/layout.js';
import { keep } from '../tensor/lifetime.js';
import { OptimizerError } from './errors.js';
import { copyInto, emaInPlace, stateDType } from './inplace.js';
import { CacheKeys, f32, isFusedDType } from './fused.js';
import type { StepControl } from '../backends/backend.js';

/** A parameter list, or anything that lists its parameters (an nn Module). */
export type ParamSource = Iterable<Tensor> | { parameters(): Iterable<Tensor> };

function paramsOf(source: ParamSource): Tensor[] {
  return 'parameters' in source ? [...source.parameters()] : [...source];
}

export interface EMAOptions {
  /** Weight of the old average per update, e.g. 0.9999. */
  decay: number;
}

export interface EMAStateMeta {
  decay: number;
  numUpdates: number;
}

/** Tensors are named `shadow.<param index>`. */
export interface EMAStateDict {
  tensors: Map<string, Tensor>;
  meta: EMAStateMeta;
}

function checkDecay(where: string, decay: number): void {
  if (!(decay >= 0 && decay <= 1)) throw new OptimizerError(`${where}: decay must be in [0, 1], got ${decay}`);
}

export class EMA {
  readonly params: readonly Tensor[];
  private readonly shadows: Tensor[];
  decay: number;
  private updates = 0;

  constructor(source: ParamSource, options: EMAOptions) {
    checkDecay('EMA', options.decay);
    this.decay = options.decay;
    this.params = paramsOf(source);
    this.shadows = noGrad(() => this.params.map((p) => {
      const dtype = stateDType(p.dtype);
      return keep(p.dtype === dtype ? clone(p) : cast(p, dtype));
    }));
  }

  /** Updates completed since construction (or since the loaded state). */
  get numUpdates(): number {
    return this.updates;
  }

  /** The averaged weights (live, in the state dtype), in parameter order. */
  get shadowParams(): readonly Tensor[] {
    return this.shadows;
  }

  /** shadow <- decay * shadow + (1 - decay) * param; `decay` overrides the configured one (0 copies). */
  update(decay = this.decay): void {
    checkDecay('EMA.update', decay);
    noGrad(() => {
      // Per device with a multi-tensor EMA kernel: float32 shadows of contiguous parameters in one launch.
      const fused = new Map<string, { shadows: Tensor[]; params: Tensor[] }>();
      this.params.forEach((p, i) => {
        const shadow = this.shadows[i]!;
        if (p.numel > 0 && shadow.dtype === 'float32' && isFusedDType(p.dtype) && p.isContiguous && p.backend.fused.emaUpdate) {
          const list = fused.get(p.deviceName) ?? { shadows: [], params: [] };
          list.shadows.push(shadow);
          list.params.push(p);
          fused.set(p.deviceName, list);
          return;
        }
        // One scope per parameter: the composed update's temporaries go at once.
        tidy(() => emaInPlace(shadow, cast(p, shadow.dtype), decay));
      });
      for (const [device, list] of fused) {
        list.params[0]!.backend.fused.emaUpdate!(list.shadows, list.params, f32(decay), f32(1 - decay), { cacheKey: this.cacheKeys.get(device) });
      }
    });
    this.updates += 1;
  }

  private readonly cacheKeys = new CacheKeys();

  /**
   * update() for a captured training step: one multi-tensor launch that changes nothing when the
   * step's device skip flag is set. numUpdates is not advanced here: call countUpdate() once the
   * host has read that the step was not skipped. Throws an OptimizerError when a parameter cannot
   * take the multi-tensor kernel.
   */
  updateControlled(control: StepControl, cacheKey: object): void {
    const device = control.skip.deviceName;
    this.params.forEach((p, i) => {
      const shadow = this.shadows[i]!;
      if (p.deviceName !== device || shadow.dtype !== 'float32' || !isFusedDType(p.dtype) || !p.isContiguous || !p.backend.fused.emaUpdate) {
        throw new OptimizerError(`EMA: parameter ${i} (${p.dtype} on ${p.deviceName}) cannot take a captured update: it needs the multi-tensor kernel on ${device}`);
      }
    });
    const params = this.params.filter((p) => p.numel > 0);
    const shadows = this.shadows.filter((_, i) => this.params[i]!.numel > 0);
    if (params.length === 0) return;
    noGrad(() => params[0]!.backend.fused.emaUpdate!(shadows, params, f32(this.decay), f32(1 - this.decay), { cacheKey, control }));
  }

  /** Counts an update made by updateControlled that the device did not skip. */
  countUpdate(): void {
    this.updates += 1;
  }

  /** Writes the averages into `target`'s parameters (same order and shapes), cast to their dtype. */
  copyTo(target: ParamSource = this.params): void {
    const params = paramsOf(target);
    if (params.length !== this.shadows.length) {
      throw new OptimizerError(`EMA.copyTo: the target has ${params.length} parameters, the EMA ${this.shadows.length}`);
    }
    noGrad(() => {
      params.forEach((p, i) => {
        const s = this.shadows[i]!;
        if (!shapesEqual(p.shape, s.shape)) {
          throw new OptimizerError(`EMA.copyTo: parameter ${i} has shape ${formatShape(p.shape)}, its average ${formatShape(s.shape)}`);
        }
        copyInto(p, s, `EMA.copyTo: parameter ${i}`);
      });
    });
  }

  /** A snapshot (tensor copies) of the averages. */
  stateDict(): EMAStateDict {
    const tensors = new Map<string, Tensor>();
    noGrad(() => this.shadows.forEach((s, i) => tensors.set(`shadow.${i}`, clone(s))));
    return { tensors, meta: { decay: this.decay, numUpdates: this.updates } };
  }

  loadStateDict(dict: EMAStateDict): void {
    const { tensors, meta } = dict;
    checkDecay('EMA.loadStateDict', meta.decay);
    if (!Number.isInteger(meta.numUpdates) || meta.numUpdates < 0) {
      throw new OptimizerError(`EMA.loadStateDict: numUpdates must be an integer >= 0, got ${meta.numUpdates}`);
    }
    if (tensors.size !== this.shadows.length) {
      throw new OptimizerError(`EMA.loadStateDict: ${tensors.size} tensors for ${this.shadows.length} parameters`);
    }
    noGrad(() => {
      this.shadows.forEach((s, i) => {
        const t = tensors.get(`shadow.${i}`);
        if (!t) throw new OptimizerError(`EMA.loadStateDict: tensor 'shadow.${i}' is missing`);
        copyInto(s, t, `EMA.loadStateDict: shadow.${i}`);
      });
    });
    this.decay = meta.decay;
    this.updates = meta.numUpdates;
  }
}
