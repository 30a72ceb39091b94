/**
 * What the pool and its workers share: the layout of the control words (an Int32Array over a
 * SharedArrayBuffer) and the messages on each worker's MessageChannel. Messages are read with
 * `receiveMessageOnPort` on both sides, so neither side needs its event loop to run while the
 * main thread is blocked in `Atomics.wait`.
 */

import type { MessagePort } from 'node:worker_threads';

/** Job sequence number, in [1, JOINED); workers wait for it to change. */
export const SEQ = 0;
/** Next work item to claim in the current job. */
export const NEXT_ITEM = 1;
/** Work items in the current job. */
export const ITEMS = 2;
/** Id of the current job's task (announced earlier by a 'task' message). */
export const TASK = 3;
export const MAX_WORKERS = 256;
/** Per worker w (1-based): its state word (STARTING, READY, EXITED). */
export const STATE_BASE = 8;
/**
 * Per worker: its invitation. The main thread writes the job's sequence number; the worker
 * joins by swapping it for `seq | JOINED`; the main thread, once out of work, withdraws an
 * invitation not yet taken by swapping it for 0, so it never waits for a worker that has not
 * started (e.g. one the OS has not scheduled yet).
 */
export const INVITE_BASE = STATE_BASE + MAX_WORKERS + 1;
export const JOINED = 0x40000000;
/** Per worker: the sequence number of the last job it finished; the main thread waits on it. */
export const ACK_BASE = INVITE_BASE + MAX_WORKERS + 1;
export const CONTROL_WORDS = ACK_BASE + MAX_WORKERS + 1;
/** Job arguments: Float64 words in their own buffer. */
export const MAX_ARGS = 64;

/** Worker state words. */
export const STARTING = 0;
export const READY = 1;
export const EXITED = 2;

export interface WorkerInit {
  control: SharedArrayBuffer;
  args: SharedArrayBuffer;
  index: number;
  threads: number;
  port: MessagePort;
}

/** Main → worker. */
export type ToWorker =
  | { kind: 'share'; key: string; value: unknown }
  | { kind: 'task'; id: number; url: string; name: string };

/** Worker → main: a task threw. */
export interface FromWorker { kind: 'error'; message: string }
