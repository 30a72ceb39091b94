/**
 * Training metrics as JSON lines, one object per logged step: {stage, step, loss, mse, vb, lr,
 * gradNorm, itPerSec, imagesPerSec, seconds, time}. A resumed run first drops the lines written
 * after the checkpoint it resumes from, so the file reads as one uninterrupted run.
 */
import fs from 'node:fs';
import { dirname } from 'node:path';

export interface MetricsRecord {
  stage: string;
  stageIndex: number;
  step: number;
  [key: string]: string | number | null;
}

export class MetricsLog {
  constructor(readonly path: string) {}

  append(record: MetricsRecord): void {
    fs.mkdirSync(dirname(this.path), { recursive: true });
    fs.appendFileSync(this.path, `${JSON.stringify({ ...record, time: new Date().toISOString() })}\n`);
  }

  /** Keeps lines of earlier stages, and of stage `stageIndex` up to `step`. */
  truncateAfter(stageIndex: number, step: number): void {
    if (!fs.existsSync(this.path)) return;
    const kept = fs.readFileSync(this.path, 'utf8').split('\n').filter((line) => {
      if (line.trim() === '') return false;
      try {
        const r = JSON.parse(line) as Partial<MetricsRecord>;
        return typeof r.stageIndex === 'number' && typeof r.step === 'number' && (r.stageIndex < stageIndex || (r.stageIndex === stageIndex && r.step <= step));
      } catch {
        return false;
      }
    });
    const tmp = `${this.path}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, kept.map((l) => `${l}\n`).join(''));
    fs.renameSync(tmp, this.path);
  }

  /** Every record (for tests and summaries). */
  read(): MetricsRecord[] {
    if (!fs.existsSync(this.path)) return [];
    return fs.readFileSync(this.path, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as MetricsRecord);
  }
}
