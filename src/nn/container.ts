/**
 * Containers: ModuleList and ModuleDict register their items under the index or key (so a list
 * `blocks` yields names `blocks.0.attn...`), and Sequential is a list that chains forward().
 * Items are reached with get(i)/get(key) and iteration rather than brackets, which would need a
 * Proxy.
 */
import type { Tensor } from '../tensor/tensor.js';
import { Module, ModuleError } from './module.js';

/** A module whose forward maps one tensor to one tensor. */
export type UnaryModule = Module & { forward(x: Tensor): Tensor };

export class ModuleList<T extends Module = Module> extends Module implements Iterable<T> {
  readonly #items: T[] = [];

  constructor(modules: Iterable<T> = []) {
    super();
    this.extend(modules);
  }

  get length(): number {
    return this.#items.length;
  }

  /** Item `index`; negative counts from the end. */
  get(index: number): T {
    const n = this.#items.length;
    const i = index < 0 ? index + n : index;
    if (!Number.isInteger(index) || i < 0 || i >= n) throw new RangeError(`${this.constructor.name}.get: index ${index} out of range for length ${n}`);
    return this.#items[i]!;
  }

  append(module: T): this {
    this.registerModule(String(this.#items.length), module);
    this.#items.push(module);
    return this;
  }

  extend(modules: Iterable<T>): this {
    for (const m of modules) this.append(m);
    return this;
  }

  [Symbol.iterator](): Iterator<T> {
    return this.#items[Symbol.iterator]();
  }

  toArray(): T[] {
    return [...this.#items];
  }
}

export class Sequential extends ModuleList<UnaryModule> {
  constructor(...layers: UnaryModule[]) {
    super(layers);
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const layer of this) y = layer.forward(y);
    return y;
  }
}

function isIterable<T>(value: Iterable<T> | object): value is Iterable<T> {
  return Symbol.iterator in value;
}

export class ModuleDict<T extends Module = Module> extends Module implements Iterable<[string, T]> {
  readonly #items = new Map<string, T>();

  constructor(entries: Iterable<readonly [string, T]> | Readonly<Record<string, T>> = {}) {
    super();
    for (const [key, m] of isIterable(entries) ? entries : Object.entries(entries)) this.set(key, m);
  }

  get size(): number {
    return this.#items.size;
  }

  has(key: string): boolean {
    return this.#items.has(key);
  }

  get(key: string): T {
    const m = this.#items.get(key);
    if (m === undefined) throw new ModuleError(`${this.constructor.name}.get: no module '${key}' (keys: ${[...this.#items.keys()].join(', ')})`);
    return m;
  }

  /** Adds or replaces (keeping its position) the module under `key`. */
  set(key: string, module: T): this {
    this.registerModule(key, module);
    this.#items.set(key, module);
    return this;
  }

  keys(): string[] {
    return [...this.#items.keys()];
  }

  values(): T[] {
    return [...this.#items.values()];
  }

  entries(): [string, T][] {
    return [...this.#items.entries()];
  }

  [Symbol.iterator](): Iterator<[string, T]> {
    return this.#items.entries();
  }
}
