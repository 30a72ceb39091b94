/**
 * The cuDNN route's per-call decision cache (cudnn-attention/calls.ts, call-key.ts), without a GPU:
 * CPU tensors stand in for device ones (their addresses from a fake base plus the offset, so
 * alignment decides staging as on the device) and a fake cuDNN counts plan builds. Repeated
 * cross-attention calls (28 blocks of Dimba-L-2, forward and backward) build one spec each way;
 * the cache gives every call of a list of problems that differ in one thing each (strides,
 * staging, mask layout, dtypes, sizes) exactly the decision a fresh planner gives (no two calls
 * share an entry they should not); declines are cached with their reason; a prepare that throws is
 * not cached. Also CallKey/CallCache on their own, and the host time of a cache hit against
 * rebuilding the specs (printed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { itemSize } from '../../src/tensor/dtype.js';
import { CallCache, CallKey } from '../../src/backends/cuda/cudnn-attention/call-key.js';
import { CallPlanner, type Decision, type PlannerEnv } from '../../src/backends/cuda/cudnn-attention/calls.js';
import { backwardGraph, forwardGraph, type Dims4, type GraphSpec } from '../../src/backends/cuda/cudnn-attention/spec.js';

const BASE = 1 << 20;

interface FakePlan {
  readonly key: string;
}

function fakeEnv(overrides: Partial<PlannerEnv<FakePlan>> = {}): PlannerEnv<FakePlan> & { builds: string[] } {
  const builds: string[] = [];
  return {
    builds,
    version: () => 91900,
    arch: () => 90,
    unavailableReason: () => null,
    prepare: (spec: GraphSpec) => {
      builds.push(spec.key);
      return { plan: { key: spec.key } };
    },
    address: (t: T.Tensor) => BASE + t.offset * itemSize(t.dtype),
    ...overrides,
  };
}

type DT = 'bfloat16' | 'float16' | 'float32';

/** [B, H, L, E] heads split from [B, L, H * E] rows (the model's layout), or contiguous; `shift` elements into the storage. */
function heads(b: number, h: number, l: number, e: number, dtype: DT, split = true, shift = 0): T.Tensor {
  if (!split) {
    const store = T.zeros([b * h * l * e + shift], { dtype });
    return store.withLayout([b, h, l, e], [h * l * e, l * e, e, 1], shift);
  }
  const store = T.zeros([b * l * h * e + shift], { dtype });
  return store.withLayout([b, h, l, e], [l * h * e, e, h * e, 1], shift);
}

/** The op's key-padding mask: a [B, Lk] bias (rows `step` apart) viewed as [B, H, Lq, Lk]. */
function keyMask(b: number, h: number, lq: number, lk: number, dtype: DT, step = lk, shift = 0): T.Tensor {
  const store = T.zeros([b * step + shift], { dtype });
  return store.withLayout([b, h, lq, lk], [step, 0, 0, 1], shift);
}

interface Problem {
  readonly name: string;
  readonly direction: 'forward' | 'backward';
  readonly operands: T.Tensor[];
  readonly mask: T.Tensor | null;
}

function problem(name: string, o: { b?: number; h?: number; lq?: number; lk?: number; e?: number; dtype?: DT; kDtype?: DT; split?: boolean;
  qShift?: number; masked?: boolean; maskDtype?: DT; maskStep?: number; maskShift?: number; backward?: boolean; fullMask?: boolean; }): Problem {
  const { b = 2, h = 4, lq = 64, lk = 120, e = 72, dtype = 'bfloat16', split = true } = o;
  const q = heads(b, h, lq, e, dtype, split, o.qShift ?? 0);
  const k = heads(b, h, lk, e, o.kDtype ?? dtype, split);
  const v = heads(b, h, lk, e, dtype, split);
  const out = heads(b, h, lq, e, dtype, split);
  const operands = o.backward ? [q, k, v, out, heads(b, h, lq, e, dtype, split), heads(b, h, lq, e, dtype, split), heads(b, h, lk, e, dtype, split),
    heads(b, h, lk, e, dtype, split)] : [q, k, v, out];
  let mask: T.Tensor | null = null;
  if (o.fullMask) mask = T.zeros([b, h, lq, lk], { dtype: o.maskDtype ?? dtype });
  else if (o.masked) mask = keyMask(b, h, lq, lk, o.maskDtype ?? dtype, o.maskStep ?? lk, o.maskShift ?? 0);
  return { name, direction: o.backward ? 'backward' : 'forward', operands, mask };
}

const PROBLEMS: Problem[] = [
  problem('cross fwd', { masked: true }),
  problem('cross bwd', { masked: true, backward: true }),
  problem('cross fwd unmasked', {}),
  problem('cross bwd unmasked', { backward: true }),
  problem('self fwd', { lk: 64 }),
  problem('self bwd', { lk: 64, backward: true }),
  problem('cross fwd contiguous', { masked: true, split: false }),
  problem('cross fwd q off 16 bytes (staged)', { masked: true, qShift: 1 }),
  problem('cross fwd q shifted by 16 bytes (in place)', { masked: true, qShift: 8 }),
  problem('cross fwd mask rows on a padded step', { masked: true, maskStep: 128 }),
  problem('cross fwd mask off 16 bytes (staged bias)', { masked: true, maskShift: 1 }),
  problem('Lk 77: mask rows off 16 bytes (staged bias)', { lk: 77, e: 64, masked: true }),
  problem('Lk 77 bwd', { lk: 77, e: 64, masked: true, backward: true }),
  problem('one batch row', { b: 1, masked: true }),
  problem('three batch rows', { b: 3, masked: true }),
  problem('8 heads', { h: 8, masked: true }),
  problem('Lq 128', { lq: 128, masked: true }),
  problem('E 64', { e: 64, masked: true }),
  problem('float16', { dtype: 'float16', masked: true }),
  problem('float16 bwd', { dtype: 'float16', masked: true, backward: true }),
  problem('float32 mask on bf16 (declined)', { masked: true, maskDtype: 'float32' }),
  problem('mask over queries (declined)', { fullMask: true }),
  problem('float32 (declined)', { dtype: 'float32', masked: true }),
  problem('mixed dtypes (declined)', { kDtype: 'float16' }),
  problem('Lk 192 masked bwd (declined)', { lk: 192, masked: true, backward: true }),
  problem('Lk 192 masked fwd', { lk: 192, masked: true }),
];

function plan(p: CallPlanner<FakePlan>, pr: Problem): Decision<FakePlan> {
  return p.plan(pr.direction, pr.operands, pr.mask).decision;
}

function summary(d: Decision<FakePlan>): string {
  return d.reason !== null ? `declined: ${d.reason} (${d.label})` : `${d.spec.key} -> ${d.plan.key} (${d.label})`;
}

test('28 cross-attention blocks, forward and backward: one spec and one plan each way, every other call a hit', () => {
  const env = fakeEnv();
  const planner = new CallPlanner(env);
  // Each block has its own k, v, out (new tensors, same layouts), as the model's blocks do.
  for (let block = 0; block < 28; block++) {
    const f = problem('f', { b: 2, h: 16, lq: 256, masked: true });
    const b = problem('b', { b: 2, h: 16, lq: 256, masked: true, backward: true });
    assert.equal(plan(planner, f).reason, null);
    assert.equal(plan(planner, b).reason, null);
  }
  assert.deepEqual(planner.stats(), { hits: 54, misses: 2, specBuilds: 2, signatures: 2 });
  assert.equal(env.builds.length, 2);
});

test('from the cache, every problem gets exactly the decision a fresh planner makes (nothing shares an entry it should not)', () => {
  const shared = new CallPlanner(fakeEnv());
  const expected = PROBLEMS.map((pr) => summary(plan(new CallPlanner(fakeEnv()), pr)));
  for (let round = 0; round < 3; round++) {
    PROBLEMS.forEach((pr, i) => assert.equal(summary(plan(shared, pr)), expected[i], `${pr.name}, round ${round}`));
  }
  // q moved by 16 bytes keeps its layout and alignment: the same signature as the first problem.
  assert.equal(expected[8], expected[0]);
  const st = shared.stats();
  assert.equal(st.signatures, PROBLEMS.length - 1, 'one signature per distinct problem');
  assert.equal(st.misses, PROBLEMS.length - 1);
  assert.equal(st.hits, 2 * PROBLEMS.length + 1);
  const declined = expected.filter((s) => s.startsWith('declined')).length;
  assert.equal(declined, 5);
  assert.equal(st.specBuilds, PROBLEMS.length - 1 - declined, 'declined calls build no spec');
  // The specs the decisions hold are the ones the problems' layouts make.
  const split = (l: number): Dims4 => [l * 4 * 72, 72, 4 * 72, 1];
  const masked = plan(shared, PROBLEMS[0]!);
  const direct = forwardGraph({ dtype: 'bfloat16', shape: { batch: 2, heads: 4, lq: 64, lk: 120, e: 72 }, q: split(64), k: split(120), v: split(120), o: split(64), biasBatchStride: 120 });
  assert.equal(masked.reason === null && masked.spec.key, direct.key);
  const s256 = (l: number): Dims4 => [l * 256, 64, 256, 1];
  const lk77 = { dtype: 'bfloat16' as const, shape: { batch: 2, heads: 4, lq: 64, lk: 77, e: 64 }, q: s256(64), k: s256(77), v: s256(77), o: s256(64), biasBatchStride: 80 };
  const staged = plan(shared, PROBLEMS[11]!);
  assert.equal(staged.reason === null && staged.spec.key, forwardGraph(lk77).key, 'Lk 77 bf16: the staged bias rows are 80 keys apart');
  const stagedBackward = plan(shared, PROBLEMS[12]!);
  assert.equal(stagedBackward.reason === null && stagedBackward.spec.key,
    backwardGraph({ ...lk77, dO: s256(64), dQ: s256(64), dK: s256(77), dV: s256(77) }).key);
});

test('the placements come back per call: a staged operand is staged, the bias row step or null', () => {
  const planner = new CallPlanner(fakeEnv());
  for (let i = 0; i < 2; i++) {
    const a = planner.plan('forward', PROBLEMS[7]!.operands, PROBLEMS[7]!.mask);
    assert.deepEqual(a.placed.map((p) => p.staged), [true, false, false, false]);
    assert.ok(a.placed.every((p, j) => p.t === PROBLEMS[7]!.operands[j]), 'the call\'s own tensors');
    assert.deepEqual(a.bias, { batchStride: 120 });
    const b = planner.plan('forward', PROBLEMS[10]!.operands, PROBLEMS[10]!.mask);
    assert.deepEqual(b.bias, { batchStride: null });
    assert.deepEqual(planner.plan('forward', PROBLEMS[2]!.operands, null).bias, null);
  }
  assert.equal(planner.stats().hits, 3);
});

test('a decline is cached with its reason; a prepare that throws is not cached', () => {
  let prepares = 0;
  let fail = true;
  const env = fakeEnv({
    prepare: (spec) => {
      prepares++;
      if (fail) throw new Error('building a plan during capture');
      return { plan: { key: spec.key } };
    },
  });
  const planner = new CallPlanner(env);
  const f32 = PROBLEMS.find((p) => p.name === 'float32 (declined)')!;
  for (let i = 0; i < 3; i++) assert.match(plan(planner, f32).reason ?? '', /dtype float32/);
  assert.equal(planner.stats().specBuilds, 0);
  assert.equal(prepares, 0);
  const cross = PROBLEMS[0]!;
  assert.throws(() => plan(planner, cross), /during capture/);
  assert.equal(planner.stats().signatures, 1, 'the throwing call left no entry');
  fail = false;
  assert.equal(plan(planner, cross).reason, null);
  assert.equal(plan(planner, cross).reason, null);
  assert.equal(prepares, 2);
  const unsupported = new CallPlanner(fakeEnv({ prepare: () => ({ reason: 'no engine config finalized' }) }));
  assert.equal(plan(unsupported, cross).reason, 'no engine config finalized');
  assert.equal(plan(unsupported, cross).reason, 'no engine config finalized');
  assert.equal(unsupported.stats().specBuilds, 1);
  const gone = new CallPlanner(fakeEnv({ unavailableReason: () => 'cuDNN not found (libcudnn.so.9)' }));
  assert.equal(plan(gone, cross).reason, 'cuDNN not found (libcudnn.so.9)');
});

test('operands that are not [B, H, L, E], or a mask of another shape, are declined by reason', () => {
  const planner = new CallPlanner(fakeEnv());
  const q3 = T.zeros([2, 64, 72], { dtype: 'bfloat16' });
  const [, k, v, o] = PROBLEMS[0]!.operands as [T.Tensor, T.Tensor, T.Tensor, T.Tensor];
  assert.equal(planner.plan('forward', [q3, k, v, o], null).decision.reason, 'q, k, v must be [B, H, L, E]');
  const badMask = keyMask(2, 4, 64, 119, 'bfloat16');
  assert.match(planner.plan('forward', PROBLEMS[0]!.operands, badMask).decision.reason ?? '', /mask of shape \[2, 4, 64, 119\]/);
  const mask2 = T.zeros([2, 120], { dtype: 'bfloat16' });
  assert.match(planner.plan('forward', PROBLEMS[0]!.operands, mask2).decision.reason ?? '', /mask of shape \[2, 120\]/);
});

test('CallKey / CallCache: equal numbers hit, anything else misses, colliding hashes never alias, stored keys are copies', () => {
  const cache = new CallCache<string>();
  const key = new CallKey(8);
  cache.set(key.clear().push(1).push(2).push(3), 'a');
  assert.equal(cache.get(key.clear().push(1).push(2).push(3)), 'a');
  assert.equal(cache.get(key.clear().push(1).push(2)), undefined, 'a prefix is another key');
  assert.equal(cache.get(key.clear().push(1).push(2).push(3).push(0)), undefined, 'so is an extension');
  assert.equal(cache.get(key.clear().push(1).push(2).push(3 + 2 ** 32)), undefined, 'bits above 2^32 count');
  assert.equal(cache.get(key.clear().push(1).push(2).push(-3)), undefined);
  assert.notEqual(key.clear().push(2 ** 32).hash(), key.clear().push(0).hash(), 'the high half is hashed');
  assert.equal(cache.hits, 1);
  assert.equal(cache.misses, 4);

  class Colliding extends CallKey {
    override hash(): number {
      return 7;
    }
  }
  const c = new Colliding(4);
  const both = new CallCache<string>();
  both.set(c.clear().push(1), 'one');
  both.set(c.clear().push(2), 'two');
  both.set(c.clear().push(1), 'one again');
  assert.equal(both.size, 2);
  assert.equal(both.get(c.clear().push(1)), 'one again');
  assert.equal(both.get(c.clear().push(2)), 'two');
  assert.equal(both.get(c.clear().push(3)), undefined);
  assert.throws(() => new CallKey(2).push(1).push(2).push(3), /more than 2 numbers/);
});

test('host time of a cached decision against deciding afresh per call, as before the cache (printed)', () => {
  const plans = new Map<string, FakePlan>();
  // Deciding afresh: the layouts, the reasons, the spec and its string key, then the plan map's lookup by that key.
  const env = fakeEnv({ prepare: (spec) => ({ plan: plans.get(spec.key) ?? { key: spec.key } }) });
  const planner = new CallPlanner(env);
  const f = problem('f', { b: 2, h: 16, lq: 1024, masked: true });
  const b = problem('b', { b: 2, h: 16, lq: 1024, masked: true, backward: true });
  for (const p of [f, b]) {
    const d = plan(planner, p);
    if (d.reason === null) plans.set(d.spec.key, d.plan);
  }
  const afresh = () => {
    new CallPlanner(env).plan('forward', f.operands, f.mask);
    new CallPlanner(env).plan('backward', b.operands, b.mask);
  };
  const cached = () => {
    planner.plan('forward', f.operands, f.mask);
    planner.plan('backward', b.operands, b.mask);
  };
  const time = (fn: () => void) => {
    for (let i = 0; i < 2000; i++) fn();
    const n = 20000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    return ((performance.now() - t0) / n) * 1000;
  };
  const before = time(afresh);
  const after = time(cached);
  console.log(`# host time per masked forward + backward pair on this CPU: deciding afresh (spec and string key rebuilt) ${before.toFixed(2)} us; `
    + `from the cache ${after.toFixed(2)} us`);
  assert.equal(planner.stats().specBuilds, 2);
  assert.equal(planner.stats().misses, 2);
});
