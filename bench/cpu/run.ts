/**
 * CPU benchmarks: `npm run bench:cpu` prints a table; `-- --json` prints one JSON object
 * (keys from each case, e.g. gemm_f32_1024_gflops or dimba_step_ms, plus the machine).
 * `-- --filter TEXT` keeps the cases whose name or key contains TEXT.
 */

import os from 'node:os';
import { defaultThreadCount } from '../../src/backends/cpu/threads/index.js';
import { dimbaStepCase } from './dimba-step.js';
import { sgemmBatchedCase, sgemmCase } from './gemm.js';
import { formatTable, headline, runCase, type BenchCase } from './harness.js';

const CASES: BenchCase[] = [
  sgemmCase(256),
  sgemmCase(512),
  sgemmCase(1024),
  sgemmCase(256, 1),
  sgemmCase(512, 1),
  sgemmCase(1024, 1),
  sgemmBatchedCase(64, 64, 64),
  sgemmBatchedCase(16, 256, 64),
  dimbaStepCase(),
];

function main(argv: string[]): void {
  const json = argv.includes('--json');
  const filterAt = argv.indexOf('--filter');
  const filter = filterAt >= 0 ? argv[filterAt + 1] ?? '' : '';
  const cases = CASES.filter((c) => c.name.includes(filter) || c.key.includes(filter));
  const results = cases.map((c) => {
    const r = runCase(c);
    if (!json) {
      const rate = Number.isNaN(r.gflops) ? `${r.medianMs.toFixed(1)} ms` : `${r.gflops.toFixed(2)} GFLOP/s`;
      process.stderr.write(`${r.name} [${r.threads} threads]: ${rate}\n`);
    }
    return r;
  });
  const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), threads: defaultThreadCount(), node: process.version };
  if (json) {
    const out: Record<string, unknown> = { machine };
    for (const r of results) out[r.key] = headline(r);
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    process.stdout.write(`${machine.cpu}, ${machine.cores} cores, ${machine.threads} threads, node ${machine.node}\n\n${formatTable(results)}\n`);
  }
}

main(process.argv.slice(2));
