/**
 * Both directions of a bidirectional mixer's scan in one launch (FusedKernels.selectiveScanPair,
 * scan.cu's scan_fwd_pair_*): on a GPU the pair must equal two selectiveScan calls bit for bit
 * (the same kernel body, blocks offset), in the wide layout (batch 16) and the split one the
 * sampler's batch 1 takes (CFG batch 2), with the mixer's transposed and flipped views; problems
 * that differ in shape are declined, leaving the outputs untouched. The same with A given as
 * A_log (aLog, the mixer's call): the flag travels in each problem's ScanFwdArgs flags word, and
 * problems that disagree on it are declined.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import type { ScanInputs } from '../../src/backends/backend.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { Generator } from '../../src/random/generator.js';
import { cudaSkip, realCuda } from './helpers.js';

const skip = cudaSkip || (realCuda ? false : 'the pair kernel needs a real GPU');
const DIM = 192;
const N = 16;

/** A direction's operands as the mixer passes them: bf16 views of [B, L, *] activations, float32 A, D, bias. */
function operands(batch: number, len: number, seed: number, flip: boolean, aLog = false): ScanInputs {
  const gen = new Generator(seed);
  const bf = (shape: number[], scale = 1) => T.cast(T.mul(T.randn(shape, { device: 'cuda', generator: gen }), scale), 'bfloat16');
  const rows = (t: Tensor) => (flip ? T.flip(T.transpose(t, 1, 2), [2]) : T.transpose(t, 1, 2));
  const dbc = bf([batch, len, 8 + 2 * N]);
  const bc = (at: number) => T.unsqueeze(rows(T.narrow(dbc, 2, at, N)), 1);
  return {
    u: rows(bf([batch, len, DIM])), delta: rows(bf([batch, len, DIM], 0.5)), z: rows(bf([batch, len, DIM])),
    B: bc(8), C: bc(8 + N),
    A: aLog ? T.mul(T.randn([DIM, N], { device: 'cuda', generator: gen }), 0.5)
      : T.neg(T.exp(T.mul(T.randn([DIM, N], { device: 'cuda', generator: gen }), 0.5))),
    D: T.randn([DIM], { device: 'cuda', generator: gen }),
    deltaBias: T.add(T.mul(T.randn([DIM], { device: 'cuda', generator: gen }), 0.3), -2),
    deltaSoftplus: true,
    aLog,
  };
}

for (const [batch, len, aLog] of [[2, 256, false], [16, 70, false], [2, 256, true], [16, 70, true]] as const) {
  test(`paired forward equals two scans bit for bit: batch ${batch}, L ${len}, bf16 mixer views${aLog ? ', A as A_log' : ''}`, { skip }, () => {
    T.tidy(() => {
      const backend = T.zeros([1], { device: 'cuda' }).backend;
      const pair = backend.fused.selectiveScanPair;
      assert.ok(pair, 'the CUDA backend offers selectiveScanPair');
      const a = operands(batch, len, 11, false, aLog);
      const b = operands(batch, len, 12, true, aLog);
      const want = [a, b].map((x) => {
        const out = T.Tensor.empty([batch, DIM, len], 'bfloat16', backend);
        backend.kernels.selectiveScan(x, out, null);
        return out.to('cpu').toFloat64Array();
      });
      const outA = T.Tensor.empty([batch, DIM, len], 'bfloat16', backend);
      const outB = T.Tensor.empty([batch, DIM, len], 'bfloat16', backend);
      assert.equal(pair(a, b, outA, outB), true, 'the pair was taken');
      assert.deepEqual(Array.from(outA.to('cpu').toFloat64Array()), Array.from(want[0]!), 'first problem');
      assert.deepEqual(Array.from(outB.to('cpu').toFloat64Array()), Array.from(want[1]!), 'second problem');
    });
  });
}

test('problems of different shapes are declined and the outputs left alone', { skip }, () => {
  T.tidy(() => {
    const backend = T.zeros([1], { device: 'cuda' }).backend;
    const a = operands(2, 64, 21, false);
    const b = operands(2, 48, 22, false);
    const outA = T.full([2, DIM, 64], 7, { dtype: 'bfloat16', device: 'cuda' });
    const outB = T.full([2, DIM, 48], 7, { dtype: 'bfloat16', device: 'cuda' });
    assert.equal(backend.fused.selectiveScanPair!(a, b, outA, outB), false);
    assert.ok(outA.to('cpu').toFloat64Array().every((v) => v === 7));
  });
});

test('problems that disagree on aLog are declined and the outputs left alone', { skip }, () => {
  T.tidy(() => {
    const backend = T.zeros([1], { device: 'cuda' }).backend;
    const a = operands(2, 64, 23, false, true);
    const b = operands(2, 64, 24, true, false);
    const outA = T.full([2, DIM, 64], 7, { dtype: 'bfloat16', device: 'cuda' });
    const outB = T.full([2, DIM, 64], 7, { dtype: 'bfloat16', device: 'cuda' });
    assert.equal(backend.fused.selectiveScanPair!(a, b, outA, outB), false);
    assert.ok(outA.to('cpu').toFloat64Array().every((v) => v === 7));
    assert.ok(outB.to('cpu').toFloat64Array().every((v) => v === 7));
    // The op then runs them one after the other, each in its own form.
    const call = (x: ScanInputs): T.SelectiveScanCall => ({
      u: x.u, delta: x.delta, A: x.A, B: x.B, C: x.C,
      options: { D: x.D, z: x.z, deltaBias: x.deltaBias, deltaSoftplus: x.deltaSoftplus, aLog: x.aLog },
    });
    const [ya, yb] = T.noGrad(() => T.selectiveScanPair(call(a), call(b)));
    const single = (x: ScanInputs) => T.selectiveScanCall(call(x)).to('cpu').toFloat64Array();
    assert.deepEqual(Array.from(ya.to('cpu').toFloat64Array()), Array.from(single(a)), 'first problem (A_log)');
    assert.deepEqual(Array.from(yb.to('cpu').toFloat64Array()), Array.from(single(b)), 'second problem (A)');
  });
});

test('the op: T.selectiveScanPair without gradients (paired) equals it with gradients (two scans)', { skip }, () => {
  T.tidy(() => {
    const call = (x: ScanInputs): T.SelectiveScanCall => ({
      u: x.u, delta: x.delta, A: x.A, B: x.B, C: x.C,
      options: { D: x.D, z: x.z, deltaBias: x.deltaBias, deltaSoftplus: x.deltaSoftplus, aLog: x.aLog },
    });
    for (const aLog of [false, true]) {
      const a = operands(2, 128, 31, false, aLog);
      const b = operands(2, 128, 32, true, aLog);
      const paired = T.noGrad(() => T.selectiveScanPair(call(a), call(b)));
      const u = a.u.detach().requiresGrad_(true);
      const apart = T.selectiveScanPair({ ...call(a), u }, call(b));
      for (let i = 0; i < 2; i++) {
        assert.deepEqual(Array.from(paired[i]!.to('cpu').toFloat64Array()), Array.from(apart[i]!.detach().to('cpu').toFloat64Array()),
          `output ${i}${aLog ? ' (aLog)' : ''}`);
      }
    }
  });
});
