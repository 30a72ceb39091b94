/**
 * The selective scan's state loops as WebAssembly with 128-bit SIMD, built at first use, for
 * float32 compute: four channels (d..d+3) of one batch entry and group per call, channel d + i
 * in lane i of float32x4 vectors, the arithmetic of the CUDA kernel (float32 states and sums).
 * Per lane the operations are the reference's (kernels/scan.ts) in its order: per state n, time
 * ascending for the states, descending for the adjoint sweep.
 *
 * exp(v): Cody-Waite range reduction v = k ln2 + r with |r| <= ln2/2, a degree-7 Taylor
 * polynomial (truncation < 8e-9, below float32 rounding) and 2^k built in the exponent bits.
 * v is clamped to [-87, 88] first so that 2^k stays a normal float: exp of anything below -87
 * returns ~1.6e-38 instead of a subnormal or 0, a decay that makes no difference to a state.
 *
 * Layouts (byte addresses; "quad" arrays interleave the four channels, 16 bytes per step):
 *   dt, dtu, u, gy, y, gdt, du, decays: quad [L];  states: quad [L + 1], states[0] = x_{-1} = 0;
 *   a, last, dA: quad [N];  B, C: float32 [N, L] rows of the group;
 *   dB, dC: quad [N, L] per-lane partial sums over the channels of a call (added to, summed over
 *   lanes by the caller);  k: the constant table.
 */

import { ModuleBuilder } from '../gemm/wasm-assembler.js';
import { MAX_PAGES } from '../gemm/kernel.js';
import { wasm, type WasmMemory, type WasmModule } from '../gemm/wasm-api.js';
import { SimdBody } from './simd-body.js';

export class ScanWasmError extends Error {
  override name = 'ScanWasmError';
}

/** Constant table: 16-byte slots, all lanes equal. */
const K_LO = 0;
const K_HI = 1;
const K_LOG2E = 2;
const K_LN2_HI = 3;
const K_LN2_LO = 4;
/** int32 127 in every lane (the exponent bias). */
const K_BIAS = 5;
/** Polynomial coefficients, highest degree first: 1/7!, 1/6!, ..., 1/1!, 1/0!. */
const K_POLY = 6;
const DEGREE = 7;
export const SCAN_CONSTANT_BYTES = 16 * (K_POLY + DEGREE + 1);

/** Writes the constant table at byte address `at` of `buffer`. */
export function writeScanConstants(buffer: SharedArrayBuffer, at: number): void {
  const f = new Float32Array(buffer, at, SCAN_CONSTANT_BYTES / 4);
  const set = (slot: number, v: number): void => {
    f.fill(v, 4 * slot, 4 * slot + 4);
  };
  set(K_LO, -87);
  set(K_HI, 88);
  set(K_LOG2E, Math.LOG2E);
  // ln 2 split so that k * LN2_HI is exact in float32 for |k| <= 127 (LN2_HI has 9 significant bits).
  set(K_LN2_HI, 0.693359375);
  set(K_LN2_LO, Math.LN2 - 0.693359375);
  new Int32Array(buffer, at + 16 * K_BIAS, 4).fill(127);
  let factorial = 1;
  for (let j = 0; j <= DEGREE; j++) {
    if (j > 0) factorial *= j;
    set(K_POLY + DEGREE - j, 1 / factorial);
  }
}

interface ExpTemps { v: number; kf: number; r: number }

/** [v] -> [exp(v)] lane-wise, reading constants from the table at local `k`. */
function emitExp(f: SimdBody, k: number, tmp: ExpTemps): void {
  const c = (slot: number): SimdBody => f.get(k).v128Load(16 * slot);
  f.set(tmp.v);
  f.get(tmp.v);
  c(K_LO).f32x4Max();
  c(K_HI).f32x4Min().set(tmp.v);
  f.get(tmp.v);
  c(K_LOG2E).f32x4Mul().f32x4Nearest().set(tmp.kf);
  f.get(tmp.v).get(tmp.kf);
  c(K_LN2_HI).f32x4Mul().f32x4Sub().get(tmp.kf);
  c(K_LN2_LO).f32x4Mul().f32x4Sub().set(tmp.r);
  c(K_POLY);
  for (let j = 1; j <= DEGREE; j++) {
    f.get(tmp.r).f32x4Mul();
    c(K_POLY + j).f32x4Add();
  }
  f.get(tmp.kf).i32x4TruncSatF32x4S();
  c(K_BIAS).i32x4Add().i32Const(23).i32x4Shl();
  f.f32x4Mul();
}

/** while (counter != 0) { body; counter -= 1 } */
function countdown(f: SimdBody, counter: number, body: () => void): void {
  f.block().loop();
  f.get(counter).i32Eqz().brIf(1);
  body();
  f.get(counter).i32Const(1).i32Sub().set(counter);
  f.br(0).end().end();
}

function step(f: SimdBody, pointer: number, bytes: number): void {
  f.get(pointer).i32Const(bytes).i32Add().set(pointer);
}

/** Zeroes the quad array at `base` (len steps), using locals p and t. */
function zeroQuads(f: SimdBody, base: number, len: number, p: number, t: number, zero: number): void {
  f.get(base).set(p);
  f.get(len).set(t);
  countdown(f, t, () => {
    f.get(p).get(zero).v128Store(0);
    step(f, p, 16);
  });
}

/** [v] -> ; quad at `pointer` += v. */
function accumulate(f: SimdBody, pointer: number, tmp: number): void {
  f.set(tmp);
  f.get(pointer).get(pointer).v128Load(0).get(tmp).f32x4Add().v128Store(0);
}

/**
 * forward(dt, dtu, a, B, C, y, last, k, N, L): y[t] = Σ_n C_nt x_nt (y zeroed first),
 * last[n] = x_{L-1,n}.
 */
function buildForward(): SimdBody {
  const f = new SimdBody(Array<'i32'>(10).fill('i32'), []);
  const [DT, DTU, A, B, C, Y, LAST, K, N, L] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const i32 = (): number => f.local('i32');
  const [t, pdt, pdtu, pb, pc, py, rowBytes] = [i32(), i32(), i32(), i32(), i32(), i32(), i32()];
  const [x, av, zero] = [f.local('v128'), f.local('v128'), f.local('v128')];
  const tmp: ExpTemps = { v: f.local('v128'), kf: f.local('v128'), r: f.local('v128') };
  zeroQuads(f, Y, L, py, t, zero);
  f.get(L).i32Const(2).i32Shl().set(rowBytes);
  countdown(f, N, () => {
    f.get(A).v128Load(0).set(av);
    f.get(zero).set(x);
    f.get(DT).set(pdt);
    f.get(DTU).set(pdtu);
    f.get(B).set(pb);
    f.get(C).set(pc);
    f.get(Y).set(py);
    f.get(L).set(t);
    countdown(f, t, () => {
      // x = exp(Δ_t a) x + (Δ_t u_t) B_t
      f.get(pdt).v128Load(0).get(av).f32x4Mul();
      emitExp(f, K, tmp);
      f.get(x).f32x4Mul().get(pdtu).v128Load(0).get(pb).v128Load32Splat(0).f32x4Mul().f32x4Add().set(x);
      // y_t += C_t x
      f.get(py).get(py).v128Load(0).get(pc).v128Load32Splat(0).get(x).f32x4Mul().f32x4Add().v128Store(0);
      step(f, pdt, 16);
      step(f, pdtu, 16);
      step(f, py, 16);
      step(f, pb, 4);
      step(f, pc, 4);
    });
    f.get(LAST).get(x).v128Store(0);
    step(f, LAST, 16);
    step(f, A, 16);
    f.get(B).get(rowBytes).i32Add().set(B);
    f.get(C).get(rowBytes).i32Add().set(C);
  });
  return f;
}

/**
 * backward(dt, dtu, u, gy, a, B, C, dB, dC, y, gdt, du, dA, states, decays, k, N, L): per state n,
 * recompute x and the decays (adding C x into y, zeroed first), then sweep time in reverse with
 * the adjoint λ (gdt zeroed first; du, dB, dC added to; dA[n] written).
 */
function buildBackward(): SimdBody {
  const f = new SimdBody(Array<'i32'>(18).fill('i32'), []);
  const [DT, DTU, U, GY, A, B, C, DB, DC, Y, GDT, DU, DA, XS, ES, K, N, L] =
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17];
  const i32 = (): number => f.local('i32');
  const [t, pdt, pdtu, pu, pgy, pb, pc, pdb, pdc, py, pgdt, pdu, pxs, pes] =
    [i32(), i32(), i32(), i32(), i32(), i32(), i32(), i32(), i32(), i32(), i32(), i32(), i32(), i32()];
  const [rowBytes, quadRowBytes, off4, off16] = [i32(), i32(), i32(), i32()];
  const v128 = (): number => f.local('v128');
  const [x, av, zero, e, lam, nextE, dA, cur, prev, g, bv, lex, tmp] =
    [v128(), v128(), v128(), v128(), v128(), v128(), v128(), v128(), v128(), v128(), v128(), v128(), v128()];
  const temps: ExpTemps = { v: v128(), kf: v128(), r: v128() };

  zeroQuads(f, Y, L, py, t, zero);
  zeroQuads(f, GDT, L, py, t, zero);
  f.get(L).i32Const(2).i32Shl().set(rowBytes);
  f.get(L).i32Const(4).i32Shl().set(quadRowBytes);
  f.get(L).i32Const(1).i32Sub().i32Const(2).i32Shl().set(off4);
  f.get(off4).i32Const(2).i32Shl().set(off16);
  countdown(f, N, () => {
    f.get(A).v128Load(0).set(av);
    // Recompute: states[t + 1] = x_t, decays[t] = exp(Δ_t a); y_t += C_t x_t.
    f.get(zero).set(x);
    f.get(XS).get(zero).v128Store(0);
    f.get(DT).set(pdt);
    f.get(DTU).set(pdtu);
    f.get(B).set(pb);
    f.get(C).set(pc);
    f.get(Y).set(py);
    f.get(ES).set(pes);
    f.get(XS).i32Const(16).i32Add().set(pxs);
    f.get(L).set(t);
    countdown(f, t, () => {
      f.get(pdt).v128Load(0).get(av).f32x4Mul();
      emitExp(f, K, temps);
      f.set(e);
      f.get(pes).get(e).v128Store(0);
      f.get(e).get(x).f32x4Mul().get(pdtu).v128Load(0).get(pb).v128Load32Splat(0).f32x4Mul().f32x4Add().set(x);
      f.get(pxs).get(x).v128Store(0);
      f.get(py).get(py).v128Load(0).get(pc).v128Load32Splat(0).get(x).f32x4Mul().f32x4Add().v128Store(0);
      for (const p of [pdt, pdtu, py, pes, pxs]) step(f, p, 16);
      step(f, pb, 4);
      step(f, pc, 4);
    });
    // Reverse sweep from t = L - 1; cur = x_t, prev = x_{t-1}.
    f.get(zero).set(lam);
    f.get(zero).set(nextE);
    f.get(zero).set(dA);
    f.get(XS).get(off16).i32Add().v128Load(16).set(cur);
    for (const [p, base] of [[pdt, DT], [pdtu, DTU], [pu, U], [pgy, GY], [pgdt, GDT], [pdu, DU], [pes, ES], [pxs, XS], [pdb, DB], [pdc, DC]] as const) {
      f.get(base).get(off16).i32Add().set(p);
    }
    for (const [p, base] of [[pb, B], [pc, C]] as const) f.get(base).get(off4).i32Add().set(p);
    f.get(L).set(t);
    countdown(f, t, () => {
      f.get(pgy).v128Load(0).set(g);
      f.get(pb).v128Load32Splat(0).set(bv);
      // λ = λ e_{t+1} + gy_t C_t
      f.get(lam).get(nextE).f32x4Mul().get(g).get(pc).v128Load32Splat(0).f32x4Mul().f32x4Add().set(lam);
      // dC_t += gy_t x_t
      f.get(g).get(cur).f32x4Mul();
      accumulate(f, pdc, tmp);
      f.get(pes).v128Load(0).set(e);
      f.get(pxs).v128Load(0).set(prev);
      // ∂x_t/∂(Δ_t a) = e x_{t-1}
      f.get(lam).get(e).f32x4Mul().get(prev).f32x4Mul().set(lex);
      // gdt_t += a lex + λ B_t u_t
      f.get(pgdt).get(pgdt).v128Load(0).get(av).get(lex).f32x4Mul().get(lam).get(bv).f32x4Mul().get(pu).v128Load(0).f32x4Mul()
        .f32x4Add().f32x4Add().v128Store(0);
      // dA += Δ_t lex
      f.get(dA).get(pdt).v128Load(0).get(lex).f32x4Mul().f32x4Add().set(dA);
      // dB_t += λ Δ_t u_t
      f.get(lam).get(pdtu).v128Load(0).f32x4Mul();
      accumulate(f, pdb, tmp);
      // du_t += λ Δ_t B_t
      f.get(pdu).get(pdu).v128Load(0).get(lam).get(pdt).v128Load(0).f32x4Mul().get(bv).f32x4Mul().f32x4Add().v128Store(0);
      f.get(e).set(nextE);
      f.get(prev).set(cur);
      for (const p of [pdt, pdtu, pu, pgy, pgdt, pdu, pes, pxs, pdb, pdc]) step(f, p, -16);
      for (const p of [pb, pc]) step(f, p, -4);
    });
    f.get(DA).get(dA).v128Store(0);
    step(f, DA, 16);
    step(f, A, 16);
    for (const row of [B, C]) f.get(row).get(rowBytes).i32Add().set(row);
    for (const row of [DB, DC]) f.get(row).get(quadRowBytes).i32Add().set(row);
  });
  return f;
}

export interface ScanWasm {
  forward(dt: number, dtu: number, a: number, B: number, C: number, y: number, last: number, k: number, N: number, L: number): void;
  backward(dt: number, dtu: number, u: number, gy: number, a: number, B: number, C: number, dB: number, dC: number,
    y: number, gdt: number, du: number, dA: number, states: number, decays: number, k: number, N: number, L: number): void;
}

let compiled: WasmModule | undefined;

function scanModule(): WasmModule {
  if (compiled === undefined) {
    const builder = new ModuleBuilder(MAX_PAGES);
    builder.addFunction(buildForward(), 'forward');
    builder.addFunction(buildBackward(), 'backward');
    compiled = new wasm.Module(builder.encode());
  }
  return compiled;
}

const instances = new WeakMap<WasmMemory, ScanWasm>();

function isFunction(v: unknown): v is (...args: number[]) => void {
  return typeof v === 'function';
}

/** The kernel instantiated over `memory` (once per memory and thread). */
export function scanWasm(memory: WasmMemory): ScanWasm {
  let kernel = instances.get(memory);
  if (kernel === undefined) {
    const { exports } = new wasm.Instance(scanModule(), { env: { memory } });
    const { forward, backward } = exports;
    if (!isFunction(forward) || !isFunction(backward)) throw new ScanWasmError('selective-scan wasm module lacks its forward/backward exports');
    kernel = { forward, backward };
    instances.set(memory, kernel);
  }
  return kernel;
}
