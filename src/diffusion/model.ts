/**
 * How objectives and samplers call a denoiser. The model sees only (x_t, t, cond): no schedule,
 * no guidance. Timesteps reach it as a float32 tensor [B] in its own time units (0..999 for the
 * DDPM family; σ·1000 for flow models, as SD3 does).
 */
import { Tensor } from '../tensor/tensor.js';
import { cat } from '../ops/layout.js';
import { formatShape } from '../tensor/shape.js';
import { DiffusionError } from './errors.js';

/** A batch of conditions: one tensor, or named tensors (e.g. caption embeddings and their mask), each [B, ...]. */
export type Condition = Tensor | { readonly [name: string]: Tensor };

export type ModelFn<C extends Condition> = (xt: Tensor, t: Tensor, cond: C) => Tensor;

function checkBatch(what: string, t: Tensor, batch: number): void {
  if (t.ndim < 1 || t.shape[0] !== batch) {
    throw new DiffusionError(`${what}: condition ${formatShape(t.shape)} must have batch size ${batch} in dim 0`);
  }
}

/** Checks that every tensor of `cond` has batch size `batch`. */
export function checkConditionBatch(what: string, cond: Condition, batch: number): void {
  if (cond instanceof Tensor) checkBatch(what, cond, batch);
  else for (const [name, t] of Object.entries(cond)) checkBatch(`${what} (field '${name}')`, t, batch);
}

/** [first; second] along the batch dim, field by field for named conditions. */
export function concatConditions<C extends Condition>(first: C, second: C): C;
export function concatConditions(first: Condition, second: Condition): Condition {
  if (first instanceof Tensor || second instanceof Tensor) {
    if (!(first instanceof Tensor && second instanceof Tensor)) {
      throw new DiffusionError('concatConditions: one condition is a tensor and the other a record of tensors');
    }
    return cat([first, second], 0);
  }
  const keys = Object.keys(first);
  const otherKeys = Object.keys(second);
  if (keys.length !== otherKeys.length || keys.some((k) => !(k in second))) {
    throw new DiffusionError(`concatConditions: fields differ: [${keys.join(', ')}] and [${otherKeys.join(', ')}]`);
  }
  const out: { [name: string]: Tensor } = {};
  for (const k of keys) out[k] = cat([first[k]!, second[k]!], 0);
  return out;
}
