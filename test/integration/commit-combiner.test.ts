// The commit combiner (issue 21, server/src/services/commit-combiner.ts): POST /commits requests that arrive while the
// writer is busy are checked one after the other against overlays and written together as one group-commit member.
// Many concurrent commits (different files of one space; a parent chain on one file; a stale parent, a replay, missing
// chunks, a forged wrap and a frozen space among good ones) each get the answer they get alone; the final heads and
// seqs are those of the accepted commits, and every accepted commit has its audit entry (the chain verifies).
import test from 'ava';
import * as k from '@kluis/shared';
import { openServerDb, startServer, testEngine, type RunningServer } from '../helpers/server.js';
import { addMemberBody, admin, call, newColleague, newOrg, newSpace, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';

let server: RunningServer;

test.before(async () => {
  await k.initCrypto();
  server = await startServer();
});
test.after.always(async () => {
  await server?.stop();
});

const commit = (token: string, spaceId: string, versions: unknown[]) =>
  call(server.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token, json: { versions } });

async function upload(user: User, spaceId: string, chunk: { id: string; ciphertext: Uint8Array }): Promise<number> {
  const res = await fetch(`${server.url}/api/v1/spaces/${spaceId}/chunks/upload`, { method: 'POST', headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames([chunk]) });
  await res.arrayBuffer();
  return res.status;
}

async function commitAudit(spaceId: string): Promise<{ outcome: string; details: Record<string, number> }[]> {
  const db = await openServerDb(server.dataDir);
  try {
    const rows = await db('audit_log').where({ action: 'commit.create', target_id: spaceId }).orderBy('seq').select('outcome', 'details');
    return rows.map((r) => ({ outcome: r.outcome as string, details: (typeof r.details === 'string' ? JSON.parse(r.details) : r.details ?? {}) as Record<string, number> }));
  } finally {
    await db.destroy();
  }
}

test.serial('concurrent commits of one space: good ones stored with consecutive seqs, each refusal as alone, a parent chain builds on itself, all audited', async (t) => {
  const { admin: a } = await newOrg(server.url, server.dataDir);
  const { spaceId, pair } = await newSpace(server.url, a);
  // A stored file, to commit on with a stale parent and to replay.
  const old = newFile();
  const v1 = version(a, spaceId, pair, 1, old, { parent: null });
  t.is((await commit(a.token, spaceId, [v1.entry])).status, 201);
  const v2 = version(a, spaceId, pair, 1, old, { parent: v1.versionId });
  t.is((await commit(a.token, spaceId, [v2.entry])).status, 201);
  // A chunk stored in the space, named by some of the good commits.
  const f0 = newFile();
  const content = new TextEncoder().encode('notulen van de raad');
  const chunk = k.encryptChunk(f0.sub, content);
  t.is(await upload(a, spaceId, chunk), 201);

  const good = Array.from({ length: 40 }, (_, i) => version(a, spaceId, pair, 1, newFile(), { parent: null, path: `Map/${i}.txt`, ...(i % 3 === 0 ? { chunks: [[chunk.id, content.length]] as [string, number][] } : {}) }));
  const stale = version(a, spaceId, pair, 1, old, { parent: v1.versionId, path: 'Map/stale.txt' });
  const missingFile = newFile();
  const notUploaded = k.encryptChunk(missingFile.sub, new TextEncoder().encode('nooit opgeladen'));
  const missing = version(a, spaceId, pair, 1, missingFile, { parent: null, chunks: [[notUploaded.id, 15]] });
  const forgedFile = newFile();
  const forged = version(a, spaceId, pair, 1, forgedFile, { parent: null });
  const wrap = forged.entry.fileKeyWrap as unknown as { sig: string };
  const forgedEntry = { ...forged.entry, fileKeyWrap: { ...wrap, sig: k.toBase64Url(new Uint8Array(k.fromBase64Url(wrap.sig)).map((b, i) => (i === 0 ? b ^ 1 : b))) } };
  // A chain on one new file: each version's parent is the one before (sent in order, a moment apart).
  const chainFile = newFile();
  const chain: ReturnType<typeof version>[] = [];
  for (let i = 0; i < 6; i++) chain.push(version(a, spaceId, pair, 1, chainFile, { parent: chain.at(-1)?.versionId ?? null, withWrap: i === 0, path: `Map/chain-${i}.txt` }));

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const goodRes = good.map((g) => commit(a.token, spaceId, [g.entry]));
  const staleRes = commit(a.token, spaceId, [stale.entry]);
  const replayRes = commit(a.token, spaceId, [v2.entry]);
  const missingRes = commit(a.token, spaceId, [missing.entry]);
  const forgedRes = commit(a.token, spaceId, [forgedEntry]);
  const chainRes: ReturnType<typeof commit>[] = [];
  for (const c of chain) {
    chainRes.push(commit(a.token, spaceId, [c.entry]));
    await sleep(3);
  }
  const goods = await Promise.all(goodRes);
  t.deepEqual(goods.map((r) => r.status), Array(good.length).fill(201), JSON.stringify(goods.find((r) => r.status !== 201)?.body));
  goods.forEach((r, i) => t.deepEqual(r.body.versions, [{ fileId: good[i]!.entry.fileId, versionId: good[i]!.versionId, seq: r.body.seq }]));

  const s = await staleRes;
  t.is(s.status, 409);
  t.is(s.body.error.code, 'conflict');
  t.deepEqual(s.body.conflicts, [{ fileId: old.fileId, versionId: stale.versionId, reason: 'parent_not_head', head: v2.versionId }]);
  const r = await replayRes;
  t.is(r.status, 409);
  t.deepEqual(r.body.conflicts, [{ fileId: old.fileId, versionId: v2.versionId, reason: 'already_committed', head: v2.versionId, seq: 2 }]);
  const m = await missingRes;
  t.is(m.status, 409);
  t.is(m.body.error.code, 'missing_chunks');
  t.deepEqual(m.body.missing, missing.entry.chunks);
  const f = await forgedRes;
  t.is(f.status, 400);
  t.is(f.body.error.code, 'bad_signature');

  // The chain: the accepted versions are a prefix of it (each on the one before); a refused one names the head it met.
  const chains = await Promise.all(chainRes);
  const accepted = chains.findIndex((c) => c.status !== 201);
  const prefix = accepted === -1 ? chains.length : accepted;
  t.true(prefix >= 1, JSON.stringify(chains.map((c) => c.body)));
  for (const c of chains.slice(prefix)) {
    t.is(c.status, 409, JSON.stringify(c.body));
    t.is(c.body.conflicts[0].reason, 'parent_not_head');
  }
  const chainHead = chain[prefix - 1]!.versionId;
  const history = await call(server.url, 'GET', `/api/v1/spaces/${spaceId}/files/${chainFile.fileId}/versions`, { token: a.token });
  t.deepEqual(history.body.versions.map((v: { versionId: string }) => v.versionId), chain.slice(0, prefix).map((c) => c.versionId).reverse());
  t.is(history.body.fileKeyWraps.length, 1);

  // Seqs: 1 and 2 before, then one per accepted commit, no gap and no repeat; the space's head is the last.
  const seqs = [...goods, ...chains.slice(0, prefix)].map((x) => x.body.seq as number).sort((x, y) => x - y);
  t.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 3));
  const changes = await call(server.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0`, { token: a.token });
  t.is(changes.body.head, seqs.length + 2);
  const heads = new Map((changes.body.changes as { fileId: string; versionId: string }[]).map((c) => [c.fileId, c.versionId]));
  t.is(heads.get(chainFile.fileId), chainHead);
  t.is(heads.get(old.fileId), v2.versionId);
  t.false(heads.has(forgedFile.fileId));
  const stored = await call(server.url, 'GET', `/api/v1/spaces/${spaceId}/files/${good[0]!.entry.fileId}/versions`, { token: a.token });
  t.true(stored.body.versions[0].storedBytes > 0);
  const plain = await call(server.url, 'GET', `/api/v1/spaces/${spaceId}/files/${good[1]!.entry.fileId}/versions`, { token: a.token });
  t.is(plain.body.versions[0].storedBytes, 0);

  // Every accepted commit has its entry with its seqs; every refusal is audited too.
  const entries = await commitAudit(spaceId);
  const ok = entries.filter((e) => e.outcome === 'success').slice(2);
  t.deepEqual(ok.map((e) => e.details.firstSeq!).sort((x, y) => x - y), seqs);
  t.true(ok.every((e) => e.details.versions === 1 && e.details.lastSeq === e.details.firstSeq && e.details.deletions === 0));
  t.is(entries.filter((e) => e.outcome !== 'success').length, 4 + chains.length - prefix);
  const verified = await admin(server.dataDir, ['audit', 'verify', '--no-state']);
  t.true(verified.ok, JSON.stringify(verified));
});

test.serial('concurrent commits into a frozen space are refused while those of another space in the same moment are stored', async (t) => {
  const { admin: boss } = await newOrg(server.url, server.dataDir);
  const manager = await newColleague(server.url, boss);
  const editor = await newColleague(server.url, boss);
  const { spaceId, pair } = await newSpace(server.url, manager, 'Archief');
  t.is((await call(server.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: manager.token, json: await addMemberBody(server.url, manager, spaceId, pair, editor, 'editor') })).status, 201);
  const other = await newSpace(server.url, editor, 'Lopend');
  const off = await call(server.url, 'POST', `/api/v1/orgs/${boss.orgId}/people/${manager.userId}/offboard`, { token: boss.token });
  t.is(off.status, 200);
  t.true((await call(server.url, 'GET', `/api/v1/spaces/${spaceId}`, { token: editor.token })).body.frozen);

  const res = await Promise.all(Array.from({ length: 30 }, (_, i) => i % 2 === 0
    ? commit(editor.token, spaceId, [version(editor, spaceId, pair, 1, newFile(), { parent: null }).entry])
    : commit(editor.token, other.spaceId, [version(editor, other.spaceId, other.pair, 1, newFile(), { parent: null }).entry])));
  res.forEach((r, i) => {
    if (i % 2 === 0) {
      t.is(r.status, 409);
      t.is(r.body.error.code, 'space_frozen');
    } else t.is(r.status, 201, JSON.stringify(r.body));
  });
  t.deepEqual(res.filter((_, i) => i % 2 === 1).map((r) => r.body.seq).sort((x, y) => x - y), Array.from({ length: 15 }, (_, i) => i + 1));
  t.is((await call(server.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0`, { token: editor.token })).body.head, 0);
  const refused = (await commitAudit(spaceId)).filter((e) => e.outcome !== 'success');
  t.is(refused.length, 15);
  t.is((await commitAudit(other.spaceId)).filter((e) => e.outcome === 'success').length, 15);
  const verified = await admin(server.dataDir, ['audit', 'verify', '--no-state']);
  t.true(verified.ok, JSON.stringify(verified));
});

test.serial('when the combined writes fail (a row the database refuses), each commit of the group runs alone: only the refused one fails', async (t) => {
  const { admin: a } = await newOrg(server.url, server.dataDir);
  const { spaceId, pair } = await newSpace(server.url, a);
  const doomed = version(a, spaceId, pair, 1, newFile(), { parent: null, path: 'Map/doomed.txt' });
  // A fault the checks cannot foresee: the database refuses this one version row.
  const db = await openServerDb(server.dataDir);
  const postgres = testEngine() === 'postgres';
  try {
    if (postgres) {
      await db.raw(`CREATE FUNCTION test_refuse_version() RETURNS trigger AS $$ BEGIN IF NEW.id = '${doomed.versionId}' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`);
      await db.raw('CREATE TRIGGER test_refuse_version BEFORE INSERT ON versions FOR EACH ROW EXECUTE FUNCTION test_refuse_version()');
    } else {
      await db.raw(`CREATE TRIGGER test_refuse_version BEFORE INSERT ON versions WHEN NEW.id = '${doomed.versionId}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
    }
    const others = Array.from({ length: 30 }, (_, i) => version(a, spaceId, pair, 1, newFile(), { parent: null, path: `Map/${i}.txt` }));
    const res = await Promise.all([...others.slice(0, 15), doomed, ...others.slice(15)].map((v) => commit(a.token, spaceId, [v.entry])));
    const doomedRes = res.splice(15, 1)[0]!;
    t.is(doomedRes.status, 500);
    t.deepEqual(res.map((r) => r.status), Array(30).fill(201), JSON.stringify(res.find((r) => r.status !== 201)?.body));
    t.deepEqual(res.map((r) => r.body.seq as number).sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i + 1));
    const changes = await call(server.url, 'GET', `/api/v1/spaces/${spaceId}/changes?since=0`, { token: a.token });
    t.is(changes.body.head, 30);
    t.false((changes.body.changes as { fileId: string }[]).some((c) => c.fileId === doomed.entry.fileId));
    t.is((await commitAudit(spaceId)).filter((e) => e.outcome === 'success').length, 30);
  } finally {
    await db.raw('DROP TRIGGER test_refuse_version' + (postgres ? ' ON versions' : ''));
    if (postgres) await db.raw('DROP FUNCTION test_refuse_version()');
    await db.destroy();
  }
  const verified = await admin(server.dataDir, ['audit', 'verify', '--no-state']);
  t.true(verified.ok, JSON.stringify(verified));
});
