import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, type Tensor } from '../../src/index.js';
import { EMA } from '../../src/optim/index.js';
import { assertClose } from './reference.js';

function setValues(p: Tensor, values: number[]): void {
  p.backend.kernels.copy(tensor(values, { dtype: p.dtype }), p);
}

describe('EMA', () => {
  test('shadow = decay * shadow + (1 - decay) * param, and copyTo writes it into a model', () => {
    const w = tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
    const b = tensor([-1], { dtype: 'float64', requiresGrad: true });
    const ema = new EMA([w, b], { decay: 0.9 });
    const ref = [[1, 2, 3], [-1]];
    for (let s = 1; s <= 4; s++) {
      setValues(w, [1 + s, 2 * s, 3 - s]);
      setValues(b, [s / 2]);
      ema.update();
      ref[0] = ref[0]!.map((v, i) => 0.9 * v + 0.1 * w.toArray()[i]!);
      ref[1] = ref[1]!.map((v, i) => 0.9 * v + 0.1 * b.toArray()[i]!);
    }
    assert.equal(ema.numUpdates, 4);
    const model = { parameters: () => [tensor([0, 0, 0], { dtype: 'float64' }), tensor([0], { dtype: 'float64' })] as const };
    const targets = [...model.parameters()];
    ema.copyTo(targets);
    assertClose(targets[0]!.toArray(), ref[0]!, 'w');
    assertClose(targets[1]!.toArray(), ref[1]!, 'b');
    const module = { params: targets, parameters() { return this.params; } };
    setValues(targets[0]!, [9, 9, 9]);
    ema.copyTo(module);
    assertClose(targets[0]!.toArray(), ref[0]!, 'w via parameters()');
    assert.throws(() => ema.copyTo([targets[0]!]), /1 parameters, the EMA 2/);
  });

  test('bfloat16 parameters are averaged in float32', () => {
    const p = tensor([1], { dtype: 'bfloat16' });
    const ema = new EMA([p], { decay: 0.999 });
    setValues(p, [2]);
    for (let s = 0; s < 3; s++) ema.update();
    assert.equal(ema.shadowParams[0]!.dtype, 'float32');
    // 1 + (1 - 0.999^3): a change bf16 alone would round away.
    assertClose(ema.shadowParams[0]!.toArray(), [2 - 0.999 ** 3], 'shadow', 1e-6);
    ema.update(0);
    assert.deepEqual(ema.shadowParams[0]!.toArray(), [2]);
  });

  test('stateDict / loadStateDict restore the averages and the counters', () => {
    const p = tensor([1, 2], { requiresGrad: true });
    const ema = new EMA([p], { decay: 0.5 });
    setValues(p, [3, 4]);
    ema.update();
    const dict = ema.stateDict();
    ema.update();
    assert.deepEqual(dict.tensors.get('shadow.0')!.toArray(), [2, 3]);
    const other = new EMA([tensor([0, 0])], { decay: 0.9 });
    other.loadStateDict({ tensors: dict.tensors, meta: JSON.parse(JSON.stringify(dict.meta)) });
    assert.deepEqual(other.shadowParams[0]!.toArray(), [2, 3]);
    assert.equal(other.decay, 0.5);
    assert.equal(other.numUpdates, 1);
    assert.throws(() => other.loadStateDict({ tensors: new Map([['shadow.1', tensor([1, 1])]]), meta: dict.meta }), /'shadow.0' is missing/);
    assert.throws(() => new EMA([p], { decay: 1.5 }), /decay must be in \[0, 1\]/);
  });
});
