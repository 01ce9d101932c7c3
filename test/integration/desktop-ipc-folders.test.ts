// The desktop app's first IPC handlers over the engine's front door (desktop/src/electron/main/folders.ts): app:status,
// folders:pause/resume, versions:list/restore, run through ./ipc.ts's dispatch (schema validation, error mapping)
// with the real engine watching a real folder against a real server. Electron is not needed: the handlers are
// plain functions and dispatch is what registerIpc calls for each request.
import test from 'ava';
import path from 'node:path';
import { initCrypto } from '@kluis/shared';
import { loadAccount } from '../../desktop/dist/account/state.js';
import { FolderHost, folderHandlers } from '../../desktop/dist/electron/main/folders.js';
import { dispatch } from '../../desktop/dist/electron/main/ipc.js';
import type { Channel } from '../../desktop/dist/electron/ipc/contract.js';
import { until } from '../helpers/desktop-app.js';
import { converge, kluis, okJson, read, sleep, startSyncEnv, syncOnce, write, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';

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

/** The file's text, or null while it is not there yet. */
function content(dir: string, rel: string): string | null {
  try {
    return read(dir, rel).toString();
  } catch {
    return null;
  }
}

test.serial('app:status, pause/resume, versions:list and versions:restore over a watching engine', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  write(b.dir, 'nota.txt', 'eerste nota\n');
  await syncOnce(b);
  write(b.dir, 'nota.txt', 'tweede nota, langer\n');
  await syncOnce(b);

  const host = new FolderHost({ home: a.home, account: loadAccount(a.home), version: '0.1.0-test', keysProtected: 'file-only', recoveryKeyConfirmed: () => false, settleMs: 100 });
  const handlers = folderHandlers(host);
  const call = <C extends Channel>(channel: C, request: unknown) => dispatch(channel, request, handlers, { onInternalError: (_c, err) => t.log(`internal: ${String(err)}`) });
  try {
    const added = await host.add(a.dir, a.spaceId, a.spaceName, { pollMs: 1000 });
    const id = added.folderId;
    await until('the first pass', async () => content(a.dir, 'nota.txt') === 'tweede nota, langer\n' && (await host.status(id)).state === 'up-to-date');

    const status = await call('app:status', {});
    t.true(status.ok, JSON.stringify(status));
    if (!status.ok) return;
    t.like(status.value, { version: '0.1.0-test', keysProtected: 'file-only', account: { email: a.account.email, recoveryKeyConfirmed: false } });
    t.regex(status.value.account!.fingerprint, /\d/);
    t.is(status.value.folders.length, 1);
    t.like(status.value.folders[0], { folderId: id, path: a.dir, spaceId: a.spaceId, spaceName: a.spaceName, state: 'up-to-date', error: null });

    // paused: a change on the server is not brought down until resume
    const paused = await call('folders:pause', { folderId: id });
    t.like(paused, { ok: true, value: { state: 'paused' } });
    await sleep(1500); // a pass already running when pause came finishes first
    write(b.dir, 'nieuw.txt', 'terwijl gepauzeerd\n');
    await syncOnce(b);
    await sleep(2500);
    t.is(content(a.dir, 'nieuw.txt'), null, 'not synced while paused');
    t.like(await call('folders:resume', { folderId: id }), { ok: true, value: { folderId: id } });
    await until('the change after resume', async () => content(a.dir, 'nieuw.txt') === 'terwijl gepauzeerd\n');

    const list = await call('versions:list', { folderId: id, path: 'nota.txt' });
    t.true(list.ok, JSON.stringify(list));
    if (!list.ok) return;
    const versions = list.value.versions;
    t.is(versions.length, 2);
    t.like(versions[0], { current: true, size: 'tweede nota, langer\n'.length, author: b.account.email });
    t.true(versions[1]!.at <= versions[0]!.at);

    const restored = await call('versions:restore', { folderId: id, path: 'nota.txt', versionId: versions[1]!.versionId });
    t.deepEqual(restored, { ok: true, value: { ok: true } });
    await until('the restored content on disk', async () => content(a.dir, 'nota.txt') === 'eerste nota\n');
    await syncOnce(b);
    t.is(read(b.dir, 'nota.txt').toString(), 'eerste nota\n');

    // bad input: schema refusals before any handler, and a folder this process does not hold
    t.like(await call('versions:list', { folderId: id }), { ok: false, error: { code: 'bad_request' } });
    t.like(await call('versions:restore', { folderId: id, path: 'nota.txt', versionId: 'kort' }), { ok: false, error: { code: 'bad_request' } });
    t.like(await call('folders:pause', { folderId: id, extra: 1 }), { ok: false, error: { code: 'bad_request' } });
    t.like(await call('folders:pause', { folderId: '999999' }), { ok: false, error: { code: 'not_found' } });
    t.like(await call('versions:list', { folderId: id, path: 'bestaat-niet.txt' }), { ok: false, error: { code: 'not_found' } });
  } finally {
    await host.close();
  }
  // closed: the folder is unlocked and marked stopped
  const st = okJson(await kluis(a.home, ['--json', 'status']), 'status');
  t.like(st.folders.find((f: { folder: string }) => f.folder === a.dir), { running: false, state: 'stopped' });
  await converge([a, b]);
});

test.serial('versions:restore racing a colleague\'s commit answers conflict and keeps the colleague\'s version', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  write(a.dir, 'plan.txt', 'plan een\n');
  await syncOnce(a);
  write(a.dir, 'plan.txt', 'plan twee\n');
  await syncOnce(a);
  await converge([a, b]);
  const first = okJson(await kluis(a.home, ['--json', 'versions', path.join(a.dir, 'plan.txt')]), 'versions').versions[1].versionId as string;

  const host = new FolderHost({ home: a.home, account: loadAccount(a.home), version: 'test', keysProtected: 'file-only', recoveryKeyConfirmed: () => true });
  const handlers = folderHandlers(host);
  try {
    const { folderId } = await host.add(a.dir, a.spaceId, a.spaceName);
    await until('the first pass', async () => (await host.status(folderId)).lastSyncedAt !== null);
    // A's engine is paused, so it has not seen B's new version when the restore is asked
    t.like(await dispatch('folders:pause', { folderId }, handlers), { ok: true, value: { state: 'paused' } });
    await sleep(1500);
    write(b.dir, 'plan.txt', 'plan drie van B\n');
    t.is((await syncOnce(b)).uploaded, 1);
    const r = await dispatch('versions:restore', { folderId, path: 'plan.txt', versionId: first }, handlers);
    t.like(r, { ok: false, error: { code: 'conflict' } });
    await dispatch('folders:resume', { folderId }, handlers);
    await until('B\'s version on disk', async () => content(a.dir, 'plan.txt') === 'plan drie van B\n');
  } finally {
    await host.close();
  }
  const v = okJson(await kluis(a.home, ['--json', 'versions', path.join(a.dir, 'plan.txt')]), 'versions');
  t.is(v.versions.length, 3, 'no restore version was made');
  t.like(v.versions[0], { current: true, author: b.account.email });
});
