// Version retention per space (docs/architecture.md §3 "Old versions stay for the space's retention", §3.1 compaction), run
// the way an operator runs it: `kluis-admin maintenance` beside a real server (services/maintenance.ts ->
// services/retention.ts applyRetention, then compaction and the orphan sweep).
//
// Time: neither the server nor kluis-admin takes a clock from outside (runMaintenance has a `now` option, but
// the CLI and the hourly run pass Date.now()), so the versions are committed over the API now and their
// `versions.created_at` is then moved back in the sqlite file (the server keeps running; the database is in WAL
// mode and both sides queue on its write lock). Nothing else is touched: chunk and pack rows keep their real
// times, so compaction and the sweep run as they would.
//
// What is checked, for two spaces with different retention (7 and 30 days):
//  - a version is history from the moment a newer version replaced it; it expires once that is longer ago than
//    the retention (so a file overwritten or deleted yesterday can still be restored today, however old its
//    content is);
//  - the current version of a file is never expired, however old; a deletion (the file is in the trash) expires
//    with its retention, and the file then leaves the trash;
//  - chunks that only expired versions named become dead, and compaction frees them (packs and standalone objects
//    gone from the blob directory, rows gone from the index); every chunk a retained version names stays readable,
//    byte for byte;
//  - each space's expiry is one audit entry (retention.expire, with counts), compaction one more (storage.compact);
//    the chain verifies; a second run finds nothing to do and writes no entry.
import test from 'ava';
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { admin, call, newOrg, spaceBody, type User } from '../helpers/api.js';
import { newFile, version, type FileHandle } from '../helpers/files.js';
import { encryptAll, pseudoRandom, type EncryptedChunk } from '../helpers/chunks.js';
import { downloadAll, inspectStore, openDataDb, uploadBatch } from '../helpers/crash-store.js';
import { orgStorageName } from '../../server/dist/blobstore/index.js';

const DAY = 86_400_000;

let srv: RunningServer;
test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
});
test.afterEach.always((t) => {
  if (!t.passed && srv) t.log(`server log:\n${srv.output().slice(-4000)}`);
});
test.after.always(async () => {
  await srv?.stop();
});

/** newSpace of helpers/api.ts with a retention. */
async function spaceWithRetention(owner: User, name: string, retentionDays: number) {
  const spaceId = k.newId();
  const pair = k.generateSpaceKeyPair();
  const res = await call(srv.url, 'POST', '/api/v1/spaces', { token: owner.token, json: spaceBody(owner, spaceId, pair, { name, classification: 'internal', retentionDays }) });
  if (res.status !== 201) throw new Error(`space: ${res.status} ${JSON.stringify(res.body)}`);
  return { spaceId, pair };
}

interface PlannedVersion {
  /** Chunk names (their content is made once per name); none for a deletion. */
  chunks: string[];
  deleted?: boolean;
  /** Days before now the version was committed. */
  ageDays: number;
  /** Whether retention must expire it. */
  expires: boolean;
}

interface PlannedFile {
  name: string;
  versions: PlannedVersion[];
}

test.serial('retention expires history and trash past each space\'s retention, never a current version; compaction frees the dead chunks; all audited', async (t) => {
  t.timeout(5 * 60_000);
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const spaces = {
    week: { ...(await spaceWithRetention(a, 'Week', 7)), files: [] as PlannedFile[] },
    month: { ...(await spaceWithRetention(a, 'Maand', 30)), files: [] as PlannedFile[] },
  };
  spaces.week.files = [
    // Edited: v1 was replaced 10 days ago (expires), v2 only 2 days ago (kept, though it was written 10 days ago).
    { name: 'edited', versions: [{ chunks: ['a1', 'a2'], ageDays: 20, expires: true }, { chunks: ['a2', 'a3'], ageDays: 10, expires: false }, { chunks: ['a3', 'a4'], ageDays: 2, expires: false }] },
    // The current version is kept however old; the one it replaced 30 days ago expires (its big chunk is standalone).
    { name: 'old-head', versions: [{ chunks: ['B1', 'b2'], ageDays: 40, expires: true }, { chunks: ['b2', 'b3'], ageDays: 30, expires: false }] },
    // Deleted 20 days ago: out of the trash for good.
    { name: 'trash-old', versions: [{ chunks: ['d1'], ageDays: 40, expires: true }, { chunks: [], deleted: true, ageDays: 20, expires: true }] },
    // Deleted 3 days ago: still in the trash, and its content (written 30 days ago) still restorable.
    { name: 'trash-new', versions: [{ chunks: ['e1', 'E2'], ageDays: 30, expires: false }, { chunks: [], deleted: true, ageDays: 3, expires: false }] },
    { name: 'fresh', versions: [{ chunks: ['f1'], ageDays: 1, expires: false }] },
  ];
  spaces.month.files = [
    // 10 and 20 days are within 30.
    { name: 'month-edited', versions: [{ chunks: ['g1'], ageDays: 20, expires: false }, { chunks: ['g2'], ageDays: 10, expires: false }] },
    // v1 replaced 45 days ago (expires); v2 replaced yesterday (kept).
    { name: 'month-long', versions: [{ chunks: ['h1'], ageDays: 60, expires: true }, { chunks: ['h2'], ageDays: 45, expires: false }, { chunks: ['h3'], ageDays: 1, expires: false }] },
    // A deletion within 30 days stays in the trash.
    { name: 'month-trash', versions: [{ chunks: ['i1'], ageDays: 50, expires: false }, { chunks: [], deleted: true, ageDays: 25, expires: false }] },
  ];

  // Content: every chunk uploaded in a batch of its own, so each small one is a pack of its own and a dead one
  // leaves a wholly dead pack that compaction must remove; names in capitals are large (standalone objects).
  const handles = new Map<string, FileHandle>();
  const chunkOf = new Map<string, EncryptedChunk & { spaceId: string; file: string }>();
  const versionIds = new Map<string, string[]>(); // file -> version ids, oldest first
  let seed = 1;
  for (const space of Object.values(spaces)) {
    for (const file of space.files) {
      const f = newFile();
      handles.set(file.name, f);
      for (const name of new Set(file.versions.flatMap((v) => v.chunks))) {
        const big = name === name.toUpperCase();
        const [c] = encryptAll(f.sub, [pseudoRandom(seed++, big ? 600 * 1024 + seed : 3000 + 97 * seed)]);
        chunkOf.set(name, { ...c!, spaceId: space.spaceId, file: file.name });
        if (big) {
          const put = await fetch(`${srv.url}/api/v1/spaces/${space.spaceId}/chunks/${c!.id}`, { method: 'PUT', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/octet-stream' }, body: c!.ciphertext });
          t.is(put.status, 201);
        } else {
          t.is((await uploadBatch(srv.url, a.token, space.spaceId, [c!])).status, 201);
        }
      }
      let parent: string | null = null;
      const ids: string[] = [];
      for (const [i, v] of file.versions.entries()) {
        const content = v.chunks.map((n) => [chunkOf.get(n)!.id, chunkOf.get(n)!.plaintext.length] as [string, number]);
        const whole = k.concatBytes(...v.chunks.map((n) => chunkOf.get(n)!.plaintext));
        const ver = version(a, space.spaceId, space.pair, 1, f, { parent, path: `Map/${file.name}.txt`, chunks: content, hash: k.contentHash(whole), deleted: v.deleted ?? false, withWrap: i === 0 });
        const res = await call(srv.url, 'POST', `/api/v1/spaces/${space.spaceId}/commits`, { token: a.token, json: { versions: [ver.entry] } });
        t.is(res.status, 201, `${file.name} v${i + 1}`);
        parent = ver.versionId;
        ids.push(ver.versionId);
      }
      versionIds.set(file.name, ids);
    }
  }

  // Move the commit times back (see the header).
  const now = Date.now();
  const db = await openDataDb(srv.dataDir);
  try {
    for (const space of Object.values(spaces)) {
      for (const file of space.files) {
        for (const [i, v] of file.versions.entries()) await db('versions').where({ id: versionIds.get(file.name)![i] }).update({ created_at: now - v.ageDays * DAY - 60_000 });
      }
    }
  } finally {
    await db.destroy();
  }

  // Which chunks must die: named only by expiring versions of their space.
  const expect = { expired: new Set<string>(), kept: new Set<string>(), dead: new Set<string>(), live: new Set<string>() };
  for (const space of Object.values(spaces)) {
    for (const file of space.files) {
      const keptNames = new Set(file.versions.filter((v) => !v.expires).flatMap((v) => v.chunks));
      file.versions.forEach((v, i) => (v.expires ? expect.expired : expect.kept).add(versionIds.get(file.name)![i]!));
      for (const n of new Set(file.versions.flatMap((v) => v.chunks))) (keptNames.has(n) ? expect.live : expect.dead).add(n);
    }
  }
  const before = await inspectStore(srv.dataDir, { orphans: true });
  t.deepEqual(before.problems, []);
  const auditSeqBefore = await lastAuditSeq();

  const r = await admin(srv.dataDir, ['maintenance']);
  t.log('maintenance:', JSON.stringify(r));
  t.is(r.retention.expiredVersions, expect.expired.size, 'expired versions');
  t.is(r.retention.deadChunks, expect.dead.size, 'dead chunks');
  t.is(r.retention.spaces, 2);
  const deadPacked = [...expect.dead].filter((n) => n !== n.toUpperCase()).length;
  t.is(r.compaction.packsRewritten, deadPacked, 'every wholly dead pack rewritten');
  t.is(r.compaction.packsWritten, 0, 'nothing live to copy out of them');
  t.is(r.compaction.standaloneDeleted, [...expect.dead].length - deadPacked);
  t.true(r.compaction.bytesFreed > 600 * 1024);

  // Versions, as the API shows them.
  for (const space of Object.values(spaces)) {
    for (const file of space.files) {
      const h = await call(srv.url, 'GET', `/api/v1/spaces/${space.spaceId}/files/${handles.get(file.name)!.fileId}/versions`, { token: a.token });
      t.is(h.status, 200);
      const expired = new Map<string, boolean>(h.body.versions.map((v: { versionId: string; expired: boolean }) => [v.versionId, v.expired]));
      versionIds.get(file.name)!.forEach((id, i) => t.is(expired.get(id), file.versions[i]!.expires, `${file.name} v${i + 1} expired?`));
    }
  }
  // The trash: what was deleted within the retention only.
  const trash = await call(srv.url, 'GET', `/api/v1/spaces/${spaces.week.spaceId}/trash`, { token: a.token });
  t.deepEqual(trash.body.deleted.map((v: { fileId: string }) => v.fileId), [handles.get('trash-new')!.fileId]);
  const trashMonth = await call(srv.url, 'GET', `/api/v1/spaces/${spaces.month.spaceId}/trash`, { token: a.token });
  t.deepEqual(trashMonth.body.deleted.map((v: { fileId: string }) => v.fileId), [handles.get('month-trash')!.fileId]);

  // Chunks: the dead ones are gone from the index and the blob directory; the live ones read back byte for byte.
  const after = await inspectStore(srv.dataDir, { orphans: true });
  t.deepEqual(after.problems, [], 'index and objects consistent, nothing orphaned');
  for (const [name, c] of chunkOf) {
    const row = after.chunks.get(c.spaceId)!.get(c.id);
    if (expect.dead.has(name)) t.is(row, undefined, `dead chunk ${name}: row removed by compaction`);
    else t.is(row, true, `chunk ${name} still live`);
  }
  const storeDir = path.join(srv.dataDir, 'blobs', orgStorageName(a.orgId));
  for (const name of expect.dead) {
    const c = chunkOf.get(name)!;
    if (name === name.toUpperCase()) t.false(existsSync(path.join(storeDir, 'spaces', c.spaceId, 'chunks', `${c.id}@`)), `standalone ${name} deleted from disk`);
    const get = await fetch(`${srv.url}/api/v1/spaces/${c.spaceId}/chunks/${c.id}`, { headers: { authorization: `Bearer ${a.token}` } });
    t.is(get.status, 404, `dead chunk ${name} no longer served`);
    await get.arrayBuffer();
  }
  t.is(after.packs, before.packs - deadPacked, 'the dead packs are gone');
  for (const space of Object.values(spaces)) {
    const names = [...expect.live].filter((n) => chunkOf.get(n)!.spaceId === space.spaceId);
    const got = await downloadAll(srv.url, a.token, space.spaceId, names.map((n) => chunkOf.get(n)!.id));
    for (const n of names) {
      const c = chunkOf.get(n)!;
      t.true(k.bytesEqual(got.get(c.id) ?? new Uint8Array(), c.ciphertext), `live chunk ${n} byte-identical`);
      t.true(k.bytesEqual(k.decryptChunk(handles.get(c.file)!.sub, c.id, got.get(c.id)!), c.plaintext));
    }
  }

  // The file deleted 3 days ago can be restored: a new version naming its old content commits.
  const restored = version(a, spaces.week.spaceId, spaces.week.pair, 1, handles.get('trash-new')!, {
    parent: versionIds.get('trash-new')![1]!, path: 'Map/trash-new.txt', chunks: ['e1', 'E2'].map((n) => [chunkOf.get(n)!.id, chunkOf.get(n)!.plaintext.length]),
    hash: k.contentHash(k.concatBytes(chunkOf.get('e1')!.plaintext, chunkOf.get('E2')!.plaintext)),
  });
  const restore = await call(srv.url, 'POST', `/api/v1/spaces/${spaces.week.spaceId}/commits`, { token: a.token, json: { versions: [restored.entry] } });
  t.is(restore.status, 201, `restore from the trash: ${JSON.stringify(restore.body)}`);

  // The audit trail: one retention.expire per space with its counts, one storage.compact; the chain verifies.
  const entries = await auditSince(auditSeqBefore);
  const expiries = entries.filter((e) => e.action === 'retention.expire');
  const perSpace = (space: typeof spaces.week) => {
    const files = space.files;
    return {
      versions: files.flatMap((f) => f.versions).filter((v) => v.expires).length,
      deadChunks: [...expect.dead].filter((n) => chunkOf.get(n)!.spaceId === space.spaceId).length,
    };
  };
  t.deepEqual(expiries.map((e) => ({ org: e.org_id, target: `${e.target_type}:${e.target_id}`, outcome: e.outcome, details: JSON.parse(e.details) })).sort((x, y) => x.target.localeCompare(y.target)),
    [spaces.week, spaces.month].map((s) => ({ org: a.orgId, target: `space:${s.spaceId}`, outcome: 'success', details: perSpace(s) })).sort((x, y) => x.target.localeCompare(y.target)));
  const compactions = entries.filter((e) => e.action === 'storage.compact');
  t.is(compactions.length, 1);
  t.is(JSON.parse(compactions[0]!.details).packsRewritten, deadPacked);
  const verify = await admin(srv.dataDir, ['audit', 'verify']);
  t.true(verify.ok, JSON.stringify(verify));

  // Nothing left to do: a second run expires nothing, frees nothing and writes no entry.
  const seqBeforeSecond = await lastAuditSeq();
  const again = await admin(srv.dataDir, ['maintenance']);
  t.is(again.retention.expiredVersions, 0);
  t.is(again.retention.deadChunks, 0);
  t.is(again.compaction.packsRewritten + again.compaction.standaloneDeleted, 0);
  t.deepEqual((await auditSince(seqBeforeSecond)).filter((e) => e.action === 'retention.expire' || e.action === 'storage.compact'), []);
});

test.serial('a chunk that an expired version and a retained one share stays live; naming a dead chunk again revives it', async (t) => {
  const { admin: a } = await newOrg(srv.url, srv.dataDir);
  const { spaceId, pair } = await spaceWithRetention(a, 'Kort', 1);
  const f = newFile();
  const [x, y, z] = encryptAll(f.sub, [pseudoRandom(501, 5000), pseudoRandom(502, 6000), pseudoRandom(503, 7000)]);
  for (const c of [x!, y!, z!]) t.is((await uploadBatch(srv.url, a.token, spaceId, [c])).status, 201);
  const sized = (cs: EncryptedChunk[]) => cs.map((c) => [c.id, c.plaintext.length] as [string, number]);
  const v1 = version(a, spaceId, pair, 1, f, { parent: null, chunks: sized([x!, y!]) });
  const v2 = version(a, spaceId, pair, 1, f, { parent: v1.versionId, chunks: sized([y!, z!]) });
  for (const v of [v1, v2]) t.is((await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, json: { versions: [v.entry] } })).status, 201);
  const db = await openDataDb(srv.dataDir);
  try {
    await db('versions').whereIn('id', [v1.versionId, v2.versionId]).update({ created_at: Date.now() - 5 * DAY });
    // Retention alone (no compaction yet): run it through the same code path as the CLI, with the server's db.
    const { applyRetention } = await import('../../server/dist/services/retention.js');
    const { ChunkStore } = await import('../../server/dist/storage/chunks.js');
    const { openFsBlobStore } = await import('../../server/dist/blobstore/fs.js');
    const blobs = await openFsBlobStore({ root: path.join(srv.dataDir, 'blobs') });
    const entries: unknown[] = [];
    const audit = { append: async (_trx: unknown, e: unknown) => void entries.push(e) } as unknown as Parameters<typeof applyRetention>[2];
    const r = await applyRetention(db, new ChunkStore(db, blobs), audit, Date.now(), spaceId);
    t.deepEqual(r, { spaces: 1, expiredVersions: 1, deadChunks: 1 });
    t.is(entries.length, 1);
    const live = async (id: string) => Boolean((await db('chunks').where({ space_id: spaceId, id }).first('live'))?.live);
    t.false(await live(x!.id), 'only in the expired version: dead');
    t.true(await live(y!.id), 'shared with the current version: live');
    t.true(await live(z!.id));
    // A new version naming the dead chunk again (e.g. content reverted) commits, and the chunk is live again.
    const v3 = version(a, spaceId, pair, 1, f, { parent: v2.versionId, chunks: sized([x!, z!]) });
    t.is((await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, json: { versions: [v3.entry] } })).status, 201);
    t.true(await live(x!.id), 'revived by the commit');
    await blobs.close();
  } finally {
    await db.destroy();
  }
  const m = await admin(srv.dataDir, ['maintenance']);
  t.is(m.compaction.standaloneDeleted, 0);
  const got = await downloadAll(srv.url, a.token, spaceId, [x!.id, y!.id, z!.id]);
  t.true(k.bytesEqual(got.get(x!.id)!, x!.ciphertext), 'the revived chunk survived compaction');
  t.deepEqual((await inspectStore(srv.dataDir, { orphans: true })).problems, []);
});

interface AuditRow {
  seq: number;
  org_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: string;
  details: string;
}

async function lastAuditSeq(): Promise<number> {
  const db = await openDataDb(srv.dataDir);
  try {
    return Number((await db('audit_log').max({ n: 'seq' }).first())?.n ?? 0);
  } finally {
    await db.destroy();
  }
}

async function auditSince(seq: number): Promise<AuditRow[]> {
  const db = await openDataDb(srv.dataDir);
  try {
    return (await db('audit_log').where('seq', '>', seq).orderBy('seq').select('seq', 'org_id', 'action', 'target_type', 'target_id', 'outcome', 'details')) as AuditRow[];
  } finally {
    await db.destroy();
  }
}
