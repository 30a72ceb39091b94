/**
 * What a training run tells the outside world while it runs. The CLI renders it as a progress
 * line and messages, or as JSON lines (--json); tests collect it.
 */
import type { ProgressInfo } from './progress.js';

export type TrainEvent =
  | { event: 'stage'; stage: string; index: number; steps: number; from: string | null; resumed: boolean; params: number; device: string }
  | { event: 'step'; stage: string; step: number; steps: number; loss: number; lr: number; gradNorm: number | null; itPerSec: number; imagesPerSec: number }
  | { event: 'skip'; stage: string; step: number; streak: number; reason: string }
  | { event: 'checkpoint'; stage: string; step: number; path: string; pruned: string[] }
  | { event: 'samples'; stage: string; step: number; path: string }
  | { event: 'stopped'; stage: string; step: number; reason: string };

export interface TrainReporter {
  event(e: TrainEvent): void;
  progress(info: ProgressInfo): void;
  /** Informational line (what is being built, where files go). */
  info(message: string): void;
  warn(message: string): void;
}

/** A reporter that only collects events (tests, library use). */
export class CollectingReporter implements TrainReporter {
  readonly events: TrainEvent[] = [];
  readonly warnings: string[] = [];
  readonly infos: string[] = [];
  event(e: TrainEvent): void { this.events.push(e); }
  progress(): void {}
  info(message: string): void { this.infos.push(message); }
  warn(message: string): void { this.warnings.push(message); }
}
