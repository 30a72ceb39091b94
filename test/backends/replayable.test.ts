/**
 * captureReplayable without a GPU: on the CPU every run() calls the function; option and input
 * validation name the bad value; and the graph path (warm-up, one capture, replays, outputs and
 * inputs kept out of tidy scopes, failed captures, dispose) is exercised through a CPU backend
 * with a stand-in graph capability whose replay recomputes the captured function into the
 * captured outputs, as a CUDA graph overwrites them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assign_ } from '../../src/ops/inplace.js';
import { captureReplayable, ReplayableError } from '../../src/backends/replayable.js';
import { FakeGraphBackend } from './fake-graph-backend.js';

test('on the CPU, run() calls the function on the inputs\' current values every time', () => {
  const x = T.tensor([1, 2, 3]);
  let calls = 0;
  const r = captureReplayable((a) => { calls++; return T.mul(a!, 2); }, [x]);
  assert.equal(r.mode, 'eager');
  assert.deepEqual(r.run().toArray(), [2, 4, 6]);
  assign_(x, T.tensor([5, 6, 7]));
  const out = r.run();
  assert.deepEqual(out.toArray(), [10, 12, 14]);
  assert.equal(calls, 2);
  assert.equal(r.calls, 2);
  assert.equal(r.replays, 0);
  assert.equal(r.captured, false);
  r.dispose();
  assert.throws(() => r.run(), /replayable 'replayable' was disposed/);
});

test('options and inputs are validated with errors naming the value', () => {
  const x = T.tensor([1, 2]);
  const fn = (a?: Tensor) => T.neg(a!);
  const bad = (options: object, inputs: unknown[], pattern: RegExp) =>
    assert.throws(() => captureReplayable(fn, inputs as Tensor[], options), (e: unknown) => e instanceof ReplayableError && pattern.test(e.message));
  bad({ graph: 'yes' }, [x], /options\.graph must be true, false or 'auto', got yes/);
  bad({ warmup: -1 }, [x], /options\.warmup must be a non-negative integer, got -1/);
  bad({ warmup: 1.5 }, [x], /got 1\.5/);
  bad({}, [], /inputs must be a non-empty array of tensors/);
  bad({}, [x, 3], /input 1 is a number, not a tensor/);
  bad({ graph: true, label: 'denoise' }, [x], /'denoise': graph capture was required \(graph: true\) but the cpu backend has none/);
  bad({}, [x, T.zeros([2], { device: 'meta' })], /inputs are on different devices \(input 0 on cpu, input 1 on meta\)/);
  const gone = T.tensor([1]);
  gone.dispose();
  bad({}, [gone], /input 0 .* has been disposed/);
  assert.throws(() => captureReplayable(3 as never, [x]), /fn must be a function, got a number/);
  // graph: false is eager even where graphs exist.
  const fake = new FakeGraphBackend();
  assert.equal(captureReplayable(fn, [fake.tensor([1], [1])], { graph: false }).mode, 'eager');
});

test('graph path: one warm-up, one capture, then each run replays into the same outputs', () => {
  const fake = new FakeGraphBackend();
  const x = fake.tensor([1, 2, 3, 4], [4]);
  const t = fake.tensor([0], [1]);
  let calls = 0;
  const r = captureReplayable((a, s) => { calls++; return { y: T.add(T.mul(a!, 3), s!), z: T.neg(a!) }; }, [x, t], { label: 'affine', warmup: 2 });
  assert.equal(r.mode, 'graph');
  const seen: { y: Tensor; z: Tensor }[] = [];
  for (let i = 0; i < 4; i++) {
    assign_(x, T.tensor([i, i + 1, i + 2, i + 3]));
    assign_(t, i * 100);
    const out = r.run();
    seen.push(out);
    assert.deepEqual(out.y.toArray(), [0, 1, 2, 3].map((k) => 3 * (i + k) + i * 100), `run ${i}`);
    assert.deepEqual(out.z.toArray(), [0, 1, 2, 3].map((k) => -(i + k)));
  }
  assert.equal(fake.captures, 1);
  assert.equal(r.replays, 4);
  assert.equal(r.calls, 4);
  // warm-ups + capture + the stand-in's recomputation at each replay: the replayable itself never calls fn after capture.
  assert.equal(calls, 2 + 1 + 4);
  assert.ok(seen.every((o) => o.y === seen[0]!.y && o.z === seen[0]!.z), 'the same output tensors at every run');
  r.dispose({ outputs: true });
  assert.equal(fake.destroyed, 1);
  assert.ok(seen[0]!.y.isDisposed && seen[0]!.z.isDisposed);
  assert.ok(!x.isDisposed, 'inputs are the caller\'s');
});

test('graph path inside tidy scopes: static inputs and outputs outlive the scopes that made them', () => {
  const fake = new FakeGraphBackend();
  const r = T.tidy(() => captureReplayable((a) => T.exp(a!), [fake.tensor([1, 2], [2])]));
  const x = r.inputs[0]!;
  assert.ok(!x.isDisposed, 'the input survived the scope that created it');
  let out: Tensor | undefined;
  T.tidy(() => { out = r.run(); });
  assert.ok(!out!.isDisposed, 'the output survived the scope of the run that captured it');
  T.tidy(() => { assign_(x, T.tensor([0, 0])); r.run(); });
  assert.deepEqual(out!.toArray(), [1, 1]);
});

test('a failed capture leaves the replayable uncaptured and retries; a disposed input is refused at run', () => {
  const fake = new FakeGraphBackend();
  const x = fake.tensor([2], [1]);
  const r = captureReplayable((a) => T.square(a!), [x], { label: 'sq' });
  fake.failNextCapture = new Error('capture refused');
  assert.throws(() => r.run(), /capture refused/);
  assert.equal(r.captured, false);
  assert.deepEqual(r.run().toArray(), [4]);
  assert.equal(r.captured, true);
  x.dispose();
  assert.throws(() => r.run(), /replayable 'sq': input 0 .* was disposed; static inputs must live as long as the replayable/);
});

test('a function that returns something other than tensors is refused after capture, and its graph destroyed', () => {
  const fake = new FakeGraphBackend();
  const x = fake.tensor([2], [1]);
  const r = captureReplayable((() => 42) as never, [x], { label: 'num' });
  assert.throws(() => r.run(), /'num': the function must return a tensor, an array of tensors or an object of tensors, got a number/);
  assert.equal(fake.destroyed, 1);
});
