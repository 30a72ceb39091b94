/**
 * The 32-bit index math of the elementwise and copy kernels, on the CPU: the host's magic-number
 * division (layout.ts fastDivisor, modelled by fastDivide exactly as common.cuh fast_div computes
 * it) against Math.floor, and the plans planMap / planCopy make, replayed in JavaScript the way
 * map_rows, map_strided and copy.cu's tile kernel walk them: every output element written exactly
 * once, from the operand offsets the strides give. test/cuda/elementwise.test.ts runs the kernels
 * themselves on a GPU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  INT32_LIMIT, TILE, fastDivide, fastDivisor, fitsInt32, planCopy, planMap, umulhi32,
  type MapOperand, type MergedLayout, type RowsPlan, type TilePlan,
} from '../../src/backends/cuda/layout.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('umulhi32 is the high word of the 64-bit product', () => {
  const r = lcg(1);
  const cases: [number, number][] = [[0, 0], [1, 1], [2 ** 32 - 1, 2 ** 32 - 1], [2 ** 31 - 1, 2 ** 32 - 1], [65535, 65537]];
  for (let i = 0; i < 2000; i++) cases.push([Math.floor(r() * 2 ** 32), Math.floor(r() * 2 ** 32)]);
  for (const [a, b] of cases) assert.equal(umulhi32(a, b), Number((BigInt(a) * BigInt(b)) >> 32n), `umulhi(${a}, ${b})`);
});

test('fast division equals Math.floor for every divisor kind and dividends up to 2^31 - 1', () => {
  const r = lcg(2);
  const divisors = [1, 2, 3, 5, 6, 7, 9, 10, 25, 31, 32, 33, 100, 127, 128, 129, 641, 1000, 1152, 2304, 4608, 65535, 65536, 65537,
    294912, 589824, 1179648, 2654208, 4718592, 2 ** 30 - 1, 2 ** 30, 2 ** 30 + 1, 2 ** 31 - 2, INT32_LIMIT];
  for (let i = 0; i < 300; i++) divisors.push(1 + Math.floor(r() * 2 ** (1 + Math.floor(r() * 31)) ) % INT32_LIMIT);
  for (const d of divisors) {
    const word = fastDivisor(d);
    const magic = word % 2 ** 32;
    assert.ok(magic >= 1 && magic < 2 ** 32, `magic for ${d} out of range: ${magic}`);
    const ns = [0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, INT32_LIMIT, INT32_LIMIT - 1, INT32_LIMIT - (INT32_LIMIT % d), INT32_LIMIT - (INT32_LIMIT % d) - 1];
    for (let k = 0; k < 200; k++) ns.push(Math.floor(r() * 2 ** 31));
    for (const n of ns) {
      if (n < 0 || n > INT32_LIMIT) continue;
      // The kernel's unsigned add must not wrap.
      assert.ok(umulhi32(n, magic) + n < 2 ** 32);
      assert.equal(fastDivide(n, word), Math.floor(n / d), `${n} / ${d}`);
    }
  }
  // Exhaustive over small values.
  for (let d = 1; d <= 300; d++) {
    const word = fastDivisor(d);
    for (let n = 0; n <= 3000; n++) assert.equal(fastDivide(n, word), Math.floor(n / d), `${n} / ${d}`);
  }
});

test('fastDivisor rejects divisors outside [1, 2^31)', () => {
  for (const d of [0, -1, 2 ** 31, 1.5, NaN]) assert.throws(() => fastDivisor(d), /fastDivisor: divisor/);
});

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

function op(strides: readonly number[], bytes: number, address = 0x7f0000000000): MapOperand {
  return { strides, address, bytes };
}

/** Offsets of row-major element i in each operand, by plain division. */
function directOffsets(shape: readonly number[], strides: readonly (readonly number[])[], i: number): number[] {
  const o = strides.map(() => 0);
  for (let d = shape.length - 1; d >= 0; d--) {
    const r = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
    strides.forEach((s, j) => { o[j]! += r * s[d]!; });
  }
  return o;
}

/** common.cuh map_offsets: fast division for dims nd-1..1, none for dim 0. */
function mapOffsets(i: number, layout: MergedLayout, nd: number): number[] {
  const o = layout.strides.map(() => 0);
  for (let k = nd - 1; k >= 1; k--) {
    const q = fastDivide(i, fastDivisor(layout.sizes[k]!));
    const r = i - q * layout.sizes[k]!;
    layout.strides.forEach((s, j) => { o[j]! += r * s[k]!; });
    i = q;
  }
  layout.strides.forEach((s, j) => { o[j]! += i * (s[0] ?? 0); });
  return o;
}

/**
 * Replays a rows plan as map_rows does (chunks, then the tail), checking each (output, inputs)
 * offset tuple against the direct mapping; every output offset must come up exactly once.
 */
function replayRows(plan: RowsPlan, shape: readonly number[], strides: readonly (readonly number[])[]): void {
  const n = shape.reduce((a, b) => a * b, 1);
  const want = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const o = directOffsets(shape, strides, i);
    want.set(o[0]!, o);
  }
  const seen = new Set<number>();
  const visit = (o: number[]) => {
    const w = want.get(o[0]!);
    assert.ok(w, `output offset ${o[0]} is outside the tensor`);
    assert.deepEqual(o, w, `operand offsets for output offset ${o[0]}`);
    assert.ok(!seen.has(o[0]!), `output offset ${o[0]} written twice`);
    seen.add(o[0]!);
  };
  const L = plan.layout;
  const k = L.sizes.length - 1;
  const rowWord = fastDivisor(Math.max(1, plan.rowChunks));
  for (let t = 0; t < plan.chunks; t++) {
    const row = fastDivide(t, rowWord);
    const col = (t - row * plan.rowChunks) * plan.vec;
    const base = mapOffsets(row, L, k);
    for (let e = 0; e < plan.vec; e++) visit(base.map((b, j) => b + ((plan.bcast >> j) & 1 ? 0 : col + e)));
    // Vector accesses must be aligned to the vector width (in elements) where contiguous.
    base.forEach((b, j) => { if (!((plan.bcast >> j) & 1)) assert.equal((b + col) % plan.vec, 0, `operand ${j} chunk misaligned`); });
  }
  for (let t = 0; t < plan.tail; t++) {
    const col = plan.chunks * plan.vec + t;
    visit(L.strides.map((_, j) => ((plan.bcast >> j) & 1 ? 0 : col)));
  }
  assert.equal(seen.size, n);
}

function replayStrided(layout: MergedLayout, shape: readonly number[], strides: readonly (readonly number[])[]): void {
  const n = shape.reduce((a, b) => a * b, 1);
  for (let i = 0; i < n; i++) assert.deepEqual(mapOffsets(i, layout, layout.sizes.length), directOffsets(shape, strides, i), `element ${i}`);
}

/** Replays copy.cu tile_body: every destination element once, from the right source element. */
function replayTile(plan: TilePlan, shape: readonly number[], dst: readonly number[], src: readonly number[]): void {
  const n = shape.reduce((a, b) => a * b, 1);
  const want = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const [d, s] = directOffsets(shape, [dst, src], i);
    want.set(d!, s!);
  }
  const seen = new Set<number>();
  const wq = fastDivisor(plan.tilesQ);
  const wp = fastDivisor(plan.tilesP);
  for (let t = 0; t < plan.tiles; t++) {
    const pq = fastDivide(t, wq);
    const q0 = (t - pq * plan.tilesQ) * TILE;
    const batch = fastDivide(pq, wp);
    const p0 = (pq - batch * plan.tilesP) * TILE;
    const [od, os] = mapOffsets(batch, plan.batch, plan.batch.sizes.length);
    for (let a = 0; a < TILE; a++) {
      for (let b = 0; b < TILE; b++) {
        const p = p0 + a;
        const q = q0 + b;
        if (p >= plan.sizeP || q >= plan.sizeQ) continue;
        const d = od! + p * plan.dstP + q * plan.dstQ;
        const s = os! + p * plan.srcP + q * plan.srcQ;
        assert.equal(want.get(d), s, `destination offset ${d}`);
        assert.ok(!seen.has(d), `destination offset ${d} written twice`);
        seen.add(d);
      }
    }
  }
  assert.equal(seen.size, n);
}

test('planMap: contiguous, bias and [B,1,C] broadcasts take the vector kernel; other layouts stay strided', () => {
  // Contiguous bf16 add, one merged dim with a tail of 5 (vec 8).
  const flat = planMap([3, 99], [op([99, 1], 2), op([99, 1], 2), op([99, 1], 2)]);
  assert.equal(flat.kind, 'rows');
  const f = flat as RowsPlan;
  assert.deepEqual([f.vec, f.chunks, f.rowChunks, f.tail, f.bcast], [8, 37, 37, 1, 0]);
  replayRows(f, [3, 99], [[99, 1], [99, 1], [99, 1]]);

  // Bias [C] added to [N, C].
  const bias = planMap([64, 48], [op([48, 1], 2), op([48, 1], 2), op([0, 1], 2)]);
  assert.equal(bias.kind, 'rows');
  assert.equal((bias as RowsPlan).bcast, 0);
  replayRows(bias as RowsPlan, [64, 48], [[48, 1], [48, 1], [0, 1]]);

  // [B, L, C] * [B, 1, C] in float32 (vec 4).
  const shape = [3, 5, 12];
  const bc = planMap(shape, [op(contiguousStrides(shape), 4), op(contiguousStrides(shape), 4), op([12, 0, 1], 4)]);
  assert.equal(bc.kind, 'rows');
  assert.deepEqual((bc as RowsPlan).layout.sizes, [3, 5, 12]);
  replayRows(bc as RowsPlan, shape, [contiguousStrides(shape), contiguousStrides(shape), [12, 0, 1]]);

  // A per-row scale [N, 1] broadcast along the inner dim.
  const scale = planMap([6, 16], [op([16, 1], 4), op([16, 1], 4), op([1, 0], 4)]);
  assert.equal(scale.kind, 'rows');
  assert.equal((scale as RowsPlan).bcast, 4);
  replayRows(scale as RowsPlan, [6, 16], [[16, 1], [16, 1], [1, 0]]);

  // Several rows whose length is not a multiple of the vector width.
  assert.equal(planMap([4, 10], [op([10, 1], 2), op([20, 1], 2)]).kind, 'strided');
  // A misaligned operand (a narrowed view one element in).
  assert.equal(planMap([4, 16], [op([16, 1], 2), op([16, 1], 2, 0x7f0000000002)]).kind, 'strided');
  // A row stride that breaks chunk alignment.
  assert.equal(planMap([4, 16], [op([16, 1], 4), op([18, 1], 4)]).kind, 'strided');
  assert.equal(planMap([4, 16], [op([16, 1], 4), op([20, 1], 4)]).kind, 'rows');
  // A transposed input.
  const tr = planMap([7, 9], [op([9, 1], 4), op([1, 7], 4)]);
  assert.equal(tr.kind, 'strided');
  replayStrided((tr as { layout: MergedLayout }).layout, [7, 9], [[9, 1], [1, 7]]);
  // Past int32 offsets: the 64-bit kernels.
  assert.equal(planMap([2, 2 ** 30], [op([2 ** 30, 1], 2), op([2 ** 30, 1], 2)]).kind, 'wide');
  assert.equal(planMap([4, 8], [op([8, 1], 2), op([2 ** 30, 1], 2)]).kind, 'wide');
  assert.equal(planMap([2, 2 ** 29], [op([2 ** 29, 1], 2), op([2 ** 29, 1], 2)]).kind, 'rows');
});

test('fitsInt32 counts negative strides by magnitude', () => {
  assert.equal(fitsInt32({ sizes: [2, 2 ** 29], strides: [[-(2 ** 30), 1]] }), true);
  assert.equal(fitsInt32({ sizes: [3, 2 ** 29], strides: [[-(2 ** 30), 1]] }), false);
});

test('planMap replays strided layouts with broadcasts in every position, flips and 1-sized dims', () => {
  const r = lcg(7);
  for (let trial = 0; trial < 60; trial++) {
    const nd = 1 + Math.floor(r() * 5);
    const shape = Array.from({ length: nd }, () => 1 + Math.floor(r() * 5));
    const base = contiguousStrides(shape);
    const ops2 = [base];
    for (let j = 0; j < 2; j++) {
      // A permuted, flipped or broadcast view of the shape.
      const perm = shape.map((_, d) => d).sort(() => r() - 0.5);
      const permShape = perm.map((d) => shape[d]!);
      const ps = contiguousStrides(permShape);
      const strides = shape.map((_, d) => ps[perm.indexOf(d)]!).map((s) => (r() < 0.2 ? 0 : r() < 0.2 ? -s : s));
      ops2.push(strides);
    }
    const plan = planMap(shape, ops2.map((s) => op(s, 4)));
    assert.notEqual(plan.kind, 'wide');
    if (plan.kind === 'rows') replayRows(plan, shape, ops2);
    else if (plan.kind === 'strided') replayStrided(plan.layout, shape, ops2);
  }
});

test('planCopy: the profile transposes and flips take the tile kernel, slices the vector kernel', () => {
  // [16, 2304, 1024] read through strides [4718592, 1, 4608] (and the flipped -4608).
  for (const inner of [4608, -4608]) {
    const plan = planCopy([16, 2304, 1024], op([2304 * 1024, 1024, 1], 2), op([4718592, 1, inner], 2), { rows: true, tile: true });
    assert.equal(plan.kind, 'tile');
    const t = plan as TilePlan;
    assert.deepEqual([t.sizeP, t.sizeQ, t.srcP, t.srcQ, t.dstP, t.dstQ], [2304, 1024, 1, inner, 1024, 1]);
    assert.deepEqual(t.batch.sizes, [16]);
    assert.equal(t.tiles, 16 * 72 * 32);
  }
  // [2304, 1152, 32] strides [1152, 1, 2654208]: dims 0-1 merge into one unit-stride source dim.
  const p2 = planCopy([2304, 1152, 32], op(contiguousStrides([2304, 1152, 32]), 2), op([1152, 1, 2654208], 2), { rows: true, tile: true });
  assert.equal(p2.kind, 'tile');
  assert.deepEqual([(p2 as TilePlan).sizeP, (p2 as TilePlan).sizeQ], [2304 * 1152, 32]);
  // [4608, 32, 256] strides [1, 1179648, 4608]: a plain 2-d transpose after merging.
  const p3 = planCopy([4608, 32, 256], op(contiguousStrides([4608, 32, 256]), 4), op([1, 1179648, 4608], 4), { rows: true, tile: true });
  assert.equal(p3.kind, 'tile');
  assert.deepEqual((p3 as TilePlan).batch.sizes, []);
  // A narrowed slice: contiguous rows, strided outer dim.
  const p4 = planCopy([32, 2304, 256], op(contiguousStrides([32, 2304, 256]), 2), op([2 * 589824, 256, 1], 2), { rows: true, tile: true });
  assert.equal(p4.kind, 'rows');
  // Without typed kernels (a dynamic cast) neither fast path applies.
  assert.equal(planCopy([64, 48], op([48, 1], 4), op([1, 64], 4), { rows: false, tile: false }).kind, 'strided');
  // Tiled dims too small for a tile.
  assert.equal(planCopy([4, 100], op([100, 1], 4), op([1, 4], 4), { rows: true, tile: true }).kind, 'strided');
});

test('planCopy tiles replay exactly for odd sizes, batches, flips and a transposed destination', () => {
  const cases: [number[], number[], number[]][] = [
    // shape, destination strides, source strides
    [[37, 45], [45, 1], [1, 37]],
    [[3, 33, 65], contiguousStrides([3, 33, 65]), [33 * 65, 1, 33]],
    [[3, 33, 65], contiguousStrides([3, 33, 65]), [33 * 65, 1, -33]],
    [[2, 9, 12, 40], contiguousStrides([2, 9, 12, 40]), [12, 960, 1, 24]],
    // Destination written through a transposed view, source contiguous.
    [[20, 50], [1, 20], [50, 1]],
  ];
  for (const [shape, dst, src] of cases) {
    const plan = planCopy(shape, op(dst, 2), op(src, 2), { rows: true, tile: true });
    assert.equal(plan.kind, 'tile', `${shape} ${dst} ${src}`);
    replayTile(plan as TilePlan, shape, dst, src);
  }
});
