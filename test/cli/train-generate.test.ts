/**
 * CLI smoke tests on the CPU with a tiny model: help texts, a config error, `dimba train` stopped
 * by SIGINT (checkpoint saved, exit 130), `--resume` to the end, and `dimba generate` writing
 * PNGs whose text chunks carry the prompt, seed and settings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { readPngText } from '../../src/train/png-text.js';
import { listCheckpoints } from '../../src/train/checkpoint-store.js';
import { makeTinyDataset, tempDir, tinyConfigJson } from '../train/helpers.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function dimba(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('dimba --help lists the commands with examples; each command has --help', () => {
  const top = dimba(['--help']);
  assert.equal(top.status, 0);
  for (const name of ['train', 'generate', 'data']) assert.match(top.stdout, new RegExp(`^  ${name} `, 'm'));
  assert.match(top.stdout, /Examples:\n {2}dimba data emoji/);
  const trainHelp = dimba(['train', '--help']);
  assert.equal(trainHelp.status, 0);
  assert.match(trainHelp.stdout, /--resume \[PATH\]/);
  const generateHelp = dimba(['generate', '--help']);
  assert.equal(generateHelp.status, 0);
  assert.match(generateHelp.stdout, /--sampler S +dpm\+\+ \(default\), ddim, or euler/);
  const unknown = dimba(['train', '--confg', 'x.json']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /Unknown option '--confg'/);
});

test('a config with an unknown key fails with exit code 2 and a suggestion', () => {
  const dir = tempDir('cli-config');
  const file = join(dir, 'bad.json');
  fs.writeFileSync(file, JSON.stringify({ ...tinyConfigJson(join(dir, 'out'), join(dir, 'm.jsonl')), batchsize: 2 }));
  const r = dimba(['train', '--config', file]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown key 'batchsize'; did you mean 'batchSize'\?/);
});

test('dimba train: SIGINT saves a checkpoint, --resume finishes, dimba generate writes PNGs with text chunks', async () => {
  const dir = tempDir('cli');
  const manifest = await makeTinyDataset(join(dir, 'data'));
  const out = join(dir, 'run');
  const file = join(dir, 'tiny.json');
  fs.writeFileSync(file, JSON.stringify(tinyConfigJson(out, manifest, { steps: 16, checkpoint: { every: 0 }, samples: { prompts: ['a red square'], steps: 2 } })));

  // Stop the run by SIGINT once it has taken a step.
  const child = spawn(process.execPath, [MAIN, 'train', '--config', file, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!child.killed && /"event":"step","stage":"base","step":2,/.test(stdout)) {
        child.kill('SIGINT');
        resolve();
      }
    });
  });
  assert.equal(await exit, 130, stderr);
  assert.match(stderr, /SIGINT: finishing the current step and saving a checkpoint/);
  const events = stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; step?: number; completed?: boolean });
  assert.ok(events.some((e) => e.event === 'stopped'));
  const summary = events.at(-1)!;
  assert.equal(summary.event, 'summary');
  assert.equal(summary.completed, false);
  const saved = listCheckpoints(join(out, 'base'));
  assert.equal(saved.length, 1);
  assert.ok(saved[0]!.step >= 2 && saved[0]!.step < 16, `stopped at step ${saved[0]!.step}`);

  const resumed = dimba(['train', '--config', file, '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /training finished\n {2}base: 16 steps, final loss \d/);
  assert.match(resumed.stderr, /resuming from .*step-\d+/);
  assert.deepEqual(listCheckpoints(join(out, 'base')).map((c) => c.step).at(-1), 16);
  assert.ok(fs.existsSync(join(out, 'base', 'samples', 'step-16.png')));

  const png = join(dir, 'img', 'heart.png');
  const gen = dimba(['generate', 'a red square', '--model', out, '--steps', '3', '--cfg', '2', '--seed', '11', '-n', '2', '--out', png, '--grid', '--json']);
  assert.equal(gen.status, 0, gen.stderr);
  const report = JSON.parse(gen.stdout) as { files: string[]; grid: string; weights: string };
  assert.deepEqual(report.files, [join(dir, 'img', 'heart-0.png'), join(dir, 'img', 'heart-1.png')]);
  assert.equal(report.weights, 'ema');
  const bytes = fs.readFileSync(report.files[1]!);
  const text = readPngText(new Uint8Array(bytes));
  assert.equal(text['prompt'], 'a red square');
  assert.equal(text['seed'], '12');
  assert.equal(text['sampler'], 'dpm++');
  assert.equal(text['steps'], '3');
  assert.equal(text['cfg'], '2');
  assert.equal(text['size'], '8x8');
  const meta = await sharp(bytes).metadata();
  assert.deepEqual([meta.width, meta.height, meta.format], [8, 8, 'png']);
  assert.ok(fs.existsSync(report.grid));

  // Same seed, same image: generation is reproducible from the PNG's own settings.
  const again = dimba(['generate', 'a red square', '--model', out, '--steps', '3', '--cfg', '2', '--seed', '12', '--out', join(dir, 'again.png')]);
  assert.equal(again.status, 0, again.stderr);
  const [p1, p2] = await Promise.all([sharp(bytes).raw().toBuffer(), sharp(join(dir, 'again.png')).raw().toBuffer()]);
  assert.ok(p1.equals(p2));

  const missing = dimba(['generate', 'x', '--model', join(dir, 'nowhere')]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /--model .*nowhere: ENOENT/);
});
