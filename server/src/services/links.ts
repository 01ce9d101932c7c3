// Share links (docs/api.md "Share links", docs/crypto.md §9): creating, listing and revoking them for members, and the
// public side that the link page uses: info, access (the secret proven by linkAuth, one download counted) and the
// chunks of the linked version for the download token an access gave. No Koa here: routes/links.ts parses and calls.
//
// What is stored: never the link secret, never linkAuth, never a token — only BLAKE2b-256(linkAuth) and the hash of
// each token (tokenHash), so neither the database nor the audit trail can open a link.
//
// Retention: a link shows one version. When retention later expires that version (it was replaced longer ago than the
// space keeps history) the link answers 410 `expired`, like a link past its expiry; links do not keep chunks alive.
import {
  ErrorCode, LINK_LOCK_MS, LINK_MAX_DAYS, LINK_MAX_FAILURES, LINK_TOKEN_MS, checkLinkAuth, fromBase64Url, linkPolicyProblem,
  newSecretToken, tokenHash, type ClassName, type AdminLink, type CreateLinkRequest, type KdfParams, type LinkAccess, type LinkGoneReason, type LinkInfo, type PublicLinkInfo,
} from '@kluis/shared';
import { refusalFacts } from '../errors.js';
import type { Caller, Services } from '../context.js';
import type { AuditEntryInput } from '../audit/types.js';
import type { Db, Tx } from '../db/db.js';
import { IP_POLICY, reserveAttempt, type ThrottlePolicy } from '../auth/throttle.js';
import { refuseIfFrozen, spaceAccess } from './access.js';
import { classPolicy, policyRefusal } from './policy.js';
import { DomainError, RetryLater } from '../domain-error.js';

const DAY_MS = 86_400_000;
/** Wrong proofs per link: LINK_MAX_FAILURES in a window of LINK_LOCK_MS, then locked for LINK_LOCK_MS. */
export const LINK_POLICY: ThrottlePolicy = { maxFailures: LINK_MAX_FAILURES, windowMs: LINK_LOCK_MS, lockMs: LINK_LOCK_MS };

/** The request facts of an audit entry (http.ts meta/actor). */
export interface Who {
  orgId?: string;
  actorUserId?: string;
  actorDeviceId?: string;
  ip: string;
  userAgent: string | null;
  client: string | null;
}

export interface LinkRow {
  id: string;
  org_id: string;
  space_id: string;
  file_id: string;
  version_id: string;
  kdf: string | null;
  auth_hash: string;
  wrapped: string;
  expires_at: number;
  max_downloads: number | null;
  downloads: number;
  purpose: string;
  created_by: string;
  created_at: number;
  revoked_at: number | null;
  /** 'file', or 'folder' (a snapshot: link_versions lists its files' versions; migration 007) */
  kind: 'file' | 'folder';
  /** folder links: the sealed listing (b64u) */
  listing: string | null;
  /** versions.expired_at of the linked version (retention) */
  version_expired_at: number | null;
}

function gone(reason: LinkGoneReason): DomainError {
  const text = { expired: 'this link has expired', revoked: 'this link was revoked', exhausted: 'this link has no downloads left' }[reason];
  return new DomainError(ErrorCode.LinkGone, text, { extra: { reason } });
}

function normalise(r: Record<string, unknown>): LinkRow {
  const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    ...(r as unknown as LinkRow),
    expires_at: Number(r.expires_at), max_downloads: n(r.max_downloads), downloads: Number(r.downloads), created_at: Number(r.created_at),
    revoked_at: n(r.revoked_at), version_expired_at: n(r.version_expired_at), kind: r.kind === 'folder' ? 'folder' : 'file', listing: (r.listing as string | null | undefined) ?? null,
  };
}

const linkQuery = (db: Db | Tx) => db('links as l').leftJoin('versions as v', 'v.id', 'l.version_id').select('l.*', 'v.expired_at as version_expired_at');

/** The link, whatever its state; 404 for an unknown id. */
export async function findLink(db: Db | Tx, linkId: string): Promise<LinkRow> {
  const row = await linkQuery(db).where('l.id', linkId).first();
  if (!row) throw new DomainError(ErrorCode.NotFound, 'no such link');
  return normalise(row);
}

/** Why the link no longer opens, or null. Revocation first: it is the owner's explicit word. */
export function goneReason(link: LinkRow, now: number): LinkGoneReason | null {
  if (link.revoked_at !== null) return 'revoked';
  if (link.expires_at <= now || link.version_expired_at !== null) return 'expired';
  if (link.max_downloads !== null && link.downloads >= link.max_downloads) return 'exhausted';
  return null;
}

const downloadsLeft = (link: LinkRow) => (link.max_downloads === null ? null : Math.max(0, link.max_downloads - link.downloads));

export function linkInfo(link: LinkRow, publicUrl: string, now: number): LinkInfo {
  return {
    linkId: link.id, spaceId: link.space_id, fileId: link.file_id, versionId: link.version_id, url: `${publicUrl}/s/${link.id}`,
    createdAt: link.created_at, createdBy: link.created_by, expiresAt: link.expires_at, maxDownloads: link.max_downloads, downloads: link.downloads,
    password: link.kdf !== null, purpose: link.purpose, revokedAt: link.revoked_at, state: goneReason(link, now) ?? 'active', kind: link.kind,
  };
}

/** The facts every audit entry of a link carries (never the secret, linkAuth or a token). */
function facts(link: LinkRow) {
  return { purpose: link.purpose, spaceId: link.space_id, fileId: link.file_id, versionId: link.version_id, ...(link.kind === 'folder' ? { kind: 'folder' } : {}) };
}

/** What a new link (file or folder) must satisfy before its versions are looked at: role, expiry, KDF floor, policy. */
/** Answers the space's organisation, which owns the link (also when a member of another organisation makes it). */
export async function checkNewLink(services: Services, caller: Caller, spaceId: string, req: Pick<CreateLinkRequest, 'expiresAt' | 'kdf' | 'maxDownloads'>, floor: KdfParams, now: number): Promise<string> {
  const { space } = await spaceAccess(services.db, caller, spaceId, 'editor');
  await refuseIfFrozen(services.db, spaceId);
  if (req.expiresAt <= now) throw new DomainError(ErrorCode.ValidationFailed, 'expiresAt: must be in the future');
  if (req.expiresAt > now + LINK_MAX_DAYS * DAY_MS) throw new DomainError(ErrorCode.ValidationFailed, `expiresAt: at most ${LINK_MAX_DAYS} days ahead`);
  if (req.kdf && (req.kdf.opsLimit < floor.opsLimit || req.kdf.memLimit < floor.memLimit)) {
    throw new DomainError(ErrorCode.WeakKdfParams, `kdf: below this server's floor (ops ${floor.opsLimit}, mem ${floor.memLimit})`);
  }
  // What the space's class allows in this organisation (services/policy.ts): a refusal is a 403 the audit records.
  const className = space.classification as ClassName;
  // The space's organisation sets the policy, also for a member of another organisation who makes the link.
  const problem = linkPolicyProblem(className, await classPolicy(services.db, space.org_id, className), { expiresAt: req.expiresAt, password: req.kdf !== null, maxDownloads: req.maxDownloads }, now);
  if (problem) throw policyRefusal(problem, className, 'link');
  return space.org_id;
}

/** Throws 400 unless `versionId` is the current, non-deleted version of `fileId` in the space. */
export async function assertHeadVersion(trx: Tx, spaceId: string, fileId: string, versionId: string, what = 'versionId'): Promise<void> {
  const v = await trx('versions as v').join('files as f', 'f.id', 'v.file_id')
    .where({ 'v.id': versionId, 'v.file_id': fileId, 'v.space_id': spaceId })
    .first('v.deleted', 'v.expired_at', 'f.head_version_id');
  if (!v) throw new DomainError(ErrorCode.ValidationFailed, `${what}: no such version of this file in this space`);
  if (v.head_version_id !== versionId) throw new DomainError(ErrorCode.ValidationFailed, `${what}: not the current version of the file`);
  if (Boolean(v.deleted) || v.expired_at !== null) throw new DomainError(ErrorCode.ValidationFailed, `${what}: the file is deleted`);
}

type NewRow = Omit<LinkRow, 'version_expired_at' | 'downloads' | 'created_at' | 'revoked_at' | 'created_by' | 'kind' | 'listing'> & { kind?: 'folder'; listing?: string };

/** Inserts a checked link and its creation audit entry in `trx`; answers its LinkInfo. */
export async function insertLink(services: Services, trx: Tx, caller: Caller, who: Who, fields: NewRow, details: Record<string, unknown>, now: number): Promise<LinkInfo> {
  if (await trx('links').where({ id: fields.id }).first('id')) throw new DomainError(ErrorCode.Conflict, 'a link with this id exists');
  const row = { ...fields, downloads: 0, created_by: caller.userId, created_at: now, revoked_at: null };
  await trx('links').insert(row);
  const link: LinkRow = { kind: 'file', listing: null, ...row, version_expired_at: null };
  await services.audit.append(trx, {
    ...who, orgId: caller.orgId, action: 'link.create', targetType: 'link', targetId: fields.id, outcome: 'success',
    details: { ...facts(link), expiresAt: row.expires_at, maxDownloads: row.max_downloads, password: row.kdf !== null, ...details },
  });
  return linkInfo(link, services.config.publicUrl, now);
}

/** Creates a file link (an editor or manager of the space); the version must be the file's current, non-deleted one. */
export async function createLink(services: Services, caller: Caller, who: Who, spaceId: string, req: CreateLinkRequest, floor: KdfParams, now = Date.now()): Promise<LinkInfo> {
  const orgId = await checkNewLink(services, caller, spaceId, req, floor, now);
  return services.db.transaction(async (trx) => {
    await assertHeadVersion(trx, spaceId, req.fileId, req.versionId);
    return insertLink(services, trx, caller, who, {
      id: req.linkId, org_id: orgId, space_id: spaceId, file_id: req.fileId, version_id: req.versionId, kdf: req.kdf ? JSON.stringify(req.kdf) : null,
      auth_hash: req.authHash, wrapped: req.wrapped, expires_at: req.expiresAt, max_downloads: req.maxDownloads, purpose: req.purpose,
    }, {}, now);
  });
}

/** The caller's links and every link of the spaces the caller manages (of any organisation: membership decides). */
export async function listLinks(services: Services, caller: Caller, spaceId: string | undefined, now = Date.now()): Promise<LinkInfo[]> {
  const { read } = services;
  const managed = read('space_members').where({ user_id: caller.userId, role: 'manager' }).select('space_id');
  const q = linkQuery(read).where((w) => w.where('l.created_by', caller.userId).orWhereIn('l.space_id', managed));
  if (spaceId !== undefined) q.andWhere('l.space_id', spaceId);
  const rows = await q.orderBy('l.created_at', 'desc');
  return rows.map((r) => linkInfo(normalise(r), services.config.publicUrl, now));
}

/** Every link of an organisation, newest first, with its maker's address and its space's name (the admin console). */
export async function listOrgLinks(services: Services, orgId: string, now = Date.now()): Promise<AdminLink[]> {
  const rows = await linkQuery(services.read).join('users as u', 'u.id', 'l.created_by').join('spaces as s', 's.id', 'l.space_id')
    .select('u.email as creator_email', 's.name as space_name').where('l.org_id', orgId).orderBy('l.created_at', 'desc');
  return rows.map((r) => ({ ...linkInfo(normalise(r), services.config.publicUrl, now), createdByEmail: r.creator_email, spaceName: r.space_name }));
}

/**
 * Revokes a link (its creator or a manager of its space; with `asAdmin`, any link of the caller's organisation: the
 * route checked the role); anyone else gets the answer of a missing link.
 */
export async function revokeLink(services: Services, caller: Caller, who: Who, linkId: string, now = Date.now(), asAdmin = false): Promise<void> {
  await services.db.transaction(async (trx) => {
    const row = await trx('links').where({ id: linkId }).first();
    const link = row ? normalise(row) : null;
    let allowed = link !== null && (asAdmin || link.created_by === caller.userId);
    if (link && !allowed) allowed = Boolean(await trx('space_members').where({ space_id: link.space_id, user_id: caller.userId, role: 'manager' }).first('role'));
    if (!link || !allowed) throw new DomainError(ErrorCode.NotFound, 'no such link');
    // Revoking twice keeps the first time: the trail says when the link stopped.
    if (link.revoked_at === null) await trx('links').where({ id: linkId }).whereNull('revoked_at').update({ revoked_at: now });
    await services.audit.append(trx, { ...who, orgId: caller.orgId, action: 'link.revoke', targetType: 'link', targetId: linkId, outcome: 'success', details: { ...facts(link), already: link.revoked_at !== null, ...(asAdmin ? { asAdmin: true } : {}) } });
  });
}

/** What the page needs before it asks for a password; 410 for a link that no longer opens. */
export function publicInfo(link: LinkRow, now = Date.now()): PublicLinkInfo {
  const reason = goneReason(link, now);
  if (reason) throw gone(reason);
  return { linkId: link.id, kdf: link.kdf ? JSON.parse(link.kdf) : null, expiresAt: link.expires_at, downloadsLeft: downloadsLeft(link), ...(link.kind === 'folder' ? { kind: 'folder' as const } : {}) };
}

type Row = { downloads: number | string; max_downloads: number | string | null };
const rowsOf = (result: unknown): Row[] => (Array.isArray(result) ? result : (result as { rows: Row[] }).rows) as Row[];

/**
 * An access: `auth` (linkAuth, b64u) proves the secret and password. Counted per link and per IP address before the
 * check (auth/throttle.ts: a parallel burst gets at most the limit checked); a right proof gives its count back and
 * counts one download in a single conditional UPDATE, so a link allowing N downloads answers exactly N accesses.
 * The success is audited in the same transaction; refusals are thrown for the route to audit (auditAccessRefusal).
 */
export async function accessLink(services: Services, link: LinkRow, auth: string, who: Who, now = Date.now()): Promise<LinkAccess> {
  const before = goneReason(link, now);
  if (before) throw gone(before);
  const reserved = await reserveAttempt(services.tx, [{ key: `link:${link.id}`, policy: LINK_POLICY }, { key: `link:ip:${who.ip}`, policy: IP_POLICY }], now);
  if ('waitMs' in reserved) {
    const seconds = Math.ceil(reserved.waitMs / 1000);
    throw new RetryLater(seconds, `too many wrong attempts on this link: try again in ${Math.ceil(seconds / 60)} minute(s)`);
  }
  if (!checkLinkAuth(fromBase64Url(auth), link.auth_hash)) {
    await reserved.attempt.fail(now);
    throw new DomainError(ErrorCode.BadLinkAuth, link.kdf ? 'wrong password' : 'the link is incomplete or wrong', { auditOutcome: 'denied' });
  }
  await reserved.attempt.succeed();
  const token = newSecretToken();
  const tokenExpiresAt = now + LINK_TOKEN_MS;
  const result = await services.tx(async (trx) => {
    // The only place a download is counted: the conditions are those of goneReason, evaluated by the database
    // against the row as it is now, so parallel accesses cannot both take the last download.
    const updated = rowsOf(await trx.raw(
      `UPDATE links SET downloads = downloads + 1
        WHERE id = ? AND revoked_at IS NULL AND expires_at > ? AND (max_downloads IS NULL OR downloads < max_downloads)
          AND NOT EXISTS (SELECT 1 FROM versions WHERE versions.id = links.version_id AND versions.expired_at IS NOT NULL)
        RETURNING downloads, max_downloads`,
      [link.id, now],
    ));
    if (updated.length === 0) return null;
    const downloads = Number(updated[0]!.downloads);
    await trx('link_tokens').insert({ token_hash: tokenHash(token), link_id: link.id, version_id: link.version_id, created_at: now, expires_at: tokenExpiresAt });
    const v = await trx('versions').where({ id: link.version_id }).first('manifest');
    const left = link.max_downloads === null ? null : Math.max(0, link.max_downloads - downloads);
    await services.audit.append(trx, { ...who, orgId: link.org_id, action: 'link.access', targetType: 'link', targetId: link.id, outcome: 'success', details: { ...facts(link), status: 200, download: downloads, downloadsLeft: left } });
    return { manifest: Buffer.from(v.manifest as Uint8Array).toString('base64url'), downloadsLeft: left };
  });
  if (!result) throw gone(goneReason(await findLink(services.db, link.id), now) ?? 'exhausted');
  return {
    token, tokenExpiresAt, wrapped: link.wrapped, fileId: link.file_id, versionId: link.version_id, manifest: result.manifest, expiresAt: link.expires_at, downloadsLeft: result.downloadsLeft,
    ...(link.kind === 'folder' ? { kind: 'folder' as const, listing: link.listing ?? '' } : {}),
  };
}

/** Every refused access is written in full under the link's organisation (not aggregated): the finality rules. */
export async function auditAccessRefusal(services: Services, link: LinkRow, who: Who, err: DomainError): Promise<void> {
  const entry: AuditEntryInput = {
    ...who, orgId: link.org_id, action: 'link.access', targetType: 'link', targetId: link.id,
    ...refusalFacts(err, facts(link)),
  };
  await services.audit.appendStandalone(entry);
}

/**
 * The chunks a download token may read: `ids` must all be chunks of the linked version (a file link) or of the
 * snapshot's versions (a folder link, link_versions), none of them expired by retention. A revoked or expired link
 * stops its tokens at once (an exhausted one does not: the access that gave the token was counted).
 */
export async function authoriseChunks(services: Services, link: LinkRow, token: string | null, ids: string[], now = Date.now()): Promise<void> {
  const row = token ? await services.read('link_tokens').where({ token_hash: tokenHash(token) }).first('link_id', 'version_id', 'expires_at') : null;
  if (!row || row.link_id !== link.id || Number(row.expires_at) <= now) {
    throw new DomainError(ErrorCode.Unauthenticated, 'no valid download token for this link: open the link again');
  }
  const reason = goneReason(link, now);
  if (reason === 'revoked' || reason === 'expired') throw gone(reason);
  const wanted = [...new Set(ids)];
  const found = new Set<string>();
  const { read } = services;
  const versions = link.kind === 'folder' ? read('link_versions').where({ link_id: link.id }).select('version_id') : [row.version_id as string];
  for (let i = 0; i < wanted.length; i += 500) {
    const part = wanted.slice(i, i + 500);
    const rows = await read('version_chunks as c').join('versions as v', 'v.id', 'c.version_id')
      .whereIn('c.version_id', versions).whereNull('v.expired_at').whereIn('c.chunk_id', part).distinct('c.chunk_id');
    for (const r of rows) found.add(r.chunk_id);
  }
  if (found.size !== wanted.length) throw new DomainError(ErrorCode.Forbidden, `the token reads only the chunks of the linked ${link.kind === 'folder' ? 'files' : 'version'}`);
}

/** The audit entry of a chunk download through a link (in full: it is an access to the content). */
export function chunksAuditEntry(link: LinkRow, who: Who, count: number, bytes: number): AuditEntryInput {
  return { ...who, orgId: link.org_id, action: 'link.chunks', targetType: 'link', targetId: link.id, outcome: 'success', details: { ...facts(link), count, bytes } };
}
