/**
 * The record of every input a loader or builder left out, with its file name and reason, so
 * that nothing is lost silently. The same bad file met again (next epoch) is counted once, with
 * its number of occurrences.
 */
import { SKIP_REASONS, SkipError, type SkipReason } from './errors.js';

export interface SkipEntry {
  file: string;
  reason: SkipReason;
  detail: string;
}

export interface CountedSkip extends SkipEntry {
  occurrences: number;
}

export class SkipReport {
  private readonly entries = new Map<string, CountedSkip>();

  /** Adds a skip; returns true when this (file, reason) was not in the report yet. */
  add(entry: SkipEntry): boolean {
    const id = `${entry.reason}\u0000${entry.file}`;
    const existing = this.entries.get(id);
    if (existing) {
      existing.occurrences += 1;
      return false;
    }
    this.entries.set(id, { file: entry.file, reason: entry.reason, detail: entry.detail, occurrences: 1 });
    return true;
  }

  addError(error: SkipError): boolean {
    return this.add({ file: error.file, reason: error.reason, detail: error.detail });
  }

  merge(other: SkipReport): void {
    for (const entry of other.list()) {
      for (let i = 0; i < entry.occurrences; i++) this.add(entry);
    }
  }

  /** Distinct skipped inputs. */
  get total(): number {
    return this.entries.size;
  }

  list(): CountedSkip[] {
    return [...this.entries.values()].map((e) => ({ ...e }));
  }

  /** Distinct skipped inputs per reason (reasons with none are left out). */
  counts(): Partial<Record<SkipReason, number>> {
    const counts: Partial<Record<SkipReason, number>> = {};
    for (const e of this.entries.values()) counts[e.reason] = (counts[e.reason] ?? 0) + 1;
    return counts;
  }

  /**
   * Human-readable summary: the count per reason, then one line per file (the first
   * `maxFiles`, with how many more were left out of the listing — never of the count).
   */
  summary(maxFiles = 50): string {
    if (this.entries.size === 0) return 'skipped: none';
    const counts = this.counts();
    const perReason = SKIP_REASONS.filter((r) => counts[r] !== undefined).map((r) => `${r} ${counts[r]}`);
    const lines = [`skipped: ${this.entries.size} (${perReason.join(', ')})`];
    const all = [...this.entries.values()];
    for (const e of all.slice(0, maxFiles)) {
      const times = e.occurrences > 1 ? ` (x${e.occurrences})` : '';
      lines.push(`  ${e.reason}: ${e.file}: ${e.detail}${times}`);
    }
    if (all.length > maxFiles) lines.push(`  ... and ${all.length - maxFiles} more (see report.list())`);
    return lines.join('\n');
  }
}
