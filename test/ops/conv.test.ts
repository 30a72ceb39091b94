/** conv2d against a direct loop (forward and all gradients), finite differences, and argument errors. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { ShapeError } from '../../src/tensor/shape.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';
import {
  assertAllClose, conv2dRef, conv2dRefGrads, convOutShape, randomTensor, type ConvRefOptions, type ConvShapes,
} from './image-reference.js';

interface Case {
  name: string;
  x: number[];
  w: number[];
  bias: boolean;
  stride?: [number, number];
  padding?: [number, number] | 'same';
  dilation?: [number, number];
  groups?: number;
}

const CASES: Case[] = [
  { name: '3x3 pad 1, batch 2', x: [2, 3, 7, 6], w: [4, 3, 3, 3], bias: true, padding: [1, 1] },
  { name: 'stride 2, uneven padding, 3x2 kernel, odd sizes', x: [2, 3, 9, 8], w: [5, 3, 3, 2], bias: true, stride: [2, 2], padding: [1, 0] },
  { name: 'stride [3, 2] leaves trailing input unused', x: [1, 2, 10, 7], w: [3, 2, 2, 3], bias: false, stride: [3, 2] },
  { name: 'dilation [2, 3] with padding', x: [2, 2, 9, 10], w: [3, 2, 3, 3], bias: true, padding: [2, 1], dilation: [2, 3] },
  { name: 'groups 2', x: [2, 4, 6, 5], w: [6, 2, 3, 3], bias: true, padding: [1, 1], groups: 2 },
  { name: 'depthwise 3x3', x: [3, 5, 6, 7], w: [5, 1, 3, 3], bias: true, padding: [1, 1], groups: 5 },
  { name: 'depthwise channel multiplier 2, stride 2', x: [2, 3, 7, 7], w: [6, 1, 3, 3], bias: false, stride: [2, 2], padding: [1, 1], groups: 3 },
  { name: 'patch embedding (kernel = stride = 2)', x: [2, 3, 8, 6], w: [8, 3, 2, 2], bias: true, stride: [2, 2] },
  { name: 'patch embedding 4x4 with input not a multiple of the patch', x: [1, 3, 10, 9], w: [4, 3, 4, 4], bias: true, stride: [4, 4] },
  { name: '1x1 pointwise', x: [2, 6, 5, 4], w: [3, 6, 1, 1], bias: true },
  { name: '1x1 stride 2', x: [2, 3, 5, 6], w: [4, 3, 1, 1], bias: false, stride: [2, 2] },
  { name: "'same' even kernel (asymmetric padding)", x: [2, 2, 6, 5], w: [3, 2, 4, 2], bias: true, padding: 'same' },
  { name: "'same' with dilation", x: [1, 3, 7, 6], w: [2, 3, 3, 3], bias: false, padding: 'same', dilation: [2, 1] },
  { name: 'kernel as large as the padded input', x: [2, 2, 3, 4], w: [3, 2, 5, 4], bias: true, padding: [1, 0] },
];

function refOptions(c: Case): ConvRefOptions {
  return { stride: c.stride ?? [1, 1], padding: c.padding ?? [0, 0], dilation: c.dilation ?? [1, 1], groups: c.groups ?? 1 };
}

function apiOptions(c: Case): T.Conv2dOptions {
  return { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups };
}

describe('conv2d matches the reference loop', () => {
  CASES.forEach((c, k) => {
    test(c.name, () => {
      const x = randomTensor(c.x, 10 * k + 1, 'float32', true);
      const w = randomTensor(c.w, 10 * k + 2, 'float32', true);
      const b = c.bias ? randomTensor([c.w[0]!], 10 * k + 3, 'float32', true) : null;
      const o = refOptions(c);
      const shapes: ConvShapes = { x: c.x, w: c.w, out: convOutShape(c.x, c.w, o) };
      const y = T.conv2d(x.t, w.t, b?.t, apiOptions(c));
      assert.deepEqual(y.shape, shapes.out);
      assertAllClose(`${c.name}: forward`, y.toFloat64Array(), conv2dRef(x.v, w.v, b?.v ?? null, shapes, o), shapes.out, { atol: 1e-5, rtol: 1e-5 });

      const gy = randomTensor(shapes.out, 10 * k + 4);
      y.backward(gy.t);
      const ref = conv2dRefGrads(x.v, w.v, gy.v, shapes, o);
      assertAllClose(`${c.name}: grad x`, x.t.grad!.toFloat64Array(), ref.gx, c.x, { atol: 1e-5, rtol: 1e-5 });
      assertAllClose(`${c.name}: grad weight`, w.t.grad!.toFloat64Array(), ref.gw, c.w, { atol: 1e-4, rtol: 1e-5 });
      if (b) assertAllClose(`${c.name}: grad bias`, b.t.grad!.toFloat64Array(), ref.gb, [c.w[0]!], { atol: 1e-4, rtol: 1e-5 });
    });
  });

  test('float64 is exact to rounding', () => {
    const c = CASES[1]!;
    const x = randomTensor(c.x, 91, 'float64');
    const w = randomTensor(c.w, 92, 'float64');
    const o = refOptions(c);
    const out = T.conv2d(x.t, w.t, null, apiOptions(c));
    assertAllClose('float64 forward', out.toFloat64Array(), conv2dRef(x.v, w.v, null, { x: c.x, w: c.w, out: [...out.shape] }, o),
      out.shape, { atol: 1e-12, rtol: 1e-12 });
  });

  test('blocks of output rows (im2col larger than one block)', () => {
    // 64 channels x 3x3 taps x 96 x 96 outputs = 5.3M column entries, more than one block holds.
    const shapes: ConvShapes = { x: [1, 64, 96, 96], w: [2, 64, 3, 3], out: [1, 2, 96, 96] };
    const o: ConvRefOptions = { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 };
    const x = randomTensor(shapes.x, 101, 'float32', true);
    const w = randomTensor(shapes.w, 102, 'float32', true);
    const y = T.conv2d(x.t, w.t, null, { padding: 1 });
    assertAllClose('blocked forward', y.toFloat64Array(), conv2dRef(x.v, w.v, null, shapes, o), shapes.out, { atol: 1e-4, rtol: 1e-4 });
    const gy = randomTensor(shapes.out, 103);
    y.backward(gy.t);
    const ref = conv2dRefGrads(x.v, w.v, gy.v, shapes, o);
    assertAllClose('blocked grad x', x.t.grad!.toFloat64Array(), ref.gx, shapes.x, { atol: 1e-4, rtol: 1e-4 });
    assertAllClose('blocked grad weight', w.t.grad!.toFloat64Array(), ref.gw, shapes.w, { atol: 1e-2, rtol: 1e-4 });
  });

  test('strided (non-contiguous) input and weight views', () => {
    const x = randomTensor([2, 5, 6, 3], 111, 'float32');
    const w = randomTensor([3, 4, 3, 2], 112, 'float32');
    const xv = T.permute(x.t, [0, 3, 1, 2]); // [2, 3, 5, 6]
    const wv = T.transpose(w.t, 1, 2); // [3, 3, 4, 2]
    const dense = T.conv2d(T.contiguous(xv), T.contiguous(wv), null, { padding: [1, 0] });
    const strided = T.conv2d(xv, wv, null, { padding: [1, 0] });
    assert.deepEqual(strided.toArray(), dense.toArray());
  });

  test('unbatched [C, H, W] input', () => {
    const x = randomTensor([3, 5, 5], 121, 'float32');
    const w = randomTensor([2, 3, 3, 3], 122, 'float32');
    const y = T.conv2d(x.t, w.t, null, { padding: 1 });
    assert.deepEqual(y.shape, [2, 5, 5]);
    const batched = T.conv2d(T.unsqueeze(x.t, 0), w.t, null, { padding: 1 });
    assert.deepEqual(y.toArray(), batched.toArray());
  });

  test("padding 'valid' equals padding 0", () => {
    const x = randomTensor([1, 2, 6, 5], 131, 'float32');
    const w = randomTensor([2, 2, 3, 2], 132, 'float32');
    assert.deepEqual(T.conv2d(x.t, w.t, null, { padding: 'valid' }).toArray(), T.conv2d(x.t, w.t).toArray());
  });

  test('bfloat16 follows float32 within bf16 rounding', () => {
    const x = randomTensor([1, 4, 6, 6], 141, 'float32');
    const w = randomTensor([3, 4, 3, 3], 142, 'float32');
    const ref = T.conv2d(T.cast(T.cast(x.t, 'bfloat16'), 'float32'), T.cast(T.cast(w.t, 'bfloat16'), 'float32'), null, { padding: 1 });
    const y = T.conv2d(T.cast(x.t, 'bfloat16'), T.cast(w.t, 'bfloat16'), null, { padding: 1 });
    assert.equal(y.dtype, 'bfloat16');
    assertAllClose('bf16 forward', y.toFloat64Array(), ref.toFloat64Array(), ref.shape, { atol: 2e-2, rtol: 1e-2 });
  });
});

describe('conv2d gradients (finite differences, float64)', () => {
  const checks: [string, number[], number[], T.Conv2dOptions][] = [
    ['pad 1', [2, 3, 5, 4], [2, 3, 3, 3], { padding: 1 }],
    ['stride 2, dilation 2, uneven padding', [1, 2, 7, 6], [3, 2, 2, 3], { stride: 2, padding: [2, 1], dilation: 2 }],
    ['groups 2', [2, 4, 4, 5], [4, 2, 3, 2], { padding: [1, 0], groups: 2 }],
    ['depthwise', [2, 3, 5, 5], [3, 1, 3, 3], { padding: 1, groups: 3 }],
    ['patch embedding', [2, 3, 4, 6], [4, 3, 2, 2], { stride: 2 }],
    ['1x1', [2, 4, 3, 3], [3, 4, 1, 1], {}],
    ["'same', even kernel", [1, 2, 5, 4], [2, 2, 2, 4], { padding: 'same' }],
  ];
  checks.forEach(([name, xs, ws, options], k) => {
    test(name, () => {
      gradcheck(`conv2d ${name}`, (x, w, b) => T.conv2d(x, w, b, options),
        [rand64(xs, 200 + k), rand64(ws, 300 + k, 0.5), rand64([ws[0]!], 400 + k)]);
    });
  });
});

describe('conv2d argument errors', () => {
  const x = T.zeros([2, 4, 5, 5]);
  const fails = (f: () => unknown, kind: new (...args: never[]) => Error, pattern: RegExp) => assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof kind, `expected ${kind.name}, got ${String(e)}`);
    assert.match((e as Error).message, pattern);
    return true;
  });

  test('input channels do not match the weight', () => {
    fails(() => T.conv2d(x, T.zeros([3, 3, 3, 3])), ShapeError, /conv2d: weight \[3, 3, 3, 3\] expects 3 input channels, input \[2, 4, 5, 5\] has 4/);
    fails(() => T.conv2d(x, T.zeros([4, 1, 3, 3]), null, { groups: 2 }), ShapeError, /expects 2 input channels \(1 per group x 2 groups\)/);
  });
  test('groups must divide the channels', () => {
    fails(() => T.conv2d(x, T.zeros([3, 1, 3, 3]), null, { groups: 3 }), ShapeError, /groups=3 does not divide the 4 input channels/);
    fails(() => T.conv2d(x, T.zeros([3, 2, 3, 3]), null, { groups: 2 }), ShapeError, /groups=2 does not divide the 3 output channels/);
    fails(() => T.conv2d(x, T.zeros([4, 4, 3, 3]), null, { groups: 0 }), RangeError, /groups must be a positive integer, got 0/);
  });
  test('kernel larger than the padded input', () => {
    fails(() => T.conv2d(x, T.zeros([2, 4, 6, 3])), ShapeError, /kernel 6x3 .* larger than the padded input 5x5/);
    fails(() => T.conv2d(x, T.zeros([2, 4, 3, 3]), null, { dilation: 3 }), ShapeError, /spanning 7x7 with dilation \[3, 3\]/);
    assert.deepEqual(T.conv2d(x, T.zeros([2, 4, 6, 3]), null, { padding: 1 }).shape, [2, 2, 2, 5]);
  });
  test('bad ranks, bias, dtypes and options', () => {
    fails(() => T.conv2d(T.zeros([4, 5]), T.zeros([2, 4, 3, 3])), ShapeError, /input must be \[N, C, H, W\]/);
    fails(() => T.conv2d(x, T.zeros([2, 4, 3])), ShapeError, /weight must be \[Cout, Cin\/groups, kH, kW\], got \[2, 4, 3\]/);
    fails(() => T.conv2d(x, T.zeros([2, 4, 3, 3]), T.zeros([3])), ShapeError, /bias must be \[2\] .* got \[3\]/);
    fails(() => T.conv2d(x, T.zeros([2, 4, 3, 3], { dtype: 'float64' })), TypeError, /weight is float64 but input is float32/);
    fails(() => T.conv2d(T.zeros([1, 1, 3, 3], { dtype: 'int32' }), T.zeros([1, 1, 1, 1])), TypeError, /input must be a floating tensor/);
    fails(() => T.conv2d(x, T.zeros([2, 4, 3, 3]), null, { stride: 0 }), RangeError, /stride must be an integer >= 1/);
    fails(() => T.conv2d(x, T.zeros([2, 4, 3, 3]), null, { padding: [-1, 0] }), RangeError, /padding must be an integer >= 0/);
    fails(() => T.conv2d(x, T.zeros([2, 4, 3, 3]), null, { padding: 'same', stride: 2 }), RangeError, /'same' needs stride 1/);
  });
});
