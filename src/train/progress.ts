/**
 * The training progress line: step, loss, it/s, images/s and ETA. On a terminal it is one line
 * redrawn in place ("\r", then erase to the end of the line); elsewhere (CI logs, pipes) a plain
 * line every `every` steps. No dependency: a progress bar library would add little beyond this,
 * and the non-terminal case (most training logs) would need this code anyway.
 */

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressInfo {
  label: string;
  step: number;
  total: number;
  /** Loss shown (a running mean over the last steps); left out where there is none (sampling). */
  loss?: number;
  lr?: number;
  itPerSec: number;
  imagesPerSec?: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const two = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(s % 60)}` : `${two(m)}:${two(s % 60)}`;
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1000 || a < 1e-3 ? v.toExponential(2) : v.toPrecision(4);
}

export function formatProgress(p: ProgressInfo, width = 80): string {
  const eta = p.itPerSec > 0 ? (p.total - p.step) / p.itPerSec : Infinity;
  const parts = [`${p.label} ${p.step}/${p.total}`];
  if (p.loss !== undefined) parts.push(`loss ${formatNumber(p.loss)}`);
  if (p.lr !== undefined) parts.push(`lr ${formatNumber(p.lr)}`);
  parts.push(`${p.itPerSec.toFixed(2)} it/s`);
  if (p.imagesPerSec !== undefined) parts.push(`${p.imagesPerSec.toFixed(1)} img/s`);
  parts.push(`ETA ${formatDuration(eta)}`);
  const text = parts.join(' ');
  const barWidth = Math.max(0, Math.min(30, width - text.length - 3));
  if (barWidth < 5) return text;
  const filled = Math.round((barWidth * p.step) / Math.max(1, p.total));
  return `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${text}`;
}

export class ProgressLine {
  private drawn = false;

  constructor(private readonly stream: ProgressStream, private readonly every: number) {}

  update(info: ProgressInfo): void {
    if (this.stream.isTTY) {
      this.stream.write(`\r${formatProgress(info, this.stream.columns ?? 80)}\x1b[K`);
      this.drawn = true;
    } else if (info.step % this.every === 0 || info.step === info.total) {
      this.stream.write(`${formatProgress(info, 0)}\n`);
    }
  }

  /** Prints a message on its own line without tearing the progress line. */
  message(text: string): void {
    this.end();
    this.stream.write(`${text}\n`);
  }

  /** Leaves the progress line as it is and moves to the next line. */
  end(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}

/** Steps per second over the last `window` steps. */
export class RateMeter {
  private readonly times: number[] = [];

  constructor(private readonly window = 20) {}

  tick(now = performance.now()): void {
    this.times.push(now);
    if (this.times.length > this.window + 1) this.times.shift();
  }

  get perSecond(): number {
    if (this.times.length < 2) return 0;
    const span = (this.times.at(-1)! - this.times[0]!) / 1000;
    return span > 0 ? (this.times.length - 1) / span : 0;
  }
}
