/**
 * Exact resume: optimizer and scheduler state saved as a trainer would (tensors in safetensors,
 * the rest as JSON), loaded into fresh objects, must continue with bit-identical parameters.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, tensor } from '../../src/index.js';
import { viewHost, type DType } from '../../src/tensor/dtype.js';
import { numelOf } from '../../src/tensor/shape.js';
import { readSafetensors, writeSafetensorsSync, type RawTensor } from '../../src/io/safetensors/index.js';
import {
  AdamW, CAME, LrScheduler, OptimizerError, type LrSchedulerState, type OptimizerStateDict, type OptimizerStateMeta,
} from '../../src/optim/index.js';
import { lcgValues } from './reference.js';

function toRaw(t: Tensor): RawTensor {
  const host = t.toHost();
  return { dtype: t.dtype, shape: [...t.shape], data: new Uint8Array(host.buffer, host.byteOffset, host.byteLength).slice() };
}

function fromRaw(raw: RawTensor): Tensor {
  const data = raw.data.slice();
  return Tensor.fromHost(viewHost(raw.dtype, data.buffer, 0, numelOf(raw.shape)), raw.shape, raw.dtype);
}

/** Round-trips a state dict through a safetensors file and JSON text. */
function saveAndLoad(dict: OptimizerStateDict, scheduler: LrSchedulerState, dir: string): { dict: OptimizerStateDict; scheduler: LrSchedulerState } {
  const path = join(dir, 'optimizer.safetensors');
  writeSafetensorsSync(path, new Map([...dict.tensors].map(([k, t]) => [k, toRaw(t)])));
  const json = JSON.stringify({ optimizer: dict.meta, scheduler });
  const parsed = JSON.parse(json) as { optimizer: OptimizerStateMeta; scheduler: LrSchedulerState };
  const tensors = new Map([...readSafetensors(path)].map(([k, raw]) => [k, fromRaw(raw)]));
  return { dict: { tensors, meta: parsed.optimizer }, scheduler: parsed.scheduler };
}

const SHAPES = [[4, 3], [3], [2, 3, 4]];

function makeParams(dtype: DType): Tensor[] {
  return SHAPES.map((shape, i) => {
    const p = tensor(lcgValues(numelOf(shape), i + 1), { shape, dtype, requiresGrad: true });
    return i === 1 ? Object.assign(p, { noWeightDecay: true }) : p;
  });
}

function cloneParams(params: Tensor[]): Tensor[] {
  return params.map((p) => Object.assign(Tensor.fromHost(p.toHost(), p.shape, p.dtype).requiresGrad_(), { noWeightDecay: p === params[1] }));
}

function setGrads(params: Tensor[], step: number): void {
  params.forEach((p, i) => { p.grad = tensor(lcgValues(p.numel, 1000 + 10 * step + i), { shape: [...p.shape], dtype: p.dtype }); });
}

type Make = (params: Tensor[]) => AdamW | CAME;
const makeAdamW: Make = (params) => new AdamW([{ params: params.slice(0, 2) }, { params: params.slice(2), lr: 0.003 }], { lr: 0.01, weightDecay: 0.1 });
const makeCAME: Make = (params) => new CAME([{ params: params.slice(0, 2) }, { params: params.slice(2), lr: 0.003 }], { lr: 0.01, weightDecay: 0.1 });

function checkExactResume(make: Make, dtype: DType): void {
  const dir = mkdtempSync(join(tmpdir(), 'dimba-optim-'));
  try {
    const schedule = { kind: 'cosine', warmupSteps: 2, totalSteps: 10, minLr: 1e-4 } as const;
    const a = makeParams(dtype);
    const optA = make(a);
    const schedA = new LrScheduler(optA, schedule);
    for (let s = 0; s < 3; s++) { setGrads(a, s); optA.step(); schedA.step(); }

    const saved = optA.stateDict();
    const snapshot = [...saved.tensors].map(([k, t]) => [k, t.toArray()] as const);
    const loaded = saveAndLoad(saved, schedA.stateDict(), dir);

    const b = cloneParams(a);
    const optB = make(b);
    const schedB = new LrScheduler(optB, schedule);
    optB.loadStateDict(loaded.dict);
    schedB.loadStateDict(loaded.scheduler);
    assert.deepEqual(optB.paramGroups.map((g) => g.options.lr), optA.paramGroups.map((g) => g.options.lr));

    for (let s = 3; s < 7; s++) {
      setGrads(a, s); setGrads(b, s);
      optA.step(); schedA.step();
      optB.step(); schedB.step();
      a.forEach((p, i) => assert.deepEqual(b[i]!.toHost(), p.toHost(), `${dtype} step ${s + 1} param ${i} differs after resume`));
    }
    // The state dict is a snapshot: the later steps did not change it.
    for (const [k, values] of snapshot) assert.deepEqual(saved.tensors.get(k)!.toArray(), values, `${k} changed after stateDict()`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('optimizer state dicts', () => {
  for (const [name, make] of [['AdamW', makeAdamW], ['CAME', makeCAME]] as const) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      test(`${name} with ${dtype} parameters resumes bit-identically through safetensors + JSON`, () => checkExactResume(make, dtype));
    }
  }

  test('names tensors by parameter index and keeps masters only for half parameters', () => {
    const params = makeParams('float32');
    params[2] = tensor(lcgValues(24, 9), { shape: [2, 3, 4], dtype: 'bfloat16', requiresGrad: true });
    const opt = makeCAME(params);
    setGrads(params, 0);
    params[1]!.grad = null;
    opt.step();
    const dict = opt.stateDict();
    assert.deepEqual([...dict.tensors.keys()].sort(), [
      'state.0.exp_avg', 'state.0.exp_avg_res_col', 'state.0.exp_avg_res_row', 'state.0.exp_avg_sq_col', 'state.0.exp_avg_sq_row',
      'state.2.exp_avg', 'state.2.exp_avg_res_col', 'state.2.exp_avg_res_row', 'state.2.exp_avg_sq_col', 'state.2.exp_avg_sq_row',
      'state.2.master',
    ]);
    assert.deepEqual(dict.meta.state, { 0: { step: 1 }, 2: { step: 1 } });
    assert.deepEqual(dict.meta.groups.map((g) => g.params), [[0, 1], [2]]);
    assert.deepEqual(dict.meta.groups[0]!.options, { lr: 0.01, betas: [0.9, 0.999, 0.9999], eps: [1e-30, 1e-16], clipThreshold: 1, weightDecay: 0.1 });
  });

  test('rejects state dicts that do not fit, naming what is wrong', () => {
    const params = makeParams('float32');
    const opt = makeAdamW(params);
    setGrads(params, 0);
    opt.step();
    const good = opt.stateDict();
    const fresh = () => makeAdamW(makeParams('float32'));
    const withMeta = (meta: Partial<OptimizerStateMeta>): OptimizerStateDict => ({ tensors: good.tensors, meta: { ...good.meta, ...meta } });
    const isOptimizerError = (re: RegExp) => (e: unknown) => e instanceof OptimizerError && re.test(e.message);

    assert.throws(() => makeCAME(makeParams('float32')).loadStateDict(good), isOptimizerError(/state dict is for AdamW/));
    assert.throws(() => fresh().loadStateDict(withMeta({ groups: good.meta.groups.slice(0, 1) })), isOptimizerError(/1 parameter groups, the optimizer 2/));
    assert.throws(() => fresh().loadStateDict(withMeta({ groups: [{ ...good.meta.groups[0]!, options: { ...good.meta.groups[0]!.options, betas: [0.9] } }, good.meta.groups[1]!] })),
      isOptimizerError(/option 'betas' should be 2 numbers/));
    const missing = new Map(good.tensors);
    missing.delete('state.2.exp_avg_sq');
    assert.throws(() => fresh().loadStateDict({ tensors: missing, meta: good.meta }), isOptimizerError(/'state.2.exp_avg_sq' is missing/));
    const extra = new Map(good.tensors).set('state.9.exp_avg', tensor([1]));
    assert.throws(() => fresh().loadStateDict({ tensors: extra, meta: good.meta }), isOptimizerError(/unexpected tensors state.9.exp_avg/));
    const wrongShape = new Map(good.tensors).set('state.0.exp_avg', tensor([1, 2]));
    assert.throws(() => fresh().loadStateDict({ tensors: wrongShape, meta: good.meta }), isOptimizerError(/state.0.exp_avg.*\[2\] does not match the target \[4, 3\]/));
  });
});
