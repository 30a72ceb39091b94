/**
 * conv2d and interpolate against PyTorch: forward outputs and input gradients for an upstream
 * gradient gy, all float64, from test/fixtures/conv_interp_reference.json (written by
 * test/fixtures/make_conv_fixture.py).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/index.js';
import { assertAllClose } from './image-reference.js';

// Compiled to dist/test/ops/, so the repository root is three levels up.
const JSON_PATH = fileURLToPath(new URL('../../../test/fixtures/conv_interp_reference.json', import.meta.url));

interface Stored {
  shape: number[];
  data: number[];
}

interface ConvCase {
  name: string;
  x: Stored;
  weight: Stored;
  bias: Stored | null;
  options: { stride?: number[]; padding?: number[] | 'same' | 'valid'; dilation?: number[]; groups?: number };
  gy: Stored;
  out: Stored;
  gx: Stored;
  gw: Stored;
  gb: Stored | null;
}

interface InterpCase {
  name: string;
  x: Stored;
  options: { size?: number[]; scaleFactor?: number | number[]; mode: 'nearest' | 'bilinear'; alignCorners?: boolean };
  gy: Stored;
  out: Stored;
  gx: Stored;
}

interface Fixture {
  torch: string;
  conv2d: ConvCase[];
  interpolate: InterpCase[];
}

function loadFixture(): Fixture {
  if (!fs.existsSync(JSON_PATH)) {
    assert.fail(`fixture missing: ${JSON_PATH}. Run \`python3 test/fixtures/make_conv_fixture.py\` on the GPU machine ` +
      '(it needs torch) and commit its output.');
  }
  return JSON.parse(fs.readFileSync(JSON_PATH, 'utf8')) as Fixture;
}

const leaf = (s: Stored) => T.tensor(s.data, { dtype: 'float64', shape: s.shape, requiresGrad: true });
const given = (s: Stored) => T.tensor(s.data, { dtype: 'float64', shape: s.shape });
const pair = (v: number[] | undefined): [number, number] | undefined => (v ? [v[0]!, v[1]!] : undefined);
// Outputs were stored with 12 significant digits.
const TOL = { atol: 1e-10, rtol: 1e-9 };

function check(label: string, actual: T.Tensor | null, expected: Stored): void {
  assert.ok(actual, `${label}: no gradient was computed`);
  assert.deepEqual(actual.shape, expected.shape, `${label}: shape`);
  assertAllClose(label, actual.toFloat64Array(), expected.data, expected.shape, TOL);
}

test('conv2d matches PyTorch (forward and every input gradient)', () => {
  const fixture = loadFixture();
  assert.ok(fixture.conv2d.length >= 4, 'fixture has conv2d cases');
  for (const c of fixture.conv2d) {
    const x = leaf(c.x);
    const w = leaf(c.weight);
    const b = c.bias ? leaf(c.bias) : null;
    const o = c.options;
    const padding = o.padding === 'same' || o.padding === 'valid' ? o.padding : pair(o.padding);
    const y = T.conv2d(x, w, b, { stride: pair(o.stride), padding, dilation: pair(o.dilation), groups: o.groups });
    check(`${c.name} (torch ${fixture.torch}): out`, y, c.out);
    y.backward(given(c.gy));
    check(`${c.name}: grad x`, x.grad, c.gx);
    check(`${c.name}: grad weight`, w.grad, c.gw);
    if (b) check(`${c.name}: grad bias`, b.grad, c.gb!);
  }
});

test('interpolate matches PyTorch (forward and input gradient)', () => {
  const fixture = loadFixture();
  assert.ok(fixture.interpolate.length >= 4, 'fixture has interpolate cases');
  for (const c of fixture.interpolate) {
    const x = leaf(c.x);
    const o = c.options;
    const y = T.interpolate(x, {
      size: pair(o.size),
      scaleFactor: typeof o.scaleFactor === 'number' ? o.scaleFactor : pair(o.scaleFactor),
      mode: o.mode,
      alignCorners: o.alignCorners,
    });
    check(`${c.name} (torch ${fixture.torch}): out`, y, c.out);
    y.backward(given(c.gy));
    check(`${c.name}: grad x`, x.grad, c.gx);
  }
});
