/** `dimba train --cuda-graphs`: a bad value is a usage error; `on` where graphs are impossible (the CPU) stops with the reason. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTinyDataset, tempDir, tinyConfigJson } from '../train/helpers.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function dimba(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('--cuda-graphs: help names it, a bad value is refused by name, on is refused on the CPU with the reason', async () => {
  assert.match(dimba(['train', '--help']).stdout, /--cuda-graphs G +replay each training step from a CUDA graph/);
  const root = tempDir('cli-graphs');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const config = join(root, 'config.json');
  fs.writeFileSync(config, JSON.stringify(tinyConfigJson(join(root, 'run'), manifest, { steps: 2 })));
  const bad = dimba(['train', '--config', config, '--cuda-graphs', 'maybe']);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--cuda-graphs must be on, off or auto, got 'maybe'/);
  const on = dimba(['train', '--config', config, '--cuda-graphs', 'on']);
  assert.notEqual(on.status, 0);
  assert.match(on.stderr, /cudaGraphs is true but the step cannot be captured: the cpu backend has no CUDA graphs/);
  const off = dimba(['train', '--config', config, '--cuda-graphs', 'off']);
  assert.equal(off.status, 0, off.stderr);
});
