/**
 * Conversions between float32 and the two 16-bit float formats the engine stores as raw bits.
 *
 *   bfloat16: 1 sign, 8 exponent, 7 mantissa bits — the top half of a float32, same range.
 *   float16 (IEEE binary16): 1 sign, 5 exponent (bias 15), 10 mantissa bits; largest finite
 *   value 65504, smallest subnormal 2^-24.
 *
 * Narrowing rounds to nearest, ties to even (what PyTorch and CUDA's __float2half_rn /
 * __float2bfloat16_rn do), so tensors converted here match tensors converted on the GPU bit
 * for bit. A JS number input is first rounded to float32 (Math.fround), so converting a float64
 * rounds twice; that is what `torch.tensor(x, dtype=float32).to(bfloat16)` does too.
 *
 * NaNs narrow to quiet NaNs with the sign and the top payload bits kept. Scalar functions pass
 * through a JS number, which may canonicalise a NaN payload; the bulk functions work on bit
 * patterns and keep payloads.
 */

// One shared scratch word lets the scalar functions reinterpret float32 bits without allocating.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

const F32_EXP_MASK = 0x7f800000;
const F32_ABS_MASK = 0x7fffffff;

/** Narrows a float32 bit pattern to a bfloat16 bit pattern. */
export function f32BitsToBf16Bits(bits: number): number {
  if ((bits & F32_ABS_MASK) > F32_EXP_MASK) {
    // NaN: truncating could clear every mantissa bit and turn it into Inf, so force the quiet bit.
    return ((bits >>> 16) | 0x0040) & 0xffff;
  }
  // Adding 0x7fff plus the lowest kept bit rounds ties to even; a carry out of the mantissa
  // correctly bumps the exponent, up to Inf for values above the largest bfloat16.
  const roundingBias = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + roundingBias) >>> 16) & 0xffff;
}

/** Narrows a float32 bit pattern to a float16 bit pattern. */
export function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & F32_ABS_MASK;

  if (abs >= F32_EXP_MASK) {
    if (abs === F32_EXP_MASK) return sign | 0x7c00;
    // NaN: keep the top 10 payload bits and set the quiet bit so the result stays NaN.
    return sign | 0x7e00 | ((abs >>> 13) & 0x03ff);
  }
  // 65520 (0x477ff000) is halfway between 65504 and 2^16; the tie goes to the even neighbour,
  // 2^16, which float16 cannot hold, so everything from 65520 up overflows to Inf.
  if (abs >= 0x477ff000) return sign | 0x7c00;

  if (abs >= 0x38800000) {
    // Normal float16 (|x| >= 2^-14): rebias the exponent from 127 to 15 (subtract 112 << 23)
    // and drop 13 mantissa bits, rounding ties to even. A mantissa carry moves into the exponent.
    let half = (abs - 0x38000000) >>> 13;
    const rest = abs & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half += 1;
    return sign | half;
  }

  // |x| <= 2^-25 is at most half the smallest subnormal (2^-24); the tie at exactly 2^-25
  // goes to the even neighbour, zero. Float32 subnormals land here as well.
  if (abs <= 0x33000000) return sign;

  // Float16 subnormal: the result is round(|x| / 2^-24). With the implicit bit restored,
  // |x| = mantissa * 2^(e - 150), so the quotient is mantissa >> (126 - e). Here
  // 102 <= e <= 112, so the shift is 14..24.
  const exponent = abs >>> 23;
  const mantissa = (abs & 0x007fffff) | 0x00800000;
  const shift = 126 - exponent;
  let half = mantissa >>> shift;
  const rest = mantissa & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  // A carry to 0x400 is the smallest normal float16, which is the right answer.
  if (rest > halfway || (rest === halfway && (half & 1) === 1)) half += 1;
  return sign | half;
}

/** Widens a float16 bit pattern to a float32 bit pattern (exact). */
export function f16BitsToF32Bits(bits: number): number {
  const sign = (bits & 0x8000) << 16;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x03ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal: shift the mantissa up until its leading one becomes the implicit bit; each
  // shift lowers the float32 exponent by one from that of 2^-14 (biased 113).
  let m = mantissa;
  let e = 113;
  while ((m & 0x0400) === 0) {
    m <<= 1;
    e -= 1;
  }
  return (sign | (e << 23) | ((m & 0x03ff) << 13)) >>> 0;
}

/** Rounds `x` to float32, then to the nearest bfloat16; returns its 16-bit pattern. */
export function f32ToBf16Bits(x: number): number {
  scratchF32[0] = x;
  return f32BitsToBf16Bits(scratchU32[0]);
}

/** The value of a bfloat16 bit pattern (exact). */
export function bf16BitsToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0];
}

/** Rounds `x` to float32, then to the nearest float16; returns its 16-bit pattern. */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  return f32BitsToF16Bits(scratchU32[0]);
}

/** The value of a float16 bit pattern (exact). */
export function f16BitsToF32(bits: number): number {
  scratchU32[0] = f16BitsToF32Bits(bits & 0xffff);
  return scratchF32[0];
}

// All 65536 float16 → float32 results, built on first use (256 KiB): a table lookup is several
// times faster than the branchy widening in bulk loops.
let f16Table: Uint32Array | undefined;

function f16ToF32Table(): Uint32Array {
  if (f16Table === undefined) {
    const table = new Uint32Array(65536);
    for (let bits = 0; bits < 65536; bits++) table[bits] = f16BitsToF32Bits(bits);
    f16Table = table;
  }
  return f16Table;
}

function checkLengths(fn: string, srcLength: number, dstLength: number): void {
  if (dstLength !== srcLength) {
    throw new RangeError(`${fn}: dst has ${dstLength} elements but src has ${srcLength}; they must match`);
  }
}

/** Float32 values as the raw bits of a same-length Uint32Array view (no copy). */
function bitsOf(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/** Narrows every element to bfloat16 bits; writes into `dst` if given (same length as `src`). */
export function f32ArrayToBf16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const out = dst ?? new Uint16Array(src.length);
  checkLengths('f32ArrayToBf16', src.length, out.length);
  const bits = bitsOf(src);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToBf16Bits(bits[i]);
  return out;
}

/** Widens bfloat16 bits to float32; writes into `dst` if given (same length as `src`). */
export function bf16ArrayToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const out = dst ?? new Float32Array(src.length);
  checkLengths('bf16ArrayToF32', src.length, out.length);
  // Writing bits (not numbers) keeps NaN payloads intact.
  const outBits = bitsOf(out);
  for (let i = 0; i < src.length; i++) outBits[i] = src[i] << 16;
  return out;
}

/** Narrows every element to float16 bits; writes into `dst` if given (same length as `src`). */
export function f32ArrayToF16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const out = dst ?? new Uint16Array(src.length);
  checkLengths('f32ArrayToF16', src.length, out.length);
  const bits = bitsOf(src);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

/** Widens float16 bits to float32; writes into `dst` if given (same length as `src`). */
export function f16ArrayToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const out = dst ?? new Float32Array(src.length);
  checkLengths('f16ArrayToF32', src.length, out.length);
  const table = f16ToF32Table();
  const outBits = bitsOf(out);
  for (let i = 0; i < src.length; i++) outBits[i] = table[src[i]];
  return out;
}

/**
 * Rounds each value to the nearest bfloat16 and stores it as float32 — what a bfloat16
 * round trip on the GPU does. Float64 input is rounded to float32 first. `dst` may alias `src`.
 */
export function roundToBf16(src: Float32Array | Float64Array, dst?: Float32Array): Float32Array {
  return roundThrough(src, dst, 'roundToBf16', (bits) => (f32BitsToBf16Bits(bits) << 16) >>> 0);
}

/** Like roundToBf16, for float16. Values beyond ±65504 become ±Inf. */
export function roundToF16(src: Float32Array | Float64Array, dst?: Float32Array): Float32Array {
  const table = f16ToF32Table();
  return roundThrough(src, dst, 'roundToF16', (bits) => table[f32BitsToF16Bits(bits)]);
}

function roundThrough(
  src: Float32Array | Float64Array,
  dst: Float32Array | undefined,
  fn: string,
  roundBits: (bits: number) => number,
): Float32Array {
  const out = dst ?? new Float32Array(src.length);
  checkLengths(fn, src.length, out.length);
  const outBits = bitsOf(out);
  if (src instanceof Float32Array) {
    const srcBits = bitsOf(src);
    for (let i = 0; i < src.length; i++) outBits[i] = roundBits(srcBits[i]);
  } else {
    for (let i = 0; i < src.length; i++) {
      scratchF32[0] = src[i];
      outBits[i] = roundBits(scratchU32[0]);
    }
  }
  return out;
}
