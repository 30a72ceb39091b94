import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bf16ArrayToF32,
  bf16BitsToF32,
  f16ArrayToF32,
  f16BitsToF32,
  f32ArrayToBf16,
  f32ArrayToF16,
  f32ToBf16Bits,
  f32ToF16Bits,
  roundToBf16,
  roundToF16,
} from '../../src/tensor/half.js';

const hex = (bits: number): string => '0x' + bits.toString(16).padStart(4, '0');

function isF16NaN(bits: number): boolean {
  return (bits & 0x7c00) === 0x7c00 && (bits & 0x03ff) !== 0;
}

function isBf16NaN(bits: number): boolean {
  return (bits & 0x7f80) === 0x7f80 && (bits & 0x007f) !== 0;
}

/** Deterministic xorshift32 so a failure reproduces. */
function makeRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

/** Random float32 values drawn as random bit patterns, so every exponent (and NaN) shows up. */
function randomFloat32(n: number, seed: number): Float32Array {
  const next = makeRandom(seed);
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = next();
  // Mix in values near the float16 range, where the interesting rounding happens.
  for (let i = 0; i < n; i += 3) bits[i] = 0x33000000 + (next() % 0x14800000);
  return new Float32Array(bits.buffer);
}

test('float16: every bit pattern survives f16 -> f32 -> f16', () => {
  for (let bits = 0; bits < 65536; bits++) {
    const value = f16BitsToF32(bits);
    const back = f32ToF16Bits(value);
    if (isF16NaN(bits)) {
      assert.ok(Number.isNaN(value), `${hex(bits)} should widen to NaN, got ${value}`);
      assert.ok(isF16NaN(back), `${hex(bits)} should narrow back to a NaN, got ${hex(back)}`);
    } else if (back !== bits) {
      assert.fail(`${hex(bits)} -> ${value} -> ${hex(back)}`);
    }
  }
});

test('bfloat16: every bit pattern survives bf16 -> f32 -> bf16', () => {
  for (let bits = 0; bits < 65536; bits++) {
    const value = bf16BitsToF32(bits);
    const back = f32ToBf16Bits(value);
    if (isBf16NaN(bits)) {
      assert.ok(Number.isNaN(value), `${hex(bits)} should widen to NaN, got ${value}`);
      assert.ok(isBf16NaN(back), `${hex(bits)} should narrow back to a NaN, got ${hex(back)}`);
    } else if (back !== bits) {
      assert.fail(`${hex(bits)} -> ${value} -> ${hex(back)}`);
    }
  }
});

test('float16: widening gives the values the format defines', () => {
  assert.equal(f16BitsToF32(0x3c00), 1);
  assert.equal(f16BitsToF32(0xc000), -2);
  assert.equal(f16BitsToF32(0x7bff), 65504);
  assert.equal(f16BitsToF32(0x0400), 2 ** -14);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x03ff), 1023 * 2 ** -24);
  assert.equal(f16BitsToF32(0x7c00), Infinity);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  // Values increase monotonically across the positive patterns (catches a wrong subnormal path).
  for (let bits = 1; bits < 0x7c00; bits++) {
    assert.ok(f16BitsToF32(bits) > f16BitsToF32(bits - 1), `not increasing at ${hex(bits)}`);
  }
});

test('float16: ties round to even', () => {
  // Spacing of float16 just above 1 is 2^-10; 2^-11 is exactly halfway.
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00, '1 + 2^-11 ties down to even 1');
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02, '1 + 3*2^-11 ties up to even 1 + 2^-9');
  assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01, 'just above the tie rounds up');
  assert.equal(f32ToF16Bits(1 + 2 ** -11 - 2 ** -20), 0x3c00, 'just below the tie rounds down');
  assert.equal(f32ToF16Bits(-(1 + 3 * 2 ** -11)), 0xbc02, 'negative ties mirror positive ones');
  // Subnormal ties: halfway between 1 and 2 units of 2^-24 goes to 2, between 2 and 3 to 2.
  assert.equal(f32ToF16Bits(1.5 * 2 ** -24), 0x0002);
  assert.equal(f32ToF16Bits(2.5 * 2 ** -24), 0x0002);
  // Rounding the largest subnormal up carries into the smallest normal.
  assert.equal(f32ToF16Bits(1023.5 * 2 ** -24), 0x0400);
});

/** Float32 value with bits `bits`. */
function f32FromBits(bits: number): number {
  return new Float32Array(new Uint32Array([bits]).buffer)[0];
}

function f32Bits(value: number): number {
  return new Uint32Array(new Float32Array([value]).buffer)[0];
}

/**
 * For every pair of adjacent finite 16-bit values: the midpoint goes to the even one, and the
 * float32 neighbours of the midpoint go to the nearer one. Midpoints need one more mantissa bit
 * than the 16-bit format has, so they are exact in float32.
 */
function checkAllTies(name: string, lastFinite: number, widen: (bits: number) => number, narrow: (x: number) => number): void {
  for (let bits = 0; bits < lastFinite; bits++) {
    const mid = (widen(bits) + widen(bits + 1)) / 2;
    const midBits = f32Bits(mid);
    assert.equal(f32FromBits(midBits), mid, `${name}: midpoint above ${hex(bits)} not exact in float32`);
    const even = (bits & 1) === 0 ? bits : bits + 1;
    const got = [narrow(mid), narrow(f32FromBits(midBits - 1)), narrow(f32FromBits(midBits + 1))];
    const want = [even, bits, bits + 1];
    if (got.some((g, i) => g !== want[i])) {
      assert.fail(`${name}: around midpoint above ${hex(bits)}: got ${got.map(hex)} want ${want.map(hex)}`);
    }
  }
}

test('float16: every tie and its neighbours round correctly', () => {
  checkAllTies('f16', 0x7bff, f16BitsToF32, f32ToF16Bits);
});

test('bfloat16: every tie and its neighbours round correctly', () => {
  checkAllTies('bf16', 0x7f7f, bf16BitsToF32, f32ToBf16Bits);
});

test('float16: overflow boundary', () => {
  assert.equal(f32ToF16Bits(65504), 0x7bff);
  assert.equal(f32ToF16Bits(65519.99), 0x7bff, 'below the 65520 tie stays finite');
  assert.equal(f32ToF16Bits(65520), 0x7c00, 'the tie at 65520 goes to Inf');
  assert.equal(f32ToF16Bits(-65520), 0xfc00);
  assert.equal(f32ToF16Bits(1e6), 0x7c00);
  assert.equal(f32ToF16Bits(3.4e38), 0x7c00);
  assert.equal(f32ToF16Bits(1e300), 0x7c00, 'float64 beyond float32 range becomes Inf first');
});

test('float16: underflow, zero signs, Inf and NaN', () => {
  assert.equal(f32ToF16Bits(2 ** -24), 0x0001, 'smallest subnormal is exact');
  assert.equal(f32ToF16Bits(2 ** -25), 0x0000, 'half the smallest subnormal ties to zero');
  assert.equal(f32ToF16Bits(2 ** -25 + 2 ** -40), 0x0001, 'just above half rounds up');
  assert.equal(f32ToF16Bits(-(2 ** -25)), 0x8000, 'negative underflow keeps its sign');
  assert.equal(f32ToF16Bits(1e-45), 0x0000, 'float32 subnormals underflow to zero');
  assert.equal(f32ToF16Bits(0), 0x0000);
  assert.equal(f32ToF16Bits(-0), 0x8000);
  assert.equal(f32ToF16Bits(Infinity), 0x7c00);
  assert.equal(f32ToF16Bits(-Infinity), 0xfc00);
  assert.ok(isF16NaN(f32ToF16Bits(NaN)));
  assert.ok((f32ToF16Bits(NaN) & 0x0200) !== 0, 'NaN is quiet');
});

test('bfloat16: ties round to even, with exact values', () => {
  // Spacing of bfloat16 just above 1 is 2^-7; 2^-8 is halfway.
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80, '1 + 2^-8 ties down to even 1');
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82, '1 + 3*2^-8 ties up');
  assert.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(f32ToBf16Bits(-(1 + 3 * 2 ** -8)), 0xbf82);
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(bf16BitsToF32(0x4049), 3.140625);
  assert.equal(f32ToBf16Bits(Math.PI), 0x4049);
  assert.equal(f32ToBf16Bits(1 / 3), 0x3eab);
});

test('bfloat16: range edges, subnormals, zero signs, Inf and NaN', () => {
  // Largest float32 rounds past the largest bfloat16 (0x7f7f) to Inf.
  assert.equal(f32ToBf16Bits(3.4028234663852886e38), 0x7f80);
  assert.equal(bf16BitsToF32(0x7f7f), 3.3895313892515355e38);
  assert.equal(f32ToBf16Bits(3.3895313892515355e38), 0x7f7f);
  // Float32 subnormals keep their top 7 mantissa bits, rounded.
  assert.equal(f32ToBf16Bits(2 ** -133), 0x0001, 'smallest bfloat16 subnormal');
  assert.equal(bf16BitsToF32(0x0001), 2 ** -133);
  assert.equal(f32ToBf16Bits(2 ** -134), 0x0000, 'half of it ties to zero');
  assert.equal(f32ToBf16Bits(3 * 2 ** -134), 0x0002, '1.5 units ties to 2');
  assert.equal(f32ToBf16Bits(2 ** -149), 0x0000, 'smallest float32 subnormal underflows');
  assert.equal(f32ToBf16Bits(-0), 0x8000);
  assert.ok(Object.is(bf16BitsToF32(0x8000), -0));
  assert.equal(f32ToBf16Bits(-Infinity), 0xff80);
  assert.equal(bf16BitsToF32(0xff80), -Infinity);
  assert.ok(isBf16NaN(f32ToBf16Bits(NaN)));
  assert.ok((f32ToBf16Bits(NaN) & 0x0040) !== 0, 'NaN is quiet');
});

test('bfloat16: a NaN whose payload sits in the low bits stays NaN in bulk', () => {
  // Truncation alone would turn 0x7f800001 into Inf; the quiet bit must be forced.
  const src = new Float32Array(new Uint32Array([0x7f800001, 0xff800001]).buffer);
  const out = f32ArrayToBf16(src);
  assert.equal(out[0], 0x7fc0);
  assert.equal(out[1], 0xffc0);
});

test('float16: a NaN whose payload sits in the low bits stays NaN in bulk', () => {
  const src = new Float32Array(new Uint32Array([0x7f800001, 0xffc00000]).buffer);
  const out = f32ArrayToF16(src);
  assert.equal(out[0], 0x7e00);
  assert.equal(out[1], 0xfe00);
});

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  const ab = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const bb = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ab.length; i++) {
    const bothNaN = Number.isNaN(a[i]) && Number.isNaN(b[i]);
    if (!bothNaN && ab[i] !== bb[i]) {
      assert.fail(`${what}: index ${i}: ${ab[i].toString(16)} vs ${bb[i].toString(16)}`);
    }
  }
}

test('bulk conversions agree with the scalar ones on random data', () => {
  const src = randomFloat32(200_000, 12345);
  const f16 = f32ArrayToF16(src);
  const bf16 = f32ArrayToBf16(src);
  for (let i = 0; i < src.length; i++) {
    const expectF16 = f32ToF16Bits(src[i]);
    const expectBf16 = f32ToBf16Bits(src[i]);
    if (Number.isNaN(src[i])) {
      assert.ok(isF16NaN(f16[i]) && isBf16NaN(bf16[i]), `NaN at ${i}`);
      continue;
    }
    if (f16[i] !== expectF16) assert.fail(`f16 index ${i}: bulk ${hex(f16[i])} scalar ${hex(expectF16)}`);
    if (bf16[i] !== expectBf16) assert.fail(`bf16 index ${i}: bulk ${hex(bf16[i])} scalar ${hex(expectBf16)}`);
  }

  const wideF16 = f16ArrayToF32(f16);
  const wideBf16 = bf16ArrayToF32(bf16);
  const scalarF16 = Float32Array.from(f16, (b) => f16BitsToF32(b));
  const scalarBf16 = Float32Array.from(bf16, (b) => bf16BitsToF32(b));
  sameBits(wideF16, scalarF16, 'f16ArrayToF32');
  sameBits(wideBf16, scalarBf16, 'bf16ArrayToF32');

  sameBits(roundToF16(src), wideF16, 'roundToF16');
  sameBits(roundToBf16(src), wideBf16, 'roundToBf16');
  const src64 = Float64Array.from(src);
  sameBits(roundToBf16(src64), wideBf16, 'roundToBf16 from float64');
});

test('bulk conversions write into a given dst and work on subarray views', () => {
  const backing = new Float32Array([7, 1, 2 ** -24, 65520, 7]);
  const view = backing.subarray(1, 4);
  const dst = new Uint16Array(3);
  assert.equal(f32ArrayToF16(view, dst), dst);
  assert.deepEqual([...dst], [0x3c00, 0x0001, 0x7c00]);
  const wide = new Float32Array(5).subarray(1, 4);
  f16ArrayToF32(dst, wide);
  assert.deepEqual([...wide], [1, 2 ** -24, Infinity]);
  // In-place rounding through a float32 array aliasing its source.
  const values = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8]);
  roundToBf16(values, values);
  assert.deepEqual([...values], [1, 1 + 2 ** -6]);
});

test('bulk conversions reject a dst of the wrong length', () => {
  assert.throws(() => f32ArrayToBf16(new Float32Array(3), new Uint16Array(2)), /dst has 2 elements but src has 3/);
  assert.throws(() => f16ArrayToF32(new Uint16Array(1), new Float32Array(4)), RangeError);
});
