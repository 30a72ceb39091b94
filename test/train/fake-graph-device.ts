/**
 * A stand-in 'cuda' device for captured training steps on the CPU: the CPU backend with the
 * multi-tensor kernels' documented formulas (test/optim/fused-emulation.ts, pinned to the composed
 * optimizers; test/cuda/optim-emu.test.ts pins optim.cu to them, _ctl twins included) honouring
 * the captured-step control (device coefficients, skip flag, device clip factor), and a graph
 * capability whose "replay" calls the captured function again. Not a CUDA graph (JS runs at every
 * replay), but everything around it is the real path. What a real graph would get wrong is
 * checked instead: every kernel call's non-tensor arguments (scalars, seeds, shapes, options) and
 * its tensors' shapes are traced at capture and at each replay, and a replay whose trace differs
 * throws, since a CUDA graph would have replayed the capture's values (a learning rate, a seed, a
 * timestep passed from JS). The optimizer kernels' coefficient arguments are left out when the
 * call reads them from the device (StepControl), as the real kernels then do.
 */
import * as T from '../../src/index.js';
import { assign_ } from '../../src/ops/inplace.js';
import { registerBackendFactory } from '../../src/backends/registry.js';
import { CpuBackend } from '../../src/backends/cpu/index.js';
import type { AdamWCoefficients, CAMECoefficients, CapturedGraph, FusedKernels, GraphCapability, MultiTensorOptions } from '../../src/backends/backend.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { formatShape } from '../../src/tensor/shape.js';
import { EMULATED } from '../optim/fused-emulation.js';

function scalar(t: Tensor): number {
  return t.toFloat64Array()[0]!;
}

/**
 * A real capture records without running; this one runs the function to get its outputs, so the
 * updates it would make are dropped (a captured step's state changes come from its kernels alone).
 */
function skipped(o?: MultiTensorOptions): boolean {
  return o?.control !== undefined && (graphs?.capturing === true || scalar(o.control.skip) !== 0);
}

const fakeOptim: FusedKernels = {
  adamwStep(t, c, o) {
    if (skipped(o)) return;
    let k: AdamWCoefficients = c;
    if (o?.control?.coefficients) {
      const v = o.control.coefficients.toFloat64Array();
      k = { decayScale: v[0]!, lerpWeight: v[1]!, lerpFromGrad: v[2] !== 0, beta2: v[3]!, oneMinusBeta2: v[4]!, rootBias2: v[5]!, eps: v[6]!, stepScale: v[7]! };
    }
    EMULATED.adamwStep(t, k);
  },
  cameStep(t, c, o) {
    if (skipped(o)) return;
    let k: CAMECoefficients = c;
    if (o?.control?.coefficients) {
      const v = o.control.coefficients.toFloat64Array();
      k = { ...c, decayScale: v[0]!, negLr: v[1]! };
    }
    EMULATED.cameStep(t, k);
  },
  emaUpdate(shadows, params, keep, take, o) {
    if (!skipped(o)) EMULATED.emaUpdate(shadows, params, keep, take);
  },
  sumSquares: (tensors, out) => EMULATED.sumSquares(tensors, out),
  scaleTensors(src, out, factor, o) {
    EMULATED.scaleTensors(src, out, o?.control?.factor ? scalar(o.control.factor) : factor);
  },
  gradNormCheck(sumSquares, loss, maxNorm, norm, factor, skip) {
    const total = Math.sqrt(scalar(sumSquares));
    const coef = maxNorm / (total + 1e-6);
    assign_(norm, total);
    assign_(factor, coef < 1 ? coef : 1);
    assign_(skip, Number.isFinite(scalar(loss)) && Number.isFinite(total) ? 0 : 1);
  },
};

/** "Capture" runs the function; "replay" runs it again and writes its result into the captured output. */
export class RerunGraphs implements GraphCapability {
  captures = 0;
  replays = 0;
  capturing = false;
  /** Kernel calls of the capture or replay in progress. */
  trace: string[] | null = null;

  capture<R>(fn: () => R, label = 'graph'): { result: R; graph: CapturedGraph } {
    this.captures++;
    this.capturing = true;
    this.trace = [];
    let result: R;
    let captured: string[];
    try {
      result = fn();
    } finally {
      this.capturing = false;
      captured = this.trace;
      this.trace = null;
    }
    if (!(result instanceof T.Tensor)) throw new TypeError('RerunGraphs: the captured function must return one tensor');
    const out: Tensor = result;
    const owner = this;
    const graph = {
      replays: 0,
      destroyed: false,
      replay(): void {
        owner.trace = [];
        let again: Tensor;
        let calls: string[];
        try {
          again = fn() as Tensor;
        } finally {
          calls = owner.trace;
          owner.trace = null;
        }
        const at = calls.findIndex((c, i) => c !== captured[i]);
        if (at >= 0 || calls.length !== captured.length) {
          const i = at >= 0 ? at : Math.min(calls.length, captured.length);
          throw new Error(`RerunGraphs '${label}': replay ${this.replays + 1} queued other work than the capture (a CUDA graph would replay the capture's): `
            + `call ${i + 1} of ${captured.length} was ${captured[i]?.slice(0, 400) ?? 'nothing'} at capture, ${calls[i]?.slice(0, 400) ?? 'nothing'} now`);
        }
        assign_(out, again);
        again.dispose();
        this.replays++;
        owner.replays++;
      },
      destroy(): void {
        this.destroyed = true;
      },
    };
    return { result, graph };
  }
}

/** A kernel argument as a graph would bake it: tensors by shape and dtype (their contents are read at run time), the rest by value. */
function describeArg(a: unknown): unknown {
  if (a instanceof T.Tensor) return `tensor ${formatShape(a.shape)} ${a.dtype}`;
  if (typeof a === 'bigint') return `${a}n`;
  if (typeof a === 'number') return Number.isNaN(a) ? 'NaN' : Object.is(a, -0) ? '-0' : Number.isFinite(a) ? a : String(a);
  if (Array.isArray(a)) return a.map(describeArg);
  if (a !== null && typeof a === 'object') return Object.fromEntries(Object.entries(a).filter(([k]) => k !== 'cacheKey').map(([k, v]) => [k, describeArg(v)]));
  return a;
}

/** The call as traced: the optimizer kernels' argument coefficients are unused under a StepControl. */
function describeCall(name: string, args: unknown[]): string {
  const shown = [...args];
  const options = (name === 'scaleTensors' ? shown[3] : shown[2]) as MultiTensorOptions | undefined;
  if ((name === 'adamwStep' || name === 'cameStep') && options?.control?.coefficients) shown[1] = 'device coefficients';
  if (name === 'scaleTensors' && options?.control?.factor) shown[2] = 'device factor';
  return `${name}${JSON.stringify(shown.map(describeArg))}`;
}

let depth = 0;

/**
 * The object with each function traced into graphs.trace (while a capture or replay runs). Only
 * outermost calls: the stand-in kernels' own work (formulas composed of ops, reads of the skip
 * flag) is not work a graph would hold.
 */
function traced<K extends object>(target: K): K {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const v = Reflect.get(obj, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        if (depth === 0) graphs?.trace?.push(describeCall(String(prop), args));
        depth++;
        try {
          return (v as (...a: unknown[]) => unknown).apply(obj, args);
        } finally {
          depth--;
        }
      };
    },
  });
}

let graphs: RerunGraphs | null = null;

/** Registers the stand-in as the 'cuda' device (once per process) and returns its graph capability. */
export function installFakeGraphDevice(): RerunGraphs {
  if (graphs === null) {
    const g = new RerunGraphs();
    graphs = g;
    registerBackendFactory('cuda', (d) => {
      const b = new CpuBackend(d);
      Object.assign(b.fused, fakeOptim);
      Object.defineProperty(b, 'kernels', { value: traced(b.kernels) });
      Object.defineProperty(b, 'fused', { value: traced(b.fused) });
      return Object.assign(b, { graphs: g });
    });
  }
  return graphs;
}

