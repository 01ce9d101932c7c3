// The access cache's counter reads (server/src/auth/access-cache.ts current()): concurrent requests share one read of
// the cache generation and the heads counter, but only a read sent after they arrived. The database here is a stand-in
// that answers when the test says so and answers with the counters as they were when the read was SENT: the worst
// case for freshness (a read executed at once, answered late), which the timing of a real database would hide.
import test from 'ava';
import { AccessCache } from '../../server/dist/auth/access-cache.js';
import type { HotReads } from '../../server/dist/db/hot-reads.js';

function database() {
  const counters = { n: 1, heads: 1 };
  const reads: { answer: () => void; fail: (err: Error) => void }[] = [];
  const hot = {
    hot: true,
    all: () => Promise.reject(new Error('not used')),
    first: <T>() => new Promise<T>((resolve, reject) => {
      const row = { ...counters };
      reads.push({ answer: () => resolve(row as T), fail: reject });
    }),
    close: async () => {},
  } as unknown as HotReads;
  return { counters, reads, cache: new AccessCache(hot) };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('alone, a request sends its read at once', async (t) => {
  const { reads, cache } = database();
  const a = cache.current();
  t.is(reads.length, 1);
  reads[0]!.answer();
  t.deepEqual(await a, { generation: 1, heads: 1 });
});

test('requests arriving while a read is out share the next one, which sees what committed before they arrived', async (t) => {
  const { counters, reads, cache } = database();
  const a = cache.current();
  counters.n = 2; // a revocation commits after A's read was sent, before B and C arrive
  counters.heads = 5;
  const b = cache.current();
  const c = cache.current();
  t.is(reads.length, 1, 'B and C do not send reads of their own, nor take A\'s');
  reads[0]!.answer();
  t.deepEqual(await a, { generation: 1, heads: 1 });
  await tick();
  t.is(reads.length, 2, 'the next read goes out as soon as A\'s is answered');
  reads[1]!.answer();
  t.deepEqual(await b, { generation: 2, heads: 5 });
  t.deepEqual(await c, { generation: 2, heads: 5 });
  // A request arriving while the shared read is out waits for a third.
  const d = cache.current();
  await tick();
  t.is(reads.length, 3);
  counters.n = 3;
  reads[2]!.answer();
  t.deepEqual(await d, { generation: 2, heads: 5 }, 'the counters as they were when its read was sent, after it arrived');
});

test('a failed read fails the requests that shared it; the queued ones get a read of their own', async (t) => {
  const { reads, cache } = database();
  const a = cache.current();
  const b = cache.current();
  reads[0]!.fail(new Error('database gone'));
  await t.throwsAsync(a, { message: 'database gone' });
  await tick();
  t.is(reads.length, 2);
  reads[1]!.answer();
  t.deepEqual(await b, { generation: 1, heads: 1 });
  const c = cache.current();
  t.is(reads.length, 3, 'idle again: sent at once');
  reads[2]!.answer();
  await c;
});

test('a hundred requests in a burst cost two reads', async (t) => {
  const { reads, cache } = database();
  const all = Array.from({ length: 100 }, () => cache.current());
  reads[0]!.answer();
  await tick();
  reads[1]!.answer();
  t.is((await Promise.all(all)).length, 100);
  t.is(reads.length, 2);
});
