/**
 * Tasks for checking a pool from tests and diagnostics: which thread did which item, and what
 * happens when a task fails or a worker dies in the middle of a job. They use an Int32Array
 * shared under 'selftest.items'.
 */

import { defineTask, type TaskContext } from './task.js';

function items(ctx: TaskContext, task: string): Int32Array {
  const out = ctx.shared('selftest.items');
  if (!(out instanceof Int32Array)) throw new Error(`${task}: share an Int32Array as 'selftest.items' first`);
  return out;
}

/**
 * Marks this worker as arrived (items[thread] = 1); on the calling thread, waits up to
 * `timeoutMs` for worker `worker` to arrive, since workers that are late are dropped from a job.
 */
function rendezvous(ctx: TaskContext, out: Int32Array, worker: number, timeoutMs: number): void {
  if (ctx.thread !== 0) {
    Atomics.store(out, ctx.thread, 1);
    return;
  }
  const until = performance.now() + timeoutMs;
  while (Atomics.load(out, worker) === 0 && performance.now() < until) { /* spin: the worker is joining */ }
}

/** Each claimed item i records thread + 1 into items[i]; args[0] = microseconds of spinning per item. */
export const recordClaims = defineTask(import.meta.url, 'recordClaims', (args, ctx) => {
  const out = items(ctx, 'recordClaims');
  for (let item = ctx.claim(); item >= 0; item = ctx.claim()) {
    const until = performance.now() + args[0]! / 1000;
    while (performance.now() < until) { /* spin: simulated work */ }
    out[item] = ctx.thread + 1;
  }
});

/** Worker args[0] exits its thread (process.exit(3) in a worker ends only that thread). */
export const exitWorker = defineTask(import.meta.url, 'exitWorker', (args, ctx) => {
  const out = items(ctx, 'exitWorker');
  rendezvous(ctx, out, args[0]!, 10_000);
  if (ctx.thread === args[0]) process.exit(3);
});

/** Throws on worker args[0]. */
export const throwOnWorker = defineTask(import.meta.url, 'throwOnWorker', (args, ctx) => {
  const out = items(ctx, 'throwOnWorker');
  rendezvous(ctx, out, args[0]!, 10_000);
  if (ctx.thread === args[0]) throw new Error(`selftest failure on thread ${ctx.thread}`);
});
