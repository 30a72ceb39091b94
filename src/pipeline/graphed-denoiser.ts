/**
 * A denoiser whose model calls replay a captured device graph (CUDA graphs through
 * backends/replayable.ts). A sampler calls the model with the same shapes at every step (the
 * guided batch [x; x] with [∅; c]), so the call is captured once per input signature and each
 * later step costs a few input copies and one graph launch instead of the host work of every
 * kernel. The sampler's own arithmetic stays eager.
 *
 * The timestep reaches the model as a device tensor (samplers pass t as a [B] tensor), so it is a
 * static input like x_t and the condition: each call copies its arguments into the static
 * inputs, replays, and returns a copy of the output (the next replay overwrites the static one).
 */
import { Tensor } from '../tensor/tensor.js';
import { assign_ } from '../ops/inplace.js';
import { clone } from '../ops/layout.js';
import { formatShape } from '../tensor/shape.js';
import { captureReplayable, type Replayable } from '../backends/replayable.js';
import type { Condition, ModelFn } from '../diffusion/model.js';
import { PipelineError } from './errors.js';

export type GraphSetting = boolean | 'auto';

export interface DenoiserGraphStats {
  /** Model calls, those that called the model directly (graphs off or unavailable, or after a failed capture under 'auto'), */
  readonly calls: number;
  readonly eagerCalls: number;
  /** graphs captured (one per input signature), and graph launches. */
  readonly captures: number;
  readonly replays: number;
  /** Under 'auto': the capture error after which calls ran eagerly. */
  readonly fallback: string | null;
}

export interface GraphedDenoiser<C extends Condition> {
  readonly fn: ModelFn<C>;
  stats(): DenoiserGraphStats;
  /** Destroys the graphs and frees their static tensors and private memory. */
  dispose(): void;
}

interface Entry {
  readonly statics: Tensor[];
  readonly replayable: Replayable<Tensor>;
}

export function checkGraphSetting(what: string, value: unknown): GraphSetting {
  if (value === undefined) return 'auto';
  if (value !== true && value !== false && value !== 'auto') throw new PipelineError(`${what} must be true, false or 'auto', got ${String(value)}`);
  return value;
}

function signature(t: Tensor): string {
  return `${formatShape(t.shape)}:${t.dtype}:${t.deviceName}`;
}

/**
 * Wraps `model` so that on a backend with graphs each call replays a graph captured for its
 * input signature. setting: 'auto' captures where the backend can (a failed capture warns once and
 * the calls run eagerly), true requires it, false calls the model.
 */
export function graphedDenoiser<C extends Condition>(model: ModelFn<C>, setting: GraphSetting, label = 'denoiser'): GraphedDenoiser<C> {
  const entries = new Map<string, Entry>();
  let calls = 0;
  let eagerCalls = 0;
  let fallback: string | null = null;

  const eager = (xt: Tensor, t: Tensor, cond: C): Tensor => {
    eagerCalls++;
    return model(xt, t, cond);
  };

  const disposeEntries = (): void => {
    for (const e of entries.values()) {
      e.replayable.dispose({ outputs: true });
      for (const s of e.statics) s.dispose();
    }
    entries.clear();
  };

  const fn: ModelFn<C> = (xt, t, cond) => {
    calls++;
    if (setting === false || fallback !== null) return eager(xt, t, cond);
    if (!xt.backend.graphs) {
      if (setting === true) throw new PipelineError(`${label}: cudaGraph is true but ${xt.deviceName} has no graph capture; use cudaGraph 'auto' or false`);
      return eager(xt, t, cond);
    }
    const names = cond instanceof Tensor ? null : Object.keys(cond).sort();
    const condTensors = names === null ? [cond as Tensor] : names.map((k) => (cond as { readonly [name: string]: Tensor })[k]!);
    const args = [xt, t, ...condTensors];
    const key = `${args.map(signature).join('|')}|${names?.join(',') ?? ''}`;
    let entry = entries.get(key);
    if (!entry) {
      const statics = args.map((a) => Tensor.empty(a.shape, a.dtype, a.backend));
      const rebuild = (cs: Tensor[]): C => (names === null ? cs[0]! : Object.fromEntries(names.map((k, i) => [k, cs[i]!]))) as C;
      const replayable = captureReplayable((x, tt, ...cs) => model(x!, tt!, rebuild(cs)), statics,
        { graph: setting, label: `${label} ${formatShape(xt.shape)}` });
      entry = { statics, replayable };
      entries.set(key, entry);
    }
    args.forEach((a, i) => assign_(entry.statics[i]!, a));
    let out: Tensor;
    try {
      out = entry.replayable.run();
    } catch (e) {
      // Under 'auto' a capture that fails falls back to eager calls: a genuine error in the model
      // then surfaces from the eager call itself.
      if (setting !== 'auto' || entry.replayable.captured) throw e;
      fallback = e instanceof Error ? e.message : String(e);
      disposeEntries();
      process.emitWarning(`${label}: CUDA graph capture failed, calling the model eagerly instead: ${fallback}`, { code: 'DIMBA_GRAPH_FALLBACK' });
      return eager(xt, t, cond);
    }
    return clone(out);
  };

  return {
    fn,
    stats(): DenoiserGraphStats {
      let captures = 0;
      let replays = 0;
      for (const e of entries.values()) {
        if (e.replayable.captured) captures++;
        replays += e.replayable.replays;
      }
      return { calls, eagerCalls, captures, replays, fallback };
    },
    dispose: disposeEntries,
  };
}
