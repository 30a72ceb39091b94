/** A tiny captioned dataset and a tiny training config, made on the fly for the trainer tests. */
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { mergeConfig, parseTrainConfig, type TrainConfig } from '../../src/train/config.js';
import { CollectingReporter } from '../../src/train/reporter.js';

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(join(os.tmpdir(), `dimba-train-${prefix}-`));
}

const COLOURS: readonly [string, [number, number, number]][] = [
  ['red', [220, 30, 30]], ['green', [30, 200, 60]], ['blue', [30, 60, 220]], ['yellow', [230, 220, 40]],
  ['black', [10, 10, 10]], ['white', [250, 250, 250]], ['purple', [140, 40, 180]], ['orange', [250, 140, 20]],
];

/** `count` 8x8 images (a coloured square on white) with captions and scores, as a JSONL manifest; returns its path. */
export async function makeTinyDataset(dir: string, count = 16): Promise<string> {
  fs.mkdirSync(join(dir, 'images'), { recursive: true });
  const rows: string[] = [];
  for (let i = 0; i < count; i++) {
    const [name, [r, g, b]] = COLOURS[i % COLOURS.length]!;
    const raw = Buffer.alloc(8 * 8 * 3, 255);
    for (let y = 2; y < 6; y++) for (let x = (i % 3); x < (i % 3) + 4; x++) raw.set([r, g, b], (y * 8 + x) * 3);
    const file = `images/${i}.png`;
    await sharp(raw, { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(join(dir, file));
    rows.push(JSON.stringify({ image: file, caption: `a ${name} square`, score: i % 2 === 0 ? 6 : 3, split: i < count - 2 ? 'train' : 'test' }));
  }
  const manifest = join(dir, 'manifest.jsonl');
  fs.writeFileSync(manifest, `${rows.join('\n')}\n`);
  return manifest;
}

/** The raw (JSON) form of a tiny config: a 1+1 block model 16 wide at 8x8 pixels. */
export function tinyConfigJson(outputDir: string, manifest: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    outputDir,
    seed: 3,
    model: { preset: 'Dimba-XS', hiddenSize: 16, numHeads: 2, layers: 'AM', dState: 4, expand: 1 },
    textEncoder: { tokenizer: 'words', width: 16, depth: 1, numHeads: 2, maxTokens: 8, channels: 16 },
    data: { kind: 'jsonl', path: manifest, split: 'train', resolution: 8 },
    optimizer: { kind: 'adamw', lr: 0.002 },
    schedule: { kind: 'cosine', warmupSteps: 2 },
    steps: 6,
    batchSize: 3,
    emaDecay: 0.9,
    checkpoint: { every: 2, keepLast: 2 },
    samples: { prompts: ['a red square', ''], every: 0, steps: 2 },
    logEvery: 1,
  };
  return mergeConfig(base, overrides);
}

export function tinyConfig(outputDir: string, manifest: string, overrides: Record<string, unknown> = {}): TrainConfig {
  return parseTrainConfig(tinyConfigJson(outputDir, manifest, overrides));
}

export function quietReporter(): CollectingReporter {
  return new CollectingReporter();
}

/** Every file of a checkpoint folder with its bytes, for bitwise comparisons (trainer.json's timing fields excepted). */
export function checkpointBytes(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of fs.readdirSync(dir).sort()) {
    if (name === 'trainer.json' || name === 'config.json') continue;
    out.set(name, fs.readFileSync(join(dir, name)));
  }
  return out;
}
