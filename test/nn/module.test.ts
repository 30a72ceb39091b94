import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, nn, tensor, zeros, sum, arange, randn, Generator, mul } from '../../src/index.js';

const { Module, Parameter, Linear, LayerNorm, ModuleList, ModuleDict, Sequential, GELU, Dropout, StateDictError } = nn;

class Attention extends Module {
  qkv: nn.Linear;
  proj: nn.Linear;
  constructor(dim: number, gen: Generator) {
    super();
    this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim, { generator: gen }));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { generator: gen }));
  }
}

class Block extends Module {
  norm: nn.LayerNorm;
  attn: Attention;
  mlp: nn.Sequential;
  scaleShiftTable: nn.Parameter;
  constructor(dim: number, gen: Generator) {
    super();
    this.norm = this.registerModule('norm', new LayerNorm(dim, { elementwiseAffine: false }));
    this.attn = this.registerModule('attn', new Attention(dim, gen));
    this.mlp = this.registerModule('mlp', new Sequential(new Linear(dim, 2 * dim, { generator: gen }), new GELU({ approximate: 'tanh' }), new Dropout(0.1), new Linear(2 * dim, dim, { generator: gen })));
    // Field name and checkpoint name differ on purpose.
    this.scaleShiftTable = this.registerParameter('scale_shift_table', new Parameter(zeros([2, dim])));
  }
}

class Net extends Module {
  blocks: nn.ModuleList<Block>;
  head: nn.Linear;
  positions: Tensor;
  cache: Tensor;
  steps: Tensor;
  constructor(dim = 4, depth = 2, seed = 0) {
    super();
    const gen = new Generator(seed);
    this.blocks = this.registerModule('blocks', new ModuleList(Array.from({ length: depth }, () => new Block(dim, gen))));
    this.head = this.registerModule('head', new Linear(dim, 2, { bias: false, generator: gen }));
    this.positions = this.registerBuffer('pos_embed', arange(0, dim, 1, { dtype: 'float32' }).reshape(1, dim));
    this.cache = this.registerBuffer('cache', zeros([3]), { persistent: false });
    this.steps = this.registerBuffer('steps', tensor([7], { dtype: 'int32' }));
  }
}

const blockParams = (i: number): string[] => [
  `blocks.${i}.scale_shift_table`,
  `blocks.${i}.attn.qkv.weight`, `blocks.${i}.attn.qkv.bias`,
  `blocks.${i}.attn.proj.weight`, `blocks.${i}.attn.proj.bias`,
  `blocks.${i}.mlp.0.weight`, `blocks.${i}.mlp.0.bias`,
  `blocks.${i}.mlp.3.weight`, `blocks.${i}.mlp.3.bias`,
];

test('nested modules and ModuleList get PyTorch dotted names in registration order', () => {
  const net = new Net();
  assert.deepEqual(net.namedParameters().map(([n]) => n), [...blockParams(0), ...blockParams(1), 'head.weight']);
  assert.deepEqual(net.namedBuffers().map(([n]) => n), ['pos_embed', 'cache', 'steps']);
  assert.deepEqual(net.namedModules().map(([n]) => n), [
    '', 'blocks', 'blocks.0', 'blocks.0.norm', 'blocks.0.attn', 'blocks.0.attn.qkv', 'blocks.0.attn.proj',
    'blocks.0.mlp', 'blocks.0.mlp.0', 'blocks.0.mlp.1', 'blocks.0.mlp.2', 'blocks.0.mlp.3',
    'blocks.1', 'blocks.1.norm', 'blocks.1.attn', 'blocks.1.attn.qkv', 'blocks.1.attn.proj',
    'blocks.1.mlp', 'blocks.1.mlp.0', 'blocks.1.mlp.1', 'blocks.1.mlp.2', 'blocks.1.mlp.3', 'head',
  ]);
  assert.deepEqual(net.children(), [net.blocks, net.head]);
  assert.equal(net.blocks.length, 2);
  assert.equal(net.blocks.get(-1), [...net.blocks][1]);
  assert.throws(() => net.blocks.get(2), RangeError);
  assert.equal(net.blocks.get(0).attn.qkv.weight, net.namedParameters()[1]![1]);
});

test('stateDict: params then persistent buffers per module, children after; detached views sharing storage', () => {
  const net = new Net(4, 1);
  const sd = net.stateDict();
  // Net's own buffers (the non-persistent 'cache' left out) come before its children's entries.
  assert.deepEqual([...sd.keys()], ['pos_embed', 'steps', ...blockParams(0), 'head.weight']);
  const w = sd.get('head.weight')!;
  assert.equal(w.requiresGrad, false);
  assert.equal(w.storage, net.head.weight.storage);
});

test('parameters() order is deterministic and independent of values; re-registering keeps the position', () => {
  const a = new Net(4, 2, 1).namedParameters().map(([n, p]) => `${n}:${p.shape.join('x')}`);
  const b = new Net(4, 2, 99).namedParameters().map(([n, p]) => `${n}:${p.shape.join('x')}`);
  assert.deepEqual(a, b);
  const m = new Module();
  m.registerParameter('a', new Parameter(zeros([1])));
  m.registerParameter('b', new Parameter(zeros([2])));
  const replacement = m.registerParameter('a', new Parameter(zeros([3])));
  assert.deepEqual(m.namedParameters().map(([n, p]) => [n, p.numel]), [['a', 3], ['b', 2]]);
  assert.equal(m.parameters()[0], replacement);
});

test('registration rejects dotted names, kind collisions and plain tensors', () => {
  const m = new Module();
  assert.throws(() => m.registerParameter('a.b', new Parameter(zeros([1]))), /contain no '\.'/);
  assert.throws(() => m.registerModule('', new Module()), /non-empty/);
  m.registerBuffer('x', zeros([1]));
  assert.throws(() => m.registerParameter('x', new Parameter(zeros([1]))), /already registered as a buffer/);
  assert.throws(() => m.registerParameter('y', zeros([1]) as nn.Parameter), /must be a Parameter/);
  assert.throws(() => m.registerModule('self', m), /its own child/);
  assert.throws(() => m.registerBuffer('p', new Parameter(zeros([1]))), /registerParameter/);
});

test('shared parameters are listed once but appear under every name in the state dict', () => {
  const root = new Module();
  const a = root.registerModule('a', new Linear(2, 2));
  const b = root.registerModule('b', new Linear(2, 2));
  b.weight = b.registerParameter('weight', a.weight);
  assert.deepEqual(root.namedParameters().map(([n]) => n), ['a.weight', 'a.bias', 'b.bias']);
  assert.deepEqual([...root.stateDict().keys()], ['a.weight', 'a.bias', 'b.weight', 'b.bias']);
  assert.equal(root.numParameters(), 4 + 2 + 2);
});

test('strict loadStateDict reports every missing key, unexpected key and shape mismatch in one error, writing nothing', () => {
  const net = new Net(4, 1);
  const before = net.head.weight.toArray();
  const sd = new Net(4, 1, 5).stateDict();
  sd.delete('blocks.0.attn.qkv.bias');
  sd.delete('steps');
  sd.set('blocks.0.extra', zeros([1]));
  sd.set('unused', zeros([2]));
  sd.set('head.weight', zeros([3, 4]));
  sd.set('pos_embed', zeros([4]));
  let err: unknown;
  try {
    net.loadStateDict(sd);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof StateDictError, String(err));
  assert.deepEqual(err.missingKeys, ['steps', 'blocks.0.attn.qkv.bias']);
  assert.deepEqual(err.unexpectedKeys, ['blocks.0.extra', 'unused']);
  assert.deepEqual(err.shapeMismatches.map((m) => [m.key, [...m.expected], [...m.got]]), [
    ['pos_embed', [1, 4], [4]],
    ['head.weight', [2, 4], [3, 4]],
  ]);
  for (const key of ['blocks.0.attn.qkv.bias', 'steps', 'blocks.0.extra', 'unused', 'head.weight', 'pos_embed']) {
    assert.match(err.message, new RegExp(key.replace(/\./g, '\\.')));
  }
  assert.deepEqual(net.head.weight.toArray(), before, 'a failed load must not write');
});

test('non-strict load copies what matches and returns missing/unexpected keys; shape mismatch still throws', () => {
  const net = new Net(4, 1);
  const src = new Net(4, 1, 5);
  const sd = src.stateDict();
  sd.delete('head.weight');
  sd.set('bogus', zeros([1]));
  const identity = net.blocks.get(0).attn.qkv.weight;
  const result = net.loadStateDict(sd, { strict: false });
  assert.deepEqual(result, { missingKeys: ['head.weight'], unexpectedKeys: ['bogus'] });
  assert.equal(net.blocks.get(0).attn.qkv.weight, identity, 'loading writes in place');
  assert.deepEqual(identity.toArray(), src.blocks.get(0).attn.qkv.weight.toArray());
  assert.notDeepEqual(net.head.weight.toArray(), src.head.weight.toArray());
  sd.set('head.weight', zeros([1, 1]));
  assert.throws(() => net.loadStateDict(sd, { strict: false }), (e: unknown) => e instanceof StateDictError && e.shapeMismatches.length === 1 && e.missingKeys.length === 0);
});

test('loadStateDict converts dtypes automatically', () => {
  const lin = new Linear(3, 2);
  const w = [[0.5, -1, 2], [0.25, 0, 1.5]];
  lin.loadStateDict(new Map([['weight', tensor(w, { dtype: 'float64' })], ['bias', tensor([1, 2], { dtype: 'bfloat16' })]]));
  assert.equal(lin.weight.dtype, 'float32');
  assert.deepEqual(lin.weight.toArray(), w.flat());
  assert.deepEqual(lin.bias!.toArray(), [1, 2]);
});

test('train()/eval() propagate through the whole tree, and Dropout follows', () => {
  const net = new Net();
  assert.ok(net.modules().every((m) => m.training));
  net.eval();
  assert.ok(net.modules().every((m) => !m.training));
  const drop = net.blocks.get(1).mlp.get(2);
  const x = randn([8, 8]);
  assert.deepEqual(drop.forward(x).toArray(), x.toArray());
  net.blocks.get(1).train();
  assert.ok(drop.training && !net.training && !net.blocks.get(0).mlp.get(2).training);
});

test('gradients reach parameters, hooks on a parameter gradient fire, zeroGrad clears', () => {
  const lin = new Linear(3, 2, { generator: new Generator(3) });
  const seen: number[][] = [];
  const remove = lin.weight.registerHook((g) => {
    seen.push([...g.shape]);
    return mul(g, 2);
  });
  const x = tensor([[1, 2, 3]]);
  sum(lin.forward(x)).backward();
  assert.deepEqual(seen, [[2, 3]]);
  // d sum(xWᵀ + b)/dW = x per row; the hook doubled it.
  assert.deepEqual(lin.weight.grad!.toArray(), [2, 4, 6, 2, 4, 6]);
  assert.deepEqual(lin.bias!.grad!.toArray(), [1, 1]);
  remove();
  lin.zeroGrad(false);
  assert.deepEqual(lin.weight.grad!.toArray(), [0, 0, 0, 0, 0, 0]);
  lin.zeroGrad();
  assert.equal(lin.weight.grad, null);
});

test("to('cpu') keeps identity; cast('float64') replaces and re-points fields, keeps flags, hooks, grads and ties", () => {
  const net = new Net(4, 1);
  const before = net.head.weight;
  assert.equal(net.to('cpu'), net);
  assert.equal(net.head.weight, before);

  const root = new Module();
  const a = root.registerModule('a', new Linear(2, 3));
  const b = root.registerModule('b', new Linear(2, 3));
  b.weight = b.registerParameter('weight', a.weight);
  const ids = root.registerBuffer('ids', tensor([1, 2], { dtype: 'int32' }));
  let hookCalls = 0;
  a.weight.registerHook(() => { hookCalls++; });
  sum(a.forward(tensor([[1, 1]]))).backward();
  const values = a.weight.toArray();
  const oldBias = a.bias!;

  root.cast('float64');
  assert.equal(a.weight.dtype, 'float64');
  assert.notEqual(a.bias, oldBias, 'a Parameter whose dtype changes is a new object');
  assert.equal(a.weight, b.weight, 'tied weights stay tied');
  assert.ok(a.weight instanceof Parameter && a.weight.requiresGrad && a.bias!.noWeightDecay);
  assert.deepEqual(root.namedParameters().map(([, p]) => p), [a.weight, a.bias, b.bias]);
  assert.deepEqual(a.weight.toArray(), values);
  assert.equal(a.weight.grad!.dtype, 'float64');
  assert.equal(root.namedBuffers()[0]![1], ids, 'integer buffers are not cast');
  assert.equal(ids.dtype, 'int32');

  const y = a.forward(tensor([[1, 2]], { dtype: 'float64' }));
  assert.equal(y.dtype, 'float64');
  hookCalls = 0;
  sum(y).backward();
  assert.equal(hookCalls, 1, 'hooks move with the parameter');
  assert.throws(() => root.cast('int32'), /floating/);
});

test('cast to a half type leaves keepFloat32 parameters in float32 (float64 ones in float64), and keeps the flag', () => {
  const root = new Module();
  const lin = root.registerModule('lin', new Linear(2, 3));
  const a = root.registerParameter('a', new Parameter(tensor([1.1, 2.2]), { keepFloat32: true }));
  root.cast('bfloat16');
  assert.equal(lin.weight.dtype, 'bfloat16');
  assert.equal(root.namedParameters().find(([n]) => n === 'a')![1], a, 'an unchanged parameter keeps its identity');
  assert.equal(a.dtype, 'float32');
  root.cast('float64');
  const a64 = root.namedParameters().find(([n]) => n === 'a')![1] as InstanceType<typeof Parameter>;
  assert.equal(a64.dtype, 'float64', 'a full-precision cast still applies');
  assert.ok(a64.keepFloat32, 'the flag survives replacement');
  root.cast('float16');
  assert.equal(root.namedParameters().find(([n]) => n === 'a')![1]!.dtype, 'float64', 'float64 is not narrowed by a half cast');
  assert.equal(lin.weight.dtype, 'float16');
});

test('numParameters, requiresGrad_, apply and toString', () => {
  const net = new Net(4, 1);
  // per block: table 8 + qkv 4*12+12 + proj 16+4 + mlp 4*8+8 + 8*4+4; head 8
  const expected = 8 + 60 + 20 + 40 + 36 + 8;
  assert.equal(net.numParameters(), expected);
  net.blocks.requiresGrad_(false);
  assert.equal(net.numParameters({ trainableOnly: true }), 8);
  const visited: string[] = [];
  net.head.apply((m) => visited.push(m.constructor.name));
  assert.deepEqual(visited, ['Linear']);
  const order: string[] = [];
  net.blocks.get(0).mlp.apply((m) => order.push(m.constructor.name));
  assert.deepEqual(order, ['Linear', 'GELU', 'Dropout', 'Linear', 'Sequential']);
  const text = net.toString();
  assert.match(text, /^Net\(\n {2}\(blocks\): ModuleList\(/);
  assert.match(text, /\(qkv\): Linear\(in=4, out=12, bias=true\)/);
  assert.match(text, /\(1\): GELU\(approximate='tanh'\)/);
});

test('ModuleDict registers by key and keeps insertion order', () => {
  const d = new ModuleDict({ proj: new Linear(2, 2), out: new Linear(2, 1, { bias: false }) });
  d.set('proj', new Linear(2, 2, { bias: false }));
  assert.deepEqual(d.keys(), ['proj', 'out']);
  assert.deepEqual(d.namedParameters().map(([n]) => n), ['proj.weight', 'out.weight']);
  assert.equal(d.get('out'), d.entries()[1]![1]);
  assert.throws(() => d.get('nope'), /no module 'nope'/);
});
