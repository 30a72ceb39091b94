import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nn, empty, zeros, Generator } from '../../src/index.js';
import { erf, erfinv, normalCdf } from '../../src/nn/erf.js';

const { init } = nn;

function stats(values: readonly number[]): { mean: number; std: number; min: number; max: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
  return { mean, std, min: values.reduce((a, b) => Math.min(a, b)), max: values.reduce((a, b) => Math.max(a, b)) };
}

/** Relative tolerance on std for ~240k samples: the sampling error is about 0.15%. */
const STD_TOL = 0.01;

test('xavierUniform_: U(±gain·√(6/(fan_in+fan_out))) with the matching std', () => {
  const w = empty([400, 600]);
  init.xavierUniform_(w, { gain: 2, generator: new Generator(1) });
  const bound = 2 * Math.sqrt(6 / 1000);
  const s = stats(w.toArray());
  assert.ok(s.max <= bound && s.min >= -bound, `range [${s.min}, ${s.max}] vs ±${bound}`);
  assert.ok(s.max > 0.99 * bound && s.min < -0.99 * bound, 'fills the whole range');
  assert.ok(Math.abs(s.std / (bound / Math.sqrt(3)) - 1) < STD_TOL, `std ${s.std}`);
  assert.ok(Math.abs(s.mean) < 0.01 * bound, `mean ${s.mean}`);
});

test('xavierNormal_ and kaimingNormal_ stds', () => {
  const w = empty([300, 800]);
  init.xavierNormal_(w, { generator: new Generator(2) });
  let s = stats(w.toArray());
  assert.ok(Math.abs(s.std / Math.sqrt(2 / 1100) - 1) < STD_TOL, `xavier std ${s.std}`);
  init.kaimingNormal_(w, { nonlinearity: 'relu', generator: new Generator(3) });
  s = stats(w.toArray());
  assert.ok(Math.abs(s.std / Math.sqrt(2 / 800) - 1) < STD_TOL, `kaiming std ${s.std}`);
  init.kaimingNormal_(w, { mode: 'fanOut', nonlinearity: 'relu', generator: new Generator(3) });
  s = stats(w.toArray());
  assert.ok(Math.abs(s.std / Math.sqrt(2 / 300) - 1) < STD_TOL, `kaiming fanOut std ${s.std}`);
});

test('kaimingUniform_ with a=√5 (torch Linear default) has bound 1/√fan_in; conv fans include the receptive field', () => {
  const w = empty([64, 8, 5, 6]);
  assert.deepEqual(init.calculateFanInAndFanOut(w), { fanIn: 240, fanOut: 1920 });
  init.kaimingUniform_(w, { a: Math.sqrt(5), generator: new Generator(4) });
  const bound = 1 / Math.sqrt(240);
  const s = stats(w.toArray());
  assert.ok(s.max <= bound && s.min >= -bound && s.max > 0.99 * bound);
  assert.ok(Math.abs(s.std / (bound / Math.sqrt(3)) - 1) < STD_TOL, `std ${s.std}`);
  assert.throws(() => init.kaimingUniform_(empty([5])), /at least 2 dims/);
});

test('normal_ and uniform_ statistics; float64 tensors are filled in float64', () => {
  const t = empty([200000], { dtype: 'float64' });
  init.normal_(t, 3, 0.5, { generator: new Generator(5) });
  let s = stats(t.toArray());
  assert.equal(t.dtype, 'float64');
  assert.ok(Math.abs(s.mean - 3) < 0.005 && Math.abs(s.std / 0.5 - 1) < STD_TOL, `normal mean ${s.mean} std ${s.std}`);
  init.uniform_(t, -1, 3, { generator: new Generator(6) });
  s = stats(t.toArray());
  assert.ok(s.min >= -1 && s.max < 3 && Math.abs(s.mean - 1) < 0.01, `uniform mean ${s.mean}`);
  assert.ok(Math.abs(s.std / (4 / Math.sqrt(12)) - 1) < STD_TOL);
});

test('zeros_, ones_ and constant_ are exact, also for bfloat16 and strided views', () => {
  const t = empty([3, 4], { dtype: 'bfloat16' });
  assert.deepEqual(init.zeros_(t).toArray(), new Array(12).fill(0));
  assert.deepEqual(init.ones_(t).toArray(), new Array(12).fill(1));
  assert.deepEqual(init.constant_(t, -0.375).toArray(), new Array(12).fill(-0.375));
  const base = zeros([3, 4]);
  init.constant_(base.T.narrow(0, 1, 2), 7);
  assert.deepEqual(base.toArray(), [0, 7, 7, 0, 0, 7, 7, 0, 0, 7, 7, 0]);
});

test('truncNormal_ stays in [a, b] with the truncated-normal mean and std', () => {
  const t = empty([200000]);
  init.truncNormal_(t, { std: 1, a: -2, b: 2, generator: new Generator(7) });
  let s = stats(t.toArray());
  assert.ok(s.min >= -2 && s.max <= 2);
  // Symmetric truncation at ±β: Var = 1 - 2βφ(β)/(2Φ(β) - 1).
  const phi2 = Math.exp(-2) / Math.sqrt(2 * Math.PI);
  const expectedStd = Math.sqrt(1 - (4 * phi2) / (2 * normalCdf(2) - 1));
  assert.ok(Math.abs(s.std / expectedStd - 1) < STD_TOL && Math.abs(s.mean) < 0.005, `std ${s.std} vs ${expectedStd}`);
  // One-sided [0, 3]: mean = (φ(0) - φ(3)) / (Φ(3) - Φ(0)).
  init.truncNormal_(t, { a: 0, b: 3, generator: new Generator(8) });
  s = stats(t.toArray());
  const phi = (x: number) => Math.exp(-x * x / 2) / Math.sqrt(2 * Math.PI);
  const expectedMean = (phi(0) - phi(3)) / (normalCdf(3) - 0.5);
  assert.ok(s.min >= 0 && s.max <= 3 && Math.abs(s.mean - expectedMean) < 0.005, `mean ${s.mean} vs ${expectedMean}`);
  // A far tail interval, where rejection sampling would stall.
  init.truncNormal_(t, { a: 4, b: 4.5, generator: new Generator(9) });
  s = stats(t.toArray());
  assert.ok(s.min >= 4 && s.max <= 4.5);
});

test('initialisers are reproducible per generator seed and differ across seeds', () => {
  const a = init.normal_(empty([100]), 0, 1, { generator: new Generator(42) }).toArray();
  const b = init.normal_(empty([100]), 0, 1, { generator: new Generator(42) }).toArray();
  const c = init.normal_(empty([100]), 0, 1, { generator: new Generator(43) }).toArray();
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('calculateGain matches torch', () => {
  assert.equal(init.calculateGain('linear'), 1);
  assert.equal(init.calculateGain('relu'), Math.SQRT2);
  assert.equal(init.calculateGain('tanh'), 5 / 3);
  assert.ok(Math.abs(init.calculateGain('leaky_relu', Math.sqrt(5)) - Math.sqrt(1 / 3)) < 1e-15);
  assert.ok(Math.abs(init.calculateGain('leaky_relu') - Math.sqrt(2 / 1.0001)) < 1e-15);
});

test('erf and erfinv agree with reference values and invert each other', () => {
  // erf(0.5), erf(1), erf(2) to 10 digits.
  for (const [x, v] of [[0.5, 0.5204998778], [1, 0.8427007929], [2, 0.9953222650]] as const) {
    assert.ok(Math.abs(erf(x) - v) < 2e-7 && Math.abs(erf(-x) + v) < 2e-7, `erf(${x})`);
  }
  assert.ok(Math.abs(erfinv(0.5) - 0.4769362762) < 1e-7);
  assert.ok(Math.abs(erfinv(-0.999) + 2.3267537655) < 1e-5);
  for (let y = -0.99; y < 0.99; y += 0.01) assert.ok(Math.abs(erf(erfinv(y)) - y) < 5e-7, `erf(erfinv(${y}))`);
  assert.equal(erfinv(1), Infinity);
  assert.ok(Number.isNaN(erfinv(1.5)));
});
