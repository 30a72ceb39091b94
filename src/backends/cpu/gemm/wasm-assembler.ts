/**
 * A tiny WebAssembly binary writer: just the sections and instructions the GEMM kernels use
 * (i32 arithmetic and control flow, f32 scalar and f32x4 SIMD loads/stores/arithmetic, one
 * imported shared memory). Writing the bytes ourselves keeps the install free of any
 * C/Rust-to-wasm toolchain and leaves no generated artefact to keep in step with its source:
 * the kernel is built from TypeScript at first use.
 *
 * Binary format reference: the WebAssembly core specification (sections 5.x) and the
 * fixed-width SIMD proposal's opcode table (0xFD prefix).
 */

export type ValType = 'i32' | 'i64' | 'f32' | 'v128';

const VALTYPE_CODE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, v128: 0x7b };

export class WasmAssemblerError extends Error {
  override name = 'WasmAssemblerError';
}

function uleb(out: number[], value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new WasmAssemblerError(`uleb: ${value} is not a non-negative integer`);
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
}

function sleb32(out: number[], value: number): void {
  if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31) {
    throw new WasmAssemblerError(`i32.const: ${value} is not a 32-bit integer`);
  }
  value |= 0;
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return;
  }
}

function name(out: number[], text: string): void {
  const bytes = new TextEncoder().encode(text);
  uleb(out, bytes.length);
  out.push(...bytes);
}

/** Natural alignment (log2 bytes) of each memory access we emit. */
const ALIGN = { f32: 2, i32: 2, i64: 3, v128: 4 } as const;

/**
 * Body of one function. Methods append one instruction each and return `this`, so a kernel
 * reads as a list of instructions; locals are numbered after the parameters, as in wasm.
 */
export class FunctionBody {
  readonly code: number[] = [];
  private readonly locals: ValType[] = [];

  constructor(readonly params: readonly ValType[], readonly results: readonly ValType[]) {}

  /** Declares a new local and returns its index. */
  local(type: ValType): number {
    this.locals.push(type);
    return this.params.length + this.locals.length - 1;
  }

  private op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }

  private simd(opcode: number): this {
    this.code.push(0xfd);
    uleb(this.code, opcode);
    return this;
  }

  private memarg(align: number, offset: number): this {
    uleb(this.code, align);
    uleb(this.code, offset);
    return this;
  }

  // Control flow. Blocks have no result (block type 0x40).
  block(): this { return this.op(0x02, 0x40); }
  loop(): this { return this.op(0x03, 0x40); }
  if(): this { return this.op(0x04, 0x40); }
  else(): this { return this.op(0x05); }
  end(): this { return this.op(0x0b); }
  br(depth: number): this { this.op(0x0c); uleb(this.code, depth); return this; }
  brIf(depth: number): this { this.op(0x0d); uleb(this.code, depth); return this; }
  call(funcIndex: number): this { this.op(0x10); uleb(this.code, funcIndex); return this; }

  // Locals.
  get(index: number): this { this.op(0x20); uleb(this.code, index); return this; }
  set(index: number): this { this.op(0x21); uleb(this.code, index); return this; }
  tee(index: number): this { this.op(0x22); uleb(this.code, index); return this; }

  // i32.
  i32Const(value: number): this { this.op(0x41); sleb32(this.code, value); return this; }
  i32Eqz(): this { return this.op(0x45); }
  i32Ne(): this { return this.op(0x47); }
  i32LtS(): this { return this.op(0x48); }
  i32GtS(): this { return this.op(0x4a); }
  i32GeS(): this { return this.op(0x4e); }
  i32Add(): this { return this.op(0x6a); }
  i32Sub(): this { return this.op(0x6b); }
  i32Mul(): this { return this.op(0x6c); }
  i32Load(offset = 0): this { return this.op(0x28).memarg(ALIGN.i32, offset); }
  i32Store(offset = 0): this { return this.op(0x36).memarg(ALIGN.i32, offset); }

  // i64: only moves of 8 bytes (two floats, bit-exact).
  i64Load(offset = 0): this { return this.op(0x29).memarg(ALIGN.i64, offset); }
  i64Store(offset = 0): this { return this.op(0x37).memarg(ALIGN.i64, offset); }

  // f32 scalar.
  f32Load(offset = 0): this { return this.op(0x2a).memarg(ALIGN.f32, offset); }
  f32Store(offset = 0): this { return this.op(0x38).memarg(ALIGN.f32, offset); }
  f32Add(): this { return this.op(0x92); }
  f32Mul(): this { return this.op(0x94); }

  // 128-bit SIMD.
  v128Load(offset = 0): this { return this.simd(0x00).memarg(ALIGN.v128, offset); }
  v128Load32Splat(offset = 0): this { return this.simd(0x09).memarg(ALIGN.f32, offset); }
  v128Store(offset = 0): this { return this.simd(0x0b).memarg(ALIGN.v128, offset); }
  f32x4Splat(): this { return this.simd(0x13); }
  f32x4Add(): this { return this.simd(0xe4); }
  f32x4Mul(): this { return this.simd(0xe6); }

  /** The encoded body: local declarations (run-length grouped), code, `end`. */
  encode(): number[] {
    const groups: Array<[number, ValType]> = [];
    for (const type of this.locals) {
      const last = groups[groups.length - 1];
      if (last !== undefined && last[1] === type) last[0]++;
      else groups.push([1, type]);
    }
    const body: number[] = [];
    uleb(body, groups.length);
    for (const [count, type] of groups) {
      uleb(body, count);
      body.push(VALTYPE_CODE[type]);
    }
    body.push(...this.code, 0x0b);
    const out: number[] = [];
    uleb(out, body.length);
    out.push(...body);
    return out;
  }
}

interface FunctionEntry { body: FunctionBody; exportName?: string }

/**
 * A module importing one shared memory as `env.memory` and defining functions. Function
 * indices follow definition order (there are no imported functions).
 */
export class ModuleBuilder {
  private readonly functions: FunctionEntry[] = [];

  constructor(private readonly memoryMaxPages: number) {}

  /** Adds a function and returns its index; `exportName` exports it. */
  addFunction(body: FunctionBody, exportName?: string): number {
    this.functions.push({ body, exportName });
    return this.functions.length - 1;
  }

  encode(): Uint8Array {
    const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    const section = (id: number, content: number[]): void => {
      out.push(id);
      uleb(out, content.length);
      out.push(...content);
    };

    // Type section: one signature per function (duplicates are allowed and harmless).
    const types: number[] = [];
    uleb(types, this.functions.length);
    for (const { body } of this.functions) {
      types.push(0x60);
      uleb(types, body.params.length);
      for (const p of body.params) types.push(VALTYPE_CODE[p]);
      uleb(types, body.results.length);
      for (const r of body.results) types.push(VALTYPE_CODE[r]);
    }
    section(1, types);

    // Import section: env.memory, shared (limits flag 0x03 = has maximum, shared), min 1 page.
    const imports: number[] = [];
    uleb(imports, 1);
    name(imports, 'env');
    name(imports, 'memory');
    imports.push(0x02, 0x03);
    uleb(imports, 1);
    uleb(imports, this.memoryMaxPages);
    section(2, imports);

    const funcs: number[] = [];
    uleb(funcs, this.functions.length);
    this.functions.forEach((_, i) => uleb(funcs, i));
    section(3, funcs);

    const exported = this.functions.flatMap((f, i) => (f.exportName === undefined ? [] : [[f.exportName, i] as const]));
    const exports: number[] = [];
    uleb(exports, exported.length);
    for (const [exportName, index] of exported) {
      name(exports, exportName);
      exports.push(0x00);
      uleb(exports, index);
    }
    section(7, exports);

    const code: number[] = [];
    uleb(code, this.functions.length);
    for (const { body } of this.functions) code.push(...body.encode());
    section(10, code);

    return Uint8Array.from(out);
  }
}
