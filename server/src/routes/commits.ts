// The change log: batch commits with parent checks, paged changes, version history, trash, and server-sent events.
import type Router from '@koa/router';
import { PassThrough } from 'node:stream';
import { CommitRequest, ErrorCode, verifyBatchWrapSignatures, verifyWrapSignature, type BatchFileKeyWrap, type CommitVersion, type FileKeyWrap } from '@kluis/shared';
import { checkChunks, checkVersions, commitRows, type CommitSpace } from '../services/commit-check.js';
import { DomainError } from '../domain-error.js';
import type { Services } from '../context.js';
import type { ChangeEvent } from '../events.js';
import { actor, auditSuccess, body, type KCtx, parse, pathId, route } from '../http.js';
import { frozenRefusal, frozenWitness, memberRole, spaceAccess } from '../services/access.js';
import { changePageJson, fileKeysJson, readChangePage, versionView } from '../services/change-page.js';
import type { Tx } from '../db/db.js';
import { isPostgres } from '../db/postgres.js';
import { inList } from '../db/hot-reads.js';
import { requestUploads } from '../services/requests.js';
import { CommitCombiner } from '../services/commit-combiner.js';

const IN_BATCH = 500;

export function chunked<T>(items: T[], size = IN_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function intQuery(ctx: KCtx, name: string, fallback: number, min: number, max: number): number {
  const raw = ctx.query[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new DomainError(ErrorCode.ValidationFailed, `${name}: an integer from ${min} to ${max}`);
  }
  return n;
}

/** Who a batch is recorded under: the caller, or for a file request its creator and the request's id (services/requests.ts). */
export interface CommitAuthor {
  orgId: string;
  userId: string;
  deviceId: string;
}

/**
 * The wraps of `versions` whose signatures verify. A signature needs no database, so a caller checks them before its
 * transaction (checkedWraps option of commitBatch): inside it the single writer would wait for every other commit's
 * public-key work too. Version-2 wraps are checked together (one signature per batch, the tree rebuilt once); when that
 * fails each is checked alone, so that the refusal names the wrap.
 */
export function verifiedWraps(versions: CommitVersion[]): ReadonlySet<FileKeyWrap> {
  const ok = new Set<FileKeyWrap>();
  const batch = versions.flatMap((v) => (v.fileKeyWrap?.v === 2 ? [v.fileKeyWrap as BatchFileKeyWrap] : []));
  let batchOk = false;
  try {
    verifyBatchWrapSignatures(batch);
    batchOk = true;
  } catch {
    // each alone below
  }
  for (const v of versions) {
    const w = v.fileKeyWrap;
    if (!w) continue;
    if (batchOk && w.v === 2) ok.add(w);
    else {
      try {
        verifyWrapSignature(w);
        ok.add(w);
      } catch {
        // refused where it is needed (commitBatch), with the wrap's file named
      }
    }
  }
  return ok;
}

/** Validates and stores one batch; returns the assigned seqs, or throws 409 with every conflict found. */
export async function commitBatch(trx: Tx, services: Services, author: CommitAuthor, spaceId: string, signer: string, versions: CommitVersion[], options: { refuseFrozen?: boolean; checkedWraps?: ReadonlySet<FileKeyWrap> } = {}) {
  // The space's epoch, its public key and its seq in one read (inside the transaction: the seq is ours to bump).
  const read = trx('spaces as s').join('space_epochs as e', function () {
    this.on('e.space_id', '=', 's.id').andOn('e.key_epoch', '=', 's.key_epoch');
  }).where('s.id', spaceId);
  // PostgreSQL: the space's row stays locked to COMMIT, so a commit racing in another transaction (another node) waits
  // here and then reads the heads and the seq this one leaves: its parent check never passes on a stale head. The
  // writer lock (db/postgres.ts) orders write transactions already; this keeps commits right without it. sqlite has
  // one writer and no row locks (Knex would only warn).
  // refuseFrozen: whether the space is frozen (services/access.ts refuseIfFrozen) is read in the same statement.
  const frozen = options.refuseFrozen ? [trx.raw('EXISTS ? AS frozen', [frozenWitness(trx).whereRaw('p.space_id = s.id')])] : [];
  const space = await (isPostgres(trx) ? read.forUpdate('s') : read).first('s.key_epoch', 's.seq', 's.org_id', 'e.public_key', ...frozen);
  if (options.refuseFrozen && Number(space.frozen)) throw frozenRefusal();
  // The audit entry of this commit names the space: its organisation is known now (audit/org-sides.ts).
  services.audit.noteSpaceOrg?.(trx, spaceId, space.org_id as string);
  const keyEpoch = Number(space.key_epoch);
  const epochPublicKey = space.public_key as string;
  const now = Date.now();
  const fileIds = [...new Set(versions.map((v) => v.fileId))];
  const versionIds = versions.map((v) => v.versionId);
  const facts: CommitSpace = { spaceId, keyEpoch, epochPublicKey, signer };

  // The files (with the newest epoch they have a key for) and the versions with these ids in one statement per 500 of
  // each: versions in this space are replays (their seq is the caller's to know); ids taken elsewhere are refused.
  const files = new Map<string, { space_id: string; head_version_id: string | null; wrapEpoch: number }>();
  const taken = new Map<string, number | 'elsewhere'>();
  for (let i = 0; i < Math.max(fileIds.length, versionIds.length); i += IN_BATCH) {
    for (const r of await readFilesAndVersions(trx, fileIds.slice(i, i + IN_BATCH), versionIds.slice(i, i + IN_BATCH))) {
      if (Number(r.kind) === 0) files.set(r.id, { space_id: r.space_id, head_version_id: r.head, wrapEpoch: Number(r.n ?? 0) });
      else taken.set(r.id, r.space_id === spaceId ? Number(r.n) : 'elsewhere');
    }
  }

  // Signatures (docs/crypto.md §5, §5.2), unless the caller checked them before its transaction.
  const { heads } = checkVersions(facts, versions, { file: (id) => files.get(id), version: (id) => taken.get(id) }, options.checkedWraps ?? verifiedWraps(versions));

  // Every chunk must be stored in this space before a version may name it.
  const lengths = new Map<string, number>();
  let dead = false;
  for (const part of chunked([...new Set(versions.flatMap((v) => v.chunks))])) {
    for (const r of await trx('chunks').where({ space_id: spaceId }).whereIn('id', part).select('id', 'length', 'live')) {
      lengths.set(r.id, Number(r.length));
      if (!Number(r.live)) dead = true;
    }
  }
  const wanted = checkChunks(versions, lengths);

  const { versionRows, chunkRows, wrapRows, assigned, lastSeq: seq } = commitRows(facts, author, versions, Number(space.seq), lengths, now);
  // New files are inserted with their head (no foreign key on it); only known files need an UPDATE.
  const newFiles = fileIds.filter((id) => !files.has(id)).map((id) => ({ id, space_id: spaceId, head_version_id: heads.get(id)!, created_at: now }));
  await insertCommitRows(trx, { newFiles, versionRows, chunkRows, wrapRows });
  for (const [fileId, head] of heads) if (files.has(fileId)) await trx('files').where({ id: fileId }).update({ head_version_id: head });
  // Chunks named again by a new version are live again (they may have been counted dead by retention). Read above in
  // this transaction: when all are live, as nearly always, that is two statements fewer.
  if (dead) await services.chunks.markLive(space.org_id as string, spaceId, wanted, trx);
  await trx('spaces').where({ id: spaceId }).update({ seq });
  return { firstSeq: assigned[0]!.seq, lastSeq: seq, versions: assigned };
}

/** Files (kind 0: space, head, newest wrap epoch as n) and versions (kind 1: space, seq as n) with these ids, in one statement. */
export async function readFilesAndVersions(trx: Tx, fileIds: string[], versionIds: string[]) {
  return await trx('files as f').whereIn('f.id', fileIds)
    .select(trx.raw('0 AS kind'), 'f.id', 'f.space_id', 'f.head_version_id as head', trx('file_key_wraps as w').max('w.key_epoch').whereRaw('w.file_id = f.id').as('n'))
    .unionAll(trx('versions as v').whereIn('v.id', versionIds).select(trx.raw('1 AS kind'), 'v.id', 'v.space_id', trx.raw('NULL AS head'), 'v.seq as n')) as
    { kind: number | string; id: string; space_id: string; head: string | null; n: number | string | null }[];
}

/** Multi-row INSERTs of a commit's rows (or a group's), in parts that stay below every engine's limit on bound parameters. */
export async function insertCommitRows(trx: Tx, rows: { newFiles: object[]; versionRows: object[]; chunkRows: object[]; wrapRows: object[] }): Promise<void> {
  for (const part of chunked(rows.newFiles, 200)) await trx('files').insert(part);
  for (const part of chunked(rows.versionRows, 50)) await trx('versions').insert(part);
  for (const part of chunked(rows.chunkRows, 300)) await trx('version_chunks').insert(part);
  for (const part of chunked(rows.wrapRows, 200)) await trx('file_key_wraps').insert(part);
}

async function fileWraps(services: Services, fileIds: string[]): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const part of chunked(fileIds, 512)) {
    const { marks, bindings } = inList(part);
    for (const w of await services.hot.all<{ file_id: string; wrap: string }>(`SELECT file_id, wrap FROM file_key_wraps WHERE file_id IN (${marks}) ORDER BY key_epoch`, bindings)) {
      (out[w.file_id] ??= []).push(JSON.parse(w.wrap));
    }
  }
  return out;
}

export function commitRoutes(router: Router, services: Services): void {
  // Plain reads go to the read connections; everything written goes through services.tx (group commit).
  const { read, events } = services;
  const combiner = new CommitCombiner(services);

  route(router, services, 'post', '/api/v1/spaces/:spaceId/commits', { action: 'commit.create' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    await memberRole(services, caller, spaceId, 'editor');
    const req = parse(CommitRequest, body(ctx));
    const signer = caller.signPublicKey!;
    // Public-key work before the transaction, which one writer runs at a time (verifiedWraps).
    const checkedWraps = verifiedWraps(req.versions);
    // Concurrent commits are checked and written together, as one member of the group commit (services/commit-combiner.ts).
    const result = await combiner.commit({
      author: caller, spaceId, signer, versions: req.versions, checkedWraps,
      audit: { ...actor(ctx, caller), action: 'commit.create', targetType: 'space', targetId: spaceId, outcome: 'success' },
    });
    events.publish({ spaceId, seq: result.lastSeq });
    ctx.status = 201;
    ctx.body = { seq: result.lastSeq, versions: result.versions };
  });

  route(router, services, 'get', '/api/v1/spaces/:spaceId/changes', { action: 'changes.read' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    await memberRole(services, caller, spaceId, 'viewer');
    const since = intQuery(ctx, 'since', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intQuery(ctx, 'limit', 1000, 1, 5000);
    const { head, changes } = await readChangePage(services.hot, spaceId, since, limit, { access: services.access, heads: caller.heads });
    const keys = await fileKeysJson(services.hot, [...new Set(changes.map((c) => c.fileId))]);
    await auditSuccess(services, ctx, caller, 'space', spaceId, { since, count: changes.length });
    ctx.type = 'application/json';
    ctx.body = changePageJson(spaceId, head, since, changes, keys);
  });

  route(router, services, 'get', '/api/v1/spaces/:spaceId/files/:fileId/versions', { action: 'versions.read' }, async (ctx, caller) => {
    const spaceId = String(ctx.params.spaceId);
    const fileId = pathId(ctx, 'fileId', 'file');
    await spaceAccess(services.hot, caller, spaceId, 'viewer');
    const rows = await read('versions').where({ space_id: spaceId, file_id: fileId }).orderBy('seq', 'desc').select('*');
    if (!rows.length) throw new DomainError(ErrorCode.NotFound, 'no such file');
    await auditSuccess(services, ctx, caller, 'file', fileId, { spaceId, count: rows.length });
    ctx.body = { fileId, versions: rows.map(versionView), fileKeyWraps: (await fileWraps(services, [fileId]))[fileId] ?? [], uploads: await requestUploads(services.hot, [fileId]) };
  });

  route(router, services, 'get', '/api/v1/spaces/:spaceId/trash', { action: 'trash.read' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    await spaceAccess(services.hot, caller, spaceId, 'viewer');
    const rows = await read('files as f').join('versions as v', 'v.id', 'f.head_version_id').where('f.space_id', spaceId).andWhere('v.deleted', true).whereNull('v.expired_at')
      .orderBy('v.seq', 'desc').select('v.*');
    await auditSuccess(services, ctx, caller, 'space', spaceId, { count: rows.length });
    ctx.body = { spaceId, deleted: rows.map(versionView) };
  });

  // Server-sent events: `change` events {spaceId, seq} for every space the caller is a member of. The stream is
  // registered with the bus under its session, so that revoking the session (device revocation, logout, password
  // reset) or removing the user from a space ends it at once.
  route(router, services, 'get', '/api/v1/events', { action: 'events.subscribe' }, async (ctx, caller) => {
    // Not the spaces the caller's removal is pending in (docs/admin.md "Offboarding"): they are refused those already.
    const loadSpaces = async () => new Set((await read('space_members').where({ user_id: caller.userId })
      .whereNotIn('space_id', read('pending_removals').where({ user_id: caller.userId }).select('space_id')).select('space_id')).map((r) => r.space_id as string));
    const stream = new PassThrough();
    // null until the hello is written: events arriving before then wait in `early`, so none falls between the heads
    // the hello reports and the first `change`.
    let spaces: Set<string> | null = null;
    const early: ChangeEvent[] = [];
    let ended = false;
    let refreshing: Promise<void> | null = null;
    const onChange = (e: ChangeEvent) => {
      if (ended) return;
      if (!spaces) {
        early.push(e);
        return;
      }
      const send = () => {
        if (!ended && spaces!.has(e.spaceId)) stream.write(e.removalPending ? `event: removal-pending\ndata: ${JSON.stringify({ spaceId: e.spaceId })}\n\n` : `event: change\ndata: ${JSON.stringify(e)}\n\n`);
      };
      if (spaces.has(e.spaceId)) return send();
      // Maybe the caller was just added to this space.
      refreshing ??= loadSpaces().then((s) => {
        spaces = s;
        refreshing = null;
      }, () => { refreshing = null; });
      void refreshing.then(send);
    };
    // Registered before the session and the memberships are read (see EventBus.openStream): a revocation or removal
    // committed after these reads finds the stream on the bus, one committed before is seen by them.
    const unregister = events.openStream({ userId: caller.userId, deviceId: caller.deviceId }, {
      change: onChange,
      end: () => {
        ended = true;
        stream.end();
      },
    });
    let heads: { id: string; seq: number | string }[];
    let loaded: Set<string>;
    try {
      const session = await read('sessions').where({ id: caller.deviceId }).first('revoked_at');
      if (!session || session.revoked_at !== null) throw new DomainError(ErrorCode.Unauthenticated, 'this device was signed out');
      loaded = await loadSpaces();
      heads = await read('spaces').whereIn('id', [...loaded]).select('id', 'seq');
      await auditSuccess(services, ctx, caller, 'device', caller.deviceId, { spaces: loaded.size });
    } catch (err) {
      unregister();
      throw err;
    }
    ctx.req.socket.setTimeout(0);
    ctx.req.socket.setNoDelay(true);
    ctx.set('Content-Type', 'text/event-stream; charset=utf-8');
    ctx.set('Cache-Control', 'no-store');
    ctx.set('X-Accel-Buffering', 'no');
    ctx.status = 200;
    ctx.body = stream;
    // Ended while the memberships were read (a membership change): an empty stream, and the client's reconnect
    // reads them afresh.
    if (ended) return;
    stream.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ spaces: heads.map((h) => ({ spaceId: h.id, seq: Number(h.seq) })) })}\n\n`);
    spaces = loaded;
    for (const e of early.splice(0)) onChange(e);
    const heartbeat = setInterval(() => stream.write(': keep-alive\n\n'), 25_000);
    const close = () => {
      clearInterval(heartbeat);
      unregister();
    };
    ctx.req.on('close', close);
    stream.on('close', close);
  });
}
