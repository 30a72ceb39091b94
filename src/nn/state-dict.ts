/**
 * Loading named tensors into a module's registered tensors. Every problem is found before any
 * value is written, so a failed load leaves the module exactly as it was.
 */
import { assign_ } from '../ops/inplace.js';
import { formatShape, shapesEqual, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** Named tensors as a Map (state-dict order) or a plain object. */
export type StateDictLike = ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>;

export interface LoadStateDictOptions {
  /** Default true: any missing, unexpected or mis-shaped key is an error. */
  strict?: boolean;
}

export interface ShapeMismatch {
  key: string;
  expected: Shape;
  got: Shape;
}

export interface LoadStateDictResult {
  /** Keys the module has but the source lacks (left at their current values). */
  missingKeys: string[];
  /** Keys the source has but the module does not (ignored). */
  unexpectedKeys: string[];
}

export class StateDictError extends Error {
  override name = 'StateDictError';
  readonly missingKeys: readonly string[];
  readonly unexpectedKeys: readonly string[];
  readonly shapeMismatches: readonly ShapeMismatch[];

  constructor(owner: string, missingKeys: string[], unexpectedKeys: string[], shapeMismatches: ShapeMismatch[]) {
    const lines = [
      ...missingKeys.map((k) => `  missing key: ${k}`),
      ...unexpectedKeys.map((k) => `  unexpected key: ${k}`),
      ...shapeMismatches.map((m) => `  shape mismatch for ${m.key}: module has ${formatShape(m.expected)}, checkpoint has ${formatShape(m.got)}`),
    ];
    const counts = `${missingKeys.length} missing, ${unexpectedKeys.length} unexpected, ${shapeMismatches.length} shape mismatches`;
    super(`loadStateDict into ${owner}: ${counts}\n${lines.join('\n')}`);
    this.missingKeys = missingKeys;
    this.unexpectedKeys = unexpectedKeys;
    this.shapeMismatches = shapeMismatches;
  }
}

function entriesOf(source: StateDictLike): Map<string, Tensor> {
  return source instanceof Map ? new Map(source) : new Map(Object.entries(source));
}

/**
 * Copies `source` values into `targets` (the module's own tensors, written in place, so
 * parameter identity survives). dtype and device are converted to the target's. As in PyTorch,
 * shape mismatches are errors even when not strict: there is no sensible partial load of one.
 */
export function loadInto(owner: string, targets: ReadonlyMap<string, Tensor>, source: StateDictLike,
  options: LoadStateDictOptions = {}): LoadStateDictResult {
  const strict = options.strict ?? true;
  const given = entriesOf(source);
  const missingKeys: string[] = [];
  const shapeMismatches: ShapeMismatch[] = [];
  const writes: [Tensor, Tensor][] = [];
  for (const [key, target] of targets) {
    const value = given.get(key);
    if (value === undefined) missingKeys.push(key);
    else if (!shapesEqual(value.shape, target.shape)) shapeMismatches.push({ key, expected: target.shape, got: value.shape });
    else writes.push([target, value]);
  }
  const unexpectedKeys = [...given.keys()].filter((k) => !targets.has(k));
  if (shapeMismatches.length > 0 || (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0))) {
    throw new StateDictError(owner, strict ? missingKeys : [], strict ? unexpectedKeys : [], shapeMismatches);
  }
  for (const [target, value] of writes) assign_(target, value);
  return { missingKeys, unexpectedKeys };
}
