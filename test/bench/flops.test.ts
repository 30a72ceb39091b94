import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Dimba, presetConfig } from '../../src/models/dimba/index.js';
import { Linear } from '../../src/nn/index.js';
import { attentionFlops, bandwidthFraction, dimbaFlops, mfu, scanBytes, scanFlops } from '../../bench/gpu/flops.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * The forward FLOPs counted independently: every Linear of a built model contributes
 * 2 * in * out per row it is applied to (tokens, caption tokens or one row per image, by name),
 * plus the convolutions, the attention products and the scan.
 */
function flopsFromModel(preset: string, res: number, overrides = {}): number {
  const config = presetConfig(preset, { inputSize: res / 8, ...overrides });
  const model = new Dimba(config);
  const n = (res / 8 / config.patchSize) ** 2;
  const lc = config.captionTokens;
  let total = 0;
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof Linear)) continue;
    const [out, inp] = m.weight.shape as [number, number];
    const rows = name.startsWith('y_embedder') || name.endsWith('cross_attn.kv_linear') ? lc
      : name.startsWith('t_embedder') || name.startsWith('t_block') ? 1 : n;
    total += 2 * inp * out * rows;
  }
  const c = config.hiddenSize;
  const di = config.expand * c;
  const patchWeights = model.xEmbedder.proj.weight.numel;
  total += 2 * n * patchWeights;
  for (const b of model.mambaBlocks) total += 2 * 2 * n * b.mixer.conv1d.weight.numel + 2 * scanFlops(1, di, n, config.dState);
  total += model.blocks.length * (4 * n * n * c + 4 * n * lc * c);
  return total;
}

test('dimbaFlops equals a count over the built model\'s layers', () => {
  for (const [preset, res, overrides] of [['Dimba-XS', 64, {}], ['Dimba-S', 128, {}], ['Dimba-XS', 128, { layers: 'AMM', layerRepeats: 2 }]] as const) {
    const f = dimbaFlops(presetConfig(preset, overrides), res);
    assert.equal(f.forward, flopsFromModel(preset, res, overrides), `${preset} ${res}`);
    assert.equal(f.train, 3 * f.forward);
  }
});

test('dimbaFlops for Dimba-L-2: parts add up, tokens by resolution, bad resolutions named', () => {
  const c = presetConfig('Dimba-L-2');
  const f256 = dimbaFlops(c, 256);
  const f512 = dimbaFlops(c, 512);
  assert.equal(f256.tokens, 256);
  assert.equal(f512.tokens, 1024);
  assert.equal(f256.attentionBlocks, 28);
  assert.equal(f256.mambaBlocks, 28);
  assert.equal(f256.forward, f256.embed + 28 * f256.attentionBlock + 28 * f256.mambaBlock + f256.final);
  // Linear layers dominate: 2 * tokens * (matmul parameters) is within a few percent of the total.
  assert.ok(f256.forward > 2 * 256 * 8e8 && f256.forward < 2 * 256 * 9e8, String(f256.forward));
  assert.throws(() => dimbaFlops(c, 100), /res must be a positive multiple of 16, got 100/);
});

test('attentionFlops reproduces GPU.md: cuDNN B16 L1024 fwd+bwd 0.99 ms = 274 TFLOP/s', () => {
  const tflops = attentionFlops(16, 16, 1024, 1024, 72, true) / 0.99e-3 / 1e12;
  assert.ok(Math.abs(tflops - 274) < 2, String(tflops));
  assert.equal(attentionFlops(1, 1, 2, 3, 4, false), 4 * 2 * 3 * 4);
  assert.equal(attentionFlops(1, 1, 2, 3, 4, true), 3.5 * 4 * 2 * 3 * 4);
});

test('scanBytes: the formula for the B16 L1024 bf16 shape, and bandwidth fractions', () => {
  const t = 16 * 2304 * 1024;
  const bc = 16 * 16 * 1024;
  const params = (2304 * 16 + 2 * 2304) * 4;
  const b = scanBytes({ batch: 16, dim: 2304, length: 1024, nState: 16, elementBytes: 2 });
  assert.equal(b.forward, 4 * t * 2 + 2 * bc * 2 + params);
  assert.equal(b.backward, 7 * t * 2 + 4 * bc * 2 + 2 * params);
  // GPU.md puts the byte floor near 126 us forward and 201 us backward at 3.0 TB/s; ours is lower-bound bytes.
  assert.ok(b.forward / 3e12 * 1e6 > 90 && b.forward / 3e12 * 1e6 < 130, String(b.forward));
  assert.ok(b.backward / 3e12 * 1e6 > 150 && b.backward / 3e12 * 1e6 < 205, String(b.backward));
  assert.equal(scanBytes({ batch: 1, dim: 4, length: 2, nState: 3, groups: 2, elementBytes: 4, paramBytes: 8 }).forward, 4 * 8 * 4 + 2 * 12 * 4 + 20 * 8);
  assert.equal(bandwidthFraction(3e9, 1), 1);
  assert.equal(bandwidthFraction(1e9, 1, 2e12), 0.5);
  assert.ok(Math.abs(mfu(1e12, 989) - 1) < 1e-12);
});

function pythonFlops(preset: string, res: number): { forward: number; train: number } | string {
  const r = spawnSync('python3', [`${root}bench/reference/flops.py`, '--preset', preset, '--res', String(res), '--json'], { encoding: 'utf8' });
  if (r.error) return `python3 could not run: ${r.error.message}`;
  if (r.status !== 0) throw new Error(`flops.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { forward: number; train: number };
}

const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
const noPython = python.error ? `no python3 here (${python.error.message}): the TypeScript/Python FLOP agreement is not checked` : false;

test('bench/reference/flops.py computes the same FLOPs as bench/gpu/flops.ts', { skip: noPython }, () => {
  for (const [preset, res] of [['Dimba-L-2', 256], ['Dimba-L-2', 512], ['Dimba-G-2', 256], ['Dimba-XS', 64], ['Dimba-B', 128]] as const) {
    const py = pythonFlops(preset, res);
    assert.ok(typeof py !== 'string', String(py));
    const ts = dimbaFlops(presetConfig(preset), res);
    assert.equal(py.forward, ts.forward, `${preset} ${res}`);
    assert.equal(py.train, ts.train, `${preset} ${res}`);
  }
});
