/**
 * Module: a node in a tree of layers that owns named parameters, buffers and child modules, with
 * PyTorch's dotted naming (`blocks.0.attn.qkv.weight`) so checkpoints map one to one.
 *
 * Registration is explicit and returns what it registers, so a subclass keeps a typed field:
 *
 *   this.fc1 = this.registerModule('fc1', new Linear(4, 8));
 *   this.bias = this.registerParameter('bias', new Parameter(zeros([8])));
 *
 * The registered name may differ from the field name (checkpoint names like `adaLN_modulation`
 * need not leak into TypeScript). Modules hold configuration and weights only, never per-call
 * state, so one module can run several forward passes at once (activation checkpointing).
 */
import { noGrad } from '../autograd/grad-mode.js';
import { cast as castOp, to as toOp } from '../ops/layout.js';
import { assign_ } from '../ops/inplace.js';
import { deviceKey, parseDevice, type Device } from '../tensor/device.js';
import { isFloating, type DType } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { keep } from '../tensor/lifetime.js';
import { Parameter } from './parameter.js';
import { loadInto, type LoadStateDictOptions, type LoadStateDictResult, type StateDictLike } from './state-dict.js';

export class ModuleError extends Error {
  override name = 'ModuleError';
}

export interface BufferOptions {
  /** Default true: part of stateDict(). Non-persistent buffers (e.g. cached rotary tables) are rebuilt, not saved. */
  persistent?: boolean;
}

type Kind = 'parameter' | 'buffer' | 'module';

function join(prefix: string, name: string): string {
  return prefix === '' ? name : `${prefix}.${name}`;
}

export class Module {
  /** Train or eval mode; set for a whole tree with train()/eval(). Dropout and friends read it. */
  training = true;
  readonly #params = new Map<string, Parameter | null>();
  readonly #buffers = new Map<string, Tensor | null>();
  readonly #nonPersistent = new Set<string>();
  readonly #modules = new Map<string, Module | null>();

  #checkName(kind: Kind, name: string): void {
    const op = `register${kind[0]!.toUpperCase()}${kind.slice(1)}`;
    if (name === '' || name.includes('.')) {
      throw new ModuleError(`${op}: name '${name}' must be non-empty and contain no '.' (dots separate levels of the tree)`);
    }
    const taken: [Kind, ReadonlyMap<string, unknown>][] = [['parameter', this.#params], ['buffer', this.#buffers], ['module', this.#modules]];
    for (const [other, map] of taken) {
      if (other !== kind && map.has(name)) throw new ModuleError(`${op}: '${name}' is already registered as a ${other} of ${this.constructor.name}`);
    }
  }

  /** Registers (or re-registers, keeping its position) a parameter; null reserves the name, like an absent bias. */
  registerParameter<T extends Parameter | null>(name: string, param: T): T {
    this.#checkName('parameter', name);
    if (param !== null && !(param instanceof Parameter)) {
      throw new ModuleError(`registerParameter: '${name}' must be a Parameter (wrap the tensor with new Parameter(t)), got a plain Tensor`);
    }
    this.#params.set(name, param);
    return param;
  }

  registerBuffer<T extends Tensor | null>(name: string, tensor: T, options: BufferOptions = {}): T {
    this.#checkName('buffer', name);
    if (tensor instanceof Parameter) throw new ModuleError(`registerBuffer: '${name}' is a Parameter; register it with registerParameter`);
    // Buffers are model state: they outlive a T.tidy scope they are (re)computed in.
    this.#buffers.set(name, keep(tensor));
    if (options.persistent ?? true) this.#nonPersistent.delete(name);
    else this.#nonPersistent.add(name);
    return tensor;
  }

  registerModule<T extends Module | null>(name: string, module: T): T {
    this.#checkName('module', name);
    const child: Module | null = module;
    if (child === this) throw new ModuleError(`registerModule: '${name}' would make ${this.constructor.name} its own child`);
    this.#modules.set(name, child);
    return module;
  }

  // ---- traversal (registration order; shared tensors and modules are listed once) --------------

  /** This module (name '') and every descendant, parents before children. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const visit = (name: string, m: Module): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([name, m]);
      for (const [childName, child] of m.#modules) if (child) visit(join(name, childName), child);
    };
    visit(prefix, this);
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [name, child] of this.#modules) if (child && !out.some(([, m]) => m === child)) out.push([name, child]);
    return out;
  }

  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  namedParameters(): [string, Parameter][] {
    return this.#collect((m) => m.#params);
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** All buffers, persistent or not. */
  namedBuffers(): [string, Tensor][] {
    return this.#collect((m) => m.#buffers);
  }

  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  #collect<T extends Tensor>(pick: (m: Module) => ReadonlyMap<string, T | null>): [string, T][] {
    const out: [string, T][] = [];
    const seen = new Set<Tensor>();
    for (const [path, m] of this.namedModules()) {
      for (const [name, t] of pick(m)) {
        if (t && !seen.has(t)) {
          seen.add(t);
          out.push([join(path, name), t]);
        }
      }
    }
    return out;
  }

  /** Calls fn on every descendant, then on this module (children first, as torch's apply). */
  apply(fn: (m: Module) => void): this {
    for (const child of this.children()) child.apply(fn);
    fn(this);
    return this;
  }

  // ---- modes and gradients ---------------------------------------------------------------------

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Freezes (false) or unfreezes every parameter. */
  requiresGrad_(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad_(flag);
    return this;
  }

  /** Clears gradients: drops them (default, frees memory) or zeroes them in place. */
  zeroGrad(setToNone = true): void {
    for (const p of this.parameters()) {
      if (setToNone) p.grad = null;
      else if (p.grad) assign_(p.grad, 0);
    }
  }

  numParameters(options: { trainableOnly?: boolean } = {}): number {
    return this.parameters().reduce((n, p) => (options.trainableOnly && !p.requiresGrad ? n : n + p.numel), 0);
  }

  // ---- device and dtype --------------------------------------------------------------------------

  /**
   * Moves parameters (with their gradients) and buffers to a device.
   *
   * A Tensor's storage is fixed for its lifetime, so a Parameter that has to move is replaced by a
   * new Parameter (same flags and hooks); the module's registry and every own field of a module in
   * this tree that held the old tensor are re-pointed to the new one. Tensors already on the
   * device keep their identity. Optimizers hold parameter objects: build them after to()/cast().
   */
  to(device: string | Device): this {
    const key = deviceKey(typeof device === 'string' ? parseDevice(device) : device);
    return this.#convert((t) => (t.deviceName === key ? t : toOp(t, key)));
  }

  /**
   * Casts floating parameters and buffers (integer buffers such as ids stay); replaces as to() does.
   * Parameters marked keepFloat32 are cast to float32 instead when `dtype` is a half type.
   */
  cast(dtype: DType): this {
    if (!isFloating(dtype)) throw new ModuleError(`cast: modules can only be cast to a floating dtype, got ${dtype}`);
    const half = dtype === 'bfloat16' || dtype === 'float16';
    return this.#convert((t) => {
      if (!isFloating(t.dtype)) return t;
      const target = half && t instanceof Parameter && t.keepFloat32 ? (t.dtype === 'float64' ? 'float64' : 'float32') : dtype;
      return t.dtype === target ? t : castOp(t, target);
    });
  }

  #convert(fn: (t: Tensor) => Tensor): this {
    // Memoised per tensor, so a tensor shared by several modules becomes one new tensor.
    const params = new Map<Parameter, Parameter>();
    const buffers = new Map<Tensor, Tensor>();
    const convertParam = (p: Parameter): Parameter => {
      let next = params.get(p);
      if (next) return next;
      const data = fn(p);
      next = data === p ? p : new Parameter(data, { requiresGrad: p.requiresGrad, noWeightDecay: p.noWeightDecay, keepFloat32: p.keepFloat32 });
      if (next !== p) {
        data.dispose(); // the Parameter holds the same storage
        if (p.grad) next.grad = fn(p.grad);
        for (const hook of p.gradHooks) next.registerHook(hook);
      }
      params.set(p, next);
      return next;
    };
    const convertBuffer = (b: Tensor): Tensor => {
      let next = buffers.get(b);
      if (!next) buffers.set(b, (next = keep(fn(b))));
      return next;
    };
    noGrad(() => {
      const modules = this.modules();
      for (const m of modules) {
        for (const [name, p] of m.#params) if (p) m.#params.set(name, convertParam(p));
        for (const [name, b] of m.#buffers) if (b) m.#buffers.set(name, convertBuffer(b));
      }
      for (const m of modules) {
        for (const key of Object.keys(m)) {
          const value: unknown = Reflect.get(m, key);
          const next = value instanceof Parameter ? params.get(value) : value instanceof Tensor ? buffers.get(value) : undefined;
          if (next && next !== value) Reflect.set(m, key, next);
        }
      }
    });
    // The replaced tensors are stale (the tree no longer uses them, and optimizers are built after
    // to()/cast()): release their storage now rather than whenever the garbage collector finds the
    // objects, which for a GPU model can be never. Storage shared with a live view survives.
    for (const [old, next] of params) if (next !== old) old.dispose();
    for (const [old, next] of buffers) if (next !== old) old.dispose();
    return this;
  }

  // ---- state dict --------------------------------------------------------------------------------

  /**
   * Parameters and persistent buffers by dotted name, in PyTorch's order (each module's own
   * parameters, then its buffers, then its children's entries). Values are detached views sharing
   * the module's storage. A module or tensor registered under two names appears under both.
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, t] of this.#stateEntries()) out.set(name, t.detach());
    return out;
  }

  /**
   * Copies values by name into the registered tensors in place (parameter identity is kept), with
   * dtype/device conversion. Strict (default) mode throws one StateDictError listing every missing
   * key, unexpected key and shape mismatch, before anything is written.
   */
  loadStateDict(source: StateDictLike, options: LoadStateDictOptions = {}): LoadStateDictResult {
    return loadInto(this.constructor.name, this.#stateEntries(), source, options);
  }

  #stateEntries(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const ancestors = new Set<Module>();
    const visit = (prefix: string, m: Module): void => {
      if (ancestors.has(m)) throw new ModuleError(`stateDict: module cycle at '${prefix}'`);
      ancestors.add(m);
      for (const [name, p] of m.#params) if (p) out.set(join(prefix, name), p);
      for (const [name, b] of m.#buffers) if (b && !m.#nonPersistent.has(name)) out.set(join(prefix, name), b);
      for (const [name, child] of m.#modules) if (child) visit(join(prefix, name), child);
      ancestors.delete(m);
    };
    visit('', this);
    return out;
  }

  // ---- printing ----------------------------------------------------------------------------------

  /** One-line configuration shown by toString(), e.g. "in=4, out=8, bias=true". */
  extraRepr(): string {
    return '';
  }

  toString(): string {
    const head = `${this.constructor.name}(${this.extraRepr()}`;
    const kids = [...this.#modules].filter((e): e is [string, Module] => e[1] !== null);
    if (kids.length === 0) return `${head})`;
    const body = kids.map(([name, child]) => `  (${name}): ${child.toString().split('\n').join('\n  ')}`);
    return `${head}\n${body.join('\n')}\n)`;
  }
}
