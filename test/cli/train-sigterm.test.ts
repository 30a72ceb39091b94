/**
 * SIGTERM (what `kill`, systemd and job schedulers send) stops `dimba train` as SIGINT does: the
 * current step finishes, a checkpoint is saved, and the exit code is 143 (128 + 15).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listCheckpoints } from '../../src/train/checkpoint-store.js';
import { readTrainerState } from '../../src/train/checkpoint.js';
import { makeTinyDataset, tempDir, tinyConfigJson } from '../train/helpers.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('dimba train: SIGTERM saves a checkpoint at the end of the current step and exits with 143', async () => {
  const dir = tempDir('cli-sigterm');
  const manifest = await makeTinyDataset(join(dir, 'data'));
  const out = join(dir, 'run');
  const file = join(dir, 'tiny.json');
  fs.writeFileSync(file, JSON.stringify(tinyConfigJson(out, manifest, { steps: 50, checkpoint: { every: 0 }, samples: { prompts: [] } })));

  const child = spawn(process.execPath, [MAIN, 'train', '--config', file, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (!child.killed && /"event":"step","stage":"base","step":1,/.test(stdout)) child.kill('SIGTERM');
  });
  assert.equal(await exit, 143, stderr);
  assert.match(stderr, /SIGTERM: finishing the current step and saving a checkpoint/);
  const events = stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; reason?: string; step?: number; completed?: boolean });
  const stopped = events.find((e) => e.event === 'stopped');
  assert.equal(stopped?.reason, 'SIGTERM');
  assert.deepEqual([events.at(-1)!.event, events.at(-1)!.completed], ['summary', false]);
  const saved = listCheckpoints(join(out, 'base'));
  assert.equal(saved.length, 1);
  assert.equal(saved[0]!.step, stopped!.step);
  assert.ok(saved[0]!.step >= 1 && saved[0]!.step < 50, `stopped at step ${saved[0]!.step}`);
  assert.equal(readTrainerState(saved[0]!.path).step, saved[0]!.step);
});
