// Spaces (synced or shared folders), their members and key epochs. The server checks the shape and signatures of
// key wraps so that a buggy or hostile client cannot store garbage for others; clients verify them again.
import type Router from '@koa/router';
import {
  AddMemberRequest, ChangeMemberRequest, CreateSpaceRequest, ErrorCode, RemoveMemberRequest,
  type SpaceKeyWrap, type SpaceRole,
} from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller, Services } from '../context.js';
import { actor, auditSuccess, body, parse, pathId, route, target } from '../http.js';
import { spaceAccess, spaceFrozen, type SpaceRow } from '../services/access.js';
import { checkExternalPerson } from '../services/policy.js';
import { mirrorEntry } from '../audit/org-sides.js';
import { checkWrapAuthor } from '../services/wraps.js';
import { appendEntry, logState, readLog } from '../services/membership.js';
import type { Tx } from '../db/db.js';

/** Default version retention of a space (days). */
export const DEFAULT_RETENTION_DAYS = 180;

function checkSpaceWrap(wrap: SpaceKeyWrap, expect: { spaceId: string; keyEpoch: number; publicKey: string; recipient: string; signer: string }, who: string): void {
  if (wrap.spaceId !== expect.spaceId || wrap.keyEpoch !== expect.keyEpoch || wrap.spacePublicKey !== expect.publicKey) {
    throw new DomainError(ErrorCode.ValidationFailed, `${who}: the wrap is for another space, epoch or key`);
  }
  checkWrapAuthor(wrap, { recipient: expect.recipient, signer: expect.signer, recipientIs: 'member' }, who);
}

async function callerKeys(services: Services, caller: Caller): Promise<{ enc: string; sign: string; email: string }> {
  const row = await services.db('users').where({ id: caller.userId }).first('enc_public_key', 'sign_public_key', 'email');
  return { enc: row.enc_public_key, sign: row.sign_public_key, email: row.email };
}

interface UserKeys {
  id: string;
  email: string;
  enc_public_key: string;
  sign_public_key: string;
}

/** A user's keys as the membership log must name them. */
const named = (u: UserKeys) => ({ userId: u.id, email: u.email, encPublicKey: u.enc_public_key, signPublicKey: u.sign_public_key });

/**
 * The person a manager adds: a colleague of the space's organisation, or a person of another organisation where the
 * space's class allows external members there (403 `policy_refused` otherwise, services/policy.ts).
 */
async function newMember(trx: Tx, space: SpaceRow, userId: string): Promise<UserKeys & { org_id: string }> {
  const user = await trx('users').where({ id: userId }).whereNull('disabled_at').first('id', 'email', 'enc_public_key', 'sign_public_key', 'org_id');
  if (!user) throw new DomainError(ErrorCode.NotFound, 'no such colleague in your organisation');
  await checkExternalPerson(trx, space, user.org_id, 'external-member');
  return user;
}

/**
 * The log's state with the member `userId` as the log names them: a role change or removal names the keys the
 * member was added with (docs/crypto.md §4.1), whatever the directory lists now (a colleague may have new keys).
 */
async function logMember(trx: Tx, spaceId: string, userId: string) {
  const state = await logState(trx, spaceId);
  const m = state.members.get(userId);
  if (!m) throw new DomainError(ErrorCode.Conflict, 'the membership log does not list this member');
  const { email, encPublicKey, signPublicKey } = m.identity;
  return { state, user: { userId, email, encPublicKey, signPublicKey } };
}

async function managers(trx: Tx, spaceId: string): Promise<number> {
  const row = await trx('space_members').where({ space_id: spaceId, role: 'manager' }).count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

/** Members whose removal waits for a manager's signature, per space (docs/admin.md "Offboarding"). */
async function pendingRemovals(db: Services['db'], spaceIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (spaceIds.length === 0) return out;
  for (const r of await db('pending_removals').whereIn('space_id', spaceIds).orderBy('user_id').select('space_id', 'user_id')) {
    out.set(r.space_id, [...(out.get(r.space_id) ?? []), r.user_id]);
  }
  return out;
}

export function spaceRoutes(router: Router, services: Services): void {
  const { db, audit } = services;

  route(router, services, 'post', '/api/v1/spaces', { action: 'space.create' }, async (ctx, caller) => {
    const req = parse(CreateSpaceRequest, body(ctx));
    target(ctx, 'space', req.id);
    const keys = await callerKeys(services, caller);
    checkSpaceWrap(req.wrap, { spaceId: req.id, keyEpoch: 1, publicKey: req.publicKey, recipient: keys.enc, signer: keys.sign }, 'wrap');
    const now = Date.now();
    await db.transaction(async (trx) => {
      if (await trx('spaces').where({ id: req.id }).first('id')) throw new DomainError(ErrorCode.Conflict, 'a space with this id exists');
      await trx('spaces').insert({ id: req.id, org_id: caller.orgId, domain_id: null, name: req.name, classification: req.classification, key_epoch: 1, seq: 0, retention_days: req.retentionDays ?? DEFAULT_RETENTION_DAYS, created_by: caller.userId, created_at: now });
      await trx('space_epochs').insert({ space_id: req.id, key_epoch: 1, public_key: req.publicKey, created_by: caller.userId, created_at: now });
      await trx('space_members').insert({ space_id: req.id, user_id: caller.userId, role: 'manager', added_by: caller.userId, added_at: now });
      await trx('space_key_wraps').insert({ space_id: req.id, key_epoch: 1, user_id: caller.userId, wrap: JSON.stringify(req.wrap), created_at: now });
      await appendEntry(trx, req.id, null, req.entry, { op: 'create', signer: keys.sign, user: { userId: caller.userId, email: keys.email, encPublicKey: keys.enc, signPublicKey: keys.sign }, role: 'manager', spacePublicKey: req.publicKey }, now);
      await audit.append(trx, { ...actor(ctx, caller), action: 'space.create', targetType: 'space', targetId: req.id, outcome: 'success', details: { classification: req.classification } });
    });
    ctx.status = 201;
    ctx.body = { spaceId: req.id, name: req.name, classification: req.classification, keyEpoch: 1, seq: 0, role: 'manager' };
  });

  route(router, services, 'get', '/api/v1/spaces', { action: 'space.list' }, async (ctx, caller) => {
    const rows = await db('spaces as s').join('space_members as m', 'm.space_id', 's.id')
      .where('m.user_id', caller.userId).orderBy('s.name')
      .whereNotIn('s.id', db('pending_removals').where({ user_id: caller.userId }).select('space_id'))
      .select('s.id', 's.name', 's.classification', 's.key_epoch', 's.seq', 's.retention_days', 'm.role');
    const pending = await pendingRemovals(db, rows.filter((r) => r.role === 'manager').map((r) => r.id as string));
    await auditSuccess(services, ctx, caller, 'user', caller.userId, { count: rows.length });
    ctx.body = { spaces: rows.map((r) => ({ spaceId: r.id, name: r.name, classification: r.classification, keyEpoch: Number(r.key_epoch), seq: Number(r.seq), retentionDays: Number(r.retention_days), role: r.role, ...(r.role === 'manager' ? { pendingRemovals: pending.get(r.id) ?? [] } : {}) })) };
  });

  route(router, services, 'get', '/api/v1/spaces/:spaceId', { action: 'keys.space.read' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const { space, role } = await spaceAccess(db, caller, spaceId, 'viewer');
    const [members, epochs, wraps, log, frozen] = await Promise.all([
      db('space_members as m').join('users as u', 'u.id', 'm.user_id').where('m.space_id', spaceId).orderBy('u.email')
        .select('u.id', 'u.email', 'm.role', 'u.enc_public_key', 'u.sign_public_key', 'u.identity_sig', 'm.added_by', 'm.added_at'),
      db('space_epochs').where({ space_id: spaceId }).orderBy('key_epoch').select('key_epoch', 'public_key', 'created_by', 'prev_sealed'),
      db('space_key_wraps').where({ space_id: spaceId, user_id: caller.userId }).orderBy('key_epoch').select('key_epoch', 'wrap'),
      readLog(db, spaceId),
      spaceFrozen(db, spaceId),
    ]);
    const pending = role === 'manager' ? (await pendingRemovals(db, [spaceId])).get(spaceId) ?? [] : undefined;
    await auditSuccess(services, ctx, caller, 'space', spaceId, { epochs: wraps.length });
    ctx.body = {
      spaceId, name: space.name, classification: space.classification, keyEpoch: space.key_epoch, seq: space.seq, retentionDays: space.retention_days, role,
      members: members.map((m) => ({ userId: m.id, email: m.email, role: m.role, encPublicKey: m.enc_public_key, signPublicKey: m.sign_public_key, identitySig: m.identity_sig, addedBy: m.added_by, addedAt: Number(m.added_at) })),
      epochs: epochs.map((e) => ({ keyEpoch: Number(e.key_epoch), publicKey: e.public_key, createdBy: e.created_by, prevSealed: e.prev_sealed ?? null })),
      myWraps: wraps.map((w) => JSON.parse(w.wrap)),
      log,
      ...(pending ? { pendingRemovals: pending } : {}),
      ...(frozen ? { frozen: true } : {}),
    };
  });

  route(router, services, 'post', '/api/v1/spaces/:spaceId/members', { action: 'space.member.add' }, async (ctx, caller) => {
    const spaceId = pathId(ctx, 'spaceId', 'space');
    const { space } = await spaceAccess(db, caller, spaceId, 'manager');
    const req = parse(AddMemberRequest, body(ctx));
    const keys = await callerKeys(services, caller);
    await db.transaction(async (trx) => {
      const user = await newMember(trx, space, req.userId);
      const epoch = await trx('space_epochs').where({ space_id: spaceId, key_epoch: space.key_epoch }).first('public_key');
      checkSpaceWrap(req.wrap, { spaceId, keyEpoch: space.key_epoch, publicKey: epoch.public_key, recipient: user.enc_public_key, signer: keys.sign }, 'wrap');
      if (await trx('space_members').where({ space_id: spaceId, user_id: user.id }).first('role')) throw new DomainError(ErrorCode.Conflict, 'already a member');
      const now = Date.now();
      await appendEntry(trx, spaceId, await logState(trx, spaceId), req.entry, { op: 'add', signer: keys.sign, user: named(user), role: req.role }, now);
      await trx('space_members').insert({ space_id: spaceId, user_id: user.id, role: req.role, added_by: caller.userId, added_at: now });
      await trx('space_key_wraps').insert({ space_id: spaceId, key_epoch: space.key_epoch, user_id: user.id, wrap: JSON.stringify(req.wrap), created_at: now });
      const external = user.org_id !== space.org_id;
      const entry = { ...actor(ctx, caller), action: 'space.member.add', targetType: 'space', targetId: spaceId, outcome: 'success' as const, details: { userId: user.id, role: req.role, ...(external ? { memberOrgId: user.org_id, classification: space.classification } : {}) } };
      const seq = await audit.append(trx, entry);
      // The new member's organisation sees that its person joined another organisation's space (audit/org-sides.ts).
      if (external && user.org_id !== caller.orgId) await audit.append(trx, mirrorEntry(entry, seq, user.org_id, 'member'));
    });
    ctx.status = 201;
    ctx.body = { spaceId, userId: req.userId, role: req.role };
  });

  route(router, services, 'patch', '/api/v1/spaces/:spaceId/members/:userId', { action: 'space.member.role' }, async (ctx, caller) => {
    const spaceId = String(ctx.params.spaceId);
    const userId = String(ctx.params.userId);
    target(ctx, 'space', spaceId);
    await spaceAccess(db, caller, spaceId, 'manager');
    const { role, entry } = parse(ChangeMemberRequest, body(ctx));
    const keys = await callerKeys(services, caller);
    await db.transaction(async (trx) => {
      const member = await trx('space_members').where({ space_id: spaceId, user_id: userId }).first('role');
      if (!member) throw new DomainError(ErrorCode.NotFound, 'not a member');
      if (member.role === 'manager' && role !== 'manager' && (await managers(trx, spaceId)) <= 1) throw new DomainError(ErrorCode.Conflict, 'a space keeps at least one manager');
      const { state, user } = await logMember(trx, spaceId, userId);
      await appendEntry(trx, spaceId, state, entry, { op: 'role', signer: keys.sign, user, role }, Date.now());
      await trx('space_members').where({ space_id: spaceId, user_id: userId }).update({ role });
      await audit.append(trx, { ...actor(ctx, caller), action: 'space.member.role', targetType: 'space', targetId: spaceId, outcome: 'success', details: { userId, from: member.role, to: role } });
    });
    ctx.body = { spaceId, userId, role: role as SpaceRole };
  });

  // Removing a member rotates the space key in the same transaction (docs/architecture.md §2): the caller sends the new epoch's
  // public key and a wrap for every remaining member.
  route(router, services, 'delete', '/api/v1/spaces/:spaceId/members/:userId', { action: 'space.member.remove' }, async (ctx, caller) => {
    const spaceId = String(ctx.params.spaceId);
    const userId = String(ctx.params.userId);
    target(ctx, 'space', spaceId);
    const { space } = await spaceAccess(db, caller, spaceId, 'manager');
    const req = parse(RemoveMemberRequest, body(ctx));
    const keys = await callerKeys(services, caller);
    await db.transaction(async (trx) => {
      const member = await trx('space_members').where({ space_id: spaceId, user_id: userId }).first('role');
      if (!member) throw new DomainError(ErrorCode.NotFound, 'not a member');
      if (member.role === 'manager' && (await managers(trx, spaceId)) <= 1) throw new DomainError(ErrorCode.Conflict, 'a space keeps at least one manager');
      if (req.newEpoch.keyEpoch !== space.key_epoch + 1) throw new DomainError(ErrorCode.Conflict, `the new key epoch must be ${space.key_epoch + 1}`);
      const remaining = await trx('space_members as m').join('users as u', 'u.id', 'm.user_id').where('m.space_id', spaceId).whereNot('m.user_id', userId).select('u.id', 'u.enc_public_key');
      const wrapsFor = new Map(req.newEpoch.wraps.map((w) => [w.userId, w.wrap]));
      // Members whose removal an admin asked for (docs/admin.md "Offboarding") may go without the new key: they leave next.
      const leavingToo = new Set((await trx('pending_removals').where({ space_id: spaceId }).select('user_id')).map((r) => r.user_id as string));
      if (wrapsFor.size !== req.newEpoch.wraps.length || [...wrapsFor.keys()].some((id) => !remaining.some((m) => m.id === id)) || remaining.some((m) => !wrapsFor.has(m.id) && !leavingToo.has(m.id))) {
        throw new DomainError(ErrorCode.ValidationFailed, 'newEpoch.wraps: exactly one wrap for every remaining member is required');
      }
      const now = Date.now();
      if (req.entry.keyEpoch !== req.newEpoch.keyEpoch) throw new DomainError(ErrorCode.BadMembership, 'entry: the entry records another key epoch');
      const { state, user } = await logMember(trx, spaceId, userId);
      await appendEntry(trx, spaceId, state, req.entry, { op: 'remove', signer: keys.sign, user, spacePublicKey: req.newEpoch.publicKey }, now);
      for (const m of remaining.filter((r) => wrapsFor.has(r.id))) {
        checkSpaceWrap(wrapsFor.get(m.id)!, { spaceId, keyEpoch: req.newEpoch.keyEpoch, publicKey: req.newEpoch.publicKey, recipient: m.enc_public_key, signer: keys.sign }, `wrap for ${m.id}`);
      }
      await trx('space_members').where({ space_id: spaceId, user_id: userId }).delete();
      await trx('space_epochs').insert({ space_id: spaceId, key_epoch: req.newEpoch.keyEpoch, public_key: req.newEpoch.publicKey, created_by: caller.userId, created_at: now, prev_sealed: req.newEpoch.prevSealed });
      await trx('pending_removals').where({ space_id: spaceId, user_id: userId }).delete();
      const rows = remaining.filter((m) => wrapsFor.has(m.id)).map((m) => ({ space_id: spaceId, key_epoch: req.newEpoch.keyEpoch, user_id: m.id, wrap: JSON.stringify(wrapsFor.get(m.id)), created_at: now }));
      for (let i = 0; i < rows.length; i += 200) await trx('space_key_wraps').insert(rows.slice(i, i + 200));
      await trx('spaces').where({ id: spaceId }).update({ key_epoch: req.newEpoch.keyEpoch });
      const entry = { ...actor(ctx, caller), action: 'space.member.remove', targetType: 'space', targetId: spaceId, outcome: 'success' as const, details: { userId, newKeyEpoch: req.newEpoch.keyEpoch } };
      const seq = await audit.append(trx, entry);
      const memberOrg = (await trx('users').where({ id: userId }).first('org_id'))?.org_id as string | undefined;
      if (memberOrg !== undefined && memberOrg !== space.org_id && memberOrg !== caller.orgId) await audit.append(trx, mirrorEntry(entry, seq, memberOrg, 'member'));
    });
    // The removed member's event streams end now: their reconnect no longer lists this space (after the commit).
    services.events.membershipChanged(spaceId, userId);
    ctx.status = 204;
  });
}

