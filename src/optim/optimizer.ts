/**
 * The Optimizer base: parameter groups, per-parameter state, step/zeroGrad, and a state dict of
 * named tensors plus JSON-able scalars (a trainer writes the tensors to safetensors and the rest
 * to JSON; loading both back and stepping on gives bit-identical parameters).
 *
 * Subclasses supply the update rule for one parameter. The base class handles what every rule
 * shares: float32 math for half-precision parameters through float32 master weights (the master
 * is what the rule updates; the parameter receives it rounded), weight decay 0 for parameters
 * flagged noWeightDecay, and writing results into the parameter's own storage.
 */
import { isHalf } from '../tensor/dtype.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { noGrad } from '../autograd/grad-mode.js';
import { cast, clone } from '../ops/layout.js';
import { keep, tidy } from '../tensor/lifetime.js';
import { OptimizerError } from './errors.js';
import { copyInto, stateDType } from './inplace.js';
import { resolveGroups, type BaseOptions, type ParamGroup, type ParamsArg } from './param-groups.js';
import type { FusedKernels, StepControl } from '../backends/backend.js';
import { tensor } from '../ops/create.js';
import { CacheKeys, isFusedDType, kernelInput, releaseInputs } from './fused.js';

/** A hyperparameter value: a number or a tuple of numbers (betas, eps pairs). */
export type OptionValue = number | readonly number[];

/** Options of an optimizer: BaseOptions plus numbers and number tuples, so they survive JSON. */
export type OptimizerOptions<O> = BaseOptions & Record<keyof O, OptionValue>;

export interface ParamState {
  /** Steps this parameter has taken (a parameter without a gradient skips the step, as in torch). */
  step: number;
  /** Running statistics in the state dtype (float32, or float64 for float64 parameters), on the parameter's device. */
  readonly buffers: ReadonlyMap<string, Tensor>;
  /** Float32 master weights of a bfloat16/float16 parameter, or null when the parameter itself is updated. */
  readonly master: Tensor | null;
}

/**
 * Parameters that one multi-tensor kernel steps together: one device, one group, one step count.
 * Their state is float32 (float32, bfloat16 and float16 parameters).
 */
export interface FusedBatch<O> {
  readonly fused: FusedKernels;
  /** The group's options (weightDecay as configured; `decays` says where it applies). */
  readonly options: O;
  /** Every parameter's step count, this step included. */
  readonly step: number;
  readonly params: readonly Tensor[];
  /** The gradients as the kernels read them (contiguous float32, bfloat16 or float16). */
  readonly grads: readonly Tensor[];
  readonly states: readonly ParamState[];
  /** Whether weight decay applies to each parameter: the group's is non-zero and the parameter is not exempt. */
  readonly decays: readonly boolean[];
  /** Stable while the batch is the same list, for the backend's cached tables. */
  readonly cacheKey: object;
  /** A captured step's device-side coefficients and skip flag (stepControlled), else absent. */
  readonly control?: StepControl;
}

/**
 * The device side of an optimizer's captured (CUDA graph) steps, made by createControl(): the
 * skip flag that the step's gradient check sets on the device and, per parameter group, a float32
 * tensor holding the coefficients that change between steps (learning rate, bias corrections).
 * Each training step: prepare() (writes the next step's coefficients), then the captured work,
 * which calls stepControlled(control) once, then commit(skipped) when the host has read whether
 * the device skipped the update.
 */
export class OptimizerControl {
  /** Parameters that stepControlled stepped at its last call (their step counts advance at commit). */
  stepped: ParamState[] = [];
  /** This control's own multi-tensor tables: a graph reads them for its whole life. */
  readonly cacheKeys = new CacheKeys();

  constructor(private readonly optimizer: Optimizer<never>, readonly skip: Tensor, readonly coefficients: readonly Tensor[]) {}

  /** Writes each group's coefficients for its next step into the device tensors (outside any capture). */
  prepare(): void {
    this.optimizer.writeControlCoefficients(this);
  }

  /** Advances the step counts of the parameters the device stepped, unless it skipped the update. */
  commit(skipped: boolean): void {
    if (skipped) return;
    for (const s of this.stepped) s.step += 1;
  }

  dispose(): void {
    for (const t of this.coefficients) t.dispose();
  }
}

interface PendingBatch<O> {
  readonly device: string;
  readonly group: number;
  readonly step: number;
  readonly params: Tensor[];
  readonly grads: Tensor[];
  readonly states: ParamState[];
  readonly decays: boolean[];
}

export interface GroupStateMeta {
  /** Indices into the flattened parameter list (group by group, in order). */
  params: number[];
  options: Record<string, number | number[]>;
}

export interface OptimizerStateMeta {
  optimizer: string;
  groups: GroupStateMeta[];
  /** Per parameter index that has state: its step count. */
  state: Record<string, { step: number }>;
}

/** Tensors are named `state.<param index>.<buffer>` (and `.master` for master weights). */
export interface OptimizerStateDict {
  tensors: Map<string, Tensor>;
  meta: OptimizerStateMeta;
}

export abstract class Optimizer<O extends OptimizerOptions<O>> {
  readonly paramGroups: readonly ParamGroup<O>[];
  private readonly states = new Map<Tensor, ParamState>();

  protected constructor(readonly name: string, params: ParamsArg<O>, defaults: O) {
    this.paramGroups = resolveGroups(name, params, defaults);
    this.paramGroups.forEach((group, g) => this.validateOptions(group.options, `${name}: group ${g}`));
  }

  /** Throws an OptimizerError naming `where` and the field if an option is out of range. */
  protected abstract validateOptions(options: O, where: string): void;

  /** Zeroed state buffers for `param` in `dtype`, on the parameter's device. */
  protected abstract initBuffers(param: Tensor, dtype: 'float32' | 'float64'): Map<string, Tensor>;

  /**
   * Updates `weight` (the parameter, or its master copy) in place from `grad`, both in the
   * state dtype. `state.step` already counts this step; `options.weightDecay` is 0 for
   * parameters exempt from decay. Runs under noGrad.
   */
  protected abstract updateParam(weight: Tensor, grad: Tensor, state: ParamState, options: O): void;

  /** All parameters, group by group: the order state-dict indices refer to. */
  get params(): Tensor[] {
    return this.paramGroups.flatMap((g) => [...g.params]);
  }

  /** The state of `param`, or undefined before its first step. */
  stateOf(param: Tensor): ParamState | undefined {
    return this.states.get(param);
  }

  /**
   * Whether `fused` has this optimizer's multi-tensor kernel; parameters on such a backend with
   * float32 state then go through stepFused instead of updateParam. None by default.
   */
  protected canFuse(_fused: FusedKernels): boolean {
    return false;
  }

  /** Steps a batch through the backend's multi-tensor kernel, with the results updateParam would give. */
  protected stepFused(_batch: FusedBatch<O>): void {
    throw new OptimizerError(`${this.name}: no multi-tensor step`);
  }

  /**
   * The coefficients a captured step reads from device memory for a group at step `step` (its
   * kernel's StepControl layout), or null when the optimizer has no such step.
   */
  protected controlCoefficients(_options: O, _step: number): number[] | null {
    return null;
  }

  /**
   * The device side of captured steps (see OptimizerControl); `skip` is the int32 [1] flag the
   * step's gradient check writes. Throws an OptimizerError saying why when this optimizer cannot
   * take its scalars from the device (no such multi-tensor kernel).
   */
  createControl(skip: Tensor): OptimizerControl {
    const device = skip.device;
    const coefficients = this.paramGroups.map((group, g) => {
      const values = this.controlCoefficients(group.options, 1);
      if (values === null) throw new OptimizerError(`${this.name}: no step that reads its coefficients from the device (group ${g})`);
      return keep(tensor(new Float32Array(values), { dtype: 'float32', device }));
    });
    return new OptimizerControl(this as unknown as Optimizer<never>, skip, coefficients);
  }

  /** OptimizerControl.prepare: each group's coefficients for the step after its parameters' current count. */
  writeControlCoefficients(control: OptimizerControl): void {
    noGrad(() => {
      this.paramGroups.forEach((group, g) => {
        const values = this.controlCoefficients(group.options, this.groupStep(g) + 1)!;
        const host = tensor(new Float32Array(values), { dtype: 'float32' });
        copyInto(control.coefficients[g]!, host, `${this.name}: group ${g} coefficients`);
        host.dispose();
      });
    });
  }

  /** The step count every parameter of group g with state shares (0 before the first step). */
  private groupStep(g: number): number {
    const steps = new Set<number>();
    for (const p of this.paramGroups[g]!.params) {
      const s = this.states.get(p);
      if (s) steps.add(s.step);
    }
    if (steps.size > 1) {
      throw new OptimizerError(`${this.name}: group ${g}'s parameters have taken different numbers of steps (${[...steps].join(', ')}); `
        + 'a captured step needs one count per group');
    }
    return steps.size === 0 ? 0 : [...steps][0]!;
  }

  /**
   * step() for captured training steps: every parameter with a gradient goes through the
   * multi-tensor kernel, which reads the coefficients and the skip flag from `control`'s device
   * tensors, so a graph captured once replays correct steps. Step counts are not advanced here
   * (commit does that once the host knows whether the device skipped). Throws an OptimizerError
   * naming the parameter when one cannot take this path.
   */
  stepControlled(control: OptimizerControl): void {
    noGrad(() => {
      // Every group is checked before any kernel runs, so a refusal leaves the weights alone.
      const batches: { g: number; step: number; params: Tensor[]; grads: Tensor[]; states: ParamState[]; decays: boolean[] }[] = [];
      this.paramGroups.forEach((group, g) => {
        const step = this.groupStep(g) + 1;
        const params: Tensor[] = [];
        const grads: Tensor[] = [];
        const states: ParamState[] = [];
        const decays: boolean[] = [];
        group.params.forEach((param, i) => {
          const grad = param.grad;
          if (!grad) return;
          const where = `group ${g} param ${i}`;
          if (!this.fusable(param)) {
            throw new OptimizerError(`${this.name}: ${where} (${param.dtype}, ${param.isContiguous ? 'contiguous' : 'strided'}, ${param.deviceName}) `
              + 'cannot take a captured step: it needs the multi-tensor kernel (float32/bfloat16/float16, contiguous, on a backend that has it)');
          }
          if (param.deviceName !== control.skip.deviceName) throw new OptimizerError(`${this.name}: ${where} is on ${param.deviceName}, the step's control on ${control.skip.deviceName}`);
          this.checkGrad(param, grad, where);
          if (param.numel === 0) return;
          const state = this.states.get(param) ?? this.createState(param);
          if (state.step + 1 !== step) throw new OptimizerError(`${this.name}: ${where} has taken ${state.step} steps, its group ${step - 1}`);
          params.push(param);
          grads.push(grad);
          states.push(state);
          decays.push(group.decays[i]! && group.options.weightDecay !== 0);
        });
        if (params.length > 0) batches.push({ g, step, params, grads, states, decays });
      });
      for (const { g, step, params, grads, states, decays } of batches) {
        const inputs = grads.map(kernelInput);
        try {
          this.stepFused({
            fused: params[0]!.backend.fused, options: this.paramGroups[g]!.options, step, params, grads: inputs, states, decays,
            cacheKey: control.cacheKeys.get(`${params[0]!.deviceName}|${g}`),
            control: { skip: control.skip, coefficients: control.coefficients[g]! },
          });
        } finally {
          releaseInputs(inputs, grads);
        }
      }
      control.stepped = batches.flatMap((b) => b.states);
    });
  }

  /**
   * Why captured steps cannot be taken now (a group whose parameters have taken different numbers
   * of steps, say after loading such a state), or null.
   */
  controlProblem(): string | null {
    for (let g = 0; g < this.paramGroups.length; g++) {
      try {
        this.groupStep(g);
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      }
    }
    return null;
  }

  step(): void {
    noGrad(() => {
      const batches = new Map<string, PendingBatch<O>>();
      this.paramGroups.forEach((group, g) => {
        group.params.forEach((param, i) => {
          const grad = param.grad;
          if (!grad) return;
          const where = `group ${g} param ${i}`;
          if (!this.fusable(param)) {
            const options = group.decays[i] ? group.options : { ...group.options, weightDecay: 0 };
            this.stepParam(param, grad, options, where);
            return;
          }
          this.checkGrad(param, grad, where);
          if (param.numel === 0) return;
          const state = this.states.get(param) ?? this.createState(param);
          state.step += 1;
          const key = `${param.deviceName}|${g}|${state.step}`;
          let batch = batches.get(key);
          if (!batch) {
            batch = { device: param.deviceName, group: g, step: state.step, params: [], grads: [], states: [], decays: [] };
            batches.set(key, batch);
          }
          batch.params.push(param);
          batch.grads.push(grad);
          batch.states.push(state);
          batch.decays.push(group.decays[i]! && group.options.weightDecay !== 0);
        });
      });
      // A group whose parameters all share a step count (the usual case) keeps one key per device.
      const seen = new Map<string, number>();
      for (const b of batches.values()) {
        const listName = `${b.device}|${b.group}`;
        const k = seen.get(listName) ?? 0;
        seen.set(listName, k + 1);
        const grads = b.grads.map(kernelInput);
        try {
          this.stepFused({
            fused: b.params[0]!.backend.fused, options: this.paramGroups[b.group]!.options, step: b.step,
            params: b.params, grads, states: b.states, decays: b.decays, cacheKey: this.cacheKeys.get(`${listName}|${k}`),
          });
        } finally {
          releaseInputs(grads, b.grads);
        }
      }
    });
  }

  private readonly cacheKeys = new CacheKeys();

  private fusable(param: Tensor): boolean {
    return isFusedDType(param.dtype) && param.isContiguous && this.canFuse(param.backend.fused);
  }

  /** Drops every gradient (torch's zero_grad(set_to_none=True)); backward then starts afresh. */
  zeroGrad(): void {
    for (const group of this.paramGroups) for (const p of group.params) p.grad = null;
  }

  private checkGrad(param: Tensor, grad: Tensor, where: string): void {
    if (!shapesEqual(grad.shape, param.shape)) {
      throw new OptimizerError(`${this.name}.step: ${where} has shape ${formatShape(param.shape)} but its grad has ${formatShape(grad.shape)}`);
    }
    if (grad.deviceName !== param.deviceName) {
      throw new OptimizerError(`${this.name}.step: ${where} is on ${param.deviceName} but its grad is on ${grad.deviceName}`);
    }
  }

  private stepParam(param: Tensor, grad: Tensor, options: O, where: string): void {
    this.checkGrad(param, grad, where);
    if (param.numel === 0) return;
    const state = this.states.get(param) ?? this.createState(param);
    state.step += 1;
    // One scope per parameter: the composed update's temporaries go before the next parameter's
    // are made, so the step's peak is one parameter's worth of them, not the whole model's.
    tidy(() => {
      const g = cast(grad, stateDType(param.dtype));
      this.updateParam(state.master ?? param, g, state, options);
      if (state.master) param.backend.kernels.copy(state.master, param);
    });
  }

  private createState(param: Tensor): ParamState {
    const dtype = stateDType(param.dtype);
    const state: ParamState = {
      step: 0,
      buffers: this.initBuffers(param, dtype),
      master: isHalf(param.dtype) ? noGrad(() => cast(param, dtype)) : null,
    };
    persist(state);
    this.states.set(param, state);
    return state;
  }

  /** A snapshot (tensor copies) of the state and hyperparameters; later steps do not change it. */
  stateDict(): OptimizerStateDict {
    const tensors = new Map<string, Tensor>();
    const state: Record<string, { step: number }> = {};
    let index = 0;
    const groups = this.paramGroups.map((group) => ({
      params: group.params.map(() => index++),
      options: jsonOptions(group.options),
    }));
    noGrad(() => {
      this.params.forEach((param, i) => {
        const s = this.states.get(param);
        if (!s) return;
        state[String(i)] = { step: s.step };
        for (const [name, buffer] of s.buffers) tensors.set(`state.${i}.${name}`, clone(buffer));
        if (s.master) tensors.set(`state.${i}.master`, clone(s.master));
      });
    });
    return { tensors, meta: { optimizer: this.name, groups, state } };
  }

  /**
   * Restores state and hyperparameters saved by stateDict() of an optimizer built over the same
   * parameter list. Tensors may come from any device; they are copied to each parameter's device.
   */
  loadStateDict(dict: OptimizerStateDict): void {
    const { meta, tensors } = dict;
    const where = `${this.name}.loadStateDict`;
    if (meta.optimizer !== this.name) throw new OptimizerError(`${where}: the state dict is for ${meta.optimizer}`);
    const params = this.params;
    this.checkGroupLayout(meta, where);
    const options = this.paramGroups.map((group, g) => parseOptions(group.options, meta.groups[g]!.options, `${where}: group ${g}`));
    options.forEach((o, g) => this.validateOptions(o, `${where}: group ${g}`));

    const used = new Set<string>();
    const take = (name: string): Tensor => {
      const t = tensors.get(name);
      if (!t) throw new OptimizerError(`${where}: tensor '${name}' is missing`);
      used.add(name);
      return t;
    };
    const restored = new Map<Tensor, ParamState>();
    noGrad(() => {
      for (const [key, entry] of Object.entries(meta.state)) {
        const i = Number(key);
        const param = params[i];
        if (!Number.isInteger(i) || !param) throw new OptimizerError(`${where}: state for parameter '${key}', but there are ${params.length} parameters`);
        if (!Number.isInteger(entry.step) || entry.step < 0) throw new OptimizerError(`${where}: parameter ${i} has step ${entry.step}`);
        const dtype = stateDType(param.dtype);
        const buffers = this.initBuffers(param, dtype);
        for (const [name, buffer] of buffers) copyInto(buffer, take(`state.${i}.${name}`), `${where}: state.${i}.${name}`);
        let master: Tensor | null = null;
        if (isHalf(param.dtype)) {
          master = cast(param, dtype);
          // Without saved masters (say, a run that trained in float32), start from the parameter.
          if (tensors.has(`state.${i}.master`)) copyInto(master, take(`state.${i}.master`), `${where}: state.${i}.master`);
        }
        restored.set(param, { step: entry.step, buffers, master });
      }
    });
    const unused = [...tensors.keys()].filter((n) => !used.has(n));
    if (unused.length > 0) throw new OptimizerError(`${where}: unexpected tensors ${unused.slice(0, 5).join(', ')}${unused.length > 5 ? ', ...' : ''}`);

    this.states.clear();
    for (const [param, s] of restored) this.states.set(param, persist(s));
    this.paramGroups.forEach((group, g) => Object.assign(group.options, options[g]));
  }

  private checkGroupLayout(meta: OptimizerStateMeta, where: string): void {
    if (meta.groups.length !== this.paramGroups.length) {
      throw new OptimizerError(`${where}: the state dict has ${meta.groups.length} parameter groups, the optimizer ${this.paramGroups.length}`);
    }
    let index = 0;
    this.paramGroups.forEach((group, g) => {
      const saved = meta.groups[g]!.params;
      const expected = group.params.map(() => index++);
      if (saved.length !== expected.length || saved.some((v, k) => v !== expected[k])) {
        throw new OptimizerError(`${where}: group ${g} holds ${expected.length} parameters here but the state dict lists [${saved.join(', ')}]`);
      }
    });
  }
}

/** Optimizer state outlives the T.tidy scope of the step that created it. */
function persist(state: ParamState): ParamState {
  for (const t of state.buffers.values()) keep(t);
  keep(state.master);
  return state;
}

function jsonOptions(options: Record<string, OptionValue>): Record<string, number | number[]> {
  return Object.fromEntries(Object.entries(options).map(([k, v]) => [k, typeof v === 'number' ? v : [...v]]));
}

/** Saved hyperparameters, checked field by field against the current ones' types. */
function parseOptions<O extends OptimizerOptions<O>>(current: O, saved: Record<string, unknown>, where: string): O {
  const parsed: O = { ...current };
  for (const key of Object.keys(current) as (keyof O & string)[]) {
    const now = current[key];
    const value = saved[key];
    if (value === undefined) throw new OptimizerError(`${where}: option '${key}' is missing`);
    const ok = typeof now === 'number'
      ? typeof value === 'number'
      : Array.isArray(value) && value.length === now.length && value.every((v) => typeof v === 'number');
    if (!ok) throw new OptimizerError(`${where}: option '${key}' should be ${typeof now === 'number' ? 'a number' : `${now.length} numbers`}, got ${JSON.stringify(value)}`);
    parsed[key] = value as O[typeof key];
  }
  return parsed;
}
