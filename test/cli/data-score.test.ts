/** `dimba data score`: help, option errors with suggestions, a scored manifest and its report. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { tempDir } from '../train/helpers.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function dimba(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('dimba data score: help, option errors, and a scored manifest with its report', async () => {
  const help = dimba(['data', 'score', '--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Usage: dimba data score --in MANIFEST/);
  assert.match(help.stdout, /PROXIES, not an aesthetic model/);
  const dataHelp = dimba(['data', '--help']);
  assert.equal(dataHelp.status, 0);
  assert.match(dataHelp.stdout, /^ {2}score {4}write an image-quality proxy score/m);
  assert.match(dimba(['--help']).stdout, /dimba data score --in DIR/);

  const typo = dimba(['data', 'scroe', '--in', 'x']);
  assert.equal(typo.status, 2);
  assert.match(typo.stderr, /unknown command 'scroe' \(known: emoji, score\); did you mean 'score'\?/);
  const badMetric = dimba(['data', 'score', '--in', 'x', '--by', 'colourfulness']);
  assert.equal(badMetric.status, 2);
  assert.match(badMetric.stderr, /--by must be one of colorfulness, contrast, sharpness, got 'colourfulness' \(did you mean 'colorfulness'\?\)/);
  const noInput = dimba(['data', 'score']);
  assert.equal(noInput.status, 2);
  assert.match(noInput.stderr, /--in MANIFEST is required/);

  const dir = tempDir('cli-score');
  fs.mkdirSync(join(dir, 'images'));
  const rows = [];
  for (const [name, rgb] of [['grey', [90, 90, 90]], ['red', [230, 20, 20]]] as const) {
    await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toFile(join(dir, 'images', `${name}.png`));
    rows.push(JSON.stringify({ image: `images/${name}.png`, caption: `a ${name} image` }));
  }
  rows.push(JSON.stringify({ image: 'images/gone.png', caption: 'missing' }));
  fs.writeFileSync(join(dir, 'manifest.jsonl'), `${rows.join('\n')}\n`);

  const text = dimba(['data', 'score', '--in', dir]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /scored 2 of 3 rows of .*manifest\.jsonl by colorfulness/);
  assert.match(text.stdout, /colorfulness: min 0, p10 0, p25 0, median 0, p75 \d+\.?\d*, p90 \d+\.?\d*, max \d+/);
  assert.match(text.stdout, /skipped: 1 \(missing-image 1\)\n {4}missing-image: .*gone\.png/);

  const json = dimba(['data', 'score', '--in', join(dir, 'manifest.jsonl'), '--by', 'contrast', '--json']);
  assert.equal(json.status, 0, json.stderr);
  const report = JSON.parse(json.stdout) as { metric: string; rows: number; scored: number; skipped: { total: number; files: { file: string }[] } };
  assert.deepEqual([report.metric, report.rows, report.scored, report.skipped.total], ['contrast', 3, 2, 1]);
  const scores = fs.readFileSync(join(dir, 'manifest.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { score?: number }).score);
  assert.deepEqual(scores, [0, 0, undefined]);

  const missing = dimba(['data', 'score', '--in', join(dir, 'nowhere')]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /cannot read --in .*nowhere: ENOENT/);
  assert.doesNotMatch(missing.stderr, /Usage:/);
});
