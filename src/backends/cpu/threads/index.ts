export { ThreadPool, ThreadPoolError, defaultThreadCount, onThreadPoolCreate, threadPool } from './pool.js';
export { defineTask, type TaskContext, type TaskFn, type TaskRef } from './task.js';
