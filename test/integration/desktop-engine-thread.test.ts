// The desktop app runs each folder's engine in its own thread (desktop/src/electron/main/engine-proxy.ts and
// engine-worker.ts; docs/desktop.md "Main process"): the main thread holds a proxy of the front door. With a real
// server and a real folder: the thread syncs both ways, its events reach main with their arguments, the door's
// errors keep their code and message, a thread that dies shows as the folder's error (nothing hangs), and closing
// ends the thread and unlocks the folder.
import test from 'ava';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { initCrypto, KluisError } from '@kluis/shared';
import { loadAccount } from '../../desktop/dist/account/state.js';
import { FolderThread } from '../../desktop/dist/electron/main/engine-proxy.js';
import { FolderHost } from '../../desktop/dist/electron/main/folders.js';
import type { EngineState, Progress, SyncReport } from '../../desktop/dist/index.js';
import { bytes, read, startSyncEnv, syncOnce, textOf, until, write, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';

let env: SyncEnv;

test.before(async () => {
  await initCrypto();
  env = await startSyncEnv({ accounts: ['A', 'B'], storage: 'fs' });
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await env?.close();
});

const lockOf = (c: SyncClient, folderId: number) => path.join(c.home, `folder-${folderId}.lock`);

test.serial('a folder\'s engine thread syncs both ways with a real server, forwards its events, and closes cleanly', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  write(a.dir, 'nota.txt', 'van A\n');
  write(a.dir, 'groot.bin', bytes(7, 5 * 1024 * 1024));
  write(b.dir, 'van-b.txt', 'van B\n');
  await syncOnce(b);

  const f = await FolderThread.open(loadAccount(a.home), a.dir, { spaceId: a.spaceId, home: a.home, settleMs: 100 });
  t.is(f.folder.root, a.dir);
  t.is(f.folder.spaceId, a.spaceId);
  t.true(existsSync(lockOf(a, f.folder.id)), 'the thread took the folder\'s lock');
  const states: EngineState[] = [];
  const progress: Progress[] = [];
  const synced: SyncReport[] = [];
  f.on('state', (s) => states.push(s)).on('progress', (p) => progress.push(p)).on('synced', (r) => synced.push(r));
  const watching = f.start({ pollMs: 1000 });
  await until('both files on both sides', async () => textOf(a.dir, 'van-b.txt') === 'van B\n' && synced.some((r) => r.uploaded === 2));
  await syncOnce(b);
  t.is(textOf(b.dir, 'nota.txt'), 'van A\n');
  t.true(read(b.dir, 'groot.bin').equals(bytes(7, 5 * 1024 * 1024)));
  t.true(states.includes('scanning') && states.includes('uploading') && states.includes('downloading'), states.join(' '));
  const up = progress.filter((p) => p.phase === 'uploading');
  t.like(up.at(-1), { filesDone: 2, filesTotal: 2, bytesTotal: 5 * 1024 * 1024 + 6, bytesDone: 5 * 1024 * 1024 + 6 });
  // a call answers after the engine took it: its state event is in first
  await f.pause();
  t.is(states.at(-1), 'paused');
  await f.resume();
  t.is(states.at(-1), 'idle');
  const h = await f.history('nota.txt');
  t.is(h.versions.length, 1);
  t.true(h.versions[0]!.current);

  await f.close();
  await watching;
  t.is(states.at(-1), 'stopped');
  t.false(existsSync(lockOf(a, f.folder.id)), 'unlocked');
  t.is(f.worker.threadId, -1, 'the thread has ended');
  // a call after close is refused, not left waiting
  await t.throwsAsync(f.history('nota.txt'));
});

test.serial('the door\'s errors keep their code and message across the thread; a second open of a folder in this process is refused', async (t) => {
  const [a] = (await env.newSpace()).clients as [SyncClient];
  const other = await env.newSpace();
  const account = loadAccount(a.home);
  const f = await FolderThread.open(account, a.dir, { spaceId: a.spaceId, home: a.home, settleMs: 100 });
  try {
    const missing = await t.throwsAsync(f.history('bestaat-niet.txt'));
    t.true(missing instanceof KluisError, String(missing));
    t.like(missing, { code: 'not_found' });
    // refused by the door in its thread before it opens: another space's folder
    const bound = await t.throwsAsync(FolderThread.open(account, a.dir, { spaceId: other.spaceId, home: a.home }));
    t.like(bound, { code: 'conflict' });
    t.regex(bound!.message, /already synced with another space/);
    // refused by the host: the lock file names the process, so a second thread would take it over
    const host = new FolderHost({ home: a.home, account, version: 'test', keysProtected: 'file-only', recoveryKeyConfirmed: () => true });
    const twee = path.join(env.root, 'twee');
    const [first, second] = await Promise.allSettled([host.add(twee, a.spaceId, a.spaceName), host.add(twee, a.spaceId, a.spaceName)]);
    t.is(first.status, 'fulfilled');
    t.like(second, { status: 'rejected', reason: { code: 'conflict', message: `${twee} is already being synced by this process` } });
    // closed while a folder is being opened: that thread ends too (the test process exits only if it does)
    const late = host.add(path.join(env.root, 'laat'), a.spaceId, a.spaceName);
    await host.close();
    await t.throwsAsync(late, { message: 'the app is closing' });
    t.deepEqual(await host.statuses(), []);
  } finally {
    await f.close();
  }
});

test.serial('a thread that dies shows as the folder\'s error, its calls are refused, and the folder can be removed', async (t) => {
  const [a] = (await env.newSpace()).clients as [SyncClient];
  write(a.dir, 'nota.txt', 'voor de crash\n');
  const host = new FolderHost({ home: a.home, account: loadAccount(a.home), version: 'test', keysProtected: 'file-only', recoveryKeyConfirmed: () => true, settleMs: 100 });
  // No poll of the server after the first pass: the thread is idle when it is killed. node-sqlite3 aborts the whole
  // process when a thread ends while one of its statements is still on the thread pool (its answer is turned into JS
  // during the thread's teardown: napi_throw, FATAL ERROR); that is the library's, and not what this test is about.
  const { folderId } = await host.add(a.dir, a.spaceId, a.spaceName, { pollMs: 3_600_000 });
  await until('up to date', async () => (await host.status(folderId)).state === 'up-to-date' && (await host.status(folderId)).lastSyncedAt !== null);
  const thread = host.folder(folderId);
  await new Promise((resolve) => setTimeout(resolve, 500)); // the pass's last index writes done
  const failures: Error[] = [];
  thread.on('failure', (err) => failures.push(err));
  // what an engine crash does to its thread (an uncaught error, out of memory): it ends
  await thread.worker.terminate();
  const s = await until('the error state', async () => {
    const x = await host.status(folderId);
    return x.state === 'error' ? x : null;
  }, 10_000);
  t.regex(s.error!.message, /sync engine ended/);
  t.is(failures.length, 1);
  await t.throwsAsync(thread.pause(), { message: /sync engine ended/ });
  await t.throwsAsync(thread.history('nota.txt'), { message: /sync engine ended/ });
  await host.remove(folderId);
  t.deepEqual(await host.statuses(), []);
  // and it opens again (the lock names this process: taken over)
  const again = await host.add(a.dir, a.spaceId, a.spaceName, { pollMs: 1000 });
  await until('up to date again', async () => (await host.status(again.folderId)).lastSyncedAt !== null);
  await host.close();
  t.false(existsSync(path.join(a.home, `folder-${folderId}.lock`)));
});
