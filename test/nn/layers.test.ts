import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nn, tensor, randn, Generator, sum } from '../../src/index.js';

const { Linear, Conv2d, LayerNorm, RMSNorm, GroupNorm, Embedding, Dropout, Identity, SiLU, GELU, Sequential, assign_ } = nn;

function close(actual: readonly number[], expected: readonly number[], tol = 1e-5): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]!) <= tol * (1 + Math.abs(expected[i]!)), `element ${i}: ${a} vs ${expected[i]}`));
}

test('Linear matches a hand computation, with and without bias', () => {
  const lin = new Linear(3, 2);
  assign_(lin.weight, tensor([[1, 2, 3], [-1, 0, 0.5]]));
  assign_(lin.bias!, tensor([0.5, -2]));
  const x = tensor([[1, 1, 1], [2, -1, 4]]);
  // rows: [1+2+3+0.5, -1+0+0.5-2], [2-2+12+0.5, -2+0+2-2]
  close(lin.forward(x).toArray(), [6.5, -2.5, 12.5, -2]);
  const noBias = new Linear(3, 2, { bias: false });
  assert.equal(noBias.bias, null);
  assert.deepEqual(noBias.namedParameters().map(([n]) => n), ['weight']);
  assign_(noBias.weight, lin.weight);
  close(noBias.forward(x).toArray(), [6, -0.5, 12, 0]);
  assert.deepEqual(lin.forward(randn([5, 7, 3])).shape, [5, 7, 2]);
});

test('Linear and Conv2d default init follows torch: U(±1/√fan_in) for weight and bias, bias without decay', () => {
  const lin = new Linear(64, 512, { generator: new Generator(1) });
  const conv = new Conv2d(8, 64, [3, 2], { groups: 2, generator: new Generator(2) });
  for (const [w, b, fanIn] of [[lin.weight, lin.bias!, 64], [conv.weight, conv.bias!, 4 * 3 * 2]] as const) {
    const bound = 1 / Math.sqrt(fanIn);
    const values = w.toArray();
    assert.ok(values.every((v) => Math.abs(v) <= bound));
    const std = Math.sqrt(values.reduce((s, v) => s + v * v, 0) / values.length);
    assert.ok(Math.abs(std - bound / Math.sqrt(3)) < 0.05 * bound, `std ${std} vs ${bound / Math.sqrt(3)}`);
    assert.ok(b.toArray().every((v) => Math.abs(v) <= bound));
    assert.ok(b.noWeightDecay && !w.noWeightDecay);
  }
  assert.deepEqual(conv.weight.shape, [64, 4, 3, 2]);
  const again = new Linear(64, 512, { generator: new Generator(1) });
  assert.deepEqual(again.weight.toArray(), lin.weight.toArray(), 'same generator seed, same weights');
});

test('Conv2d forward matches a hand computation and honours stride/padding', () => {
  const conv = new Conv2d(1, 1, 2, { padding: 1, stride: 2 });
  assign_(conv.weight, tensor([[[[1, 2], [3, 4]]]]));
  assign_(conv.bias!, tensor([10]));
  const x = tensor([[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]]);
  // Padded input rows: 0 0 0 0 0 / 0 1 2 3 0 / 0 4 5 6 0 / 0 7 8 9 0 / 0 0 0 0 0; windows at (0,0),(0,2),(2,0),(2,2).
  const y = conv.forward(x);
  assert.deepEqual(y.shape, [1, 1, 2, 2]);
  close(y.toArray(), [10 + 4 * 1, 10 + 3 * 2 + 4 * 3, 10 + 2 * 4 + 4 * 7, 10 + 1 * 5 + 2 * 6 + 3 * 8 + 4 * 9]);
  assert.match(conv.toString(), /Conv2d\(1, 1, kernel=\[2, 2\], stride=2, padding=1/);
  assert.throws(() => new Conv2d(3, 4, 3, { groups: 2 }), /groups=2 must divide/);
});

test('LayerNorm with and without elementwise affine', () => {
  const plain = new LayerNorm(4, { elementwiseAffine: false });
  assert.deepEqual(plain.namedParameters(), []);
  const x = tensor([[1, 2, 3, 4], [-2, 0, 2, 4]]);
  const y = plain.forward(x).toArray();
  const mean = 2.5, varr = 1.25;
  close(y.slice(0, 4), [1, 2, 3, 4].map((v) => (v - mean) / Math.sqrt(varr + 1e-5)));
  const affine = new LayerNorm([4], { eps: 1e-5 });
  assert.deepEqual(affine.namedParameters().map(([n, p]) => [n, p.noWeightDecay, p.toArray()]), [
    ['weight', true, [1, 1, 1, 1]], ['bias', true, [0, 0, 0, 0]],
  ]);
  assign_(affine.weight!, tensor([1, 2, 1, 1]));
  assign_(affine.bias!, 1);
  const z = affine.forward(x).toArray();
  close(z.slice(0, 4), y.slice(0, 4).map((v, i) => v * [1, 2, 1, 1][i]! + 1));
  assert.deepEqual(new LayerNorm(4, { bias: false }).namedParameters().map(([n]) => n), ['weight']);
});

test('RMSNorm divides by the root mean square and scales', () => {
  const norm = new RMSNorm(2, { eps: 0 });
  assign_(norm.weight!, tensor([2, 1]));
  const y = norm.forward(tensor([[3, 4]])).toArray();
  const rms = Math.sqrt((9 + 16) / 2);
  close(y, [2 * 3 / rms, 4 / rms]);
  assert.equal(new RMSNorm(8, { elementwiseAffine: false }).numParameters(), 0);
});

test('GroupNorm normalises each group of channels per sample', () => {
  const gn = new GroupNorm(2, 4);
  assert.deepEqual(gn.parameters().map((p) => p.shape), [[4], [4]]);
  const x = randn([3, 4, 5, 5], { generator: new Generator(4) });
  const y = gn.forward(x).toArray();
  for (let n = 0; n < 3; n++) {
    for (let g = 0; g < 2; g++) {
      const start = n * 100 + g * 50;
      const part = y.slice(start, start + 50);
      const m = part.reduce((a, b) => a + b, 0) / 50;
      const v = part.reduce((a, b) => a + (b - m) ** 2, 0) / 50;
      assert.ok(Math.abs(m) < 1e-5 && Math.abs(v - 1) < 1e-3, `sample ${n} group ${g}: mean ${m}, var ${v}`);
    }
  }
  assert.throws(() => new GroupNorm(3, 4), /must divide/);
  assert.throws(() => gn.forward(randn([1, 3, 2, 2])), /expected input \[N, 4/);
});

test('Embedding looks up rows and is excluded from weight decay', () => {
  const emb = new Embedding(5, 3, { generator: new Generator(7) });
  assert.ok(emb.weight.noWeightDecay);
  const rows = emb.weight.toArray();
  const out = emb.forward(tensor([[4, 0], [2, 2]], { dtype: 'int32' }));
  assert.deepEqual(out.shape, [2, 2, 3]);
  assert.deepEqual(out.toArray(), [4, 0, 2, 2].flatMap((i) => rows.slice(3 * i, 3 * i + 3)));
});

test('Dropout: identity in eval; in training zeroes about p and scales the rest by 1/(1-p)', () => {
  const x = randn([20000], { generator: new Generator(11) });
  const xs = x.toArray();
  const drop = new Dropout(0.25, { generator: new Generator(5) });
  const y = drop.forward(x).toArray();
  const zeros = y.filter((v) => v === 0).length / y.length;
  assert.ok(Math.abs(zeros - 0.25) < 0.015, `dropped fraction ${zeros}`);
  y.forEach((v, i) => { if (v !== 0) assert.ok(Math.abs(v - xs[i]! / 0.75) < 1e-5); });
  drop.eval();
  assert.deepEqual(drop.forward(x).toArray(), xs);
  assert.throws(() => new Dropout(1.5), /p must be in \[0, 1\]/);
});

test('SiLU, GELU (exact and tanh), Identity and Sequential', () => {
  const v = [-2, -0.5, 0, 1, 3];
  const x = tensor(v);
  close(new SiLU().forward(x).toArray(), v.map((t) => t / (1 + Math.exp(-t))));
  const tanhGelu = v.map((t) => 0.5 * t * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (t + 0.044715 * t ** 3))));
  close(new GELU({ approximate: 'tanh' }).forward(x).toArray(), tanhGelu);
  const exact = new GELU().forward(x).toArray();
  close(exact, [-0.04550026, -0.15426877, 0, 0.84134475, 2.99595031]);
  assert.equal(new Identity().forward(x), x);

  const seq = new Sequential(new Linear(3, 4), new SiLU(), new Linear(4, 2));
  assert.deepEqual(seq.namedParameters().map(([n]) => n), ['0.weight', '0.bias', '2.weight', '2.bias']);
  const input = randn([2, 3]);
  const expected = seq.get(2).forward(seq.get(1).forward(seq.get(0).forward(input)));
  close(seq.forward(input).toArray(), expected.toArray());
  sum(seq.forward(input)).backward();
  assert.ok(seq.parameters().every((p) => p.grad !== null && p.grad.shape.join() === p.shape.join()));
});
