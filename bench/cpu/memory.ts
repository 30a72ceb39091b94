/**
 * Peak live tensor memory of one Dimba-XS training step on the CPU (forward, backward, gradient
 * clipping, AdamW), with the trainer's T.tidy scopes and without any (the engine before scopes:
 * storage went only with garbage collection, which a synchronous step never reaches). Live bytes
 * come from T.memoryStats: storages some tensor still refers to, above what was live before the
 * step (model, optimizer state, inputs).
 *
 *   node dist/bench/cpu/memory.js [--size 32] [--batch 4] [--checkpointing]
 */
import { pathToFileURL } from 'node:url';
import * as T from '../../src/index.js';
import { smallDimbaStep } from '../../test/helpers/train-step.js';

const MiB = 2 ** 20;

export interface StepMemory {
  /** Most bytes live at once during the step, above the live bytes before it. */
  peak: number;
  /** Bytes still live after the step, above those before it. */
  left: number;
  /** Bytes of all storages the step created. */
  allocated: number;
}

/** Measures step 2 (step 1 creates the optimizer state and the model's caches). */
export function measureStep(scoped: boolean, size: number, batch: number, checkpointing: boolean): StepMemory {
  const run = smallDimbaStep({ batch, config: { inputSize: size }, gradientCheckpointing: checkpointing });
  run.step(scoped);
  const before = T.memoryStats('cpu');
  T.resetPeakMemoryStats('cpu');
  run.step(scoped);
  const after = T.memoryStats('cpu');
  return { peak: after.peakLiveBytes - before.liveBytes, left: after.liveBytes - before.liveBytes, allocated: after.allocatedBytes - before.allocatedBytes };
}

function main(): void {
  const args = process.argv.slice(2);
  const value = (name: string, fallback: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const size = value('--size', 32);
  const batch = value('--batch', 4);
  const checkpointing = args.includes('--checkpointing');
  console.log(`Dimba-XS ${size}x${size}, batch ${batch}${checkpointing ? ', gradient checkpointing' : ''}: one CPU training step (step 2)`);
  for (const scoped of [false, true]) {
    const m = measureStep(scoped, size, batch, checkpointing);
    console.log(`  ${scoped ? 'scoped  ' : 'unscoped'}  peak live ${(m.peak / MiB).toFixed(2)} MiB, left after the step ${(m.left / MiB).toFixed(2)} MiB, allocated ${(m.allocated / MiB).toFixed(2)} MiB`);
    // Before scopes existed, backward did not release its own gradients either, and nothing went
    // before a garbage-collection callback, which a synchronous step never reaches.
    if (!scoped) console.log(`  engine before scopes: peak = allocated = ${(m.allocated / MiB).toFixed(2)} MiB`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
