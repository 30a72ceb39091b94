import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sgemm } from '../../../src/backends/cpu/gemm/index.js';
import { defaultThreadCount, ThreadPool, ThreadPoolError, threadPool } from '../../../src/backends/cpu/threads/index.js';
import { exitWorker, recordClaims, throwOnWorker } from '../../../src/backends/cpu/threads/selftest.js';

function withThreadsEnv<T>(value: string | undefined, fn: () => T): T {
  const saved = process.env['DIMBA_CPU_THREADS'];
  if (value === undefined) delete process.env['DIMBA_CPU_THREADS'];
  else process.env['DIMBA_CPU_THREADS'] = value;
  try {
    return fn();
  } finally {
    if (saved === undefined) delete process.env['DIMBA_CPU_THREADS'];
    else process.env['DIMBA_CPU_THREADS'] = saved;
  }
}

/** Checks a square sgemm of size n exactly (small integer entries: every partial sum is exact in fp32). */
function checkSquare(n: number): void {
  const A = Float32Array.from({ length: n * n }, (_, i) => (i % 7) - 3);
  const B = Float32Array.from({ length: n * n }, (_, i) => (i % 5) - 2);
  const C = new Float32Array(n * n);
  sgemm(false, false, n, n, n, 1, A, 0, n, B, 0, n, 0, C, 0, n);
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    row.fill(0);
    for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) row[j]! += A[i * n + k]! * B[k * n + j]!;
    for (let j = 0; j < n; j++) if (C[i * n + j] !== row[j]) assert.fail(`n=${n}: C[${i},${j}] = ${C[i * n + j]}, expected ${row[j]}`);
  }
}

describe('CPU thread pool', () => {
  test('thread count follows DIMBA_CPU_THREADS, capped by the cores', () => {
    withThreadsEnv('1', () => assert.equal(defaultThreadCount(), 1));
    withThreadsEnv('100000', () => assert.ok(defaultThreadCount() >= 1));
    withThreadsEnv('zero', () => assert.throws(() => defaultThreadCount(), /DIMBA_CPU_THREADS must be a positive integer, got 'zero'/));
  });

  test('every item of a job is done once, by the caller and the workers', () => {
    const pool = new ThreadPool(2);
    try {
      const items = new Int32Array(new SharedArrayBuffer(4 * 60));
      pool.share('selftest.items', items);
      assert.ok(pool.waitUntilReady(30_000), 'worker did not start');
      pool.run(recordClaims, [3000], items.length);
      assert.ok(items.every((t) => t === 1 || t === 2), `items: ${items.join(',')}`);
      assert.ok(items.includes(1) && items.includes(2), `both threads should take items: ${items.join(',')}`);
    } finally {
      pool.destroy();
    }
  });

  test('an exception in a worker task is rethrown; the pool stays usable', () => {
    const pool = new ThreadPool(2);
    try {
      assert.ok(pool.waitUntilReady(30_000), 'worker did not start');
      const items = new Int32Array(new SharedArrayBuffer(4 * 4));
      pool.share('selftest.items', items);
      assert.throws(() => pool.run(throwOnWorker, [1], 0), (e: unknown) => e instanceof ThreadPoolError && /selftest failure on thread 1/.test(e.message));
      items.fill(0);
      pool.run(recordClaims, [0], 4);
      assert.ok(items.every((t) => t > 0));
    } finally {
      pool.destroy();
    }
  });

  test('a worker that dies mid-job raises an Error instead of hanging', () => {
    const pool = new ThreadPool(2);
    assert.ok(pool.waitUntilReady(30_000), 'worker did not start');
    pool.share('selftest.items', new Int32Array(new SharedArrayBuffer(4 * 4)));
    const t0 = performance.now();
    assert.throws(() => pool.run(exitWorker, [1], 0), (e: unknown) => e instanceof ThreadPoolError && /worker thread 1 exited/.test(e.message));
    assert.ok(performance.now() - t0 < 30_000);
    assert.ok(pool.isBroken);
    assert.throws(() => pool.run(recordClaims, [0], 0), ThreadPoolError);
  });

  test('the default pool is rebuilt after a worker died, and GEMM keeps working', { skip: defaultThreadCount() < 2 }, () => {
    checkSquare(96);
    const pool = threadPool();
    assert.ok(pool.waitUntilReady(30_000), 'worker did not start');
    pool.share('selftest.items', new Int32Array(new SharedArrayBuffer(4 * 4)));
    assert.throws(() => pool.run(exitWorker, [1], 0), ThreadPoolError);
    assert.notEqual(threadPool(), pool);
    checkSquare(96);
    checkSquare(130);
  });

  test('workers start from a `node -e` entry point (eval flags are not inherited)', () => {
    const poolUrl = new URL('../../../src/backends/cpu/threads/index.js', import.meta.url).href;
    const script = `
      import { ThreadPool } from ${JSON.stringify(poolUrl)};
      const pool = new ThreadPool(2);
      console.log('ready', pool.waitUntilReady(20000));`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(child.status, 0, `child stderr: ${child.stderr}`);
    assert.match(child.stdout, /ready true/);
  });

  test('workers see the GEMM heap grow after they started (odd sizes: edge panels)', { skip: defaultThreadCount() < 2 }, () => {
    assert.ok(threadPool().waitUntilReady(30_000), 'worker did not start');
    checkSquare(131);
    checkSquare(517);
  });

  test('a process that ran a threaded sgemm exits on its own', () => {
    const gemmUrl = new URL('../../../src/backends/cpu/gemm/index.js', import.meta.url).href;
    const poolUrl = new URL('../../../src/backends/cpu/threads/index.js', import.meta.url).href;
    const script = `
      import { sgemm } from ${JSON.stringify(gemmUrl)};
      import { threadPool } from ${JSON.stringify(poolUrl)};
      const n = 256, A = new Float32Array(n * n).fill(1), C = new Float32Array(n * n);
      if (!threadPool().waitUntilReady(20000)) throw new Error('worker did not start');
      sgemm(false, false, n, n, n, 1, A, 0, n, A, 0, n, 0, C, 0, n);
      console.log('sum', C[0] + C[n * n - 1]);`;
    const t0 = performance.now();
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8', timeout: 20_000, env: { ...process.env, DIMBA_CPU_THREADS: '2' }, cwd: fileURLToPath(new URL('.', import.meta.url)),
    });
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(child.error, undefined, `child failed to finish: ${String(child.error)} (stderr: ${child.stderr})`);
    assert.equal(child.status, 0, `child stderr: ${child.stderr}`);
    assert.match(child.stdout, /sum 512/);
    assert.ok(seconds < 10, `child took ${seconds.toFixed(1)} s`);
  });
});
