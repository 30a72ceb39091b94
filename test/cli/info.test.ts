import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Dimba, presetConfig } from '../../src/models/dimba/index.js';
import { saveStateDictSync } from '../../src/nn/index.js';

const cli = new URL('../../src/cli/main.js', import.meta.url).pathname;
const dimba = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('dimba info Dimba-L-2 --json: layout and about 0.9B parameters', () => {
  const r = dimba('info', 'Dimba-L-2', '--json');
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { params: number; layout: string; transformerBlocks: number; mambaBlocks: number };
  assert.equal(info.params, 859517600);
  assert.equal(info.layout, 'AM'.repeat(28));
  assert.deepEqual([info.transformerBlocks, info.mambaBlocks], [28, 28]);
});

test('dimba info on a checkpoint reads its header and agrees with the preset', () => {
  const config = presetConfig('Dimba-XS', { inputSize: 8, depth: 4, mambaRatio: 0.5 });
  const path = join(mkdtempSync(join(tmpdir(), 'dimba-info-')), 'model.safetensors');
  const model = new Dimba(config);
  saveStateDictSync(path, model);
  const r = dimba('info', path, '--json');
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { params: number; layout: string; hiddenSize: number };
  assert.equal(info.params, model.numParameters());
  assert.equal(info.layout, model.pattern.join(''));
  assert.equal(info.hiddenSize, 64);
  assert.match(dimba('info', path).stdout, /layout: \(AAM\)x2  \(4 Transformer, 2 Mamba blocks, hidden 64\)/);
});

test('dimba info with an unknown name fails clearly', () => {
  const r = dimba('info', 'Dimba-Q-9');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /'Dimba-Q-9' is neither a preset \(Dimba-XS.*\) nor an existing file/);
});
