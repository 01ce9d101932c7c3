// Large files hashed by their upload, not by the scan (desktop/src/sync/hash-later.ts), between two CLI clients on a
// real server. The clients leave files above 1 MiB to their upload (KLUIS_SYNC_HASH_LATER_MIN), so small test files
// take the path a 1 GiB file takes with the default of 32 MiB. What must not change: a file touched without a change
// makes no version, the same content written on both sides makes no conflict copy, a rename uploads nothing, and the
// other client gets every version byte for byte (its download checks the manifest's whole-file hash).
import test from 'ava';
import { renameSync, utimesSync } from 'node:fs';
import path from 'node:path';
import {
  bytes, clientEnv, conflictCopies, kluis, okJson, onceArgs, startSyncEnv, syncOnce, tree, write, type SyncClient, type SyncEnv,
} from '../helpers/sync-env.js';

const MiB = 1024 * 1024;
clientEnv.KLUIS_SYNC_HASH_LATER_MIN = String(MiB);

let env: SyncEnv;
let a: SyncClient;
let b: SyncClient;

test.before(async () => {
  env = await startSyncEnv({ accounts: ['A', 'B'] });
  [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
});
test.afterEach.always((t) => {
  if (!t.passed && env) t.log(`server log:\n${env.srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await env?.close();
});

const versions = async (c: SyncClient, rel: string): Promise<number> =>
  okJson(await kluis(c.home, ['--json', 'versions', path.join(c.dir, ...rel.split('/'))]), 'versions').versions.length;

test.serial('a new large file and an edit of it reach the other client byte for byte', async (t) => {
  write(a.dir, 'groot.dat', bytes(1, 3 * MiB));
  write(a.dir, 'klein.txt', 'klein\n');
  t.like(await syncOnce(a), { uploaded: 2 });
  t.like(await syncOnce(b), { downloaded: 2 });
  t.deepEqual(tree(b.dir), tree(a.dir));
  const edited = bytes(1, 3 * MiB);
  edited.set(bytes(2, 100_000), MiB);
  write(a.dir, 'groot.dat', edited);
  t.like(await syncOnce(a), { uploaded: 1 });
  t.like(await syncOnce(b), { downloaded: 1 });
  t.deepEqual(tree(b.dir), tree(a.dir));
  t.like(await syncOnce(a), { uploaded: 0, downloaded: 0 }, 'and nothing more to do');
  t.is(await versions(a, 'groot.dat'), 2);
});

test.serial('a large file touched without a change makes no version, and the next sync has nothing to do', async (t) => {
  const file = path.join(a.dir, 'groot.dat');
  const later = new Date(Date.now() - 60_000);
  utimesSync(file, later, later);
  const r = await syncOnce(a);
  t.like(r, { uploaded: 0, bytesUploaded: 0 });
  t.is(await versions(a, 'groot.dat'), 2, 'no third version');
  t.like(await syncOnce(b), { downloaded: 0 });
  t.like(await syncOnce(a), { uploaded: 0 });
});

test.serial('the same content written on both sides (a new file, an edit of one) makes no conflict copy', async (t) => {
  const same = bytes(3, 2 * MiB);
  write(a.dir, 'samen.dat', same);
  write(b.dir, 'samen.dat', same);
  const edit = bytes(4, 3 * MiB);
  write(a.dir, 'groot.dat', edit);
  write(b.dir, 'groot.dat', edit);
  const ra = await syncOnce(a);
  const rb = await syncOnce(b);
  t.deepEqual([...ra.conflicts, ...rb.conflicts], []);
  t.deepEqual(conflictCopies(tree(b.dir)), []);
  t.like(rb, { uploaded: 0, downloaded: 0 }, 'B finds its content is the server\'s');
  await syncOnce(a);
  t.deepEqual(tree(a.dir), tree(b.dir));
  // B recorded the server's version as its own: A's next edit is a plain download there.
  write(a.dir, 'samen.dat', bytes(7, 2 * MiB));
  await syncOnce(a);
  t.like(await syncOnce(b), { downloaded: 1, conflicts: [] });
  t.deepEqual(tree(b.dir), tree(a.dir));
});

test.serial('different edits on both sides still make a conflict copy holding the other', async (t) => {
  const ha = write(a.dir, 'groot.dat', bytes(5, 3 * MiB));
  const hb = write(b.dir, 'groot.dat', bytes(6, 3 * MiB));
  await syncOnce(a);
  const rb = await syncOnce(b);
  t.is(rb.conflicts.length, 1);
  await syncOnce(a);
  const tr = tree(b.dir);
  t.deepEqual(tree(a.dir), tr);
  t.is(tr['groot.dat'], ha);
  t.is(tr[conflictCopies(tr)[0]!], hb);
});

test.serial('a renamed large file is a move: nothing uploaded', async (t) => {
  renameSync(path.join(a.dir, 'samen.dat'), path.join(a.dir, 'verplaatst.dat'));
  const r = await syncOnce(a);
  t.like(r, { moved: 1, uploaded: 0, bytesUploaded: 0 });
  t.like(await syncOnce(b), { moved: 1, downloaded: 0 });
  t.deepEqual(tree(b.dir), tree(a.dir));
});

// Small files (up to READ_WHOLE_MAX, 256 KiB) are left to their upload by default: it reads each in one call and
// hashes it in that read. The same rules hold for them.
test.serial('small files: an edit reaches the other client, a touch makes no version, equal content on both sides no conflict, a rename is a move', async (t) => {
  write(a.dir, 'brief.txt', 'Beste collega,\n');
  t.like(await syncOnce(a), { uploaded: 1 });
  t.like(await syncOnce(b), { downloaded: 1 });
  write(a.dir, 'brief.txt', 'Beste collega, hierbij het verslag.\n');
  t.like(await syncOnce(a), { uploaded: 1 });
  t.like(await syncOnce(b), { downloaded: 1 });
  t.deepEqual(tree(b.dir), tree(a.dir));

  const earlier = new Date(Date.now() - 60_000);
  utimesSync(path.join(a.dir, 'brief.txt'), earlier, earlier);
  t.like(await syncOnce(a), { uploaded: 0, bytesUploaded: 0 });
  t.is(await versions(a, 'brief.txt'), 2, 'touched: no third version');

  write(a.dir, 'notulen.txt', 'Notulen van 3 december\n');
  write(b.dir, 'notulen.txt', 'Notulen van 3 december\n');
  const ra = await syncOnce(a);
  const rb = await syncOnce(b);
  t.deepEqual([...ra.conflicts, ...rb.conflicts], []);
  t.like(rb, { uploaded: 0, downloaded: 0 }, 'B finds its content is the server\'s');

  renameSync(path.join(a.dir, 'notulen.txt'), path.join(a.dir, 'notulen-2026-12-03.txt'));
  t.like(await syncOnce(a), { moved: 1, uploaded: 0, bytesUploaded: 0 });
  t.like(await syncOnce(b), { moved: 1, downloaded: 0 });
  t.deepEqual(tree(b.dir), tree(a.dir));
});

test.serial('KLUIS_SYNC_HASH_LATER_SMALL: a value that is no byte count up to 256 KiB is refused before anything is synced', async (t) => {
  write(a.dir, 'nog-niet.txt', 'wacht\n');
  for (const bad of ['veel', '-1', '1.5', String(256 * 1024 + 1)]) {
    const r = await kluis(a.home, onceArgs(a), { env: { KLUIS_SYNC_HASH_LATER_SMALL: bad } });
    t.not(r.code, 0, bad);
    t.regex(r.stderr, /KLUIS_SYNC_HASH_LATER_SMALL: bytes, an integer from 0 to 262144/, bad);
  }
  t.like(await syncOnce(b), { downloaded: 0 }, 'nothing was uploaded meanwhile');
  // 0: the scan hashes small files itself, as before; the result is the same.
  t.like(okJson(await kluis(a.home, onceArgs(a), { env: { KLUIS_SYNC_HASH_LATER_SMALL: '0' } }), 'sync'), { uploaded: 1 });
  t.like(await syncOnce(b), { downloaded: 1 });
  t.deepEqual(tree(b.dir), tree(a.dir));
});
