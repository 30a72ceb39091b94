/**
 * One training step of a small Dimba (forward, backward, gradient clipping, AdamW), either the way
 * the trainer runs it (src/train/stage.ts: T.tidy scopes) or with no scope at all, so that tests
 * and bench/cpu/memory.ts can compare what stays live. Inputs and targets are made once, outside
 * any scope, like a data batch the caller owns.
 */
import * as T from '../../src/index.js';
import { Dimba, presetConfig, type DimbaConfig } from '../../src/models/dimba/index.js';
import { AdamW } from '../../src/optim/adamw.js';
import { clipGradNorm } from '../../src/optim/clip-grad.js';
import type { Tensor } from '../../src/tensor/tensor.js';

export interface TrainStep {
  readonly model: Dimba;
  readonly optimizer: AdamW;
  /** One optimizer step; returns the loss. scoped: as the trainer (tidy scopes), else no scope. */
  step(scoped: boolean): number;
  /** Forward and backward only (no clipping or update), leaving the gradients in .grad. */
  gradients(scoped: boolean): void;
  /** The loss of the fixed batch (forward only, recorded, no scope of its own). */
  forwardLoss(): Tensor;
}

export interface TrainStepOptions {
  device?: string;
  batch?: number;
  config?: Partial<DimbaConfig>;
  gradientCheckpointing?: boolean;
}

export function smallDimbaStep(options: TrainStepOptions = {}): TrainStep {
  const device = options.device ?? 'cpu';
  const config = presetConfig('Dimba-XS', { inputSize: 8, ...options.config });
  const model = new Dimba(config, { seed: 5 });
  // The released init zeroes the output layers; give them values so every gradient is non-zero.
  T.nn.init.normal_(model.finalLayer.linear.weight, 0, 0.02, { generator: new T.Generator(3) });
  if (device !== 'cpu') model.to(device);
  model.gradientCheckpointing = options.gradientCheckpointing ?? false;
  model.train();
  const b = options.batch ?? 2;
  const s = config.inputSize;
  const x = T.randn([b, config.inChannels, s, s], { generator: new T.Generator(1), device });
  const outChannels = config.learnSigma ? 2 * config.inChannels : config.inChannels;
  const target = T.randn([b, outChannels, s, s], { generator: new T.Generator(4), device });
  const caption = T.randn([b, config.captionTokens, config.captionChannels], { generator: new T.Generator(2), device });
  const timestep = T.tensor(Array.from({ length: b }, (_, i) => 10 + 97 * i), { device });
  const params = model.parameters();
  const optimizer = new AdamW(params, { lr: 1e-3 });
  const loss = (): Tensor => T.mean(T.square(T.sub(model.forward({ x, timestep, caption }), target)));

  const gradients = (scoped: boolean): number => {
    if (!scoped) {
      const l = loss();
      const v = l.item();
      l.backward();
      return v;
    }
    return T.tidy(() => {
      const l = T.tidy(loss);
      const v = l.item();
      l.backward();
      return v;
    });
  };
  return {
    model,
    optimizer,
    gradients: (scoped) => { gradients(scoped); },
    forwardLoss: loss,
    step(scoped) {
      optimizer.zeroGrad();
      const v = gradients(scoped);
      if (scoped) {
        T.tidy(() => clipGradNorm(params, 1));
        T.tidy(() => optimizer.step());
      } else {
        clipGradNorm(params, 1);
        optimizer.step();
      }
      optimizer.zeroGrad();
      return v;
    },
  };
}
