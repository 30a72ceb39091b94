/**
 * Operand values and comparisons shared by the emulator tests that exchange float64 files with a
 * harness (modulate-emu, add-rms-norm-emu): values rounded as a dtype stores them, tensors built
 * from them, the harness's output files, and the elementwise comparison with the CPU reference.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ops from '../../../src/ops/index.js';
import { Tensor } from '../../../src/tensor/tensor.js';
import type { DType } from '../../../src/tensor/dtype.js';

/** Values as `dtype` rounds them (what both sides then read). */
export function rounded(v: Float64Array, dtype: DType): Float64Array {
  return ops.cast(Tensor.fromHost(v, [v.length], 'float64'), dtype).toFloat64Array();
}

export function tensorOf(v: Float64Array, shape: number[], dtype: DType): Tensor {
  return ops.cast(Tensor.fromHost(v, shape, 'float64'), dtype);
}

/** The harness's output DIR/name.bin (float64, little-endian). */
export function readOutput(dir: string, name: string): Float64Array {
  const b = readFileSync(join(dir, `${name}.bin`));
  return new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8);
}

/** |emulated - cpu| <= rtol (|cpu| + mean |cpu|) for every element, else a failure naming the first one. */
export function assertNear(name: string, actual: Float64Array, expected: Float64Array, rtol: number): void {
  assert.equal(actual.length, expected.length, `${name}: length`);
  let scale = 0;
  for (const v of expected) scale += Math.abs(v);
  scale /= Math.max(1, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const [a, e] = [actual[i]!, expected[i]!];
    if (!(Math.abs(a - e) <= rtol * (Math.abs(e) + scale))) {
      assert.fail(`${name}: element ${i} of ${expected.length}: emulated ${a}, CPU ${e} (tolerance ${rtol})`);
    }
  }
}
