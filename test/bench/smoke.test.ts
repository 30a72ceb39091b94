/**
 * The GPU comparison scripts run on the CPU with --device cpu --tiny (so they do not rot between
 * GPU runs), and, where a python3 with torch is available, the PyTorch reference runs too and
 * reproduces our forward. DIMBA_REF_PYTHON names that python (default: the first of python3,
 * /usr/bin/python3 that imports torch).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseRecords, type BenchRecord } from '../../bench/gpu/table.js';
import { writeSafetensorsSync } from '../../src/io/safetensors/index.js';
import { SafetensorsFile } from '../../src/io/safetensors/index.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const script = (name: string) => fileURLToPath(new URL(`../../bench/cuda/${name}.js`, import.meta.url));

function runNode(name: string, ...args: string[]): BenchRecord[] {
  const r = spawnSync(process.execPath, [script(name), '--device', 'cpu', '--json', ...args], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `${name} failed:\n${r.stderr}`);
  return parseRecords(r.stdout);
}

const finitePositive = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0;

test('train-step --tiny on the CPU: a timed step, images/s, peak bytes, MFU', () => {
  const [r, ...rest] = runNode('train-step', '--tiny');
  assert.equal(rest.length, 0);
  assert.equal(r!.impl, 'dimba');
  assert.equal(r!.kind, 'train');
  assert.deepEqual([r!.res, r!.batch, r!['preset']], [64, 2, 'Dimba-XS']);
  for (const k of ['step_ms', 'images_per_s', 'peak_bytes', 'mfu', 'train_flops_per_image'] as const) assert.ok(finitePositive(r![k]), `${k} = ${String(r![k])}`);
  assert.ok(Math.abs(r!.images_per_s! - 2000 / r!.step_ms!) < 1e-9);
});

test('train-step rejects bad flags by name', () => {
  const r = spawnSync(process.execPath, [script('train-step'), '--device', 'cpu', '--tiny', '--res', '60'], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--res 60: res \/ 8 must be a multiple of the patch size 2/);
  const d = spawnSync(process.execPath, [script('train-step'), '--device', 'tpu', '--tiny'], { encoding: 'utf8' });
  assert.match(d.stderr, /--device must be cuda or cpu, got 'tpu'/);
});

test('sample --tiny on the CPU: seconds per image for each batch, model called once per step (CFG batched)', () => {
  const rs = runNode('sample', '--tiny');
  assert.deepEqual(rs.map((r) => r.batch), [1, 2]);
  for (const r of rs) {
    assert.equal(r.kind, 'sample');
    assert.ok(finitePositive(r.seconds_per_image));
    assert.equal((r['graph'] as { calls: number }).calls, 2 * 3, 'warm-up + timed run, 3 steps each');
  }
});

test('attention-compare --tiny on the CPU: the reference\'s case names, TFLOP/s', () => {
  const rs = runNode('attention-compare', '--tiny');
  assert.deepEqual(rs.map((r) => r.case), ['self B2 L64', 'cross B2 Lq64 Lk12']);
  for (const r of rs) assert.ok(finitePositive(r.fwd_bwd_tflops) && finitePositive(r['fwd_tflops']));
});

test('scan-compare --tiny on the CPU: copy bandwidth and scan bytes', () => {
  const rs = runNode('scan-compare', '--tiny');
  assert.deepEqual(rs.filter((r) => r.kind === 'copy').map((r) => r.copy_kind), ['kernel', 'clone']);
  const scans = rs.filter((r) => r.kind === 'scan');
  assert.equal(scans.length, 2);
  for (const s of scans) {
    assert.ok(finitePositive(s.fwd_ms) && finitePositive(s.fwd_bytes) && finitePositive(s.bwd_bytes));
    assert.ok(s.bwd_bytes! > s.fwd_bytes!);
  }
});

function torchPython(): string | null {
  const candidates = process.env['DIMBA_REF_PYTHON'] ? [process.env['DIMBA_REF_PYTHON']] : ['python3', '/usr/bin/python3'];
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
    if (!r.error && r.status === 0) return py;
  }
  return null;
}

const py = torchPython();
const noTorch = py ? false : 'no python3 with torch and numpy here (set DIMBA_REF_PYTHON): the PyTorch reference is not run';

function runPython(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(py!, [join(root, 'bench/reference/bench.py'), '--device', 'cpu', '--json', ...args], { encoding: 'utf8', timeout: 300_000 });
}

/** export-check's files for a small model, written once and shared by the two tests below. */
let exported: { weights: string; inputs: string } | null = null;
function exportCheck(): { weights: string; inputs: string } {
  if (exported) return exported;
  const dir = mkdtempSync(join(tmpdir(), 'dimba-refcheck-'));
  const [exp] = runNode('export-check', '--out', dir, '--preset', 'Dimba-XS', '--res', '64', '--batch', '3');
  assert.equal(exp!.kind, 'export');
  exported = { weights: join(dir, 'weights.safetensors'), inputs: join(dir, 'inputs.safetensors') };
  return exported;
}

test('export-check writes the model\'s weights, one forward\'s inputs and our output, with the config in the metadata', () => {
  const { weights, inputs } = exportCheck();
  assert.ok(existsSync(weights));
  const w = SafetensorsFile.openSync(weights);
  assert.deepEqual([w.metadata['preset'], w.metadata['input_size'], w.metadata['config_overrides']], ['Dimba-XS', '8', '{}']);
  assert.ok(w.names().includes('mamba_blocks.1.mixer.dt_proj_b.bias'));
  // No all-zero parameter is left (zero-initialised projections would hide paths from the check).
  for (const name of w.names()) {
    const raw = w.read(name);
    if (raw.dtype !== 'float32') continue;
    const v = new Float32Array(raw.data.slice().buffer);
    assert.ok(v.some((x) => x !== 0), `${name} is all zero`);
  }
  w.close();
  const f = SafetensorsFile.openSync(inputs);
  const shapes = Object.fromEntries(f.names().map((n) => [n, [f.read(n).dtype, ...f.read(n).shape]]));
  f.close();
  assert.deepEqual(shapes, {
    x: ['float32', 3, 4, 8, 8], timestep: ['float32', 3], caption: ['float32', 3, 16, 64], caption_mask: ['bool', 3, 16],
    force_drop: ['bool', 3], out: ['float32', 3, 8, 8, 8],
  });
});

test('the PyTorch reference reproduces our forward (bench.py --check), and the check fails on a wrong output', { skip: noTorch }, () => {
  const { weights, inputs } = exportCheck();
  const good = runPython('--check', weights, '--inputs', inputs, '--tol', '1e-5');
  assert.equal(good.status, 0, good.stderr);
  const [rec] = parseRecords(good.stdout);
  assert.equal(rec!['ok'], true);
  assert.ok((rec!['rel_diff'] as number) < 1e-5, String(rec!['rel_diff']));

  // The same inputs with our output perturbed in one element.
  const file = SafetensorsFile.openSync(inputs);
  const tensors = new Map(file.names().map((n) => [n, file.read(n)]));
  file.close();
  const out = tensors.get('out')!;
  const values = new Float32Array(out.data.slice().buffer);
  values[7]! += 0.05;
  tensors.set('out', { ...out, data: new Uint8Array(values.buffer) });
  const bad = join(mkdtempSync(join(tmpdir(), 'dimba-refcheck-bad-')), 'inputs.safetensors');
  writeSafetensorsSync(bad, tensors);
  const r = runPython('--check', weights, '--inputs', bad, '--tol', '1e-5');
  assert.equal(r.status, 1, r.stderr);
  assert.equal(parseRecords(r.stdout)[0]!['ok'], false);
});

test('the PyTorch selective scan: chunked formulation and its hand-written backward match the sequential definition', { skip: noTorch }, () => {
  const r = spawnSync(py!, [join(root, 'test/bench/reference_scan_check.py')], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /all scan checks passed/);
});

test('bench.py modes run on the CPU (train, sample, scan-only, attention)', { skip: noTorch }, () => {
  const runs: [string, string[], (rs: BenchRecord[]) => void][] = [
    ['train', ['--preset', 'Dimba-XS', '--res', '64', '--batch', '2', '--steps', '1', '--warmup', '1'], (rs) => {
      assert.equal(rs[0]!.kind, 'train');
      assert.ok(finitePositive(rs[0]!.images_per_s));
    }],
    ['sample', ['--mode', 'sample', '--preset', 'Dimba-XS', '--res', '64', '--batch', '1', '--steps', '1', '--warmup', '0', '--sample-steps', '2'], (rs) => {
      assert.ok(finitePositive(rs[0]!.seconds_per_image));
    }],
    ['scan-only', ['--scan-only', '--tiny', '--scan-dim', '8', '--steps', '1', '--warmup', '0', '--scan-impls', 'chunked,loop'], (rs) => {
      assert.equal(rs.length, 4);
      for (const s of rs) assert.ok((s['max_abs_err'] as number) < 1e-5, JSON.stringify(s));
    }],
    ['attention', ['--attention', '--tiny', '--steps', '1', '--warmup', '0'], (rs) => {
      assert.ok(rs.some((r) => r.case === 'cross B2 Lq64 Lk12' && finitePositive(r.fwd_bwd_tflops)));
    }],
  ];
  for (const [name, args, check] of runs) {
    const r = runPython(...args);
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    check(parseRecords(r.stdout));
  }
});

test('train-step --graphs needs CUDA (one record saying so on the CPU); --depth cuts the preset', () => {
  const [g, ...rest] = runNode('train-step', '--tiny', '--graphs');
  assert.equal(rest.length, 0);
  assert.deepEqual([g!.kind, g!['error']], ['train-graphs', 'CUDA graphs need --device cuda']);
  const [d] = runNode('train-step', '--tiny', '--depth', '2');
  assert.ok(finitePositive(d!.step_ms), `step_ms = ${String(d!.step_ms)}`);
});
