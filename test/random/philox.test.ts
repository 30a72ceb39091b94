import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { philox4x32, philoxFill } from '../../src/random/philox.js';
import * as T from '../../src/index.js';

describe('Philox4x32-10', () => {
  test('matches the Random123 known-answer vectors', () => {
    const out = new Uint32Array(4);
    const hex = () => Array.from(out, (w) => w.toString(16).padStart(8, '0'));
    philox4x32(0, 0, 0, 0, 0, 0, out);
    assert.deepEqual(hex(), ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    const f = 0xffffffff;
    philox4x32(f, f, f, f, f, f, out);
    assert.deepEqual(hex(), ['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
    philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out);
    assert.deepEqual(hex(), ['d16cfe09', '94fdcceb', '5001e420', '24126ea1']);
  });

  test('element i depends only on (seed, offset + i): a split draw equals one draw', () => {
    const whole = new Float64Array(10);
    philoxFill(whole, 'uniform', 42n, 100n);
    const tail = new Float64Array(6);
    philoxFill(tail, 'uniform', 42n, 101n);
    assert.deepEqual(Array.from(tail), Array.from(whole.slice(4)));
  });

  test('normal samples have mean 0 and variance 1; uniform in [0, 1)', () => {
    const n = T.randn([200000], { generator: new T.Generator(1) }).toFloat64Array();
    const mean = n.reduce((a, b) => a + b, 0) / n.length;
    const variance = n.reduce((a, b) => a + (b - mean) ** 2, 0) / n.length;
    assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
    assert.ok(Math.abs(variance - 1) < 0.01, `variance ${variance}`);
    const u = T.rand([100000], { generator: new T.Generator(2) }).toFloat64Array();
    assert.ok(u.every((v) => v >= 0 && v < 1));
    assert.ok(Math.abs(u.reduce((a, b) => a + b, 0) / u.length - 0.5) < 0.01);
  });

  test('one seed gives one stream; generator state saves and restores', () => {
    const g = new T.Generator(7);
    const a = T.randn([5], { generator: g }).toArray();
    const state = g.getState();
    const b = T.randn([5], { generator: g }).toArray();
    assert.notDeepEqual(a, b);
    g.setState(state);
    assert.deepEqual(T.randn([5], { generator: g }).toArray(), b);
    assert.deepEqual(T.randn([5], { generator: new T.Generator(7) }).toArray(), a);
    const ints = T.randint(3, 9, [1000], { generator: new T.Generator(3) }).toArray();
    assert.ok(ints.every((v) => Number.isInteger(v) && v >= 3 && v < 9));
    assert.equal(new Set(ints).size, 6);
  });
});
