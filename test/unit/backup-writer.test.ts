// A backup's record file whose directory goes away while it opens (server/src/backup/format.ts RecordFileWriter): the
// backup fails with its own error, never with the stream's unhandled 'error' event (which ended kluis-admin with exit
// code 1 in CI when a missing object made createBackup remove the half-written directory).
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import * as k from '@kluis/shared';
import { RecordFileWriter } from '../../server/dist/backup/format.js';

test.before(async () => {
  await k.initCrypto();
});

test('a writer whose directory is removed before its file opens: discard resolves, and add or close refuse with the error', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-bk-writer-'));
  const w = new RecordFileWriter(path.join(dir, 'objects.kbk'), 'objects.kbk', k.newId(), k.hazmat.randomBytes(32), 1);
  rmSync(dir, { recursive: true, force: true });
  await new Promise((resolve) => setTimeout(resolve, 50)); // the open has failed by now
  await t.throwsAsync(w.add(new Uint8Array(10)), { code: 'ENOENT' } as never);
  await t.throwsAsync(w.close(), { code: 'ENOENT' } as never);
  await t.notThrowsAsync(w.discard());
});

test('discard closes a file being written, so its directory can be removed', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kluis-bk-writer-'));
  const w = new RecordFileWriter(path.join(dir, 'objects.kbk'), 'objects.kbk', k.newId(), k.hazmat.randomBytes(32), 1);
  await w.add(new Uint8Array(1000));
  await w.add(new Uint8Array(1000));
  await w.discard();
  rmSync(dir, { recursive: true, force: true });
  t.false(existsSync(dir));
  await t.notThrowsAsync(w.discard(), 'twice is fine');
});
