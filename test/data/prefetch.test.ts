import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { prefetchOrdered } from '../../src/data/prefetch.js';

async function* count(n: number): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) yield i;
}

test('prefetchOrdered keeps `depth` tasks in flight and yields in input order', async () => {
  let running = 0;
  let peak = 0;
  const work = async (i: number): Promise<number> => {
    running += 1;
    peak = Math.max(peak, running);
    await sleep((7 - (i % 7)) * 2); // later items finish first
    running -= 1;
    return i * 10;
  };
  const out: number[] = [];
  for await (const v of prefetchOrdered(count(20), work, 4)) out.push(v);
  assert.deepEqual(out, Array.from({ length: 20 }, (_, i) => i * 10));
  assert.equal(peak, 4);
});

test('prefetchOrdered works ahead while the consumer is busy', async () => {
  const started: number[] = [];
  const iterator = prefetchOrdered(count(10), async (i) => {
    started.push(i);
    return i;
  }, 3)[Symbol.asyncIterator]();
  assert.equal((await iterator.next()).value, 0);
  assert.deepEqual(started, [0, 1, 2]); // 1 and 2 were started before the consumer asked
  await iterator.return(undefined);
});

test('a rejected task ends the iteration with its error', async () => {
  const run = async () => {
    for await (const _ of prefetchOrdered(count(5), async (i) => {
      if (i === 2) throw new TypeError('boom at 2');
      return i;
    }, 2));
  };
  await assert.rejects(run, /boom at 2/);
});
