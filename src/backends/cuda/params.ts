/**
 * Kernel parameters in stable native memory. cuLaunchKernel takes `void **kernelParams`: one
 * pointer per parameter, to that parameter's bytes. Both live in two koffi.alloc blocks allocated
 * once; a launch writes values through typed-array views (koffi.view) and passes the pointer
 * array's address as a number, so no JS array is marshalled per launch (GPU.md: a JS array as
 * `void **` costs ~0.7 µs a call, this costs a few typed-array stores). The driver copies the
 * values during cuLaunchKernel, so one buffer serves every launch.
 */
import { koffi } from './ffi/koffi.js';

const TWO_32 = 4294967296;

export class KernelParamError extends Error {
  override name = 'KernelParamError';
}

export class KernelParams {
  /** Address of the `void *[]` to pass as cuLaunchKernel's kernelParams. */
  readonly pointerArray: number;
  private readonly base: number;
  private readonly view: DataView;
  private readonly pointers: Uint32Array;
  private at = 0;
  private count = 0;

  constructor(readonly capacityBytes = 4096, readonly maxParams = 64) {
    const k = koffi();
    this.base = Number(k.alloc('uint8_t', capacityBytes));
    this.pointerArray = Number(k.alloc('uint64_t', maxParams));
    this.view = new DataView(k.view(this.base, capacityBytes));
    this.pointers = new Uint32Array(k.view(this.pointerArray, maxParams * 8));
  }

  /** Starts a new parameter list. */
  begin(): this {
    this.at = 0;
    this.count = 0;
    return this;
  }

  /** Number of parameters written since begin(). */
  get length(): number {
    return this.count;
  }

  /** Reserves `size` bytes at `align` for the next parameter and points its slot at them. */
  private slot(size: number, align: number): number {
    const off = Math.ceil(this.at / align) * align;
    if (off + size > this.capacityBytes || this.count >= this.maxParams) {
      throw new KernelParamError(`kernel parameters exceed ${this.capacityBytes} bytes or ${this.maxParams} entries`);
    }
    const address = this.base + off;
    this.pointers[2 * this.count] = address % TWO_32;
    this.pointers[2 * this.count + 1] = Math.floor(address / TWO_32);
    this.count++;
    this.at = off + size;
    return off;
  }

  private put64(off: number, v: number): void {
    // Two 32-bit halves instead of setBigInt64: no BigInt per parameter. Exact for |v| < 2^53.
    const lo = v % TWO_32;
    const loWord = lo < 0 ? lo + TWO_32 : lo;
    this.view.setUint32(off, loWord, true);
    this.view.setInt32(off + 4, Math.floor((v - loWord) / TWO_32), true);
  }

  /** A device address (or any 64-bit integer below 2^53). */
  ptr(address: number): this {
    this.put64(this.slot(8, 8), address);
    return this;
  }

  i64(v: number): this {
    this.put64(this.slot(8, 8), v);
    return this;
  }

  /** An unsigned 64-bit value given as a BigInt (random-number counters exceed 2^53). */
  u64(v: bigint): this {
    const off = this.slot(8, 8);
    this.view.setBigUint64(off, BigInt.asUintN(64, v), true);
    return this;
  }

  i32(v: number): this {
    this.view.setInt32(this.slot(4, 4), v, true);
    return this;
  }

  u32(v: number): this {
    this.view.setUint32(this.slot(4, 4), v >>> 0, true);
    return this;
  }

  f32(v: number): this {
    this.view.setFloat32(this.slot(4, 4), v, true);
    return this;
  }

  f64(v: number): this {
    this.view.setFloat64(this.slot(8, 8), v, true);
    return this;
  }

  /** Raw little-endian bytes of the given width (fill values); `bits` holds them as unsigned. */
  bits(width: 1 | 2 | 4 | 8, bits: bigint): this {
    const off = this.slot(width, width);
    if (width === 1) this.view.setUint8(off, Number(bits));
    else if (width === 2) this.view.setUint16(off, Number(bits), true);
    else if (width === 4) this.view.setUint32(off, Number(bits), true);
    else this.view.setBigUint64(off, bits, true);
    return this;
  }

  /** A struct of int64 words passed by value (Dims, Strides in common.cuh). */
  i64Struct(words: ArrayLike<number>): this {
    const off = this.slot(words.length * 8, 8);
    for (let i = 0; i < words.length; i++) this.put64(off + 8 * i, words[i]!);
    return this;
  }

  /** The bytes written for parameter `i` (tests). */
  readBack(i: number, bytes: number): Uint8Array {
    if (i >= this.count) throw new KernelParamError(`parameter ${i} was not written (${this.count} written)`);
    const address = this.pointers[2 * i]! + this.pointers[2 * i + 1]! * TWO_32;
    const off = address - this.base;
    return new Uint8Array(this.view.buffer, this.view.byteOffset + off, bytes).slice();
  }
}
