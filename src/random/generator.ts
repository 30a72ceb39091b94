/**
 * A seedable generator: a seed plus a counter offset that each draw advances by the number of
 * counters it used. Its state is two integers, so checkpoints and activation recomputation can
 * save and restore it exactly.
 */
export interface GeneratorState {
  seed: string;
  offset: string;
}

export class Generator {
  private seedValue: bigint;
  private offsetValue = 0n;

  constructor(seed: number | bigint = 0) {
    this.seedValue = BigInt.asUintN(64, BigInt(seed));
  }

  get seed(): bigint { return this.seedValue; }
  get offset(): bigint { return this.offsetValue; }

  manualSeed(seed: number | bigint): this {
    this.seedValue = BigInt.asUintN(64, BigInt(seed));
    this.offsetValue = 0n;
    return this;
  }

  /** Reserves `count` counters and returns the first. */
  reserve(count: number): bigint {
    const start = this.offsetValue;
    this.offsetValue += BigInt(count);
    return start;
  }

  getState(): GeneratorState {
    return { seed: this.seedValue.toString(), offset: this.offsetValue.toString() };
  }

  setState(state: GeneratorState): void {
    this.seedValue = BigInt(state.seed);
    this.offsetValue = BigInt(state.offset);
  }
}

/** The generator used when an op is not given one. */
export const defaultGenerator = new Generator(0);

export function manualSeed(seed: number | bigint): void {
  defaultGenerator.manualSeed(seed);
}
