/**
 * Parameter groups: which tensors an optimizer updates and with which hyperparameters. A plain
 * Tensor[] is one group with the defaults; a list of specs gives each group its own overrides.
 */
import { Tensor } from '../tensor/tensor.js';
import { isFloating } from '../tensor/dtype.js';
import { OptimizerError } from './errors.js';

/** Hyperparameters every optimizer has; schedules set `lr`, and `weightDecay` is decoupled. */
export interface BaseOptions {
  lr: number;
  weightDecay: number;
}

/** Predicate choosing the parameters that get weight decay 0 (biases, norms, embeddings...). */
export type NoWeightDecayPredicate = (param: Tensor) => boolean;

export type ParamGroupSpec<O extends BaseOptions> = Partial<O> & {
  params: readonly Tensor[];
  /** Defaults to the `noWeightDecay` flag that nn Parameters carry. */
  noWeightDecay?: NoWeightDecayPredicate;
};

export type ParamsArg<O extends BaseOptions> = readonly Tensor[] | readonly ParamGroupSpec<O>[];

/** A resolved group. `options` is live: a schedule changes `options.lr` between steps. */
export interface ParamGroup<O extends BaseOptions> {
  readonly params: readonly Tensor[];
  readonly options: O;
  /** Per parameter: whether the group's weight decay applies (false for flagged parameters). */
  readonly decays: readonly boolean[];
}

/** The `noWeightDecay` flag that src/nn sets on biases and norm weights (absent = decay). */
export function hasNoWeightDecayFlag(param: Tensor): boolean {
  return 'noWeightDecay' in param && param.noWeightDecay === true;
}

/** Spec fields that are not hyperparameters. */
const GROUP_KEYS: ReadonlySet<string> = new Set(['params', 'noWeightDecay']);

function isTensorList<O extends BaseOptions>(params: ParamsArg<O>): params is readonly Tensor[] {
  return params.every((p) => p instanceof Tensor);
}

/** Resolves specs against defaults, rejecting empty groups, non-float tensors and duplicates. */
export function resolveGroups<O extends BaseOptions>(optimizer: string, params: ParamsArg<O>, defaults: O): ParamGroup<O>[] {
  if (params.length === 0) throw new OptimizerError(`${optimizer}: got an empty parameter list`);
  const specs: readonly ParamGroupSpec<O>[] = isTensorList(params) ? [{ params } as ParamGroupSpec<O>] : params;
  const seen = new Set<Tensor>();
  return specs.map((spec, g) => {
    const tensors = spec.params;
    if (!Array.isArray(tensors) || tensors.length === 0) {
      throw new OptimizerError(`${optimizer}: parameter group ${g} has no params`);
    }
    tensors.forEach((p: Tensor, i: number) => {
      if (!(p instanceof Tensor)) throw new OptimizerError(`${optimizer}: group ${g} param ${i} is not a Tensor`);
      if (!isFloating(p.dtype)) throw new OptimizerError(`${optimizer}: group ${g} param ${i} has dtype ${p.dtype}; only floating tensors can be optimized`);
      if (!p.isLeaf) throw new OptimizerError(`${optimizer}: group ${g} param ${i} is not a leaf tensor`);
      if (seen.has(p)) throw new OptimizerError(`${optimizer}: group ${g} param ${i} appears in more than one place`);
      seen.add(p);
    });
    const skip = spec.noWeightDecay ?? hasNoWeightDecayFlag;
    const options = mergeOptions(`${optimizer}: group ${g}`, defaults, spec, GROUP_KEYS);
    return { params: [...tensors], options, decays: tensors.map((p) => !skip(p)) };
  });
}

/** Defaults overridden by the defined fields of `overrides`; an unknown field is a typo, so it throws. */
export function mergeOptions<O extends BaseOptions>(where: string, defaults: O, overrides: Partial<O>,
  otherKeys: ReadonlySet<string> = new Set()): O {
  for (const key of Object.keys(overrides)) {
    if (!(key in defaults) && !otherKeys.has(key)) throw new OptimizerError(`${where}: unknown option '${key}' (known: ${Object.keys(defaults).join(', ')})`);
  }
  const merged: O = { ...defaults };
  for (const key of Object.keys(defaults) as (keyof O)[]) {
    const value = overrides[key];
    if (value !== undefined) merged[key] = value;
  }
  return merged;
}
