/**
 * causalConv1d with the fused bias and SiLU, on x as the Mamba mixer passes it: [B, D, L] views
 * of channel-last [B, L, 2D] buffers (chunked, time-flipped). Gradients against finite
 * differences, the fused result against the composed ops it replaced (conv, + bias, silu), the
 * memory order of the output and of x's gradient, and empty sequences.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';

/** The mixer's views of a [B, L, 2D] buffer: x = first half of transpose(buf, 1, 2), maybe flipped in time. */
function mixerX(buf: Tensor, flipped: boolean): Tensor {
  const xz = T.transpose(buf, 1, 2);
  const [x] = T.chunk(flipped ? T.flip(xz, [2]) : xz, 2, 1) as [Tensor, Tensor];
  return x;
}

const LAYOUTS: [string, (base: Tensor) => Tensor, number[]][] = [
  // name, view of the base, base shape (B = 2, D = 3, L = 6)
  ['contiguous', (b) => b, [2, 3, 6]],
  ['time-flipped contiguous', (b) => T.flip(b, [2]), [2, 3, 6]],
  ['channel-last', (b) => T.transpose(b, 1, 2), [2, 6, 3]],
  ['mixer view (chunk of [B, L, 2D])', (b) => mixerX(b, false), [2, 6, 6]],
  ['flipped mixer view', (b) => mixerX(b, true), [2, 6, 6]],
];

describe('causalConv1d fused: finite-difference gradients on strided x (float64)', () => {
  for (const [name, view, shape] of LAYOUTS) {
    test(`${name}: x, weight, bias with silu`, () => {
      gradcheck(`fused ${name}`, (xb, w, b) => T.causalConv1d(view(xb), w, b, 'silu'),
        [rand64(shape, 41), rand64([3, 4], 42, 0.5), rand64([3], 43)]);
    });
  }
  test('channel-last, bias without silu', () => {
    gradcheck('bias only', (xb, w, b) => T.causalConv1d(T.transpose(xb, 1, 2), w, b),
      [rand64([2, 5, 3], 44), rand64([3, 3], 45), rand64([3], 46)]);
  });
  test('flipped mixer view, silu without bias, K = 1', () => {
    gradcheck('silu only K=1', (xb, w) => T.causalConv1d(mixerX(xb, true), w, null, 'silu'),
      [rand64([2, 5, 4], 47), rand64([2, 1], 48)]);
  });
  test('channel-last, K = 5 > L = 3, bias and silu', () => {
    gradcheck('K > L', (xb, w, b) => T.causalConv1d(T.transpose(xb, 1, 2), w, b, 'silu'),
      [rand64([1, 3, 2], 49), rand64([2, 5], 50), rand64([2], 51)]);
  });
});

describe('causalConv1d fused against the composed ops', () => {
  const composed = (x: Tensor, w: Tensor, b: Tensor) => T.silu(T.add(T.causalConv1d(x, w), T.cast(T.reshape(b, [b.shape[0]!, 1]), x.dtype)));

  for (const dtype of ['float32', 'bfloat16'] as const) {
    test(`${dtype} x, float32 weight and bias: output and gradients, flipped mixer view`, () => {
      const base = T.cast(rand64([2, 9, 10], 60).detach(), dtype).requiresGrad_(true);
      const w = T.cast(rand64([5, 4], 61, 0.5).detach(), 'float32').requiresGrad_(true);
      const b = T.cast(rand64([5], 62).detach(), 'float32').requiresGrad_(true);
      const gy = T.cast(rand64([2, 5, 9], 63).detach(), dtype);
      const run = (f: (x: Tensor, w: Tensor, b: Tensor) => Tensor) => {
        for (const t of [base, w, b]) t.grad = null;
        const out = f(mixerX(base, true), w, b);
        T.sum(T.mul(T.cast(out, 'float64'), T.cast(gy, 'float64'))).backward();
        return [out, base.grad!, w.grad!, b.grad!].map((t) => t.toFloat64Array());
      };
      const fused = run((x, ww, bb) => T.causalConv1d(x, ww, bb, 'silu'));
      const old = run(composed);
      // The composed path rounds to the storage type after the conv and after the bias (bf16:
      // three roundings of 2^-8); the fused one once. Gradients carry the same differences.
      const tol = dtype === 'float32' ? 1e-5 : 3e-2;
      ['output', 'grad x', 'grad weight', 'grad bias'].forEach((what, i) => {
        const a = fused[i]!;
        const e = old[i]!;
        let scale = 0;
        for (const v of e) scale = Math.max(scale, Math.abs(v));
        for (let j = 0; j < e.length; j++) {
          if (!(Math.abs(a[j]! - e[j]!) <= tol * (Math.abs(e[j]!) + scale * 0.1))) {
            assert.fail(`${dtype} ${what}: element ${j} fused ${a[j]} vs composed ${e[j]} (tolerance ${tol})`);
          }
        }
      });
    });
  }

  test('float64: fused equals composed to rounding, contiguous and channel-last', () => {
    const w = rand64([3, 4], 71);
    const b = rand64([3], 72);
    for (const [name, view, shape] of LAYOUTS) {
      const x = view(rand64(shape, 70));
      const a = T.causalConv1d(x, w, b, 'silu').toFloat64Array();
      const e = composed(x, w, b).toFloat64Array();
      for (let j = 0; j < e.length; j++) assert.ok(Math.abs(a[j]! - e[j]!) <= 1e-14 * (1 + Math.abs(e[j]!)), `${name} element ${j}: ${a[j]} vs ${e[j]}`);
    }
  });
});

describe('causalConv1d fused: memory order', () => {
  test('channel-last x gives a [B, D, L] view of [B, L, D] storage, time forward, also when x is flipped', () => {
    for (const flipped of [false, true]) {
      const x = mixerX(T.randn([2, 7, 10], { dtype: 'float64' }), flipped);
      const out = T.causalConv1d(x, T.randn([5, 4], { dtype: 'float64' }), T.randn([5], { dtype: 'float64' }), 'silu');
      assert.deepEqual(out.shape, [2, 5, 7]);
      assert.deepEqual(out.strides, [35, 1, 5], `flipped=${flipped}`);
      assert.ok(T.transpose(out, 1, 2).isContiguous, 'the mixer\'s transpose(u, 1, 2) is contiguous');
    }
  });

  test('time-contiguous x gives a contiguous output', () => {
    const out = T.causalConv1d(T.flip(T.randn([2, 3, 5], { dtype: 'float64' }), [2]), T.randn([3, 2], { dtype: 'float64' }));
    assert.ok(out.isContiguous);
  });

  test('x\'s gradient is laid out like x: it reaches a channel-last buffer contiguous through flip and transpose', () => {
    for (const flipped of [false, true]) {
      const base = T.randn([2, 7, 4], { dtype: 'float64' }).requiresGrad_(true);
      const x = T.flip(T.transpose(base, 1, 2), flipped ? [2] : []);
      let seen: Tensor | null = null;
      // The gradient of x itself, as the conv's backward wrote it.
      x.registerHook((g) => { seen = g; return g; });
      T.sum(T.causalConv1d(x, T.randn([4, 4], { dtype: 'float64' }), null, 'silu')).backward();
      const g = seen as Tensor | null;
      assert.ok(g !== null, 'hook saw the gradient');
      assert.equal(g.strides[1], 1, `flipped=${flipped}: channel stride ${g.strides}`);
      assert.equal(Math.sign(g.strides[2]!), flipped ? -1 : 1, `flipped=${flipped}: time stride ${g.strides}`);
      assert.ok(base.grad!.isContiguous, 'the buffer\'s gradient is contiguous');
    }
  });
});

describe('causalConv1d fused: empty sequences', () => {
  test('L = 0 gives an empty output and zero weight and bias gradients', () => {
    const x = rand64([2, 3, 0], 80);
    const w = rand64([3, 4], 81);
    const b = rand64([3], 82);
    const out = T.causalConv1d(x, w, b, 'silu');
    assert.deepEqual(out.shape, [2, 3, 0]);
    // (sum of an empty tensor is not supported by the reduction; seed the empty gradient directly)
    out.backward(T.zeros([2, 3, 0], { dtype: 'float64' }));
    assert.deepEqual(Array.from(w.grad!.toFloat64Array()), new Array(12).fill(0));
    assert.deepEqual(Array.from(b.grad!.toFloat64Array()), [0, 0, 0]);
  });
});
