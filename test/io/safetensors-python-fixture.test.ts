/**
 * Reads a file written by the reference implementation (safetensors.torch.save_file) and checks
 * every value against the JSON listing PyTorch wrote beside it. Half-precision tensors also carry
 * the float32 values PyTorch rounded, which checks dimba's rounding against PyTorch's bit for bit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isDType, viewHost, type DType } from '../../src/tensor/dtype.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/tensor/half.js';
import { SafetensorsFile, type RawTensor } from '../../src/io/safetensors/index.js';

// Compiled to dist/test/io/, so the repository root is three levels up.
const FIXTURES = new URL('../../../test/fixtures/', import.meta.url);
const TENSORS_PATH = fileURLToPath(new URL('python_safetensors.safetensors', FIXTURES));
const JSON_PATH = fileURLToPath(new URL('python_safetensors.json', FIXTURES));

type JsonValue = number | string;

interface FixtureTensor {
  name: string;
  dtype: DType;
  shape: number[];
  values: JsonValue[];
  source?: JsonValue[];
}

interface Fixture {
  metadata: Record<string, string>;
  tensors: FixtureTensor[];
}

function isValueArray(value: unknown): value is JsonValue[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'number' || typeof v === 'string');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseFixture(text: string): Fixture {
  const root: unknown = JSON.parse(text);
  assert.ok(isRecord(root) && Array.isArray(root['tensors']) && isRecord(root['metadata']), 'fixture JSON layout');
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(root['metadata'])) {
    assert.equal(typeof v, 'string', `metadata ${k}`);
    metadata[k] = String(v);
  }
  const tensors = root['tensors'].map((item: unknown): FixtureTensor => {
    assert.ok(isRecord(item), 'fixture tensor entry');
    const { name, dtype, shape, values, source } = item;
    assert.ok(typeof name === 'string', 'name');
    assert.ok(isDType(dtype), `${name}: dtype ${String(dtype)}`);
    assert.ok(Array.isArray(shape) && shape.every((d) => Number.isInteger(d)), `${name}: shape`);
    assert.ok(isValueArray(values), `${name}: values`);
    assert.ok(source === undefined || isValueArray(source), `${name}: source`);
    return { name, dtype, shape: shape.map(Number), values, source };
  });
  return { metadata, tensors };
}

function decodeFloat(value: JsonValue): number {
  switch (value) {
    case 'nan': return NaN;
    case 'inf': return Infinity;
    case '-inf': return -Infinity;
    case '-0': return -0;
  }
  assert.equal(typeof value, 'number', `unexpected float value ${JSON.stringify(value)}`);
  return Number(value);
}

/** NaN equals NaN; otherwise the same value and the same sign of zero. */
function sameFloat(actual: number, expected: number): boolean {
  return Number.isNaN(expected) ? Number.isNaN(actual) : Object.is(actual, expected);
}

function checkValues(tensor: RawTensor, expected: FixtureTensor): void {
  const numel = expected.values.length;
  const host = viewHost(tensor.dtype, tensor.data.buffer, tensor.data.byteOffset, numel);
  const fail = (i: number, got: unknown, want: unknown): never =>
    assert.fail(`${expected.name} (${expected.dtype}) index ${i}: got ${String(got)}, PyTorch wrote ${String(want)}`);

  for (let i = 0; i < numel; i++) {
    const want = expected.values[i];
    const got = host[i];
    switch (expected.dtype) {
      case 'float32':
      case 'float64':
        if (typeof got !== 'number' || !sameFloat(got, decodeFloat(want))) fail(i, got, want);
        break;
      case 'bfloat16':
      case 'float16': {
        const widen = expected.dtype === 'bfloat16' ? bf16BitsToF32 : f16BitsToF32;
        if (typeof got !== 'number' || !sameFloat(widen(got), decodeFloat(want))) fail(i, got, want);
        break;
      }
      case 'int32':
      case 'bool':
        if (got !== want) fail(i, got, want);
        break;
      case 'int64':
        if (typeof want !== 'string' || got !== BigInt(want)) fail(i, got, want);
        break;
    }
  }
}

/** dimba's float32 → half rounding must produce exactly the bits PyTorch stored. */
function checkRounding(tensor: RawTensor, expected: FixtureTensor, source: JsonValue[]): void {
  const bits = new Uint16Array(tensor.data.buffer, tensor.data.byteOffset, source.length);
  const narrow = expected.dtype === 'bfloat16' ? f32ToBf16Bits : f32ToF16Bits;
  for (let i = 0; i < source.length; i++) {
    const value = decodeFloat(source[i]);
    if (Number.isNaN(value)) continue;
    const ours = narrow(value);
    if (ours !== bits[i]) {
      assert.fail(`${expected.name}: ${value} rounds to 0x${ours.toString(16)} in dimba but 0x${bits[i].toString(16)} in PyTorch`);
    }
  }
}

test('a safetensors file written by PyTorch reads back with identical values', () => {
  const missing = [TENSORS_PATH, JSON_PATH].filter((p) => !fs.existsSync(p));
  if (missing.length > 0) {
    assert.fail(
      `fixture missing: ${missing.join(', ')}. Run \`python3 test/fixtures/make_safetensors_fixture.py\` on the GPU ` +
        'machine (it needs torch and safetensors) and commit both outputs.',
    );
  }
  const fixture = parseFixture(fs.readFileSync(JSON_PATH, 'utf8'));
  assert.ok(fixture.tensors.length >= 7, 'fixture lists a tensor of every dtype');
  const dtypes = new Set(fixture.tensors.map((t) => t.dtype));
  for (const dtype of ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int64', 'bool'] as const) {
    assert.ok(dtypes.has(dtype), `fixture has a ${dtype} tensor`);
  }

  const file = SafetensorsFile.openSync(TENSORS_PATH);
  try {
    assert.deepEqual(file.metadata, fixture.metadata);
    assert.deepEqual(file.names().sort(), fixture.tensors.map((t) => t.name).sort());
    for (const expected of fixture.tensors) {
      const tensor = file.read(expected.name);
      assert.equal(tensor.dtype, expected.dtype, `${expected.name}: dtype`);
      assert.deepEqual(tensor.shape, expected.shape, `${expected.name}: shape`);
      assert.equal(expected.values.length, expected.shape.reduce((a, b) => a * b, 1), `${expected.name}: value count`);
      checkValues(tensor, expected);
      if (expected.source !== undefined) checkRounding(tensor, expected, expected.source);
    }
  } finally {
    file.close();
  }
});
