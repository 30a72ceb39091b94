/**
 * Ordered prefetch: keeps up to `depth` calls of `work` in flight and yields their results in
 * input order. The work here is sharp decoding, which libvips runs on libuv's threadpool, so
 * in-flight decodes proceed on other cores while the main thread runs a training step; the
 * main thread only pulls items and converts finished pixels.
 *
 * `work` should turn expected failures into values; a rejection is a real error and ends the
 * iteration with it (results still in flight are awaited silently so none rejects unhandled).
 */
export async function* prefetchOrdered<T, U>(
  source: AsyncIterable<T>,
  work: (item: T) => Promise<U>,
  depth: number,
): AsyncGenerator<U> {
  const iterator = source[Symbol.asyncIterator]();
  const inFlight: Promise<U>[] = [];
  let exhausted = false;
  try {
    for (;;) {
      while (!exhausted && inFlight.length < depth) {
        const next = await iterator.next();
        if (next.done) {
          exhausted = true;
          break;
        }
        const task = work(next.value);
        task.catch(() => undefined);
        inFlight.push(task);
      }
      const head = inFlight.shift();
      if (head === undefined) return;
      yield await head;
    }
  } finally {
    await Promise.allSettled(inFlight);
    if (!exhausted) await iterator.return?.();
  }
}
