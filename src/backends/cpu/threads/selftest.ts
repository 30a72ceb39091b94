/**
 * Tasks for checking a pool from tests and diagnostics: which thread did which item, and what
 * happens when a worker dies in the middle of a job.
 */

import { defineTask } from './task.js';

/**
 * args: [0] = address unused; each claimed item i records thread+1 into the Int32Array shared
 * under 'selftest.items'; args[0] = microseconds to spin per item (so every thread gets some).
 */
export const recordClaims = defineTask(import.meta.url, 'recordClaims', (args, ctx) => {
  const out = ctx.shared('selftest.items');
  if (!(out instanceof Int32Array)) throw new Error("recordClaims: share an Int32Array as 'selftest.items' first");
  for (let item = ctx.claim(); item >= 0; item = ctx.claim()) {
    const until = performance.now() + args[0]! / 1000;
    while (performance.now() < until) { /* spin: simulate work */ }
    out[item] = ctx.thread + 1;
  }
});

/** args[0] = worker index that exits the process's thread with code 3 (the rest just return). */
export const exitWorker = defineTask(import.meta.url, 'exitWorker', (args, ctx) => {
  if (ctx.thread === args[0]) process.exit(3);
});

/** Throws on every worker thread (not on the caller). */
export const throwOnWorker = defineTask(import.meta.url, 'throwOnWorker', (_args, ctx) => {
  if (ctx.thread > 0) throw new Error(`selftest failure on thread ${ctx.thread}`);
});
