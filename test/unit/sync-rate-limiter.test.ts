// The sync engine's bandwidth limiter (desktop/src/sync/transfer.ts RateLimiter), shared by a folder's uploads and
// downloads and changed while they run by the desktop app's settings (SyncFolder.setBandwidth).
import test from 'ava';
import { RateLimiter } from '../../desktop/dist/sync/transfer.js';

const within = <T>(ms: number, p: Promise<T>) => Promise.race([p.then(() => 'went'), new Promise<string>((resolve) => setTimeout(() => resolve('still waiting'), ms))]);

test('rate limiter: a limit lifted while a transfer waits in debt lets it go (it waited forever)', async (t) => {
  const l = new RateLimiter(1000);
  await l.take(3000); // a batch larger than a second's budget goes at once, into debt
  const waiting = l.take(1000);
  t.is(await within(100, waiting), 'still waiting', 'held by the limit');
  l.setRate(0);
  t.is(await within(1500, waiting), 'went');
});

test('rate limiter: a lower limit applies to what waits; none at all lets everything through at once', async (t) => {
  const l = new RateLimiter(0);
  t.is(await within(50, l.take(10_000_000)), 'went');
  l.setRate(1000);
  await l.take(1000);
  t.is(await within(200, l.take(1000)), 'still waiting');
});
