/**
 * The Dimba backbone against the released architecture: parameter names and shapes of L-2, and
 * a tiny model's output and gradients against the released PyTorch code
 * (test/fixtures/make_dimba_reference.py).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as T from '../../src/index.js';
import { withDefaultDevice } from '../../src/backends/registry.js';
import { Dimba, presetConfig, layerPattern, ConfigError, type DimbaConfig } from '../../src/models/dimba/index.js';
import { loadStateDictFileSync, saveStateDictSync } from '../../src/nn/index.js';

const fixture = (name: string) => new URL(`../../../test/fixtures/${name}`, import.meta.url).pathname;

describe('Dimba-L-2 matches the released architecture', () => {
  const released = JSON.parse(readFileSync(fixture('dimba_l2_params.json'), 'utf8')) as { count: number; params: Record<string, number[]> };
  const model = withDefaultDevice('meta', () => new Dimba(presetConfig('Dimba-L-2')));

  test('state-dict names, order and shapes', () => {
    const ours = [...model.stateDict()].map(([name, t]) => [name, [...t.shape]] as const);
    const theirs = Object.entries(released.params);
    const missing = theirs.filter(([n]) => !ours.some(([m]) => m === n)).map(([n]) => n);
    const extra = ours.filter(([n]) => !(n in released.params)).map(([n]) => n);
    assert.deepEqual({ missing, extra }, { missing: [], extra: [] });
    assert.deepEqual(ours.map(([n]) => n), theirs.map(([n]) => n));
    for (const [name, shape] of ours) assert.deepEqual(shape, released.params[name], name);
  });

  test('about 0.9B parameters, as the paper reports', () => {
    assert.equal(model.numParameters(), released.count);
    assert.ok(Math.abs(model.numParameters() / 1e9 - 0.9) < 0.05, `${model.numParameters()}`);
  });
});

const tinyConfig = (overrides: Partial<DimbaConfig> = {}): DimbaConfig => presetConfig('Dimba-XS', {
  inputSize: 8, patchSize: 2, inChannels: 4, hiddenSize: 32, depth: 2, numHeads: 2, mambaRatio: 1,
  captionChannels: 16, captionTokens: 6, classDropoutProb: 0.1, ...overrides,
});

describe('a tiny Dimba reproduces the released PyTorch forward and backward', () => {
  const ref = loadStateDictFileSync(fixture('dimba_tiny_reference.safetensors'));
  const get = (name: string) => {
    const t = ref.get(name);
    assert.ok(t, `fixture lacks ${name}`);
    return t;
  };
  const model = new Dimba(tinyConfig());
  model.cast('float64');
  const weights = new Map([...ref].filter(([k]) => k.startsWith('param.')).map(([k, v]) => [k.slice(6), v] as const));
  model.loadStateDict(weights, { strict: true });
  model.eval();

  const maxRelErr = (a: T.Tensor, b: T.Tensor) => {
    const x = a.toFloat64Array();
    const y = b.toFloat64Array();
    const scale = Math.max(...Array.from(y, Math.abs), 1e-12);
    let worst = 0;
    x.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - y[i]!) / scale); });
    return worst;
  };

  test('output and every parameter gradient', () => {
    const out = model.forward({ x: get('input.x'), timestep: get('input.t'), caption: get('input.y'), captionMask: get('input.mask') });
    assert.deepEqual(out.shape, [2, 8, 8, 8]);
    assert.ok(maxRelErr(out, get('output')) < 1e-5, `output error ${maxRelErr(out, get('output'))}`);
    T.sum(T.mul(out, get('grad_weight'))).backward();
    const errors = model.namedParameters().map(([name, p]) => {
      assert.ok(p.grad, `no gradient for ${name}`);
      return [name, maxRelErr(p.grad, get(`grad.${name}`))] as const;
    });
    const [worstName, worst] = errors.reduce((a, b) => (b[1] > a[1] ? b : a));
    // The released code computes A = -exp(A_log) in float32 (we keep float64 models in float64),
    // a ~1e-7 perturbation that the random weights (std 0.3) amplify to ~1e-5 at the output and
    // ~3e-5 in the gradients of the first layers. A wrong formula anywhere gives errors of order 1.
    assert.ok(worst < 1e-4, `${worstName}: gradient error ${worst}`);
    const median = errors.map(([, e]) => e).sort((a, b) => a - b)[errors.length >> 1]!;
    assert.ok(median < 5e-5, `median gradient error ${median}`);
  });
});

describe('Dimba layouts and behaviour', () => {
  const batch = () => ({
    x: T.randn([2, 4, 8, 8], { generator: new T.Generator(1) }),
    timestep: T.tensor([5, 900]),
    caption: T.randn([2, 6, 16], { generator: new T.Generator(2) }),
    captionMask: T.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], { dtype: 'int32' }),
  });

  test('layer patterns: released mamba_ratio interleaving and explicit strings', () => {
    assert.equal(layerPattern(tinyConfig({ depth: 4, mambaRatio: 1 })).join(''), 'AMAMAMAM');
    assert.equal(layerPattern(tinyConfig({ depth: 4, mambaRatio: 0.5 })).join(''), 'AAMAAM');
    assert.equal(layerPattern(tinyConfig({ depth: 4, mambaRatio: 0 })).join(''), 'AAAA');
    assert.equal(layerPattern(tinyConfig({ depth: 2, layers: 'AMM', layerRepeats: 2 })).join(''), 'AMMAMM');
    assert.equal(layerPattern(tinyConfig({ depth: 0, layers: 'M', layerRepeats: 3 })).join(''), 'MMM');
    assert.throws(() => layerPattern(tinyConfig({ depth: 3, layers: 'AM' })), /has 1 Transformer blocks but config.depth is 3/);
    assert.throws(() => tinyConfig({ layers: 'AX' }), ConfigError);
    assert.throws(() => tinyConfig({ numHeads: 3 }), /not divisible by config.numHeads/);
  });

  for (const [label, overrides] of [
    ['hybrid', {}], ['pure Transformer', { mambaRatio: 0 }], ['pure Mamba', { depth: 0, layers: 'M', layerRepeats: 2 }],
    ['AAM with KV compression and qk-norm', { depth: 2, layers: 'AAM', qkNorm: true, kvCompress: { sampling: 'conv' as const, scaleFactor: 2, layers: [0] } }],
  ] as const) {
    test(`${label}: forward, backward and every parameter gets a gradient`, () => {
      const model = new Dimba(tinyConfig(overrides));
      const out = model.forward(batch());
      assert.deepEqual(out.shape, [2, 8, 8, 8]);
      T.mean(T.square(out)).backward();
      // Without Transformer blocks nothing reads t_block or the caption (a DiS-like unconditional model).
      const unused = new Set<string>();
      if (!model.pattern.includes('A')) {
        for (const [name] of model.namedParameters()) if (/^(t_block|y_embedder)\./.test(name)) unused.add(name);
      }
      for (const [name, p] of model.namedParameters()) assert.equal(Boolean(p.grad), !unused.has(name), `${name}: gradient presence`);
    });
  }

  test('released initialisation: zeroed output layers give a zero output', () => {
    const model = new Dimba(tinyConfig());
    assert.equal(T.max(T.abs(model.forward(batch()))).item(), 0);
    assert.equal(T.max(T.abs(model.blocks.get(0).crossAttn.proj.weight)).item(), 0);
  });

  test('gradient checkpointing gives the same gradients', () => {
    const grads = (ckpt: boolean) => {
      const model = new Dimba(tinyConfig());
      T.nn.init.normal_(model.finalLayer.linear.weight, 0, 0.1, { generator: new T.Generator(3) });
      model.gradientCheckpointing = ckpt;
      model.eval();
      T.sum(T.square(model.forward(batch()))).backward();
      return model.namedParameters().map(([n, p]) => [n, p.grad?.toArray() ?? []] as const);
    };
    const plain = grads(false);
    const recomputed = grads(true);
    plain.forEach(([name, g], i) => {
      const h = recomputed[i]![1];
      g.forEach((v, j) => assert.ok(Math.abs(v - h[j]!) <= 1e-5 * (1 + Math.abs(v)), `${name}[${j}]: ${v} vs ${h[j]}`));
    });
  });

  test('the caption mask becomes one key bias per forward, giving what per-block keyPadding gave', () => {
    // Row 1 has no real caption token: its cross-attention adds 0 (not NaN).
    const inputs = { ...batch(), captionMask: T.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], { dtype: 'int32' }) };
    const keyPadding = T.cast(inputs.captionMask, 'bool');
    const build = () => {
      const model = new Dimba(tinyConfig({ depth: 3 }));
      for (const [name, p] of model.namedParameters()) {
        if (/cross_attn\.proj|final_layer\.linear/.test(name)) T.nn.init.normal_(p, 0, 0.2, { generator: new T.Generator(name.length) });
      }
      model.eval();
      return model;
    };
    // What each block's cross-attention did before: convert the boolean mask inside the attention call.
    const perBlockMask = (model: Dimba) => {
      for (let i = 0; i < model.blocks.length; i++) {
        const ca = model.blocks.get(i).crossAttn;
        ca.forward = (x: T.Tensor, cond: T.Tensor) => {
          const [b, n, c] = x.shape as [number, number, number];
          const l = cond.shape[1]!;
          const heads = (t: T.Tensor, len: number) => T.permute(T.reshape(t, [b, len, ca.numHeads, c / ca.numHeads]), [0, 2, 1, 3]);
          const [k, v] = T.chunk(T.reshape(ca.kvLinear.forward(cond), [b, l, 2, c]), 2, 2).map((t) => heads(T.reshape(t, [b, l, c]), l));
          const out = T.scaledDotProductAttention(heads(ca.qLinear.forward(x), n), k!, v!, { keyPadding });
          return ca.proj.forward(T.reshape(T.permute(out, [0, 2, 1, 3]), [b, n, c]));
        };
      }
      return model;
    };
    const go = (model: Dimba, ckpt: boolean) => {
      model.gradientCheckpointing = ckpt;
      const out = model.forward(inputs);
      T.sum(T.square(out)).backward();
      return { out: out.toArray(), grads: model.namedParameters().map(([n, p]) => [n, p.grad?.toArray() ?? []] as const) };
    };
    const before = go(perBlockMask(build()), false);
    assert.ok(before.out.every(Number.isFinite));
    for (const ckpt of [false, true]) {
      const now = go(build(), ckpt);
      assert.deepEqual(now.out, before.out, `output (gradient checkpointing ${ckpt})`);
      now.grads.forEach(([name, g], i) => assert.deepEqual(g, before.grads[i]![1], `${name} gradient (gradient checkpointing ${ckpt})`));
    }

    // Counted on the CPU backend's log kernel: the mask's conversion runs once, not once per block.
    const kernels = T.getBackend('cpu').kernels;
    const unary = kernels.unary;
    let logs = 0;
    kernels.unary = (op, ...rest) => {
      if (op === 'log') logs++;
      return unary.call(kernels, op, ...rest);
    };
    try {
      const model = build();
      const count = (captionMask: T.Tensor | null) => {
        logs = 0;
        T.noGrad(() => model.forward({ ...inputs, captionMask }));
        return logs;
      };
      assert.equal(model.blocks.length, 3);
      assert.equal(count(inputs.captionMask) - count(null), 1, 'log kernels the caption mask adds to a forward of 3 Transformer blocks');
    } finally {
      kernels.unary = unary;
    }
  });

  test('runs at another resolution (positional embedding recomputed for the grid)', () => {
    const model = new Dimba(tinyConfig());
    const out = model.forward({ ...batch(), x: T.randn([2, 4, 12, 16]) });
    assert.deepEqual(out.shape, [2, 8, 12, 16]);
  });

  test('state dict round trip through safetensors', () => {
    const a = new Dimba(tinyConfig(), { seed: 1 });
    const path = join(mkdtempSync(join(tmpdir(), 'dimba-')), 'w.safetensors');
    saveStateDictSync(path, a);
    const b = new Dimba(tinyConfig(), { seed: 2 });
    b.loadStateDict(loadStateDictFileSync(path));
    const sa = [...a.stateDict()];
    const sb = b.stateDict();
    for (const [name, t] of sa) assert.deepEqual(t.toArray(), sb.get(name)!.toArray(), name);
  });

  test('bad inputs name the argument and the shape', () => {
    const model = new Dimba(tinyConfig());
    assert.throws(() => model.forward({ ...batch(), x: T.randn([2, 3, 8, 8]) }), /x must be \[B, 4, H, W\].*\[2, 3, 8, 8\]/);
    assert.throws(() => model.forward({ ...batch(), timestep: T.tensor([1]) }), /timestep must be \[2\]/);
    assert.throws(() => model.forward({ ...batch(), caption: T.randn([2, 6, 8]) }), /caption must be \[2, L, 16\]/);
    assert.throws(() => model.forward({ ...batch(), captionMask: T.ones([2, 5]) }), /captionMask must be \[2, 6\]/);
    const other = new Dimba(tinyConfig({ hiddenSize: 48 }));
    assert.throws(() => other.loadStateDict(model.stateDict()), /shape/);
  });
});
