import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRows, evaluate, formatBytes, formatTable, formatValue, parseRecords, summarize, type BenchRecord, type Row } from '../../bench/gpu/table.js';

const row = (over: Partial<Row>): Row => ({
  metric: 'm', unit: '', better: 'higher', ours: 10, eager: null, compiled: null, substituted: null, bar: { kind: 'ratio', min: 1 }, ...over,
});

test('evaluate: ratio to the faster reference, by direction', () => {
  const up = evaluate(row({ ours: 90, eager: 60, compiled: 100, substituted: 80 }));
  assert.equal(up.best, 100);
  assert.equal(up.ratio, 0.9);
  assert.equal(up.verdict, 'FAIL');
  assert.equal(evaluate(row({ ours: 100, eager: 60, compiled: 100 })).verdict, 'pass');
  const down = evaluate(row({ better: 'lower', ours: 2, eager: 3, compiled: 2.5, substituted: 1.5, bar: { kind: 'ratio', max: 1 } }));
  assert.equal(down.best, 1.5);
  assert.ok(Math.abs(down.ratio! - 4 / 3) < 1e-12);
  assert.equal(down.verdict, 'FAIL');
  assert.equal(evaluate(row({ better: 'lower', ours: 1.5, substituted: 1.5, bar: { kind: 'ratio', max: 1 } })).verdict, 'pass');
});

test('evaluate: absolute bars, missing values, rows without a bar', () => {
  assert.equal(evaluate(row({ ours: 0.6, bar: { kind: 'absolute', min: 0.5 } })).verdict, 'pass');
  assert.equal(evaluate(row({ ours: 0.4, bar: { kind: 'absolute', min: 0.5 } })).verdict, 'FAIL');
  assert.equal(evaluate(row({ ours: 1.2, bar: { kind: 'absolute', max: 1 } })).verdict, 'FAIL');
  assert.equal(evaluate(row({ ours: null, eager: 1 })).verdict, 'no data');
  assert.equal(evaluate(row({ ours: 1 })).verdict, 'no reference');
  assert.equal(evaluate(row({ ours: 1, eager: NaN })).verdict, 'no reference');
  const info = evaluate(row({ ours: 1, eager: 2, bar: null }));
  assert.equal(info.verdict, '-');
  assert.equal(info.ratio, 0.5);
});

const records: BenchRecord[] = [
  { impl: 'dimba', kind: 'train', res: 256, batch: 32, images_per_s: 420, peak_bytes: 40 * 2 ** 30, mfu: 0.5, step_ms: 76 },
  { impl: 'pytorch', kind: 'train', compile: 0, res: 256, batch: 32, images_per_s: 20, peak_bytes: 50 * 2 ** 30, mfu: 0.02, step_ms: 1600, substituted_ms: 200 },
  { impl: 'pytorch', kind: 'train', compile: 1, res: 256, batch: 32, images_per_s: 25, peak_bytes: 45 * 2 ** 30, mfu: 0.03, step_ms: 1280, substituted_ms: 100 },
  { impl: 'dimba', kind: 'train', res: 512, batch: 16, images_per_s: 100, peak_bytes: 60 * 2 ** 30 },
  { impl: 'pytorch', kind: 'train', compile: 0, res: 512, batch: 8, images_per_s: 50, peak_bytes: 30 * 2 ** 30 },
  { impl: 'pytorch', kind: 'train', compile: 1, res: 512, error: 'out of memory' },
  { impl: 'dimba', kind: 'sample', res: 512, batch: 1, seconds_per_image: 0.5, sample_steps: 20 },
  { impl: 'pytorch', kind: 'sample', compile: 0, res: 512, batch: 1, seconds_per_image: 2.0, substituted_seconds_per_image: 0.6, sample_steps: 20 },
  { impl: 'dimba', kind: 'attention', case: 'self B16 L1024', fwd_bwd_tflops: 250, heads: 16, head_dim: 72 },
  { impl: 'pytorch', kind: 'attention', case: 'self B16 L1024', backend: 'cudnn', fwd_bwd_tflops: 274 },
  { impl: 'pytorch', kind: 'attention', case: 'self B16 L1024', backend: 'flash', fwd_bwd_tflops: 164 },
  { impl: 'pytorch', kind: 'attention', case: 'self B16 L1024', backend: 'flash', error: 'no kernel' },
  { impl: 'dimba', kind: 'copy', copy_kind: 'kernel', bytes_per_s: 2.5e12 },
  { impl: 'dimba', kind: 'scan', batch: 16, length: 1024, fwd_ms: 0.2, bwd_ms: 0.3, fwd_bytes: 3e8, bwd_bytes: 6e8, mamba_ssm_fwd_ms: 0.632, mamba_ssm_bwd_ms: 2.688 },
  { impl: 'pytorch', kind: 'scan', compile: 0, batch: 16, length: 1024, fwd_ms: 5, bwd_ms: 15 },
  { device: 'H100', rows: [{ shape: 'square 4096^3', engineTflops: 700, cublasGemmExTflops: 720, cublasLtTflops: 760 }] },
  { device: 'H100', cUs: 3.5, ffiUs: 4.1, ffiMinusCUs: 0.6 },
  { impl: 'pytorch', kind: 'check', preset: 'Dimba-L-2', rel_diff: 3e-4, tol: 2e-3 },
];

test('buildRows pairs our records with the reference\'s', () => {
  const rows = buildRows(records).map(evaluate);
  const get = (prefix: string) => {
    const r = rows.find((x) => x.metric.startsWith(prefix));
    assert.ok(r, `no row ${prefix} in ${rows.map((x) => x.metric).join('; ')}`);
    return r;
  };
  const t256 = get('train 256 px B 32: images/s');
  assert.deepEqual([t256.ours, t256.eager, t256.compiled], [420, 20, 25]);
  assert.equal(t256.substituted, 320); // 32 images in 100 ms, the compiled run's substituted step
  assert.equal(t256.verdict, 'pass');
  const m256 = get('train 256 px B 32: peak memory');
  assert.deepEqual([m256.ours, m256.best, m256.verdict], [40, 45, 'pass']);
  const mfu256 = get('train 256 px B 32: MFU');
  assert.ok(Math.abs(mfu256.substituted! - 0.03 * 1280 / 100) < 1e-12);
  assert.equal(mfu256.verdict, '-');
  // Different batches: images/s compared, memory not judged; the failed compiled run is absent.
  const t512 = get('train 512 px B 16/8/?: images/s');
  assert.deepEqual([t512.ours, t512.eager, t512.compiled, t512.ratio], [100, 50, null, 2]);
  const m512 = get('train 512 px B 16/8/?: peak memory');
  assert.equal(m512.verdict, '-');
  assert.match(m512.note!, /batches differ/);
  const s1 = get('sample 512 px B 1, 20 DPM++ steps');
  assert.deepEqual([s1.best, s1.verdict], [0.6, 'pass']);
  const a = get('attention self B16 L1024 H16 E72');
  assert.deepEqual([a.eager, a.verdict], [274, 'pass']);
  assert.match(a.note!, /cudnn 274, flash 164/);
  const scan = get('scan B16 L1024 fwd+bwd (one direction)');
  assert.ok(Math.abs(scan.ours! - 0.5) < 1e-12);
  assert.equal(scan.eager, 20);
  assert.ok(Math.abs(scan.substituted! - 3.32) < 1e-12);
  const bw = get('scan B16 L1024 fwd+bwd: share of 3.0 TB/s on 900.0 MB');
  assert.ok(Math.abs(bw.ours! - 0.6) < 1e-12); // 900 MB in 0.5 ms = 1.8 TB/s
  assert.equal(bw.verdict, 'pass');
  assert.match(bw.note!, /fwd 50%, bwd 67%, 72% of our copy/);
  const g = get('GEMM bf16 square 4096^3');
  assert.equal(g.eager, 760);
  assert.equal(g.verdict, 'pass');
  assert.equal(get('kernel launch').verdict, 'pass');
  assert.equal(get('reference reproduces our forward').verdict, 'pass');
});

test('formatTable and summarize print every row and the verdicts', () => {
  const rows = buildRows(records).map(evaluate);
  const text = formatTable(rows);
  const lines = text.split('\n');
  assert.equal(lines.length, rows.length + 2);
  assert.match(lines[0]!, /\| metric +\| +ours \| +ref eager \| +ref compiled \| +ref \+ mamba_ssm scan \| +ours \/ faster ref \| +bar \| +result \|/);
  assert.ok(lines.every((l) => l.length === lines[0]!.length), 'columns aligned');
  assert.match(text, /420\.0 img\/s/);
  assert.match(text, /1\.31x/);
  const summary = summarize(rows);
  const judged = rows.filter((r) => r.verdict !== '-').length;
  assert.match(summary, new RegExp(`^\\d+ of ${judged} bars met`));
  assert.equal(formatValue(0.5, '%'), '50.0%');
  assert.equal(formatValue(null, 's'), 'n/a');
  assert.equal(formatValue(3e-5, ''), '3.0e-5');
  assert.equal(formatBytes(1.5e9), '1.5 GB');
});

test('parseRecords reads JSON documents and JSON lines among log lines', () => {
  assert.deepEqual(parseRecords('{"a": 1}'), [{ a: 1 }]);
  assert.deepEqual(parseRecords('[{"a": 1}, {"b": 2}]'), [{ a: 1 }, { b: 2 }]);
  assert.deepEqual(parseRecords('compiling...\n{"a": 1}\n{broken\n  {"b": 2}\n'), [{ a: 1 }, { b: 2 }]);
  assert.deepEqual(parseRecords('{\n  "device": "x",\n  "rows": []\n}\n'), [{ device: 'x', rows: [] }]);
  assert.deepEqual(parseRecords(''), []);
});
