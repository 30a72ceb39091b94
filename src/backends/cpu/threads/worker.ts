/**
 * Worker thread entry of the CPU thread pool (see pool.ts). It blocks in `Atomics.wait` for the
 * next job, picks up announcements (shared objects, task modules) from its port synchronously,
 * joins the job if still invited, runs the task and reports completion. Its event loop only
 * runs while importing a task module for the first time.
 */

import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { ACK_BASE, EXITED, INVITE_BASE, ITEMS, JOINED, NEXT_ITEM, READY, SEQ, STATE_BASE, TASK, type FromWorker, type ToWorker, type WorkerInit } from './protocol.js';
import { isTaskRef, type TaskContext, type TaskRef } from './task.js';

const init = workerData as WorkerInit;
const control = new Int32Array(init.control);
const args = new Float64Array(init.args);
const port = init.port;
const shared = new Map<string, unknown>();
const tasks = new Map<number, TaskRef>();

// Lets a blocked main thread notice that this thread is gone (process.exit() in a task, or an
// uncaught error): the 'exit' event of the Worker object would only reach it via its event loop.
process.on('exit', () => {
  Atomics.store(control, STATE_BASE + init.index, EXITED);
  Atomics.notify(control, ACK_BASE + init.index);
});

const context: TaskContext = {
  thread: init.index,
  threads: init.threads,
  claim: () => {
    const item = Atomics.add(control, NEXT_ITEM, 1);
    return item < Atomics.load(control, ITEMS) ? item : -1;
  },
  shared: (key) => shared.get(key),
};

async function drainMessages(): Promise<void> {
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
    const msg = m.message as ToWorker;
    if (msg.kind === 'share') {
      shared.set(msg.key, msg.value);
    } else {
      const exported: unknown = (await import(msg.url) as Record<string, unknown>)[msg.name];
      if (!isTaskRef(exported)) throw new Error(`module ${msg.url} does not export a task named '${msg.name}'`);
      tasks.set(msg.id, exported);
    }
  }
}

function report(err: unknown): void {
  const message: FromWorker = { kind: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  port.postMessage(message);
}

async function serve(): Promise<void> {
  // Jobs published before this thread was ready are not ours (we were not invited to them).
  let seq = Atomics.load(control, SEQ);
  Atomics.store(control, STATE_BASE + init.index, READY);
  Atomics.notify(control, STATE_BASE + init.index);
  for (;;) {
    Atomics.wait(control, SEQ, seq);
    seq = Atomics.load(control, SEQ);
    // Read announcements (and import new task modules) before joining, so that a slow first
    // import makes the caller drop this thread from the job rather than wait for it.
    try {
      await drainMessages();
    } catch (err) {
      report(err);
      continue;
    }
    // Join unless the invitation was withdrawn (or never made).
    if (Atomics.compareExchange(control, INVITE_BASE + init.index, seq, seq | JOINED) !== seq) continue;
    try {
      const id = Atomics.load(control, TASK);
      const task = tasks.get(id);
      if (task === undefined) throw new Error(`no task with id ${id} was announced to worker ${init.index}`);
      task.fn(args, context);
    } catch (err) {
      report(err);
    }
    Atomics.store(control, ACK_BASE + init.index, seq);
    Atomics.notify(control, ACK_BASE + init.index);
  }
}

void serve();
