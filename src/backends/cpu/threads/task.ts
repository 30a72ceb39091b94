/**
 * Tasks: functions that run on every thread of the pool (the calling thread included) for
 * one job. A task lives in a module that worker threads import by URL, so it is defined
 * together with that module's URL and its export name:
 *
 *   export const scaleRows = defineTask(import.meta.url, 'scaleRows', (args, ctx) => { ... });
 *
 * Work inside a job is split dynamically: each thread calls `ctx.claim()` until it returns -1.
 */

export interface TaskContext {
  /** 0 for the calling (main) thread, 1.. for workers. */
  readonly thread: number;
  /** Threads taking part in the job, the caller included. */
  readonly threads: number;
  /** The next unclaimed work item of this job in [0, items), or -1 when none is left. */
  claim(): number;
  /** An object given to `ThreadPool.share` under `key` (undefined if never shared). */
  shared(key: string): unknown;
}

export type TaskFn = (args: Float64Array, ctx: TaskContext) => void;

export interface TaskRef {
  /** URL of the module that exports this task under `name`. */
  readonly url: string;
  readonly name: string;
  readonly fn: TaskFn;
}

export function defineTask(url: string, name: string, fn: TaskFn): TaskRef {
  return { url, name, fn };
}

export function isTaskRef(value: unknown): value is TaskRef {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<TaskRef>;
  return typeof v.url === 'string' && typeof v.name === 'string' && typeof v.fn === 'function';
}
