/**
 * A pool of worker threads that run synchronous jobs with the calling thread.
 *
 * The engine's ops are synchronous, so `run()` is too: it invites the workers that are ready,
 * publishes the job in shared control words and wakes them (`Atomics.notify`), runs its own
 * share of the work, withdraws the invitations no worker has taken up yet, then blocks in
 * `Atomics.wait` (allowed on Node's main thread) until each worker that joined has finished.
 * Work items are claimed dynamically, so a job is correct with any number of participants:
 * workers still starting up are not invited, and a worker the OS has not scheduled in time
 * (a busy machine) is dropped from the job instead of being waited for.
 *
 * The wait is sliced: a worker that died mid-job (its `exit` handler marks its state word)
 * becomes a `ThreadPoolError` instead of a hang, and the process-wide pool is rebuilt on the
 * next call. A worker that cannot start at all is a configuration problem and is reported by
 * every later call. Workers are `unref()`'d: an idle pool never keeps the process alive.
 */

import os from 'node:os';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import {
  ACK_BASE, CONTROL_WORDS, EXITED, INVITE_BASE, ITEMS, JOINED, MAX_ARGS, MAX_WORKERS, NEXT_ITEM, READY, SEQ, STATE_BASE, TASK,
  type FromWorker, type ToWorker, type WorkerInit,
} from './protocol.js';
import type { TaskContext, TaskRef } from './task.js';

export class ThreadPoolError extends Error {
  override name = 'ThreadPoolError';
}

/** Slice of `Atomics.wait` between liveness checks. */
const WAIT_SLICE_MS = 100;

interface WorkerSlot { worker: Worker; port: MessagePort }

/**
 * Flags of the parent process that a worker must not inherit: they describe the main entry
 * point (`node -e`, `--input-type`), and Node refuses to load a worker file with them.
 */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (['-e', '--eval', '-p', '--print', '--input-type'].includes(arg)) i++;
    else if (!/^(--eval|--print|--input-type)=/.test(arg) && arg !== '-i' && arg !== '--interactive') out.push(arg);
  }
  return out;
}

export class ThreadPool {
  /** Threads that can take part in a job: the caller plus the workers. */
  readonly threads: number;
  private readonly control: Int32Array;
  private readonly args: Float64Array;
  private readonly workers: WorkerSlot[] = [];
  private readonly taskIds = new Map<TaskRef, number>();
  private readonly sharedObjects = new Map<string, unknown>();
  private readonly invited: number[] = [];
  /** Set when a worker died or failed; `run()` then throws it. */
  private broken: ThreadPoolError | undefined;
  /** Set when a worker failed before it ever became ready (a new pool would fail the same way). */
  startupFailure: ThreadPoolError | undefined;
  private running = false;

  constructor(threads: number) {
    if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WORKERS + 1) {
      throw new RangeError(`ThreadPool: threads must be an integer in [1, ${MAX_WORKERS + 1}], got ${threads}`);
    }
    this.threads = threads;
    this.control = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
    this.args = new Float64Array(new SharedArrayBuffer(MAX_ARGS * 8));
    for (let index = 1; index < threads; index++) this.workers.push(this.spawn(index));
  }

  private spawn(index: number): WorkerSlot {
    const { port1, port2 } = new MessageChannel();
    const init: WorkerInit = {
      control: this.control.buffer as SharedArrayBuffer, args: this.args.buffer as SharedArrayBuffer, index, threads: this.threads, port: port2,
    };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: init, transferList: [port2], execArgv: workerExecArgv() });
    worker.unref();
    port1.unref();
    // These events arrive through the event loop, i.e. between jobs. Without an 'error'
    // listener an uncaught error in a worker would crash the whole process.
    const failed = (what: string): void => {
      const neverReady = Atomics.load(this.control, STATE_BASE + index) !== READY && Atomics.load(this.control, STATE_BASE + index) !== EXITED;
      Atomics.store(this.control, STATE_BASE + index, EXITED);
      const err = new ThreadPoolError(`CPU worker thread ${index} ${neverReady ? 'failed to start' : 'failed'}: ${what}` +
        (neverReady ? ' (set DIMBA_CPU_THREADS=1 to run on the calling thread only)' : ''));
      if (neverReady) this.startupFailure ??= err;
      this.broken ??= err;
    };
    worker.on('error', (err) => failed(err.stack ?? String(err)));
    worker.on('exit', (code) => failed(`exited with code ${code}`));
    return { worker, port: port1 };
  }

  /** Makes `value` (structured-clonable: a shared WebAssembly.Memory, a compiled module) available to tasks as `ctx.shared(key)`. */
  share(key: string, value: unknown): void {
    this.sharedObjects.set(key, value);
    this.post({ kind: 'share', key, value });
  }

  private post(message: ToWorker): void {
    for (const { port } of this.workers) port.postMessage(message);
  }

  /**
   * Runs `task` with `args` on the calling thread and every ready worker; `items` work items
   * are handed out by `ctx.claim()`. Returns when all are done; rethrows the first error.
   */
  run(task: TaskRef, args: readonly number[], items: number): void {
    if (this.broken !== undefined) throw this.broken;
    if (this.running) throw new ThreadPoolError(`ThreadPool.run(${task.name}): called re-entrantly from inside a task`);
    if (args.length > MAX_ARGS) throw new RangeError(`ThreadPool.run(${task.name}): at most ${MAX_ARGS} arguments, got ${args.length}`);
    this.running = true;
    try {
      let id = this.taskIds.get(task);
      if (id === undefined) {
        id = this.taskIds.size;
        this.taskIds.set(task, id);
        this.post({ kind: 'task', id, url: task.url, name: task.name });
      }
      const control = this.control;
      this.args.fill(0);
      this.args.set(args);
      Atomics.store(control, TASK, id);
      Atomics.store(control, ITEMS, items);
      Atomics.store(control, NEXT_ITEM, 0);
      // Invitations are written before the sequence number changes, so a worker that sees the
      // new number also sees whether it is invited.
      const seq = (Atomics.load(control, SEQ) % (JOINED - 1)) + 1;
      this.invited.length = 0;
      for (let w = 1; w <= this.workers.length; w++) {
        if (Atomics.load(control, STATE_BASE + w) === READY) {
          Atomics.store(control, INVITE_BASE + w, seq);
          this.invited.push(w);
        }
      }
      Atomics.store(control, SEQ, seq);
      Atomics.notify(control, SEQ);

      let ownError: unknown;
      try {
        task.fn(this.args, this.mainContext());
      } catch (err) {
        ownError = err;
      }
      this.waitForWorkers(task, seq);
      if (ownError !== undefined) throw ownError;
      this.rethrowWorkerErrors(task);
    } finally {
      this.running = false;
    }
  }

  private mainContext(): TaskContext {
    const control = this.control;
    const shared = this.sharedObjects;
    return {
      thread: 0,
      threads: this.threads,
      claim: () => {
        const item = Atomics.add(control, NEXT_ITEM, 1);
        return item < Atomics.load(control, ITEMS) ? item : -1;
      },
      shared: (key) => shared.get(key),
    };
  }

  private waitForWorkers(task: TaskRef, seq: number): void {
    const control = this.control;
    for (const w of this.invited) {
      if (Atomics.compareExchange(control, INVITE_BASE + w, seq, 0) === seq) continue; // never joined
      while (Atomics.load(control, ACK_BASE + w) !== seq) {
        if (Atomics.load(control, STATE_BASE + w) === EXITED) {
          this.fail(new ThreadPoolError(`CPU worker thread ${w} exited while running task '${task.name}'; the thread pool will be recreated on the next call`));
        }
        Atomics.wait(control, ACK_BASE + w, Atomics.load(control, ACK_BASE + w), WAIT_SLICE_MS);
      }
    }
  }

  private rethrowWorkerErrors(task: TaskRef): void {
    const messages: string[] = [];
    this.workers.forEach(({ port }, i) => {
      for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
        const msg = m.message as FromWorker;
        if (msg.kind === 'error') messages.push(`worker ${i + 1}: ${msg.message}`);
      }
    });
    if (messages.length > 0) throw new ThreadPoolError(`task '${task.name}' failed on a CPU worker thread:\n${messages.join('\n')}`);
  }

  private fail(err: ThreadPoolError): never {
    this.broken = err;
    this.destroy();
    throw err;
  }

  /**
   * Blocks until every worker is ready to be invited (or `timeoutMs` passed); returns whether
   * all are. Jobs never need this (they run with whoever is ready); it makes timings and
   * tests independent of thread start-up.
   */
  waitUntilReady(timeoutMs: number): boolean {
    const deadline = performance.now() + timeoutMs;
    for (let w = 1; w <= this.workers.length; w++) {
      for (;;) {
        const state = Atomics.load(this.control, STATE_BASE + w);
        if (state === READY) break;
        const left = deadline - performance.now();
        if (state === EXITED || left <= 0) return false;
        Atomics.wait(this.control, STATE_BASE + w, state, Math.min(left, WAIT_SLICE_MS));
      }
    }
    return true;
  }

  /** Stops the workers; the pool can no longer run jobs. */
  destroy(): void {
    this.broken ??= new ThreadPoolError('ThreadPool: used after destroy()');
    for (const { worker, port } of this.workers) {
      port.close();
      void worker.terminate();
    }
    this.workers.length = 0;
  }

  /** True when a worker died or failed, or the pool was destroyed. */
  get isBroken(): boolean {
    return this.broken !== undefined;
  }
}

/** Threads to use: os.availableParallelism(), capped by DIMBA_CPU_THREADS when set. */
export function defaultThreadCount(): number {
  const cores = os.availableParallelism();
  const env = process.env['DIMBA_CPU_THREADS'];
  if (env === undefined || env === '') return cores;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`DIMBA_CPU_THREADS must be a positive integer, got '${env}'`);
  return Math.min(cores, n, MAX_WORKERS + 1);
}

let defaultPool: ThreadPool | undefined;
const poolInitializers: Array<(pool: ThreadPool) => void> = [];

/**
 * The process-wide pool, created on first use and rebuilt after a worker died. If its workers
 * could not start at all, that error is thrown instead (a new pool would fail the same way).
 */
export function threadPool(): ThreadPool {
  if (defaultPool?.startupFailure !== undefined) throw defaultPool.startupFailure;
  if (defaultPool === undefined || defaultPool.isBroken) {
    defaultPool = new ThreadPool(defaultThreadCount());
    for (const init of poolInitializers) init(defaultPool);
  }
  return defaultPool;
}

/** Registers a callback that prepares every new process-wide pool (e.g. shares a wasm memory). */
export function onThreadPoolCreate(init: (pool: ThreadPool) => void): void {
  poolInitializers.push(init);
  if (defaultPool !== undefined && !defaultPool.isBroken) init(defaultPool);
}
