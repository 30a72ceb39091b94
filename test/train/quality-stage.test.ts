/**
 * The paper's recipe end to end on scored data: `scoreManifest` writes colourfulness scores into a
 * manifest of grey and coloured squares, then base training, resolution adaptation and quality
 * tuning (data.minScore, a lower LR) run in one config. The quality stage must train on the
 * coloured rows only: the grey images are deleted once the resolution stage has finished, so a
 * quality stage that reached for them would report skipped images.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { scoreManifest } from '../../src/data/score-manifest.js';
import { train } from '../../src/train/train.js';
import { listCheckpoints } from '../../src/train/checkpoint-store.js';
import { readTrainerState } from '../../src/train/checkpoint.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { CollectingReporter } from '../../src/train/reporter.js';
import type { TrainEvent } from '../../src/train/reporter.js';
import { tempDir, tinyConfig } from './helpers.js';

const COLOURED: readonly [string, [number, number, number]][] = [
  ['red', [220, 30, 30]], ['green', [30, 200, 60]], ['blue', [30, 60, 220]],
  ['yellow', [230, 220, 40]], ['purple', [140, 40, 180]], ['orange', [250, 140, 20]],
];
const GREYS = [20, 60, 100, 140, 180, 220];

/** A square of `rgb` on white, 8x8. */
async function square(file: string, rgb: [number, number, number], offset: number): Promise<void> {
  const raw = Buffer.alloc(8 * 8 * 3, 255);
  for (let y = 2; y < 6; y++) for (let x = offset; x < offset + 4; x++) raw.set(rgb, (y * 8 + x) * 3);
  await sharp(raw, { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(file);
}

/** Grey and coloured rows interleaved, without scores; returns the manifest and the grey image files. */
async function makeData(dir: string): Promise<{ manifest: string; greys: string[] }> {
  fs.mkdirSync(join(dir, 'images'), { recursive: true });
  const rows: string[] = [];
  const greys: string[] = [];
  for (let i = 0; i < 6; i++) {
    const [name, rgb] = COLOURED[i]!;
    await square(join(dir, 'images', `c${i}.png`), rgb, i % 3);
    rows.push(JSON.stringify({ image: `images/c${i}.png`, caption: `a ${name} square`, split: 'train' }));
    const g = GREYS[i]!;
    const grey = join(dir, 'images', `g${i}.png`);
    await square(grey, [g, g, g], i % 3);
    greys.push(grey);
    rows.push(JSON.stringify({ image: `images/g${i}.png`, caption: `a grey square ${i}`, split: 'train' }));
  }
  const manifest = join(dir, 'manifest.jsonl');
  fs.writeFileSync(manifest, `${rows.join('\n')}\n`);
  return { manifest, greys };
}

/** Collects warnings by the stage that was running when they came. */
class StageReporter extends CollectingReporter {
  stage = '';
  readonly warningsBy = new Map<string, string[]>();
  override event(e: TrainEvent): void {
    if (e.event === 'stage') this.stage = e.stage;
    super.event(e);
  }
  override warn(message: string): void {
    this.warningsBy.set(this.stage, [...(this.warningsBy.get(this.stage) ?? []), message]);
    super.warn(message);
  }
}

test('base → resolution → quality tuning on a scored manifest: the quality stage sees only the curated rows, at a lower LR', async () => {
  const root = tempDir('quality');
  const { manifest, greys } = await makeData(join(root, 'data'));
  const scored = await scoreManifest({ input: manifest, metric: 'colorfulness' });
  assert.equal(scored.scored, 12);
  const rows = fs.readFileSync(manifest, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { image: string; score: number });
  for (const row of rows) {
    if (row.image.includes('/g')) assert.equal(row.score, 0, `${row.image} is grey`);
    else assert.ok(row.score > 10, `${row.image} scored ${row.score}`);
  }

  const out = join(root, 'run');
  const config = tinyConfig(out, manifest, {
    steps: 3,
    samples: { prompts: [] },
    checkpoint: { every: 0, keepLast: 1 },
    stages: [
      { name: 'base' },
      { name: 'hires', kind: 'resolution', data: { resolution: 16 } },
      // 4 steps of 3 images over 6 curated rows: two whole epochs, so skips would be reported.
      { name: 'curated', kind: 'quality', data: { minScore: 5 }, optimizer: { lr: 0.0004 }, steps: 4 },
    ],
  });
  const reporter = new StageReporter();
  const result = await train({
    config, reporter,
    hooks: {
      onStep: (stage, step) => {
        if (stage === 'hires' && step === 3) for (const grey of greys) fs.rmSync(grey);
      },
    },
  });
  assert.equal(result.completed, true);
  assert.deepEqual(result.stages.map((s) => [s.name, s.steps, s.imagesSeen]), [['base', 3, 9], ['hires', 3, 9], ['curated', 4, 12]]);
  assert.deepEqual(reporter.warningsBy.get('curated') ?? [], [], 'the quality stage read no grey (deleted) image');

  const final = readTrainerState(listCheckpoints(join(out, 'curated')).at(-1)!.path);
  assert.match(final.loader.source, /score >= 5 \(6 rows\)$/);
  const starts = reporter.events.flatMap((e) => (e.event === 'stage' ? [[e.stage, e.from?.endsWith(join('hires', 'step-3')) ?? false]] : []));
  assert.deepEqual(starts, [['base', false], ['hires', false], ['curated', true]]);

  const metrics = new MetricsLog(result.metrics).read();
  const lrs = (stage: string) => metrics.filter((r) => r.stage === stage).map((r) => r['lr'] as number);
  assert.equal(lrs('curated').length, 4);
  // Warmup (2 steps, inherited) then cosine: the quality stage peaks at its own, lower LR.
  assert.equal(Math.max(...lrs('curated')), 0.0004, `curated LRs ${lrs('curated').join(', ')}`);
  assert.equal(Math.max(...lrs('base')), 0.002, `base LRs ${lrs('base').join(', ')}`);
  assert.ok(metrics.filter((r) => r.stage === 'curated').every((r) => Number.isFinite(r['loss'])));
});
