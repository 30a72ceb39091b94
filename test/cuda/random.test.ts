/** CUDA Philox random numbers equal the CPU's for the same seed and offset (skipped without a GPU). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ops from '../../src/ops/index.js';
import { Generator } from '../../src/random/generator.js';
import { FLOATS, TOL, assertClose, cudaSkip, checkOp, randomCpu } from './helpers.js';

const skip = cudaSkip;

test('rand and randn match the CPU stream for every float dtype, odd sizes and large offsets', { skip }, () => {
  for (const dtype of FLOATS) {
    for (const n of [1, 3, 4097]) {
      for (const seed of [0n, 42n, 0x123456789abcdefn]) {
        // An offset above 2^32 exercises the counter's high word.
        const g1 = new Generator(seed);
        const g2 = new Generator(seed);
        g1.reserve(2 ** 33 + 5);
        g2.reserve(2 ** 33 + 5);
        const u = ops.rand([n], { dtype, generator: g1 });
        const ug = ops.rand([n], { dtype, generator: g2, device: 'cuda' });
        assertClose(`rand ${dtype} n=${n} seed=${seed}`, ug, u, dtype === 'float64' ? 0 : TOL[dtype]);
        const z = ops.randn([n], { dtype, generator: g1 });
        const zg = ops.randn([n], { dtype, generator: g2, device: 'cuda' });
        assertClose(`randn ${dtype} n=${n} seed=${seed}`, zg, z, TOL[dtype]);
        assert.equal(g1.offset, g2.offset);
      }
    }
  }
});

test('uniform float32 numbers are bit-identical to the CPU (multiples of 2^-24)', { skip }, () => {
  const cpu = ops.rand([1001], { generator: new Generator(7) }).toFloat64Array();
  const gpu = ops.rand([1001], { generator: new Generator(7), device: 'cuda' }).toFloat64Array();
  assert.deepEqual(Array.from(gpu), Array.from(cpu));
});

test('dropout draws the same mask on both devices and passes gradients through kept elements', { skip }, () => {
  const x = randomCpu([17, 31]);
  checkOp('dropout', [x], (v) => ops.dropout(v, 0.3, true, new Generator(99)));
});
