/**
 * The final comparison table of `npm run bench:gpu`: our figures against the PyTorch reference
 * (eager, torch.compile, and with its selective scan's time replaced by mamba_ssm's measured
 * figures), the ratio to the faster reference, issue 7's bar and whether it is met.
 *
 * Input is the list of JSON records the benchmarks printed (bench/cuda/*.ts with impl 'dimba',
 * bench/reference/bench.py with impl 'pytorch', plus bench/cuda/gemm.ts and launch-overhead.ts
 * objects); buildRows() pairs them up, evaluate() applies the bars, formatTable() prints markdown.
 */
import { bandwidthFraction, H100_COPY_BYTES_PER_S } from './flops.js';

export type Better = 'higher' | 'lower';

/** ratio: ours / (best reference); absolute: ours itself. Either bound may be given. */
export interface Bar {
  kind: 'ratio' | 'absolute';
  min?: number;
  max?: number;
}

export interface Row {
  metric: string;
  unit: string;
  better: Better;
  ours: number | null;
  eager: number | null;
  compiled: number | null;
  /** The reference with mamba_ssm's scan figures substituted for its own scan time. */
  substituted: number | null;
  /** null: reported, no bar. */
  bar: Bar | null;
  note?: string;
}

export type Verdict = 'pass' | 'FAIL' | 'no data' | 'no reference' | '-';

export interface Evaluated extends Row {
  /** The faster (better) of the reference values, or null without one. */
  best: number | null;
  /** ours / best. */
  ratio: number | null;
  verdict: Verdict;
}

function finite(v: number | null | undefined): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

export function evaluate(row: Row): Evaluated {
  const refs = [row.eager, row.compiled, row.substituted].filter(finite);
  const best = refs.length === 0 ? null : row.better === 'higher' ? Math.max(...refs) : Math.min(...refs);
  const ratio = finite(row.ours) && best !== null && best !== 0 ? row.ours / best : null;
  let verdict: Verdict;
  if (!row.bar) verdict = '-';
  else if (!finite(row.ours)) verdict = 'no data';
  else {
    const value = row.bar.kind === 'ratio' ? ratio : row.ours;
    if (value === null) verdict = 'no reference';
    else {
      const ok = (row.bar.min === undefined || value >= row.bar.min) && (row.bar.max === undefined || value <= row.bar.max);
      verdict = ok ? 'pass' : 'FAIL';
    }
  }
  return { ...row, best, ratio, verdict };
}

export function formatBar(bar: Bar | null, unit: string): string {
  if (!bar) return '-';
  const parts: string[] = [];
  if (bar.kind === 'ratio') {
    if (bar.min !== undefined) parts.push(`>= ${bar.min}x`);
    if (bar.max !== undefined) parts.push(`<= ${bar.max}x`);
    return parts.join(', ');
  }
  if (bar.min !== undefined) parts.push(`>= ${formatValue(bar.min, unit)}`);
  if (bar.max !== undefined) parts.push(`<= ${formatValue(bar.max, unit)}`);
  return parts.join(', ');
}

/** Significant digits by unit: enough to read a ratio off without noise. */
export function formatValue(v: number | null, unit: string): string {
  if (!finite(v)) return 'n/a';
  if (unit === '%') return `${(100 * v).toFixed(1)}%`;
  const abs = Math.abs(v);
  if (abs !== 0 && abs < 1e-3) return `${v.toExponential(1)}${unit ? ` ${unit}` : ''}`;
  const digits = abs >= 100 ? 1 : abs >= 10 ? 2 : 3;
  return `${v.toFixed(digits)}${unit ? ` ${unit}` : ''}`;
}

export function formatTable(rows: readonly Evaluated[]): string {
  const header = ['metric', 'ours', 'ref eager', 'ref compiled', 'ref + mamba_ssm scan', 'ours / faster ref', 'bar', 'result'];
  const body = rows.map((r) => [
    r.note ? `${r.metric} (${r.note})` : r.metric,
    formatValue(r.ours, r.unit), formatValue(r.eager, r.unit), formatValue(r.compiled, r.unit), formatValue(r.substituted, r.unit),
    r.ratio === null ? 'n/a' : `${r.ratio.toFixed(2)}x`, formatBar(r.bar, r.unit), r.verdict,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...body.map(line)].join('\n');
}

export function summarize(rows: readonly Evaluated[]): string {
  const judged = rows.filter((r) => r.verdict !== '-');
  const passed = judged.filter((r) => r.verdict === 'pass').length;
  return `${passed} of ${judged.length} bars met${judged.length > passed ? `; not met: ${judged.filter((r) => r.verdict !== 'pass').map((r) => `${r.metric} (${r.verdict})`).join('; ')}` : ''}`;
}

// ------------------------------------------------------------------------------------------
// Records to rows
// ------------------------------------------------------------------------------------------

/** One benchmark result as printed (only the fields the table reads are typed). */
export interface BenchRecord {
  impl?: string;
  kind?: string;
  compile?: number;
  res?: number;
  batch?: number;
  images_per_s?: number;
  peak_bytes?: number | null;
  mfu?: number;
  step_ms?: number;
  substituted_ms?: number;
  seconds_per_image?: number;
  substituted_seconds_per_image?: number;
  case?: string;
  backend?: string;
  fwd_bwd_tflops?: number;
  length?: number;
  dim?: number;
  fwd_ms?: number;
  bwd_ms?: number;
  fwd_bytes?: number;
  bwd_bytes?: number;
  mamba_ssm_fwd_ms?: number;
  mamba_ssm_bwd_ms?: number;
  impl_name?: string;
  bytes_per_s?: number;
  copy_kind?: string;
  error?: string;
  /** bench/cuda/gemm.ts output. */
  rows?: { shape: string; engineTflops: number; cublasGemmExTflops: number; cublasLtTflops: number | null }[];
  /** bench/cuda/launch-overhead.ts output. */
  ffiMinusCUs?: number | null;
  [key: string]: unknown;
}

const GIB = 2 ** 30;

/** Decimal units, as bandwidths are quoted. */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [['GB', 1e9], ['MB', 1e6], ['kB', 1e3]] as const) if (bytes >= size) return `${(bytes / size).toFixed(1)} ${unit}`;
  return `${bytes} B`;
}

function last<T>(xs: T[]): T | undefined {
  return xs[xs.length - 1];
}

function ok(r: BenchRecord): boolean {
  return r.error === undefined;
}

function ours(records: BenchRecord[], kind: string): BenchRecord[] {
  return records.filter((r) => r.impl === 'dimba' && r.kind === kind && ok(r));
}

function reference(records: BenchRecord[], kind: string, compiled?: boolean): BenchRecord[] {
  return records.filter((r) => r.impl === 'pytorch' && r.kind === kind && ok(r) && (compiled === undefined || Boolean(r.compile) === compiled));
}

function uniqueSorted(values: (number | undefined)[]): number[] {
  return [...new Set(values.filter((v): v is number => typeof v === 'number'))].sort((a, b) => a - b);
}

function maxOf(values: (number | null | undefined)[]): number | null {
  const xs = values.filter(finite);
  return xs.length ? Math.max(...xs) : null;
}

function minOf(values: (number | null | undefined)[]): number | null {
  const xs = values.filter(finite);
  return xs.length ? Math.min(...xs) : null;
}

function trainRows(records: BenchRecord[]): Row[] {
  const rows: Row[] = [];
  const all = [...ours(records, 'train'), ...reference(records, 'train')];
  for (const res of uniqueSorted(all.map((r) => r.res))) {
    const at = (rs: BenchRecord[]) => last(rs.filter((r) => r.res === res));
    const o = at(ours(records, 'train'));
    const e = at(reference(records, 'train', false));
    const c = at(reference(records, 'train', true));
    const batches = [o?.batch, e?.batch, c?.batch].filter((b) => b !== undefined);
    const sameBatch = new Set(batches).size <= 1;
    const batchText = `B ${sameBatch ? (batches[0] ?? '?') : `${o?.batch ?? '?'}/${e?.batch ?? '?'}/${c?.batch ?? '?'}`}`;
    const sub = (r?: BenchRecord) => (r && finite(r.substituted_ms) && r.batch ? (r.batch * 1000) / r.substituted_ms : null);
    rows.push({
      metric: `train ${res} px ${batchText}: images/s`, unit: 'img/s', better: 'higher',
      ours: o?.images_per_s ?? null, eager: e?.images_per_s ?? null, compiled: c?.images_per_s ?? null,
      substituted: maxOf([sub(e), sub(c)]), bar: { kind: 'ratio', min: 1.0 },
    });
    rows.push({
      metric: `train ${res} px ${batchText}: peak memory`, unit: 'GiB', better: 'lower',
      ours: finite(o?.peak_bytes) ? o.peak_bytes / GIB : null,
      eager: finite(e?.peak_bytes) ? e.peak_bytes / GIB : null,
      compiled: finite(c?.peak_bytes) ? c.peak_bytes / GIB : null,
      substituted: null,
      bar: sameBatch ? { kind: 'ratio', max: 1.0 } : null,
      note: sameBatch ? undefined : 'batches differ: not comparable',
    });
    rows.push({
      metric: `train ${res} px ${batchText}: MFU`, unit: '%', better: 'higher',
      ours: o?.mfu ?? null, eager: e?.mfu ?? null, compiled: c?.mfu ?? null,
      substituted: maxOf([e, c].map((r) => (r && finite(r.substituted_ms) && finite(r.mfu) && finite(r.step_ms) ? (r.mfu * r.step_ms) / r.substituted_ms : null))),
      bar: null,
    });
  }
  return rows;
}

function sampleRows(records: BenchRecord[]): Row[] {
  const rows: Row[] = [];
  const all = [...ours(records, 'sample'), ...reference(records, 'sample')];
  for (const res of uniqueSorted(all.map((r) => r.res))) {
    for (const batch of uniqueSorted(all.filter((r) => r.res === res).map((r) => r.batch))) {
      const at = (rs: BenchRecord[]) => last(rs.filter((r) => r.res === res && r.batch === batch));
      const e = at(reference(records, 'sample', false));
      const c = at(reference(records, 'sample', true));
      const o = at(ours(records, 'sample'));
      const steps = [o, e, c].map((r) => r?.['sample_steps']).find((v) => typeof v === 'number') ?? '?';
      rows.push({
        metric: `sample ${res} px B ${batch}, ${String(steps)} DPM++ steps + CFG: s/image`, unit: 's', better: 'lower',
        ours: o?.seconds_per_image ?? null,
        eager: e?.seconds_per_image ?? null, compiled: c?.seconds_per_image ?? null,
        substituted: minOf([e?.substituted_seconds_per_image, c?.substituted_seconds_per_image]),
        bar: { kind: 'ratio', max: 1.0 },
      });
    }
  }
  return rows;
}

function attentionRows(records: BenchRecord[]): Row[] {
  const rows: Row[] = [];
  const cases = [...new Set([...ours(records, 'attention'), ...reference(records, 'attention')].map((r) => r.case).filter((c): c is string => !!c))];
  for (const name of cases) {
    // On CUDA attention-compare times each case by route (our kernel, cuDNN): the faster one is ours.
    const o = ours(records, 'attention').filter((r) => r.case === name)
      .reduce<BenchRecord | undefined>((b, r) => (!b || !finite(b.fwd_bwd_tflops) || (finite(r.fwd_bwd_tflops) && r.fwd_bwd_tflops! > b.fwd_bwd_tflops!) ? r : b), undefined);
    const refs = reference(records, 'attention').filter((r) => r.case === name && finite(r.fwd_bwd_tflops));
    const bestRef = refs.reduce<BenchRecord | undefined>((b, r) => (!b || r.fwd_bwd_tflops! > b.fwd_bwd_tflops! ? r : b), undefined);
    const shape = [o, ...refs].find((r) => r && typeof r['heads'] === 'number' && typeof r['head_dim'] === 'number');
    rows.push({
      metric: `attention ${name}${shape ? ` H${String(shape['heads'])} E${String(shape['head_dim'])}` : ''} fwd+bwd`, unit: 'TFLOP/s', better: 'higher',
      ours: o?.fwd_bwd_tflops ?? null, eager: bestRef?.fwd_bwd_tflops ?? null, compiled: null, substituted: null,
      bar: { kind: 'ratio', min: 0.9 },
      note: [o && typeof o['route'] === 'string' ? `route ${String(o['route'])}` : '',
        refs.length ? `ref: ${refs.map((r) => `${r.backend} ${r.fwd_bwd_tflops!.toFixed(0)}`).join(', ')}` : ''].filter(Boolean).join('; ') || undefined,
    });
  }
  return rows;
}

function scanRows(records: BenchRecord[]): Row[] {
  const rows: Row[] = [];
  const mine = ours(records, 'scan');
  const copies = ours(records, 'copy');
  for (const kind of [...new Set(copies.map((r) => r.copy_kind ?? 'copy'))]) {
    const bw = maxOf(copies.filter((r) => (r.copy_kind ?? 'copy') === kind).map((r) => r.bytes_per_s));
    rows.push({
      metric: `copy bandwidth, ours (${kind})`, unit: 'TB/s', better: 'higher', ours: bw === null ? null : bw / 1e12,
      eager: null, compiled: null, substituted: null, bar: null, note: `GPU.md: ${H100_COPY_BYTES_PER_S / 1e12} TB/s`,
    });
  }
  // The scan's second yardstick: our own copy kernel measured in the same run.
  const copy = maxOf(copies.filter((r) => r.copy_kind === 'kernel').map((r) => r.bytes_per_s));
  const shapes = new Map<string, { batch: number; length: number }>();
  for (const r of [...mine, ...reference(records, 'scan')]) {
    if (finite(r.batch) && finite(r.length)) shapes.set(`${r.batch}x${r.length}`, { batch: r.batch, length: r.length });
  }
  for (const { batch, length } of shapes.values()) {
    const match = (r: BenchRecord) => r.batch === batch && r.length === length;
    const o = last(mine.filter(match));
    const refFor = (compiled: boolean) => minOf(reference(records, 'scan', compiled).filter(match).map((r) => (finite(r.fwd_ms) && finite(r.bwd_ms) ? r.fwd_ms + r.bwd_ms : null)));
    const m = [...mine, ...reference(records, 'scan')].find((r) => match(r) && finite(r.mamba_ssm_fwd_ms) && finite(r.mamba_ssm_bwd_ms));
    const oursMs = o && finite(o.fwd_ms) && finite(o.bwd_ms) ? o.fwd_ms + o.bwd_ms : null;
    rows.push({
      metric: `scan B${batch} L${length} fwd+bwd (one direction)`, unit: 'ms', better: 'lower',
      ours: oursMs, eager: refFor(false), compiled: refFor(true),
      substituted: m ? m.mamba_ssm_fwd_ms! + m.mamba_ssm_bwd_ms! : null, bar: null,
    });
    if (o && oursMs !== null && finite(o.fwd_bytes) && finite(o.bwd_bytes)) {
      const bytes = o.fwd_bytes + o.bwd_bytes;
      const measured = copy === null ? '' : `, ${(100 * bandwidthFraction(bytes, oursMs, copy)).toFixed(0)}% of our copy`;
      rows.push({
        metric: `scan B${batch} L${length} fwd+bwd: share of 3.0 TB/s on ${formatBytes(bytes)}`, unit: '%', better: 'higher',
        ours: bandwidthFraction(bytes, oursMs), eager: null, compiled: null, substituted: null,
        bar: { kind: 'absolute', min: 0.5 }, note: `fwd ${(100 * bandwidthFraction(o.fwd_bytes, o.fwd_ms!)).toFixed(0)}%, bwd ${(100 * bandwidthFraction(o.bwd_bytes, o.bwd_ms!)).toFixed(0)}%${measured}`,
      });
    }
  }
  return rows;
}

function gemmRows(records: BenchRecord[]): Row[] {
  const g = last(records.filter((r) => Array.isArray(r.rows) && r.rows.length > 0 && 'engineTflops' in r.rows[0]!));
  if (!g?.rows) return [];
  return g.rows.map((r) => ({
    metric: `GEMM bf16 ${r.shape} (ref: direct cuBLAS)`, unit: 'TFLOP/s', better: 'higher' as const,
    ours: r.engineTflops, eager: maxOf([r.cublasGemmExTflops, r.cublasLtTflops]), compiled: null, substituted: null,
    bar: { kind: 'ratio' as const, min: 0.9 },
  }));
}

function launchRows(records: BenchRecord[]): Row[] {
  const l = last(records.filter((r) => 'ffiMinusCUs' in r));
  if (!l) return [];
  return [{
    metric: 'kernel launch: host us over C', unit: 'us', better: 'lower', ours: l.ffiMinusCUs ?? null,
    eager: null, compiled: null, substituted: null, bar: { kind: 'absolute', max: 1 },
  }];
}

function checkRows(records: BenchRecord[]): Row[] {
  return reference(records, 'check').map((r) => ({
    metric: `reference reproduces our forward (${String(r['preset'])}, float32): max |diff| / max |out|`, unit: '', better: 'lower' as const,
    ours: typeof r['rel_diff'] === 'number' ? r['rel_diff'] : null, eager: null, compiled: null, substituted: null,
    bar: typeof r['tol'] === 'number' ? { kind: 'absolute' as const, max: r['tol'] } : null,
  }));
}

/** Every row the records support, in the table's order. */
export function buildRows(records: BenchRecord[]): Row[] {
  return [
    ...trainRows(records), ...sampleRows(records), ...attentionRows(records), ...scanRows(records),
    ...gemmRows(records), ...launchRows(records), ...checkRows(records),
  ];
}

/** Records from benchmark output: whole-file JSON, or one JSON object per line (other lines skipped). */
export function parseRecords(text: string): BenchRecord[] {
  const trimmed = text.trim();
  if (!trimmed) return [];
  try {
    const whole = JSON.parse(trimmed) as unknown;
    if (Array.isArray(whole)) return whole as BenchRecord[];
    if (whole && typeof whole === 'object') return [whole as BenchRecord];
  } catch {
    // not one JSON document: fall through to lines
  }
  const out: BenchRecord[] = [];
  for (const line of trimmed.split('\n')) {
    const s = line.trim();
    if (!s.startsWith('{')) continue;
    try {
      out.push(JSON.parse(s) as BenchRecord);
    } catch {
      // a log line that happens to start with '{'
    }
  }
  return out;
}
