/**
 * selectiveScan against PyTorch: test/fixtures/make_scan_fixture.py runs a plain-torch
 * selective_scan_ref in float64 and stores inputs, output, final state and every input gradient.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/index.js';

// Compiled to dist/test/ops/, so the repository root is three levels up.
const JSON_PATH = fileURLToPath(new URL('../../../test/fixtures/scan_reference.json', import.meta.url));

interface FixtureTensor {
  shape: number[];
  data: number[];
}

interface FixtureCase {
  name: string;
  deltaSoftplus: boolean;
  tensors: Map<string, FixtureTensor>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNumberArray(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'number');
}

function parseFixture(text: string): FixtureCase[] {
  const root: unknown = JSON.parse(text);
  assert.ok(isRecord(root) && Array.isArray(root['cases']), 'fixture JSON has a "cases" list');
  return root['cases'].map((item: unknown): FixtureCase => {
    assert.ok(isRecord(item) && typeof item['name'] === 'string' && typeof item['delta_softplus'] === 'boolean'
      && isRecord(item['tensors']), 'fixture case layout');
    const tensors = new Map<string, FixtureTensor>();
    for (const [key, value] of Object.entries(item['tensors'])) {
      assert.ok(isRecord(value) && isNumberArray(value['shape']) && isNumberArray(value['data']), `${item['name']}: tensor ${key}`);
      tensors.set(key, { shape: value['shape'], data: value['data'] });
    }
    return { name: item['name'], deltaSoftplus: item['delta_softplus'], tensors };
  });
}

function assertClose(what: string, actual: Float64Array, expected: FixtureTensor, tol: number): void {
  assert.equal(actual.length, expected.data.length, `${what}: element count`);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const e = expected.data[i]!;
    const err = Math.abs(actual[i]! - e);
    worst = Math.max(worst, err);
    if (!(err <= tol * (1 + Math.abs(e)))) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, PyTorch gives ${e} (max abs error so far ${worst})`);
    }
  }
}

test('selectiveScan matches the PyTorch reference: output, final state and every gradient', () => {
  if (!fs.existsSync(JSON_PATH)) {
    assert.fail(`fixture missing: ${JSON_PATH}. Run \`python3 test/fixtures/make_scan_fixture.py\` on the GPU machine `
      + '(it needs torch only) and commit test/fixtures/scan_reference.json.');
  }
  const cases = parseFixture(fs.readFileSync(JSON_PATH, 'utf8'));
  assert.ok(cases.length >= 3, 'fixture has at least three cases');
  for (const c of cases) {
    const get = (key: string): FixtureTensor => {
      const t = c.tensors.get(key);
      assert.ok(t, `${c.name}: fixture lacks "${key}"`);
      return t;
    };
    const leaf = (key: string): T.Tensor | null => {
      const t = c.tensors.get(key);
      return t ? T.tensor(t.data, { dtype: 'float64', shape: t.shape, requiresGrad: true }) : null;
    };
    const names = ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias'];
    const inputs = new Map(names.map((n) => [n, leaf(n)]));
    const required = (n: string): T.Tensor => {
      const t = inputs.get(n);
      assert.ok(t, `${c.name}: fixture lacks input "${n}"`);
      return t;
    };
    const [out, last] = T.selectiveScan(required('u'), required('delta'), required('A'), required('B'), required('C'), {
      D: inputs.get('D'), z: inputs.get('z'), deltaBias: inputs.get('delta_bias'),
      deltaSoftplus: c.deltaSoftplus, returnLastState: true,
    });
    assertClose(`${c.name}: out`, out.toFloat64Array(), get('out'), 1e-10);
    assertClose(`${c.name}: last_state`, last.toFloat64Array(), get('last_state'), 1e-10);
    const dout = get('dout');
    out.backward(T.tensor(dout.data, { dtype: 'float64', shape: dout.shape }));
    for (const [name, t] of inputs) {
      if (!t) continue;
      assert.ok(t.grad, `${c.name}: ${name} received a gradient`);
      assertClose(`${c.name}: grad_${name}`, t.grad.toFloat64Array(), get(`grad_${name}`), 1e-9);
    }
  }
});
