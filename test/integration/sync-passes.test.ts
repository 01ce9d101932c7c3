// When `sync --once` stops (desktop/src/sync/act.ts `again`, docs/architecture.md §4 "When a pass is the last"): a
// pass that committed every local change it found, with no other device's version between its pull and its commits,
// is the last one; a pass that left something, or that another device's commit overtook, is followed by another in
// the same run. Driven through the engine's front door in this process (passes counted by their 'scanning' state),
// against a real server, with a colleague's CLI client committing at a moment the test chooses: A's upload is held
// by a bandwidth limit of 1 KiB/s until the test lifts it. Watching, a pass that falls due while another runs (an edit
// the watcher saw meanwhile) runs right after it (engine.ts `due`).
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { initCrypto } from '@kluis/shared';
import { loadAccount, type Account } from '../../desktop/dist/account/state.js';
import { openFolder, type EngineState, type SyncFolder } from '../../desktop/dist/index.js';
import { converge, read, sha256, startSyncEnv, syncOnce, until, write, type SyncClient, type SyncEnv } from '../helpers/sync-env.js';

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

/** A's folder through the door, its upload held to 1 KiB/s; counts the passes of each run (their 'scanning' state). */
async function openHeld(c: SyncClient): Promise<{ folder: SyncFolder; passes: () => number; onUploading: (fn: () => void) => void; states: EngineState[] }> {
  const folder = await openFolder(loadAccount(c.home) as Account, c.dir, { spaceId: c.spaceId, home: c.home, device: c.label, settleMs: 0, bwlimit: 1024 });
  let passes = 0;
  let hook: (() => void) | null = null;
  const states: EngineState[] = [];
  folder.on('state', (s: EngineState) => {
    states.push(s);
    if (s === 'scanning') passes++;
    if (s === 'uploading' && hook) {
      const fn = hook;
      hook = null;
      fn();
    }
  });
  return {
    folder,
    states,
    passes: () => {
      const n = passes;
      passes = 0;
      return n;
    },
    onUploading: (fn) => {
      hook = fn;
    },
  };
}

test.serial('a pass that committed everything it found is the last: one pass, and the next run finds nothing', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  const held = await openHeld(a);
  try {
    for (let i = 0; i < 30; i++) write(a.dir, `nota's/${i}.txt`, `nota ${i}`);
    write(a.dir, 'bijlage.bin', randomBytes(64 * 1024));
    held.folder.setBandwidth(0);
    const r = await held.folder.runOnce();
    t.is(r.uploaded, 32, 'the notes, their folder and the attachment');
    t.is(held.passes(), 1, 'no second pass to confirm');
    // the next run finds the folder in step
    t.is((await held.folder.runOnce()).uploaded, 0);
    t.is(held.passes(), 1);
  } finally {
    await held.folder.close();
  }
  t.is((await syncOnce(b)).downloaded, 32);
  await converge([a, b]);
});

test.serial('a colleague\'s commit between the pull and the commits: a second pass brings it in the same run', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  write(a.dir, 'start.txt', 'start');
  await syncOnce(a);
  await syncOnce(b);
  const held = await openHeld(a);
  try {
    // Three 1 MiB chunks at 1 KiB/s: A's upload waits in the limiter (after its pull) until the colleague committed.
    const big = write(a.dir, 'scan.bin', randomBytes(3 * 1024 * 1024));
    let colleague: Promise<unknown> = Promise.resolve();
    held.onUploading(() => {
      colleague = (async () => {
        write(b.dir, 'van B.txt', 'geschreven door B terwijl A uploadt');
        t.is((await syncOnce(b)).uploaded, 1);
        held.folder.setBandwidth(0);
      })();
    });
    const r = await held.folder.runOnce();
    await colleague;
    t.is(r.uploaded, 1);
    t.is(r.downloaded, 1, 'B\'s file came in the same run');
    t.is(held.passes(), 3, 'the upload overtaken by B\'s commit, the download, the pass that confirms the download');
    t.is(read(a.dir, 'van B.txt').toString(), 'geschreven door B terwijl A uploadt');
    t.is(sha256(read(a.dir, 'scan.bin')), big);
  } finally {
    await held.folder.close();
  }
  await converge([a, b]);
});

test.serial('a file changed after the scan is not committed half-read: a second pass uploads what it holds now', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  const held = await openHeld(a);
  try {
    write(a.dir, 'verslag.txt', 'eerste zin');
    write(a.dir, 'ander.txt', 'blijft zoals het is');
    held.folder.setBandwidth(0);
    // Between the scan and the upload's read (the 'uploading' state is set before the first read).
    held.onUploading(() => write(a.dir, 'verslag.txt', 'eerste zin, en een tweede die de grootte verandert'));
    const r = await held.folder.runOnce();
    t.is(held.passes(), 2, 'the pass that gave the file up asks for another');
    t.is(r.uploaded, 2, 'ander.txt in the first pass, verslag.txt as it is now in the second');
  } finally {
    await held.folder.close();
  }
  await syncOnce(b);
  t.is(read(b.dir, 'verslag.txt').toString(), 'eerste zin, en een tweede die de grootte verandert');
  await converge([a, b]);
});

test.serial('a pass that downloaded is confirmed by another (it wrote to the disk)', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  write(b.dir, 'van B.txt', 'inhoud');
  await syncOnce(b);
  const held = await openHeld(a);
  try {
    held.folder.setBandwidth(0);
    const r = await held.folder.runOnce();
    t.is(r.downloaded, 1);
    t.is(held.passes(), 2);
  } finally {
    await held.folder.close();
  }
});

test.serial('watching: a file written while a pass uploads is synced right after that pass, not at the next poll', async (t) => {
  const [a, b] = (await env.newSpace()).clients as [SyncClient, SyncClient];
  const held = await openHeld(a);
  let uploaded = 0;
  held.folder.on('synced', (r) => {
    uploaded += r.uploaded;
  });
  const watching = held.folder.start({ pollMs: 3_600_000 }); // no poll: only the watcher and the server's pushes
  try {
    await until('the first pass', () => held.states.includes('idle'), 15_000);
    // The watcher sees the new file while the pass that uploads the large one is held; its pass falls due then.
    held.onUploading(() => {
      write(a.dir, 'tijdens.txt', 'geschreven terwijl de vorige pass uploadde');
      setTimeout(() => held.folder.setBandwidth(0), 1500);
    });
    write(a.dir, 'groot.bin', randomBytes(3 * 1024 * 1024));
    await until('both files uploaded', () => uploaded >= 2, 20_000);
  } finally {
    await held.folder.stop();
    await watching.catch(() => undefined);
    await held.folder.close();
  }
  await syncOnce(b);
  t.is(read(b.dir, 'tijdens.txt').toString(), 'geschreven terwijl de vorige pass uploadde');
  await converge([a, b]);
});
