/** Parameter-free layers as modules, so they can sit in Sequential: SiLU, GELU, Dropout. */
import { gelu, silu } from '../ops/elementwise.js';
import { dropout } from '../ops/random.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../random/generator.js';
import { Module } from './module.js';

export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return silu(x);
  }
}

export interface GELUOptions {
  /** 'none' (exact, erf) by default; 'tanh' is the approximation PixArt's MLPs use. */
  approximate?: 'none' | 'tanh';
}

export class GELU extends Module {
  readonly approximate: 'none' | 'tanh';

  constructor(options: GELUOptions = {}) {
    super();
    this.approximate = options.approximate ?? 'none';
  }

  forward(x: Tensor): Tensor {
    return gelu(x, this.approximate);
  }

  override extraRepr(): string {
    return `approximate='${this.approximate}'`;
  }
}

export interface DropoutOptions {
  /** Where the masks come from (default: the global default generator). */
  generator?: Generator;
}

/** Zeroes elements with probability p and scales the rest by 1/(1-p) in training; identity in eval. */
export class Dropout extends Module {
  readonly p: number;
  readonly generator: Generator | undefined;

  constructor(p = 0.5, options: DropoutOptions = {}) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: p must be in [0, 1], got ${p}`);
    this.p = p;
    this.generator = options.generator;
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training, this.generator);
  }

  override extraRepr(): string {
    return `p=${this.p}`;
  }
}
