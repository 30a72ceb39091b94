/**
 * Packing of GEMM operands into the micro-panel layout the kernel streams (see kernel.ts),
 * in wasm, from a raw copy of each operand in the heap.
 *
 * A micro-panel of width W (MR for A, NR for B) over a K block of kc steps is stored k-major:
 * panel[k * W + w] = op(A)[w0 + w, k0 + k] for A (w = row of C) or op(B)[k0 + k, w0 + w] for B
 * (w = column of C). Consecutive panels follow each other, each kc * W floats long. Lanes
 * beyond the matrix edge are zeros, so the kernel always computes full tiles.
 *
 * Both operands reduce to two source orientations:
 *   contiguous  op(X)[w, k] = src[k * ld + w] (A transposed, B not): each step copies W
 *               adjacent floats with v128 moves;
 *   strided     op(X)[w, k] = src[w * ld + k] (A not transposed, B transposed): a transpose;
 *               each step gathers one float from each of W row pointers, unrolled 4 steps
 *               with constant offsets.
 * One function per width and orientation fills a full panel: (src, ldBytes, dst, kc).
 * Edge panels (fewer than W valid lanes) use the slower general `packEdge`.
 *
 * Packing runs in wasm on every thread because worker threads must not write the heap through
 * JS views: a worker's `memory.buffer` may lag behind a growth done by the main thread.
 */

import { FunctionBody } from './wasm-assembler.js';

const PARAMS = ['i32', 'i32', 'i32', 'i32'] as const;
const [SRC, LD, DST, KC] = [0, 1, 2, 3];

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

export function buildPackContiguous(width: number): FunctionBody {
  const f = new FunctionBody(PARAMS, []);
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
  return f;
}

export function buildPackStrided(width: number): FunctionBody {
  const f = new FunctionBody(PARAMS, []);
  const rows = Array.from({ length: width }, () => f.local('i32'));
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
  return f;
}

/**
 * Any panel: packEdge(src, kStride, wStride, dst, kc, lanes, width), strides in bytes:
 * panel[k * width + w] = src[k * kStride + w * wStride] for w < lanes, else 0.
 */
export function buildPackEdge(): FunctionBody {
  const f = new FunctionBody(['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'], []);
  const [src, kStride, wStride, dst, kc, lanes, width] = [0, 1, 2, 3, 4, 5, 6];
  const n = f.local('i32');
  const at = f.local('i32');
  const w = f.local('i32');
  const s = f.local('i32');
  const d = f.local('i32');
  // Zero the whole panel, then copy the valid lanes and steps over it.
  f.get(kc).get(width).i32Mul().set(n);
  f.get(dst).set(at);
  countedLoop(f, n, () => {
    f.get(at).i32Const(0).i32Store(0);
    advance(f, at, 4);
  });
  countedLoop(f, kc, () => {
    f.get(lanes).set(w);
    f.get(src).set(s);
    f.get(dst).set(d);
    countedLoop(f, w, () => {
      f.get(d).get(s).f32Load(0).f32Store(0);
      f.get(s).get(wStride).i32Add().set(s);
      advance(f, d, 4);
    });
    f.get(src).get(kStride).i32Add().set(src);
    f.get(dst).get(width).i32Const(4).i32Mul().i32Add().set(dst);
  });
  return f;
}
