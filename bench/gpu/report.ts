/**
 * Prints issue 7's comparison table from the JSON the GPU benchmarks wrote (bench/gpu/run.sh):
 *
 *   node dist/bench/gpu/report.js DIR_OR_FILES... [--json] [--summary FILE]
 *   node dist/bench/gpu/report.js --records FILES...   (the records only, one JSON line each)
 *
 * Every *.json / *.jsonl file of a directory is read (one JSON document, or one object per line).
 * Output of several runs (e.g. `run.sh --part ours` and `--part ref` in separate calls) can be
 * merged by passing all their files.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildRows, evaluate, formatTable, parseRecords, summarize, type BenchRecord } from './table.js';

const { values: args, positionals } = parseArgs({
  options: { json: { type: 'boolean', default: false }, summary: { type: 'string' }, records: { type: 'boolean', default: false } },
  allowPositionals: true,
});
if (positionals.length === 0) {
  console.error('usage: node dist/bench/gpu/report.js DIR_OR_FILES... [--json] [--summary FILE]');
  process.exit(2);
}

const files: string[] = [];
for (const p of positionals) {
  if (statSync(p).isDirectory()) {
    for (const f of readdirSync(p).sort()) if (/\.jsonl?$/.test(f) && f !== 'summary.json') files.push(join(p, f));
  } else {
    files.push(p);
  }
}
const records: BenchRecord[] = files.flatMap((f) => parseRecords(readFileSync(f, 'utf8')));
if (args.records) {
  for (const r of records) console.log(JSON.stringify(r));
  process.exit(0);
}
const rows = buildRows(records).map(evaluate);
const devices = [...new Set(records.map((r) => r['device_name'] ?? r['device']).filter((d): d is string => typeof d === 'string'))];
const errors = records.filter((r) => typeof r.error === 'string');

if (args.summary) writeFileSync(args.summary, `${JSON.stringify({ devices, rows, errors }, null, 2)}\n`);
if (args.json) {
  console.log(JSON.stringify({ devices, rows, errors }));
} else {
  console.log(`# dimba vs PyTorch reference on ${devices.join(', ') || 'unknown device'}, ${new Date().toISOString().slice(0, 10)} (${records.length} records from ${files.length} files)`);
  for (const e of errors) console.log(`# not measured: ${e.impl ?? '?'} ${e.kind ?? ''} ${e.case ?? e.impl_name ?? ''} ${e.res ?? ''} ${e.batch ?? ''}: ${e.error}`);
  console.log(formatTable(rows));
  console.log(summarize(rows));
}
