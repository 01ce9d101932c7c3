// The change log: batch commits with parent checks, paged changes, version history, trash, and server-sent events.
import type Router from '@koa/router';
import { PassThrough } from 'node:stream';
import { CommitRequest, ErrorCode } from '@kluis/shared';
import { chunked, verifiedWraps } from '../services/commit-batch.js';
import { DomainError } from '../domain-error.js';
import type { Services } from '../context.js';
import type { ChangeEvent } from '../events.js';
import { actor, auditSuccess, body, type KCtx, parse, pathId, route } from '../http.js';
import { memberRole, spaceAccess } from '../services/access.js';
import { changePageJson, fileKeysJson, readChangePage, versionView } from '../services/change-page.js';
import { inList } from '../db/hot-reads.js';
import { requestUploads } from '../services/requests.js';
import { CommitCombiner } from '../services/commit-combiner.js';
import { expandCommit } from '../services/commit-wire.js';

function intQuery(ctx: KCtx, name: string, fallback: number, min: number, max: number): number {
  const raw = ctx.query[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new DomainError(ErrorCode.ValidationFailed, `${name}: an integer from ${min} to ${max}`);
  }
  return n;
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
    // Wraps of a batch sent whole are rebuilt (and verified) first: from here on every version carries its own.
    const { versions, verified } = expandCommit(parse(CommitRequest, body(ctx)));
    const signer = caller.signPublicKey!;
    // Public-key work before the transaction, which one writer runs at a time (verifiedWraps).
    const checkedWraps = verifiedWraps(versions, verified);
    // Concurrent commits are checked and written together, as one member of the group commit (services/commit-combiner.ts).
    const result = await combiner.commit({
      author: caller, spaceId, signer, versions, checkedWraps,
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
