/**
 * Replayable device work for library code that must not know which backend runs it. A
 * Replayable is a function of fixed-shape static input tensors. On a backend with graph capture
 * (CUDA) the first run() warms the function up eagerly, captures the kernels it queues once, and
 * every run() (the first included) replays them; elsewhere run() simply calls the function.
 *
 * The contract that makes both paths compute the same thing:
 * - Inputs are static: the same tensors at every run. Write each run's values into them first
 *   (assign_ / copy-style writes); never replace them or change their shapes.
 * - Everything else the function reads from JS is frozen at capture: numbers become kernel
 *   parameters, so a value that changes between runs (a timestep, a guidance scale) must come in
 *   through an input tensor.
 * - Outputs are the same tensors at every run on a graph backend, overwritten by each replay:
 *   copy (clone) what must outlive the next run.
 * - No reads to the host, synchronisation or random draws inside the function (the CUDA backend
 *   refuses them during capture with an error naming the call).
 *
 * Lifetimes: inputs and outputs are taken out of tidy scopes (keep) because the graph reads and
 * writes their memory at every replay; dispose() frees the graph and its private memory.
 */
import { Tensor } from '../tensor/tensor.js';
import { keep, tidy } from '../tensor/lifetime.js';
import type { Backend, CapturedGraph } from './backend.js';

export type ReplayOutputs = Tensor | readonly Tensor[] | { readonly [name: string]: Tensor };

export interface ReplayableOptions {
  /**
   * 'auto' (default): capture where the inputs' backend supports graphs, else call the function
   * at every run; false: always call it; true: require capture (an error on other backends).
   */
  graph?: boolean | 'auto';
  /** Eager runs before capture, which compile and load kernels and fill caches (default 1). */
  warmup?: number;
  /** Names the graph in errors and statistics. */
  label?: string;
}

export class ReplayableError extends Error {
  override name = 'ReplayableError';
}

/** The tensors of an output value, or a ReplayableError naming what is not one. */
function outputTensors(value: unknown, label: string): Tensor[] {
  if (value instanceof Tensor) return [value];
  const items = Array.isArray(value) ? value as unknown[]
    : typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype ? Object.values(value)
      : null;
  if (items === null || !items.every((t) => t instanceof Tensor)) {
    throw new ReplayableError(`captureReplayable '${label}': the function must return a tensor, an array of tensors or an object of tensors, got ${describe(value)}`);
  }
  return items as Tensor[];
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return `an array holding ${value.map((v) => (v instanceof Tensor ? 'Tensor' : typeof v)).join(', ')}`;
  return typeof value === 'object' ? `an object of class ${(value as object).constructor?.name ?? 'null'}` : `a ${typeof value}`;
}

export class Replayable<O extends ReplayOutputs> {
  readonly backend: Backend;
  /** 'graph': runs replay a captured graph; 'eager': runs call the function. */
  readonly mode: 'graph' | 'eager';
  readonly label: string;
  private readonly warmup: number;
  private graph: CapturedGraph | null = null;
  private outputs: O | null = null;
  private runs = 0;
  private isDisposed = false;

  constructor(private readonly fn: (...inputs: Tensor[]) => O, readonly inputs: readonly Tensor[], options: ReplayableOptions = {}) {
    this.label = options.label || (typeof fn === 'function' && fn.name) || 'replayable';
    if (typeof fn !== 'function') throw new ReplayableError(`captureReplayable '${this.label}': fn must be a function, got ${describe(fn)}`);
    const graph = options.graph ?? 'auto';
    if (graph !== true && graph !== false && graph !== 'auto') {
      throw new ReplayableError(`captureReplayable '${this.label}': options.graph must be true, false or 'auto', got ${String(graph)}`);
    }
    const warmup = options.warmup ?? 1;
    if (!Number.isSafeInteger(warmup) || warmup < 0) {
      throw new ReplayableError(`captureReplayable '${this.label}': options.warmup must be a non-negative integer, got ${String(warmup)}`);
    }
    this.warmup = warmup;
    if (!Array.isArray(inputs) || inputs.length === 0) {
      throw new ReplayableError(`captureReplayable '${this.label}': inputs must be a non-empty array of tensors (they choose the device and carry every value that changes between runs)`);
    }
    inputs.forEach((t, i) => {
      if (!(t instanceof Tensor)) throw new ReplayableError(`captureReplayable '${this.label}': input ${i} is ${describe(t)}, not a tensor`);
      if (t.isDisposed) throw new ReplayableError(`captureReplayable '${this.label}': input ${i} ${t.toString()} has been disposed`);
      if (t.deviceName !== inputs[0]!.deviceName) {
        throw new ReplayableError(`captureReplayable '${this.label}': inputs are on different devices (input 0 on ${inputs[0]!.deviceName}, input ${i} on ${t.deviceName})`);
      }
    });
    this.backend = inputs[0]!.backend;
    if (graph === true && !this.backend.graphs) {
      throw new ReplayableError(`captureReplayable '${this.label}': graph capture was required (graph: true) but the ${inputs[0]!.deviceName} backend has none; pass graph: 'auto' to run the function eagerly there`);
    }
    this.mode = graph !== false && this.backend.graphs ? 'graph' : 'eager';
    // The graph reads these addresses at every replay: no enclosing scope may release them.
    if (this.mode === 'graph') for (const t of inputs) keep(t);
  }

  /** Whether the graph has been captured (graph mode, after the first run). */
  get captured(): boolean {
    return this.graph !== null;
  }

  /** Graph launches so far (0 in eager mode). */
  get replays(): number {
    return this.graph?.replays ?? 0;
  }

  /** run() calls so far. */
  get calls(): number {
    return this.runs;
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  /** The captured graph (graph mode, after the first run), e.g. for its statistics. */
  get capturedGraph(): CapturedGraph | null {
    return this.graph;
  }

  /**
   * Runs the work on the inputs' current contents. Graph mode returns the same output tensors at
   * every call, overwritten by the replay this call queues.
   */
  run(): O {
    if (this.isDisposed) throw new ReplayableError(`replayable '${this.label}' was disposed`);
    this.inputs.forEach((t, i) => {
      if (t.isDisposed) throw new ReplayableError(`replayable '${this.label}': input ${i} ${t.toString()} was disposed; static inputs must live as long as the replayable`);
    });
    this.runs++;
    if (this.mode === 'eager') return this.fn(...this.inputs);
    if (this.graph === null) this.capture();
    this.graph!.replay();
    return this.outputs!;
  }

  private capture(): void {
    const graphs = this.backend.graphs!;
    // Warm-up: compiles and loads kernels, creates library handles and caches. Its tensors are
    // released at once (tidy), so the capture can take their memory from the allocator's cache.
    for (let i = 0; i < this.warmup; i++) tidy(() => { this.fn(...this.inputs); });
    const { result, graph } = graphs.capture(() => tidy(() => this.fn(...this.inputs)), this.label);
    let tensors: Tensor[];
    try {
      tensors = outputTensors(result, this.label);
      for (const t of tensors) {
        if (t.backend !== this.backend) throw new ReplayableError(`captureReplayable '${this.label}': an output is on ${t.deviceName}, not ${this.inputs[0]!.deviceName}`);
      }
    } catch (e) {
      graph.destroy();
      throw e;
    }
    for (const t of tensors) keep(t);
    this.graph = graph;
    this.outputs = result;
  }

  /**
   * Frees the graph and its private memory. Outputs keep their last values unless `outputs` is
   * true (then they are disposed too: only when nothing else uses them); inputs are not touched.
   */
  dispose(options: { outputs?: boolean } = {}): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.graph?.destroy();
    if (options.outputs && this.outputs !== null) {
      for (const t of outputTensors(this.outputs, this.label)) if (!this.inputs.includes(t)) t.dispose();
    }
    this.outputs = null;
  }
}

/**
 * Wraps `fn` (a function of the static `inputs`) for repeated runs; see the header for the
 * contract. On CPU, run() calls fn(...inputs) each time.
 */
export function captureReplayable<O extends ReplayOutputs>(fn: (...inputs: Tensor[]) => O, inputs: readonly Tensor[],
  options: ReplayableOptions = {}): Replayable<O> {
  return new Replayable(fn, inputs, options);
}
