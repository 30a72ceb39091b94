/**
 * Evaluates a cuDNN attention GraphSpec (spec.ts) on the CPU in float64, by the backend API's
 * semantics as the graphs use them: every tensor is memory addressed through its dims and
 * strides; pointwise operands broadcast over size-1 dims; a reduction sums (or maxes) x over the
 * dims where y has size 1; a matmul multiplies the last two dims, batch dims broadcasting; a
 * reshape gives y the same memory as x, read through y's own dims and strides. A virtual tensor
 * no reshape touches is stored contiguously: its declared strides are only metadata to cuDNN
 * (the frontend's dO*O strides even overlap across heads). No rounding to
 * the io dtype: the tests compare against float64 references with tight tolerances.
 *
 * It lets the CPU tests check that a graph computes attention (and its gradients) at all, not only
 * that it lists the tensors and operations the frontend would.
 */
import type { GraphSpec, OpSpec, TensorSpec } from '../../src/backends/cuda/cudnn-attention/spec.js';

/** Memory per uid: inputs given by the caller, the rest filled in. */
export type Memory = Map<number, Float64Array>;

function span(t: TensorSpec): number {
  let last = 0;
  for (let i = 0; i < 4; i++) last += (t.dims[i]! - 1) * t.strides[i]!;
  return last + 1;
}

function offset(t: TensorSpec, idx: readonly number[]): number {
  let o = 0;
  // Size-1 dims broadcast: index 0 whatever the caller's index.
  for (let i = 0; i < 4; i++) o += (t.dims[i] === 1 ? 0 : idx[i]!) * t.strides[i]!;
  return o;
}

function* indices(dims: readonly number[]): Generator<number[]> {
  const n = dims.reduce((a, b) => a * b, 1);
  const idx = [0, 0, 0, 0];
  for (let i = 0; i < n; i++) {
    let r = i;
    for (let d = 3; d >= 0; d--) {
      idx[d] = r % dims[d]!;
      r = Math.floor(r / dims[d]!);
    }
    yield idx;
  }
}

const POINTWISE: Record<string, (x: number, b: number) => number> = {
  add: (x, b) => x + b, sub: (x, b) => x - b, mul: (x, b) => x * b, div: (x, b) => x / b,
  exp: (x) => Math.exp(x), log: (x) => Math.log(x), identity: (x) => x,
};

/** Runs `spec` over `inputs` (uid -> memory of every non-virtual input); returns all memory. */
export function evaluate(spec: GraphSpec, inputs: Memory, scalars: ReadonlyMap<number, number>): Memory {
  const reshaped = new Set(spec.ops.flatMap((op) => (op.kind === 'reshape' ? [op.x, op.y] : [])));
  const byUid = new Map(spec.tensors.map((t) => {
    if (!t.virtual || reshaped.has(t.uid)) return [t.uid, t];
    const d = t.dims;
    return [t.uid, { ...t, strides: [d[1]! * d[2]! * d[3]!, d[2]! * d[3]!, d[3]!, 1] as const }];
  }));
  const mem: Memory = new Map(inputs);
  for (const [uid, v] of scalars) mem.set(uid, new Float64Array([v]));
  const tensor = (uid: number) => {
    const t = byUid.get(uid);
    if (!t) throw new Error(`uid ${uid} not declared`);
    return t;
  };
  const read = (uid: number) => {
    const m = mem.get(uid);
    if (!m) throw new Error(`uid ${uid} (${tensor(uid).name}) read before it was written`);
    return m;
  };
  const output = (uid: number) => {
    const m = new Float64Array(span(tensor(uid))).fill(Number.NaN);
    mem.set(uid, m);
    return m;
  };
  for (const op of spec.ops) run(op);
  return mem;

  function run(op: OpSpec): void {
    switch (op.kind) {
      case 'pointwise': {
        const [x, y] = [tensor(op.x), tensor(op.y)];
        const b = op.b === null ? null : tensor(op.b);
        const [mx, mb] = [read(op.x), b ? read(op.b!) : null];
        const my = output(op.y);
        const f = POINTWISE[op.mode]!;
        for (const idx of indices(y.dims)) my[offset(y, idx)] = f(mx[offset(x, idx)]!, b ? mb![offset(b, idx)]! : 0);
        return;
      }
      case 'reduction': {
        const [x, y] = [tensor(op.x), tensor(op.y)];
        const mx = read(op.x);
        const my = output(op.y);
        for (const idx of indices(y.dims)) my[offset(y, idx)] = op.mode === 'max' ? -Infinity : 0;
        for (const idx of indices(x.dims)) {
          const o = offset(y, idx);
          const v = mx[offset(x, idx)]!;
          my[o] = op.mode === 'max' ? Math.max(my[o]!, v) : my[o]! + v;
        }
        return;
      }
      case 'matmul': {
        const [a, b, c] = [tensor(op.a), tensor(op.b), tensor(op.c)];
        const k = a.dims[3]!;
        if (b.dims[2] !== k || c.dims[2] !== a.dims[2] || c.dims[3] !== b.dims[3]) {
          throw new Error(`${op.name}: [${a.dims}] x [${b.dims}] -> [${c.dims}] do not chain`);
        }
        const [ma, mb] = [read(op.a), read(op.b)];
        const mc = output(op.c);
        for (const idx of indices(c.dims)) {
          let sum = 0;
          for (let j = 0; j < k; j++) sum += ma[offset(a, [idx[0]!, idx[1]!, idx[2]!, j])]! * mb[offset(b, [idx[0]!, idx[1]!, j, idx[3]!])]!;
          mc[offset(c, idx)] = sum;
        }
        return;
      }
      case 'reshape':
        mem.set(op.y, read(op.x));
        return;
      case 'sdpaForward':
        throw new Error('the SDPA_FWD node is cuDNN\'s own; this evaluator runs composite graphs only');
    }
  }
}

/** A tensor's values in [B, H, L, E] order, read through its declared strides. */
export function gather(t: TensorSpec, m: Float64Array): Float64Array {
  const out = new Float64Array(t.dims.reduce((a, b) => a * b, 1));
  let i = 0;
  for (const idx of indices(t.dims)) out[i++] = m[offset(t, idx)]!;
  return out;
}

/** Memory for a tensor from values in [dims] order, laid out by its strides. */
export function scatter(t: TensorSpec, values: Float64Array): Float64Array {
  const m = new Float64Array(span(t));
  let i = 0;
  for (const idx of indices(t.dims)) m[offset(t, idx)] = values[i++]!;
  return m;
}
