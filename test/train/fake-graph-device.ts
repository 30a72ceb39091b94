/**
 * A stand-in 'cuda' device for captured training steps on the CPU: the CPU backend with the
 * multi-tensor kernels' documented formulas (test/optim/fused-emulation.ts, pinned to the composed
 * optimizers; test/cuda/optim-emu.test.ts pins optim.cu to them, _ctl twins included) honouring
 * the captured-step control (device coefficients, skip flag, device clip factor), and a graph
 * capability whose "replay" calls the captured function again. Not a CUDA graph (JS runs at every
 * replay, so values baked in at capture go unnoticed; test/cuda/graphed-train-step checks those on
 * a GPU), but everything around it is the real path.
 */
import * as T from '../../src/index.js';
import { assign_ } from '../../src/ops/inplace.js';
import { registerBackendFactory } from '../../src/backends/registry.js';
import { CpuBackend } from '../../src/backends/cpu/index.js';
import type { AdamWCoefficients, CAMECoefficients, CapturedGraph, FusedKernels, GraphCapability, MultiTensorOptions } from '../../src/backends/backend.js';
import type { Tensor } from '../../src/tensor/tensor.js';
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

  capture<R>(fn: () => R): { result: R; graph: CapturedGraph } {
    this.captures++;
    this.capturing = true;
    let result: R;
    try {
      result = fn();
    } finally {
      this.capturing = false;
    }
    if (!(result instanceof T.Tensor)) throw new TypeError('RerunGraphs: the captured function must return one tensor');
    const out: Tensor = result;
    const owner = this;
    const graph = {
      replays: 0,
      destroyed: false,
      replay(): void {
        const again = fn() as Tensor;
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

let graphs: RerunGraphs | null = null;

/** Registers the stand-in as the 'cuda' device (once per process) and returns its graph capability. */
export function installFakeGraphDevice(): RerunGraphs {
  if (graphs === null) {
    const g = new RerunGraphs();
    graphs = g;
    registerBackendFactory('cuda', (d) => {
      const b = new CpuBackend(d);
      Object.assign(b.fused, fakeOptim);
      return Object.assign(b, { graphs: g });
    });
  }
  return graphs;
}

