/** Training configs: unknown keys get a suggestion, bad values name the field, stages inherit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join } from 'node:path';
import { loadTrainConfig, parseTrainConfig } from '../../src/train/config.js';
import { TrainConfigError } from '../../src/train/errors.js';
import { closestMatch, editDistance } from '../../src/train/suggest.js';
import { dimbaConfigFor } from '../../src/train/build.js';
import { tempDir, tinyConfigJson } from './helpers.js';

const base = () => tinyConfigJson('/tmp/out', '/tmp/data/manifest.jsonl');

function rejects(value: unknown, pattern: RegExp): void {
  assert.throws(() => parseTrainConfig(value), (error: unknown) => {
    assert.ok(error instanceof TrainConfigError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

test('edit distance and closest match', () => {
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('stpes', 'steps'), 1);
  assert.equal(closestMatch('stpes', ['seed', 'steps', 'stages']), 'steps');
  assert.equal(closestMatch('learningRate', ['lr', 'weightDecay']), undefined);
  assert.equal(closestMatch('WEIGHTDECAY', ['lr', 'weightDecay']), 'weightDecay');
});

test('an unknown key names itself and suggests the closest valid key', () => {
  rejects({ ...base(), stpes: 10 }, /^config: unknown key 'stpes'; did you mean 'steps'\?/);
  rejects({ ...base(), optimizer: { kind: 'adamw', lr: 1e-3, weight_decay: 0.1 } }, /^config\.optimizer: unknown key 'weight_decay'; did you mean 'weightDecay'\?/);
  // A key of another section is pointed to where it belongs.
  rejects({ ...base(), warmupSteps: 10 }, /^config: unknown key 'warmupSteps'; did you mean 'schedule\.warmupSteps'\?/);
  rejects({ ...base(), stages: [{ stpes: 3 }] }, /^config\.stages\[0\]: unknown key 'stpes'; did you mean 'steps'\?/);
  rejects({ ...base(), zzz: 1 }, /^config: unknown key 'zzz' \(valid keys: /);
});

test('invalid values name the field and the value', () => {
  rejects({ ...base(), steps: -3 }, /^config\.steps must be an integer >= 1, got -3$/);
  rejects({ ...base(), batchSize: 'many' }, /^config\.batchSize must be an integer >= 1, got "many"$/);
  rejects({ ...base(), optimizer: { kind: 'adam', lr: 1 } }, /^config\.optimizer\.kind must be one of 'adamw', 'came', got "adam" \(did you mean 'adamw'\?\)$/);
  rejects({ ...base(), optimizer: { kind: 'came', lr: 1e-4, betas: [0.9, 0.99] } }, /^config\.optimizer\.betas must be a list of 3 of numbers/);
  rejects({ ...base(), model: { preset: 'Dimba-XXL' } }, /^config\.model\.preset must be one of 'Dimba-XS'.*got "Dimba-XXL"/);
  rejects({ ...base(), model: { preset: 'Dimba-XS', layers: 'AXM' } }, /^config\.model\.layers must be a pattern of 'A'/);
  rejects({ ...base(), objective: 'flow', samples: { sampler: 'ddim' } }, /^config\.samples\.sampler must be one of 'euler' for objective 'flow', got "ddim"/);
  rejects({ ...base(), schedule: { warmupSteps: 100 } }, /^config\.schedule\.warmupSteps must be at most steps \(6\), got 100/);
  rejects({ ...base(), data: { kind: 'folder', path: 'x', resolution: 8, minScore: 5 } }, /^config\.data\.minScore must be left out for a folder dataset/);
  rejects({ ...base(), outputDir: '' }, /^config\.outputDir must be a non-empty string, got ""$/);
});

test('stages inherit from the stage before and override what they name', () => {
  const config = parseTrainConfig({
    ...base(),
    stages: [
      { name: 'base' },
      { name: 'hires', kind: 'resolution', data: { resolution: 16 }, steps: 4 },
      { name: 'quality', kind: 'quality', data: { minScore: 5 }, optimizer: { lr: 1e-4 } },
    ],
  });
  const [s0, s1, s2] = config.stages;
  assert.deepEqual(config.stages.map((s) => s.kind), ['base', 'resolution', 'quality']);
  assert.equal(s0!.data.resolution, 8);
  assert.equal(s1!.data.resolution, 16);
  assert.equal(s2!.data.resolution, 16);
  assert.equal(s2!.data.minScore, 5);
  assert.equal(s2!.steps, 4);
  assert.equal(s2!.optimizer.lr, 1e-4);
  assert.equal(s1!.optimizer.lr, 0.002);
  // Resolution adaptation interpolates the positional embedding: the 16 px grid spans the 8 px positions.
  const hires = dimbaConfigFor(s1!, { inputSize: 8, peInterpolation: 1 });
  assert.equal(hires.inputSize, 16);
  assert.equal(hires.peInterpolation, 2);
  rejects({ ...base(), stages: [{ name: 'a' }, { name: 'a', kind: 'quality' }] }, /stages\[1\]\.name 'a' is used by an earlier stage/);
  rejects({ ...base(), stages: [{}, { kind: 'resolution', data: { resolution: 4 } }] }, /stages\[1\]\.data\.resolution must be larger than the previous stage's \(8\)/);
});

test('config files may hold comments; syntax errors give line and column', () => {
  const dir = tempDir('config');
  const good = join(dir, 'good.json');
  fs.writeFileSync(good, `// a comment\n${JSON.stringify(base(), null, 1).replace('"seed": 3,', '"seed": 3, /* inline */')}\n`);
  assert.equal(loadTrainConfig(good).seed, 3);
  const bad = join(dir, 'bad.json');
  fs.writeFileSync(bad, '{\n  "steps": 3,\n  "batchSize" 4\n}\n');
  assert.throws(() => loadTrainConfig(bad), /bad\.json:3:15: invalid JSON \(ColonExpected\)/);
  const unknown = join(dir, 'unknown.json');
  fs.writeFileSync(unknown, JSON.stringify({ ...base(), emaDecy: 0.9 }));
  assert.throws(() => loadTrainConfig(unknown), /unknown\.json: config: unknown key 'emaDecy'; did you mean 'emaDecay'\?/);
});

test('the shipped example configs are valid', () => {
  const examples = new URL('../../../examples/', import.meta.url);
  const files = fs.readdirSync(examples).filter((f) => f.endsWith('.json'));
  assert.ok(files.includes('emoji-tiny.json'));
  for (const file of files) assert.ok(loadTrainConfig(new URL(file, examples).pathname).stages.length >= 1, file);
});
