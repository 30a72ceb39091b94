/**
 * End-to-end: tiny models built from raw ops, trained with AdamW and with CAME, must fit their
 * task (loss below 20% of its initial value) within a few hundred full-batch steps.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Generator, Tensor, gather, gelu, linear, logSoftmax, mean, mul, neg, randn, reshape, scaledDotProductAttention, square,
  sub, tensor,
} from '../../src/index.js';
import { AdamW, CAME, clipGradNorm, type Optimizer, type AdamWOptions, type CAMEOptions } from '../../src/optim/index.js';

interface Task {
  params: Tensor[];
  loss: () => Tensor;
}

function init(shape: number[], scale: number, gen: Generator): Tensor {
  return mul(randn(shape, { generator: gen }), scale).detach().requiresGrad_();
}

function zerosParam(n: number): Tensor {
  return Object.assign(tensor(new Array<number>(n).fill(0), { requiresGrad: true }), { noWeightDecay: true });
}

/** Two classes in the plane split by the XOR of the coordinate signs: needs the hidden layer. */
function mlpTask(seed: number): Task {
  const gen = new Generator(seed);
  const n = 64;
  const points = randn([n, 2], { generator: gen });
  const xy = points.toArray();
  const labels = tensor(Array.from({ length: n }, (_, i) => (xy[2 * i]! * xy[2 * i + 1]! > 0 ? 1 : 0)), { dtype: 'int32', shape: [n, 1] });
  const w1 = init([32, 2], 1, gen);
  const b1 = zerosParam(32);
  const w2 = init([2, 32], 1 / Math.sqrt(32), gen);
  const b2 = zerosParam(2);
  const loss = () => {
    const logits = linear(gelu(linear(points, w1, b1)), w2, b2);
    return neg(mean(gather(logSoftmax(logits, -1), 1, labels)));
  };
  return { params: [w1, b1, w2, b2], loss };
}

/**
 * Selection: each sequence has one marked token (marker channel = 1); the model must output that
 * token's 4 value features. One self-attention layer, mean-pooled, then a linear head.
 */
function attentionTask(seed: number): Task {
  const gen = new Generator(seed);
  const [batch, len, dValue, d] = [32, 6, 4, 16];
  const values = randn([batch, len, dValue], { generator: gen }).toArray();
  const marked = Array.from({ length: batch }, (_, b) => (b * 5 + 1) % len);
  const tokens: number[] = [];
  const target: number[] = [];
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < len; t++) {
      const v = values.slice((b * len + t) * dValue, (b * len + t + 1) * dValue);
      tokens.push(...v, t === marked[b] ? 1 : 0);
      if (t === marked[b]) target.push(...v);
    }
  }
  const x = tensor(tokens, { shape: [batch, len, dValue + 1] });
  const y = tensor(target, { shape: [batch, dValue] });
  const s = 1 / Math.sqrt(dValue + 1);
  const wq = init([d, dValue + 1], s, gen);
  const bq = zerosParam(d);
  const wk = init([d, dValue + 1], s, gen);
  const wv = init([d, dValue + 1], s, gen);
  const wo = init([dValue, d], 1 / Math.sqrt(d), gen);
  const bo = zerosParam(dValue);
  const heads = (t: Tensor) => reshape(t, [batch, 1, len, d]);
  const loss = () => {
    const attended = scaledDotProductAttention(heads(linear(x, wq, bq)), heads(linear(x, wk)), heads(linear(x, wv)));
    const pooled = mean(reshape(attended, [batch, len, d]), 1);
    return mean(square(sub(linear(pooled, wo, bo), y)));
  };
  return { params: [wq, bq, wk, wv, wo, bo], loss };
}

function train(task: Task, opt: Optimizer<AdamWOptions> | Optimizer<CAMEOptions>, steps: number): { first: number; last: number } {
  let first = NaN;
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    const l = task.loss();
    if (s === 0) first = l.item();
    l.backward();
    clipGradNorm(task.params, 1);
    opt.step();
  }
  return { first, last: task.loss().item() };
}

const TASKS: [string, (seed: number) => Task][] = [['MLP on XOR classes', mlpTask], ['attention selecting the marked token', attentionTask]];
const OPTIMIZERS: [string, (params: Tensor[]) => Optimizer<AdamWOptions> | Optimizer<CAMEOptions>][] = [
  ['AdamW', (params) => new AdamW(params, { lr: 2e-2, weightDecay: 1e-2 })],
  // CAME's instability averages start near zero (no bias correction), so its first matrix steps are
  // about 10x lr: it takes a smaller lr.
  ['CAME', (params) => new CAME(params, { lr: 2e-3, weightDecay: 1e-2 })],
];

describe('training tiny models', () => {
  for (const [taskName, makeTask] of TASKS) {
    for (const [optName, makeOptimizer] of OPTIMIZERS) {
      test(`${taskName} with ${optName}: loss falls below 20% of its start in 200 steps`, () => {
        const task = makeTask(1);
        const { first, last } = train(task, makeOptimizer(task.params), 200);
        assert.ok(Number.isFinite(first) && last < 0.2 * first, `loss ${first} -> ${last}`);
      });
    }
  }
});
