/**
 * The SIMD instructions the selective-scan kernel needs on top of the GEMM's assembler (which
 * has i32, f32 and the f32x4 load/store/add/mul/splat): f32x4 subtraction, min/max and rounding,
 * and the i32x4 steps that build 2^k in the exponent bits. Opcodes from the WebAssembly SIMD
 * opcode table (0xFD prefix).
 */

import { FunctionBody } from '../gemm/wasm-assembler.js';

function uleb(out: number[], value: number): void {
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
}

export class SimdBody extends FunctionBody {
  private simdOp(opcode: number): this {
    this.code.push(0xfd);
    uleb(this.code, opcode);
    return this;
  }

  i32Shl(): this {
    this.code.push(0x74);
    return this;
  }

  f32x4Sub(): this { return this.simdOp(0xe5); }
  f32x4Min(): this { return this.simdOp(0xe8); }
  f32x4Max(): this { return this.simdOp(0xe9); }
  f32x4Nearest(): this { return this.simdOp(0x6a); }
  i32x4TruncSatF32x4S(): this { return this.simdOp(0xf8); }
  i32x4Add(): this { return this.simdOp(0xae); }
  i32x4Shl(): this { return this.simdOp(0xab); }
}
