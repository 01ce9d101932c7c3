// SIGKILL of the real processes (docs/architecture.md §3.1 "a crash at any step leaves every live chunk readable"; §9 "real
// processes that get killed"), one level above chunkstore-crash.test.ts: the HTTP server itself, and
// `kluis-admin maintenance` compacting beside it.
//
//  - Uploads: a slow client streams a framed batch of ~1,200 small and a few large chunks (several packs and
//    standalone objects) while another client keeps uploading small batches and committing a version for each;
//    the server is SIGKILLed at a random byte offset of the big body, just after its last byte (while the server
//    writes and commits), or at a random time. 6 kill points.
//  - Compaction: each round commits files whose new versions drop 80 % of their chunks, moves the commit times
//    back past the space's retention (the server and CLI take no clock from outside, see retention.test.ts), and
//    SIGKILLs `kluis-admin maintenance` at a random point: a random number of changes in the space's blob
//    directory (new pack written, old packs and dead standalone chunks deleted) plus a random delay, or a random
//    time. Every other round the server dies at the same moment (a power cut). At least 5 kills that land.
//  - One upload kill against the real S3 store (Ceph RGW on 127.0.0.1).
// After every kill, read straight from the sqlite tables and the blob directory: no chunk row points at a missing
// object, a partial pack (size on disk != row) or beyond a pack's end; after a restart (whose sweep runs with no
// grace) no object is left that no row references. Through the restarted server: every chunk row reads back
// byte-identical to what was sent under its id; every chunk whose upload was answered with success, and every
// chunk a committed (unexpired) version names, is there and live; a big batch is stored all or nothing; every
// answered commit is there. At the end `kluis-admin audit verify` is OK. The seed is logged; KLUIS_CRASH_SEED
// repeats a run.
import test, { type ExecutionContext } from 'ava';
import { watch, type FSWatcher } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { admin, call, newOrg, newSpace, spaceBody, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';
import { encryptAll, pseudoRandom, type EncryptedChunk } from '../helpers/chunks.js';
import { startLocalS3, type LocalS3 } from '../helpers/s3.js';
import { downloadAll, inspectStore, openDataDb, prng, sha256, sleep, slowRequest, spawnAdmin, uploadBatch } from '../helpers/crash-store.js';
import { orgStorageName } from '../../server/dist/blobstore/index.js';
import { MinioBlobStore } from '../../server/dist/blobstore/minio.js';

const KiB = 1024;
const DAY = 86_400_000;
const seed = Number(process.env.KLUIS_CRASH_SEED ?? (Date.now() % 2 ** 31));
const rng = prng(seed);
const rand = (lo: number, hi: number) => lo + rng() * (hi - lo);
const randInt = (lo: number, hi: number) => Math.floor(rand(lo, hi + 1));
let contentSeed = 1;
const content = (size: number) => pseudoRandom(seed + contentSeed++ * 7919, size);

/** Everything ever sent, acknowledged or committed, across the kills (one data directory per suite). */
interface World {
  dataDir: string;
  env: Record<string, string>;
  srv: RunningServer;
  a: User;
  /** chunk id -> sha256 of its ciphertext, for every chunk ever sent */
  known: Map<string, string>;
  /** space -> chunk ids whose upload was answered with success */
  acked: Map<string, Set<string>>;
  /** version ids whose commit was answered with success */
  committed: Set<string>;
  /** Chunks that retention may legitimately remove (only expiring versions name them). */
  expendable: Set<string>;
  /** The object store when it is not the data directory's fs store. */
  blobs?: MinioBlobStore;
  log: string[];
}

const worlds: World[] = [];
let s3: LocalS3 | undefined;

test.before(async () => {
  await k.initCrypto();
});
test.afterEach.always((t) => {
  if (t.passed) return;
  t.log(`seed ${seed} (KLUIS_CRASH_SEED=${seed} repeats this run)`);
  for (const w of worlds) t.log(`kills:\n${w.log.join('\n')}\nserver log:\n${w.srv.output().slice(-3000)}`);
});
test.after.always(async () => {
  for (const w of worlds) {
    await w.srv.stop('SIGKILL');
    rmSync(w.dataDir, { recursive: true, force: true });
  }
  await s3?.stop();
});

async function newWorld(env: Record<string, string> = {}): Promise<World> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'kluis-srvcrash-'));
  const full = { ...env, KLUIS_DATA_DIR: dataDir };
  const srv = await startServer(full);
  const { admin: a } = await newOrg(srv.url, dataDir);
  const w: World = { dataDir, env: full, srv, a, known: new Map(), acked: new Map(), committed: new Set(), expendable: new Set(), log: [] };
  worlds.push(w);
  return w;
}

function remember(w: World, chunks: EncryptedChunk[]): void {
  for (const c of chunks) w.known.set(c.id, sha256(c.ciphertext));
}

function ack(w: World, spaceId: string, chunks: EncryptedChunk[]): void {
  const set = w.acked.get(spaceId) ?? new Set<string>();
  for (const c of chunks) set.add(c.id);
  w.acked.set(spaceId, set);
}

async function killServer(w: World): Promise<void> {
  const exited = new Promise<void>((resolve) => (w.srv.proc.exitCode !== null || w.srv.proc.signalCode !== null ? resolve() : w.srv.proc.once('exit', () => resolve())));
  w.srv.proc.kill('SIGKILL');
  await exited;
}

async function restart(w: World): Promise<void> {
  w.srv = await startServer(w.env);
}

const sized = (cs: EncryptedChunk[]) => cs.map((c) => [c.id, c.plaintext.length] as [string, number]);

/** Commits one version per entry; records the answered ones. */
async function commit(w: World, spaceId: string, entries: ReturnType<typeof version>[]): Promise<number> {
  const res = await call(w.srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: w.a.token, json: { versions: entries.map((e) => e.entry) } });
  if (res.status === 201) for (const e of entries) w.committed.add(e.versionId);
  return res.status;
}

/**
 * The checks of the header. `strict`: right after a server start (its sweep ran with no grace), so nothing may be
 * left over; otherwise a crash's garbage (objects no row references, retired pack rows whose objects a later sweep
 * deletes) is allowed, never a row pointing at a missing or partial object.
 */
async function verify(t: ExecutionContext, w: World, label: string, options: { strict: boolean }): Promise<Map<string, Map<string, boolean>>> {
  const report = await inspectStore(w.dataDir, { orphans: options.strict, ...(w.blobs ? { blobs: w.blobs } : {}) });
  const problems = options.strict ? report.problems : report.problems.filter((p) => !/retired row left/.test(p));
  t.deepEqual(problems, [], `${label}: index, blob directory and objects consistent`);
  let rows = 0;
  let bad = 0;
  let unknown = 0;
  for (const [spaceId, chunks] of report.chunks) {
    const ids = [...chunks.keys()];
    rows += ids.length;
    unknown += ids.filter((id) => !w.known.has(id)).length;
    if (ids.length === 0) continue;
    const got = await downloadAll(w.srv.url, w.a.token, spaceId, ids);
    bad += ids.filter((id) => !got.has(id) || sha256(got.get(id)!) !== w.known.get(id)).length;
  }
  t.is(unknown, 0, `${label}: no chunk row that was never sent`);
  t.is(bad, 0, `${label}: all ${rows} chunk rows read back byte-identical`);
  let lostAcked = 0;
  for (const [spaceId, ids] of w.acked) for (const id of ids) if (!report.chunks.get(spaceId)?.has(id) && !w.expendable.has(id)) lostAcked++;
  t.is(lostAcked, 0, `${label}: every acknowledged chunk is stored`);
  const db = await openDataDb(w.dataDir);
  try {
    const named = (await db('version_chunks as vc').join('versions as v', 'v.id', 'vc.version_id').whereNull('v.expired_at').distinct('v.space_id', 'vc.chunk_id')) as { space_id: string; chunk_id: string }[];
    const missing = named.filter((r) => report.chunks.get(r.space_id)?.get(r.chunk_id) !== true);
    t.deepEqual(missing.slice(0, 5), [], `${label}: every chunk of a retained version is stored and live (${missing.length} not)`);
    const have = new Set<string>();
    const ids = [...w.committed];
    for (let i = 0; i < ids.length; i += 500) for (const r of await db('versions').whereIn('id', ids.slice(i, i + 500)).select('id')) have.add(r.id);
    t.is(have.size, ids.length, `${label}: every answered commit is there`);
  } finally {
    await db.destroy();
  }
  return report.chunks;
}

// ------------------------------------------------------------------------------------------------ uploads

interface UploadKill {
  /** Kill once this fraction of the big body was sent (plus 0-3 ms). */
  fraction?: number;
  /** Kill this long after the last byte of the big body was sent. */
  afterEndMs?: number;
  /** Kill this long after the start. */
  timeMs?: number;
}

async function uploadRound(t: ExecutionContext, w: World, spaceId: string, pair: k.SpaceKeyPair, n: number, kill: UploadKill): Promise<{ landed: boolean }> {
  const f = newFile();
  const plaintexts = Array.from({ length: 1200 }, () => content(randInt(1 * KiB, 24 * KiB)));
  for (let j = 0; j < 4; j++) plaintexts.splice(randInt(0, plaintexts.length), 0, content(randInt(520 * KiB, 900 * KiB)));
  const big = encryptAll(f.sub, plaintexts);
  remember(w, big);
  const body = k.encodeFrames(big);

  // Meanwhile another client uploads small batches and commits a file for each, until the server dies.
  let stop = false;
  let smallAcked = 0;
  const small = (async () => {
    while (!stop) {
      const g = newFile();
      const cs = encryptAll(g.sub, Array.from({ length: 40 }, () => content(randInt(500, 8 * KiB))));
      remember(w, cs);
      try {
        const up = await uploadBatch(w.srv.url, w.a.token, spaceId, cs);
        if (up.status !== 201) throw new Error(`small batch: ${up.status}`);
        ack(w, spaceId, cs);
        smallAcked++;
        const v = version(w.a, spaceId, pair, 1, g, { parent: null, path: `klein/${n}-${smallAcked}.bin`, chunks: sized(cs), hash: k.contentHash(k.concatBytes(...cs.map((c) => c.plaintext))) });
        await commit(w, spaceId, [v]);
      } catch {
        return; // the server went away
      }
    }
  })();

  const req = slowRequest(`${w.srv.url}/api/v1/spaces/${spaceId}/chunks/upload`, {
    method: 'POST', headers: { authorization: `Bearer ${w.a.token}`, 'content-type': 'application/octet-stream' }, body, pieceBytes: 128 * KiB, pauseMs: 3,
  });
  let answered = false;
  req.response.then(() => (answered = true), () => {});
  let where: string;
  const t0 = performance.now();
  if (kill.fraction !== undefined) {
    await req.reached(Math.floor(body.length * kill.fraction));
    await sleep(randInt(0, 3));
    where = `at byte ${req.sent()} of ${body.length} (${Math.round(kill.fraction * 100)} %)`;
  } else if (kill.afterEndMs !== undefined) {
    await req.finished;
    await sleep(kill.afterEndMs);
    where = `${kill.afterEndMs} ms after the last byte`;
  } else {
    await sleep(kill.timeMs!);
    where = `${kill.timeMs} ms after the start (byte ${req.sent()} of ${body.length})`;
  }
  const answeredBefore = answered;
  await killServer(w);
  const ms = Math.round(performance.now() - t0);
  stop = true;
  await small;
  const res = await req.response.catch(() => null);
  if (res) {
    t.is(res.status, 201, `upload #${n}: answered ${res.status}: ${res.body}`);
    if (res.status === 201) ack(w, spaceId, big);
  }
  w.log.push(`upload #${n}: SIGKILL server ${where} after ${ms} ms; big batch ${res ? `answered ${res.status}` : 'not answered'}${answeredBefore ? ' (before the kill)' : ''}; ${smallAcked} small batches acknowledged`);

  await restart(w);
  const rows = await verify(t, w, `upload #${n}`, { strict: true });
  const stored = big.filter((c) => rows.get(spaceId)?.has(c.id)).length;
  t.true(stored === 0 || stored === big.length, `upload #${n}: the big batch is all or nothing (${stored} of ${big.length})`);
  if (res?.status === 201) t.is(stored, big.length);
  return { landed: !res };
}

test.serial('fs store: SIGKILL of the server at 6 points of batch uploads loses and corrupts nothing', async (t) => {
  t.timeout(10 * 60_000);
  t.log(`seed ${seed}`);
  const w = await newWorld();
  const { spaceId, pair } = await newSpace(w.srv.url, w.a);
  // A committed base that every round must keep.
  const g = newFile();
  const base = encryptAll(g.sub, Array.from({ length: 300 }, () => content(randInt(1 * KiB, 30 * KiB))));
  remember(w, base);
  t.is((await uploadBatch(w.srv.url, w.a.token, spaceId, base)).status, 201);
  ack(w, spaceId, base);
  t.is(await commit(w, spaceId, [version(w.a, spaceId, pair, 1, g, { parent: null, path: 'basis.bin', chunks: sized(base), hash: k.contentHash(k.concatBytes(...base.map((c) => c.plaintext))) })]), 201);

  const kills: UploadKill[] = [
    { fraction: rand(0.02, 0.3) },
    { fraction: rand(0.3, 0.6) },
    { fraction: rand(0.6, 0.9) },
    { fraction: rand(0.9, 1) },
    { afterEndMs: randInt(0, 40) },
    { timeMs: randInt(30, 600) },
  ];
  let landed = 0;
  for (const [n, kill] of kills.entries()) if ((await uploadRound(t, w, spaceId, pair, n, kill)).landed) landed++;
  t.log(w.log.join('\n'));
  t.true(landed >= 4, `${landed} kills hit an unanswered big batch`);
  const verifyAudit = await admin(w.dataDir, ['audit', 'verify']);
  t.true(verifyAudit.ok, JSON.stringify(verifyAudit));
  t.is(await w.srv.stop(), 0);
});

// ------------------------------------------------------------------------------------------------ compaction

interface CompactKill {
  /** Kill after this many changes in the space's blob directories (plus 0-3 ms), ... */
  events?: number;
  /** ... or this long after the CLI started. */
  timeMs?: number;
  /** The server dies at the same moment. */
  server: boolean;
}

/** Files whose second version keeps 8 of 40 small chunks and drops the large ones; commit times moved back. */
async function prepareSparse(t: ExecutionContext, w: World, spaceId: string, pair: k.SpaceKeyPair, n: number): Promise<void> {
  const files = Array.from({ length: 8 }, () => newFile());
  const v1s: ReturnType<typeof version>[] = [];
  const kept: EncryptedChunk[][] = [];
  for (const [i, f] of files.entries()) {
    const plaintexts = Array.from({ length: 40 }, () => content(randInt(8 * KiB, 40 * KiB)));
    if (i % 2 === 0) plaintexts.push(content(randInt(520 * KiB, 800 * KiB)));
    const cs = encryptAll(f.sub, plaintexts);
    remember(w, cs);
    const up = await uploadBatch(w.srv.url, w.a.token, spaceId, cs); // one pack (and a standalone chunk) per file
    t.is(up.status, 201);
    ack(w, spaceId, cs);
    v1s.push(version(w.a, spaceId, pair, 1, f, { parent: null, path: `r${n}/f${i}.bin`, chunks: sized(cs), hash: k.contentHash(k.concatBytes(...cs.map((c) => c.plaintext))) }));
    kept.push(cs.slice(0, 40).filter(() => rng() < 0.2).slice(0, 8));
  }
  t.is(await commit(w, spaceId, v1s), 201);
  const fresh = files.map((f) => encryptAll(f.sub, [content(randInt(2 * KiB, 9 * KiB))])[0]!);
  remember(w, fresh);
  t.is((await uploadBatch(w.srv.url, w.a.token, spaceId, fresh)).status, 201);
  ack(w, spaceId, fresh);
  const v2s = files.map((f, i) => {
    const cs = [...kept[i]!, fresh[i]!];
    return version(w.a, spaceId, pair, 1, f, { parent: v1s[i]!.versionId, path: `r${n}/f${i}.bin`, chunks: sized(cs), hash: k.contentHash(k.concatBytes(...cs.map((c) => c.plaintext))) });
  });
  t.is(await commit(w, spaceId, v2s), 201);
  const db = await openDataDb(w.dataDir);
  try {
    await db('versions').whereIn('id', [...v1s, ...v2s].map((v) => v.versionId)).update({ created_at: Date.now() - 3 * DAY });
  } finally {
    await db.destroy();
  }
  // The first versions' chunks are expendable once retention ran: they are checked through the versions instead.
  for (const v of v1s) for (const id of v.entry.chunks) w.expendable.add(id);
  for (const v of v2s) for (const id of v.entry.chunks) w.expendable.delete(id);
}

async function compactionState(w: World, spaceId: string): Promise<string> {
  const db = await openDataDb(w.dataDir);
  try {
    const expired = Number((await db('versions').where({ space_id: spaceId }).whereNotNull('expired_at').count({ n: '*' }).first())?.n ?? 0);
    const dead = Number((await db('chunks').where({ space_id: spaceId, live: false }).count({ n: '*' }).first())?.n ?? 0);
    const sparse = Number((await db('packs').where({ space_id: spaceId, state: 'live' }).andWhere(db.raw('?? * 2 > ??', ['dead_bytes', 'size'])).count({ n: '*' }).first())?.n ?? 0);
    const retired = Number((await db('packs').where({ space_id: spaceId, state: 'retired' }).count({ n: '*' }).first())?.n ?? 0);
    return `${expired} versions expired, ${dead} dead chunk rows, ${sparse} sparse packs, ${retired} retired pack rows`;
  } finally {
    await db.destroy();
  }
}

async function compactionRound(t: ExecutionContext, w: World, spaceId: string, n: number, kill: CompactKill): Promise<boolean> {
  const spaceDir = path.join(w.dataDir, 'blobs', orgStorageName(w.a.orgId), 'spaces', spaceId);
  const before = await compactionState(w, spaceId);
  const cli = spawnAdmin(w.dataDir, ['--json', 'maintenance']);
  const t0 = performance.now();
  let where = '';
  let changes = 0;
  const watchers: FSWatcher[] = [];
  const killNow = (why: string) => {
    if (where || cli.proc.exitCode !== null) return;
    where = why;
    cli.proc.kill('SIGKILL');
    if (kill.server) w.srv.proc.kill('SIGKILL');
  };
  if (kill.events !== undefined) {
    for (const sub of ['packs', 'chunks']) {
      try {
        // Files appearing, renamed and deleted (not the writes into a temp file).
        const watcher = watch(path.join(spaceDir, sub), (type) => {
          if (type === 'rename' && ++changes === kill.events) {
            const delay = randInt(0, 3);
            setTimeout(() => killNow(`after ${kill.events} blob-directory changes + ${delay} ms`), delay);
          }
        });
        watcher.on('error', () => {});
        watchers.push(watcher);
      } catch {
        // the directory may not exist (yet)
      }
    }
  } else {
    setTimeout(() => killNow(`${kill.timeMs} ms after the start`), kill.timeMs);
  }
  const guard = setTimeout(() => killNow('TIMEOUT'), 60_000);
  const done = await cli.done;
  clearTimeout(guard);
  for (const wt of watchers) wt.close();
  const killed = done.signal === 'SIGKILL';
  if (!killed) t.is(done.code, 0, `maintenance #${n} failed: ${done.stderr}${done.stdout}`);
  if (kill.server) {
    if (!killed) w.srv.proc.kill('SIGKILL');
    await killServer(w);
  }
  const after = await compactionState(w, spaceId);
  w.log.push(`compaction #${n}: ${killed ? `SIGKILL maintenance${kill.server ? ' and server' : ''} ${where} (${Math.round(performance.now() - t0)} ms)` : `maintenance finished before the kill (${Math.round(performance.now() - t0)} ms)`}\n    before: ${before}\n    after:  ${after}`);

  // Straight after the crash, before anything sweeps: no row points at a missing or partial object.
  const raw = await inspectStore(w.dataDir);
  t.deepEqual(raw.problems.filter((p) => !/retired row left/.test(p)), [], `compaction #${n}: right after the kill`);
  if (kill.server) {
    await restart(w);
    await verify(t, w, `compaction #${n} (restarted)`, { strict: true });
  } else {
    await verify(t, w, `compaction #${n} (server kept running)`, { strict: false });
  }
  return killed;
}

test.serial('fs store: SIGKILL of kluis-admin maintenance (and the server) mid-compaction at 5+ points keeps every retained chunk', async (t) => {
  t.timeout(10 * 60_000);
  t.log(`seed ${seed}`);
  const w = await newWorld();
  // Retention of one day: the rounds move their commits three days back.
  const spaceId = k.newId();
  const pair = k.generateSpaceKeyPair();
  t.is((await call(w.srv.url, 'POST', '/api/v1/spaces', { token: w.a.token, json: spaceBody(w.a, spaceId, pair, { name: 'Compact', classification: 'internal', retentionDays: 1 }) })).status, 201);

  // How long a maintenance run with nothing to do takes (process start, retention, sweep): time kills land past it.
  const idleStart = performance.now();
  const idle = await spawnAdmin(w.dataDir, ['--json', 'maintenance']).done;
  t.is(idle.code, 0, idle.stderr);
  const idleMs = performance.now() - idleStart;

  let landed = 0;
  for (let n = 0; landed < 6 && n < 12; n++) {
    await prepareSparse(t, w, spaceId, pair, n);
    // Early changes are the new pack's temp file and its rename (before and around the index switch), later ones
    // the deletions of the old packs and of dead standalone chunks.
    const kill: CompactKill = n % 3 === 2 ? { timeMs: Math.round(idleMs * rand(0.9, 1.6)), server: n % 2 === 0 }
      : { events: n % 3 === 0 ? randInt(1, 3) : randInt(4, 14), server: n % 2 === 0 };
    if (await compactionRound(t, w, spaceId, n, kill)) landed++;
  }
  t.log(`idle maintenance run: ${Math.round(idleMs)} ms\n${w.log.join('\n')}`);
  t.true(landed >= 5, `${landed} kills landed`);

  // Finish: one maintenance run to the end, a restart (the sweep with no grace), then nothing sparse, nothing
  // left over, everything retained readable, the audit chain intact.
  const final = await spawnAdmin(w.dataDir, ['--json', 'maintenance']).done;
  t.is(final.code, 0, final.stderr);
  await w.srv.stop();
  await restart(w);
  await verify(t, w, 'final', { strict: true });
  const db = await openDataDb(w.dataDir);
  try {
    const sparse = await db('packs').where({ space_id: spaceId }).andWhere(db.raw('?? * 2 > ??', ['dead_bytes', 'size'])).count({ n: '*' }).first();
    t.is(Number(sparse?.n), 0, 'no pack more than half dead is left');
    const deadStandalone = await db('chunks').where({ space_id: spaceId, live: false }).whereNull('pack_id').count({ n: '*' }).first();
    t.is(Number(deadStandalone?.n), 0, 'no dead standalone chunk is left');
  } finally {
    await db.destroy();
  }
  const verifyAudit = await admin(w.dataDir, ['audit', 'verify']);
  t.true(verifyAudit.ok, JSON.stringify(verifyAudit));
  t.is(await w.srv.stop(), 0);
});

// ------------------------------------------------------------------------------------------------ S3

test.serial('S3 store: SIGKILL of the server mid batch upload loses and corrupts nothing', async (t) => {
  t.timeout(5 * 60_000);
  s3 = await startLocalS3();
  const w = await newWorld({ KLUIS_STORAGE: 'minio', KLUIS_S3_ENDPOINT: s3.endpoint, KLUIS_S3_ACCESS_KEY: s3.accessKey, KLUIS_S3_SECRET_KEY: s3.secretKey });
  const blobs = new MinioBlobStore({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey });
  w.blobs = blobs;
  try {
    const { spaceId, pair } = await newSpace(w.srv.url, w.a);
    const g = newFile();
    const base = encryptAll(g.sub, Array.from({ length: 200 }, () => content(randInt(1 * KiB, 30 * KiB))));
    remember(w, base);
    t.is((await uploadBatch(w.srv.url, w.a.token, spaceId, base)).status, 201);
    ack(w, spaceId, base);
    t.is(await commit(w, spaceId, [version(w.a, spaceId, pair, 1, g, { parent: null, path: 'basis.bin', chunks: sized(base), hash: k.contentHash(k.concatBytes(...base.map((c) => c.plaintext))) })]), 201);
    const { landed } = await uploadRound(t, w, spaceId, pair, 0, { fraction: rand(0.4, 0.95) });
    t.true(landed);
    // (uploadRound checked everything after its restart, through this store's bucket listing.)
    t.log(w.log.join('\n'));
    t.is(await w.srv.stop(), 0);
  } finally {
    await blobs.close();
  }
});
