/**
 * Packing routines in wasm (the layout is described in pack.ts): one function per operand
 * width W (MR for A, NR for B) and source orientation, each filling one full micro-panel of W
 * lanes and kcp steps from a raw copy of the operand in the heap. Partial panels at the matrix
 * edge are rare and packed in JS (pack.ts).
 *
 *   contiguous  op(X)[w, k] = src[k * ld + w]: each step copies W adjacent floats (v128 moves);
 *   strided     op(X)[w, k] = src[w * ld + k]: a transpose; each step gathers one float from
 *               each of W row pointers, unrolled 4 steps with constant offsets.
 * Both end by zero-filling steps kc .. kcp. Signature: (src, ldBytes, dst, kc, kcp), bytes.
 */

import type { FunctionBody } from './wasm-assembler.js';
import { FunctionBody as Body } from './wasm-assembler.js';

const PARAMS = ['i32', 'i32', 'i32', 'i32', 'i32'] as const;
const [SRC, LD, DST, KC, KCP] = [0, 1, 2, 3, 4];

/** Byte chunks (16, 8, 4) covering one step of W floats. */
function chunks(width: number): Array<[offset: number, size: 16 | 8 | 4]> {
  const out: Array<[number, 16 | 8 | 4]> = [];
  let at = 0;
  for (const size of [16, 8, 4] as const) {
    while (width * 4 - at >= size) {
      out.push([at, size]);
      at += size;
    }
  }
  return out;
}

/** `while (counter != 0) { body; counter -= 1 }` */
function countedLoop(f: FunctionBody, counter: number, body: () => void): void {
  f.block().loop();
  f.get(counter).i32Eqz().brIf(1);
  body();
  f.get(counter).i32Const(1).i32Sub().set(counter);
  f.br(0).end().end();
}

function advance(f: FunctionBody, pointer: number, bytes: number): void {
  f.get(pointer).i32Const(bytes).i32Add().set(pointer);
}

/** Zero-fills steps kc .. kcp of the panel (dst already points at step kc). */
function zeroPadding(f: FunctionBody, width: number, pad: number): void {
  countedLoop(f, pad, () => {
    for (const [offset, size] of chunks(width)) {
      f.get(DST);
      if (size === 16) f.v128Zero().v128Store(offset);
      else if (size === 8) f.i64Zero().i64Store(offset);
      else f.i32Const(0).i32Store(offset);
    }
    advance(f, DST, width * 4);
  });
}

export function buildPackContiguous(width: number): FunctionBody {
  const f = new Body(PARAMS, []);
  const pad = f.local('i32');
  f.get(KCP).get(KC).i32Sub().set(pad);
  countedLoop(f, KC, () => {
    for (const [offset, size] of chunks(width)) {
      f.get(DST).get(SRC);
      if (size === 16) f.v128Load(offset).v128Store(offset);
      else if (size === 8) f.i64Load(offset).i64Store(offset);
      else f.f32Load(offset).f32Store(offset);
    }
    f.get(SRC).get(LD).i32Add().set(SRC);
    advance(f, DST, width * 4);
  });
  zeroPadding(f, width, pad);
  return f;
}

export function buildPackStrided(width: number): FunctionBody {
  const f = new Body(PARAMS, []);
  const pad = f.local('i32');
  const rows = Array.from({ length: width }, () => f.local('i32'));
  f.get(KCP).get(KC).i32Sub().set(pad);
  f.get(SRC).set(rows[0]!);
  for (let w = 1; w < width; w++) f.get(rows[w - 1]!).get(LD).i32Add().set(rows[w]!);

  const steps = (count: number): void => {
    for (let u = 0; u < count; u++) {
      for (let w = 0; w < width; w++) f.get(DST).get(rows[w]!).f32Load(4 * u).f32Store(4 * (u * width + w));
    }
    for (const row of rows) advance(f, row, 4 * count);
    advance(f, DST, 4 * count * width);
  };
  // Four steps at a time while at least four remain, then one at a time.
  f.block().loop();
  f.get(KC).i32Const(4).i32LtS().brIf(1);
  steps(4);
  f.get(KC).i32Const(4).i32Sub().set(KC);
  f.br(0).end().end();
  countedLoop(f, KC, () => steps(1));
  zeroPadding(f, width, pad);
  return f;
}
