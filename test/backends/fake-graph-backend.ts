/** A CPU backend with a stand-in graph capability, for testing graph-mode logic without a GPU. */
import { Tensor } from '../../src/tensor/tensor.js';
import { assign_ } from '../../src/ops/inplace.js';
import { CpuBackend } from '../../src/backends/cpu/index.js';
import { parseDevice } from '../../src/tensor/device.js';
import type { CapturedGraph, GraphCapability } from '../../src/backends/backend.js';

/** A CPU backend with graphs: capture runs fn once; replay reruns it and copies the results into the captured outputs. */
export class FakeGraphBackend extends CpuBackend {
  captures = 0;
  destroyed = 0;
  failNextCapture: Error | null = null;
  readonly graphs: GraphCapability = {
    capture: <R>(fn: () => R, label?: string) => {
      if (this.failNextCapture) {
        const e = this.failNextCapture;
        this.failNextCapture = null;
        throw e;
      }
      void label;
      this.captures++;
      const result = fn();
      const outs = result instanceof Tensor ? [result] : Object.values(result as object) as Tensor[];
      let replays = 0;
      let destroyed = false;
      const owner = this;
      const graph: CapturedGraph = {
        replay() {
          if (destroyed) throw new Error('fake graph destroyed');
          const fresh = fn();
          const again = fresh instanceof Tensor ? [fresh] : Object.values(fresh as object) as Tensor[];
          again.forEach((t, i) => { assign_(outs[i]!, t); t.dispose(); });
          replays++;
        },
        destroy() {
          if (!destroyed) owner.destroyed++;
          destroyed = true;
        },
        get replays() { return replays; },
        get destroyed() { return destroyed; },
      };
      return { result, graph };
    },
  };

  constructor() {
    super(parseDevice('cpu'));
  }

  tensor(values: number[], shape: number[]): Tensor {
    return new Tensor(this.fromHost('float32', Float32Array.from(values)), shape);
  }
}
