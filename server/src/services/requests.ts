// File requests, upload-only links (docs/api.md "File requests", docs/crypto.md §9.2): members create, list and revoke
// them; the request page (no account) reads a request's public facts, uploads chunk frames and commits new files with
// the request's bearer proof. No Koa here: routes/requests.ts parses and calls.
//
// What the server checks, since it cannot read the grant's folder or the manifests: the grant's signature and that its
// signer is the creating writer, its space, epoch, key, expiry and file count; for each upload the proof of the secret
// (hex(BLAKE2b-256(requestAuth)), compared in constant time), expiry, revocation, the space's epoch, the file count
// (one conditional UPDATE), the byte budget, the receipt's signature by the request key and that the file is new.
// Members' clients check the rest (folder, position, expiry) from the signed manifest.
import {
  ErrorCode, REQUEST_MAX_BYTES, REQUEST_RATE_PER_IP, REQUEST_RATE_PER_REQUEST, REQUEST_RATE_WINDOW_MS, checkLinkAuth, fromBase64Url,
  requestPolicyProblem, verifyUploadGrant, verifyUploadReceipt,
  type ClassName, type CreateFileRequest, type FileRequestInfo, type PublicRequestInfo, type RequestCommit, type RequestGoneReason, type RequestUploadView,
} from '@kluis/shared';
import { refusalFacts } from '../errors.js';
import type { Caller, Services } from '../context.js';
import type { AuditEntryInput } from '../audit/types.js';
import type { Db, Tx } from '../db/db.js';
import { inList, type HotReads } from '../db/hot-reads.js';
import { IP_POLICY, reserveAttempt, type ThrottleKey } from '../auth/throttle.js';
import { refuseIfFrozen, spaceAccess } from './access.js';
import { classPolicy, policyRefusal } from './policy.js';
import { LINK_POLICY, type Who } from './links.js';
import { commitBatch } from './commit-batch.js';
import { DomainError, RetryLater } from '../domain-error.js';

export interface RequestRow {
  id: string;
  org_id: string;
  space_id: string;
  key_epoch: number;
  request_public_key: string;
  auth_hash: string;
  grant: string;
  expires_at: number;
  max_files: number;
  files: number;
  bytes: number;
  purpose: string;
  created_by: string;
  created_at: number;
  revoked_at: number | null;
  /** the space's current epoch: a rotation ends the request (its grant seals to the old key) */
  space_epoch: number;
}

function normalise(r: Record<string, unknown>): RequestRow {
  return {
    ...(r as unknown as RequestRow), key_epoch: Number(r.key_epoch), expires_at: Number(r.expires_at), max_files: Number(r.max_files), files: Number(r.files),
    bytes: Number(r.bytes), created_at: Number(r.created_at), revoked_at: r.revoked_at === null || r.revoked_at === undefined ? null : Number(r.revoked_at),
    space_epoch: Number(r.space_epoch),
  };
}

const requestQuery = (db: Db | Tx) => db('file_requests as r').join('spaces as s', 's.id', 'r.space_id').select('r.*', 's.key_epoch as space_epoch');

/** The request, whatever its state; 404 for an unknown id. */
export async function findRequest(db: Db | Tx, requestId: string): Promise<RequestRow> {
  const row = await requestQuery(db).where('r.id', requestId).first();
  if (!row) throw new DomainError(ErrorCode.NotFound, 'no such request');
  return normalise(row);
}

/** Why the request takes no more files, or null. A key rotation counts as a revocation: the grant seals to the old key. */
export function goneReason(r: RequestRow, now: number): RequestGoneReason | null {
  if (r.revoked_at !== null || r.space_epoch !== r.key_epoch) return 'revoked';
  if (r.expires_at <= now) return 'expired';
  if (r.files >= r.max_files) return 'full';
  return null;
}

function gone(reason: RequestGoneReason): DomainError {
  const text = { expired: 'this request has expired', revoked: 'this request was withdrawn', full: 'this request has received all the files it allows' }[reason];
  return new DomainError(ErrorCode.RequestGone, text, { extra: { reason } });
}

export function requestInfo(r: RequestRow, publicUrl: string, now: number): FileRequestInfo {
  return {
    requestId: r.id, spaceId: r.space_id, url: `${publicUrl}/r/${r.id}`, createdAt: r.created_at, createdBy: r.created_by, expiresAt: r.expires_at,
    maxFiles: r.max_files, files: r.files, bytes: r.bytes, purpose: r.purpose, revokedAt: r.revoked_at, state: goneReason(r, now) ?? 'active',
  };
}

/** The facts every audit entry of a request carries (never the secret, requestAuth or the folder). */
const facts = (r: Pick<RequestRow, 'purpose' | 'space_id'>) => ({ purpose: r.purpose, spaceId: r.space_id });

/** Creates a request (an editor or manager of the space, who signed the grant with their own key). */
export async function createRequest(services: Services, caller: Caller, who: Who, spaceId: string, req: CreateFileRequest, now = Date.now()): Promise<FileRequestInfo> {
  const { space } = await spaceAccess(services.db, caller, spaceId, 'editor');
  await refuseIfFrozen(services.db, spaceId);
  const g = req.grant;
  const bad = (why: string) => new DomainError(ErrorCode.ValidationFailed, `grant: ${why}`);
  if (req.expiresAt <= now) throw new DomainError(ErrorCode.ValidationFailed, 'expiresAt: must be in the future');
  // The space's organisation sets the policy and owns the request, also when a member of another organisation makes it.
  const problem = requestPolicyProblem(space.classification as ClassName, await classPolicy(services.db, space.org_id, space.classification as ClassName), req.expiresAt, now);
  if (problem) throw policyRefusal(problem, space.classification as ClassName, 'request');
  if (g.requestId !== req.requestId || g.spaceId !== spaceId || g.expiresAt !== req.expiresAt || g.maxFiles !== req.maxFiles) throw bad('must name this request, space, expiry and file count');
  const me = await services.read('users').where({ id: caller.userId }).first('sign_public_key');
  if (g.signer !== me.sign_public_key) throw bad('must be signed by you');
  try {
    verifyUploadGrant(g);
  } catch {
    throw new DomainError(ErrorCode.BadSignature, 'grant: the signature does not verify');
  }
  const epoch = await services.read('space_epochs').where({ space_id: spaceId, key_epoch: space.key_epoch }).first('public_key');
  if (g.keyEpoch !== space.key_epoch || g.spacePublicKey !== epoch?.public_key) throw bad(`must seal to the space key of the current epoch ${space.key_epoch}`);
  const log = await services.read('space_log').where({ space_id: spaceId }).max({ seq: 'seq' }).first();
  if (g.memberSeq > Number(log?.seq ?? 0)) throw bad('memberSeq is beyond the membership log');
  return services.db.transaction(async (trx) => {
    if (await trx('file_requests').where({ id: req.requestId }).first('id')) throw new DomainError(ErrorCode.Conflict, 'a request with this id exists');
    const row = {
      id: req.requestId, org_id: space.org_id, space_id: spaceId, key_epoch: g.keyEpoch, request_public_key: g.requestPublicKey, auth_hash: req.authHash,
      grant: JSON.stringify(g), expires_at: req.expiresAt, max_files: req.maxFiles, files: 0, bytes: 0, purpose: req.purpose, created_by: caller.userId,
      created_at: now, revoked_at: null,
    };
    await trx('file_requests').insert(row);
    await services.audit.append(trx, {
      ...who, orgId: caller.orgId, action: 'filerequest.create', targetType: 'filerequest', targetId: req.requestId, outcome: 'success',
      details: { ...facts(row), expiresAt: req.expiresAt, maxFiles: req.maxFiles },
    });
    return requestInfo({ ...row, space_epoch: g.keyEpoch }, services.config.publicUrl, now);
  });
}

/** The caller's requests and every request of the spaces the caller manages (of any organisation: membership decides). */
export async function listRequests(services: Services, caller: Caller, spaceId: string | undefined, now = Date.now()): Promise<FileRequestInfo[]> {
  const { read } = services;
  const managed = read('space_members').where({ user_id: caller.userId, role: 'manager' }).select('space_id');
  const q = requestQuery(read).where((w) => w.where('r.created_by', caller.userId).orWhereIn('r.space_id', managed));
  if (spaceId !== undefined) q.andWhere('r.space_id', spaceId);
  return (await q.orderBy('r.created_at', 'desc')).map((r) => requestInfo(normalise(r), services.config.publicUrl, now));
}

/** Revokes a request (its creator or a manager of its space); anyone else gets the answer of a missing request. */
export async function revokeRequest(services: Services, caller: Caller, who: Who, requestId: string, now = Date.now()): Promise<void> {
  await services.db.transaction(async (trx) => {
    const row = await trx('file_requests').where({ id: requestId }).first();
    let allowed = row !== undefined && row.created_by === caller.userId;
    if (row && !allowed) allowed = Boolean(await trx('space_members').where({ space_id: row.space_id, user_id: caller.userId, role: 'manager' }).first('role'));
    if (!row || !allowed) throw new DomainError(ErrorCode.NotFound, 'no such request');
    const already = row.revoked_at !== null;
    if (!already) await trx('file_requests').where({ id: requestId }).whereNull('revoked_at').update({ revoked_at: now });
    await services.audit.append(trx, { ...who, orgId: caller.orgId, action: 'filerequest.revoke', targetType: 'filerequest', targetId: requestId, outcome: 'success', details: { ...facts(row), already } });
  });
}

/** What the page needs; 410 for a request that takes no more files. */
export function publicInfo(r: RequestRow, now = Date.now()): PublicRequestInfo {
  const reason = goneReason(r, now);
  if (reason) throw gone(reason);
  return {
    requestId: r.id, expiresAt: r.expires_at, maxFiles: r.max_files, filesLeft: r.max_files - r.files,
    maxFileBytes: Math.max(0, REQUEST_MAX_BYTES - r.bytes), grant: JSON.parse(r.grant),
  };
}

const RATE = (max: number) => ({ maxFailures: max, windowMs: REQUEST_RATE_WINDOW_MS, lockMs: REQUEST_RATE_WINDOW_MS });

/** Every public call is counted against the request and the IP address: a rate, never given back. */
export async function throttle(services: Services, r: RequestRow, who: Who, now = Date.now()): Promise<void> {
  const rate: ThrottleKey[] = [{ key: `request-rate:${r.id}`, policy: RATE(REQUEST_RATE_PER_REQUEST) }, { key: `request-rate:ip:${who.ip}`, policy: RATE(REQUEST_RATE_PER_IP) }];
  const counted = await reserveAttempt(services.tx, rate, now);
  if ('waitMs' in counted) throw new RetryLater(Math.ceil(counted.waitMs / 1000), 'too many requests: try again later');
}

/**
 * An upload call: the request must still take files, and the bearer proof (requestAuth) is checked and counted as
 * links count wrong secrets, per request and per IP address (a right one gives its count back).
 */
export async function authorise(services: Services, r: RequestRow, who: Who, auth: string | null, now = Date.now()): Promise<void> {
  const reason = goneReason(r, now);
  if (reason) throw gone(reason);
  const reserved = await reserveAttempt(services.tx, [{ key: `request:${r.id}`, policy: LINK_POLICY }, { key: `link:ip:${who.ip}`, policy: IP_POLICY }], now);
  if ('waitMs' in reserved) throw new RetryLater(Math.ceil(reserved.waitMs / 1000), 'too many wrong attempts on this request: try again later');
  if (auth === null || !checkLinkAuth(fromBase64Url(auth), r.auth_hash)) {
    await reserved.attempt.fail(now);
    throw new DomainError(ErrorCode.BadLinkAuth, 'the request link is incomplete or wrong', { auditOutcome: 'denied' });
  }
  await reserved.attempt.succeed();
}

/** After a chunk upload: counts its bytes against the request's budget (refused beforehand once the budget is spent). */
export async function countBytes(services: Services, r: RequestRow, who: Who, stored: { stored: number; duplicate: number; bytes: number }): Promise<void> {
  await services.tx(async (trx) => {
    await trx('file_requests').where({ id: r.id }).increment('bytes', stored.bytes);
    await services.audit.append(trx, { ...who, orgId: r.org_id, action: 'filerequest.chunks', targetType: 'filerequest', targetId: r.id, outcome: 'success', details: { ...facts(r), ...stored } });
  });
}

export function assertBudget(r: RequestRow, declared: number | null): void {
  if (r.bytes + (declared ?? 0) > REQUEST_MAX_BYTES) throw new DomainError(ErrorCode.PayloadTooLarge, 'this request has received all the bytes it allows');
}

type Row = { files: number | string };
const rowsOf = (result: unknown): Row[] => (Array.isArray(result) ? result : (result as { rows: Row[] }).rows) as Row[];

/** Commits one new file through the request: the receipt's slot must be the next one; the count rises atomically. */
export async function commitUpload(services: Services, r: RequestRow, who: Who, req: RequestCommit, now = Date.now()): Promise<{ seq: number; slot: number; filesLeft: number }> {
  const rc = req.receipt;
  const bad = (code: ErrorCode, why: string) => new DomainError(code, why);
  try {
    verifyUploadReceipt(rc, r.request_public_key);
  } catch {
    throw bad(ErrorCode.BadSignature, 'receipt: the signature does not verify with the request key');
  }
  if (rc.requestId !== r.id || rc.spaceId !== r.space_id || rc.fileId !== req.fileId || rc.versionId !== req.versionId) throw bad(ErrorCode.ValidationFailed, 'receipt: must name this request, space, file and version');
  if (req.fileKeyWrap.keyEpoch !== r.key_epoch) throw bad(ErrorCode.ValidationFailed, `fileKeyWrap: must seal to the request's key epoch ${r.key_epoch}`);
  const result = await services.tx(async (trx) => {
    const updated = rowsOf(await trx.raw(
      `UPDATE file_requests SET files = files + 1 WHERE id = ? AND revoked_at IS NULL AND expires_at > ? AND files < max_files AND files = ? RETURNING files`,
      [r.id, now, rc.slot - 1],
    ));
    if (updated.length === 0) return null;
    const c = await commitBatch(trx, services, { orgId: r.org_id, userId: r.created_by, deviceId: r.id }, r.space_id, r.request_public_key, [{
      fileId: req.fileId, versionId: req.versionId, parent: null, keyEpoch: r.key_epoch, manifest: req.manifest, chunks: req.chunks, deleted: false, fileKeyWrap: req.fileKeyWrap,
    }]);
    await trx('request_uploads').insert({ version_id: req.versionId, request_id: r.id, file_id: req.fileId, slot: rc.slot, receipt: JSON.stringify(rc), created_at: now });
    await services.audit.append(trx, { ...who, orgId: r.org_id, action: 'filerequest.upload', targetType: 'filerequest', targetId: r.id, outcome: 'success', details: { ...facts(r), fileId: req.fileId, versionId: req.versionId, slot: rc.slot, seq: c.lastSeq } });
    return { seq: c.lastSeq, slot: rc.slot, filesLeft: r.max_files - Number(updated[0]!.files) };
  });
  if (result) {
    services.events.publish({ spaceId: r.space_id, seq: result.seq });
    return result;
  }
  const now2 = await findRequest(services.db, r.id);
  const reason = goneReason(now2, now);
  if (reason) throw gone(reason);
  throw new DomainError(ErrorCode.Conflict, `slot ${rc.slot} is not the next one: sign the receipt again with slot ${now2.files + 1}`, { extra: { nextSlot: now2.files + 1 } });
}

/** Every refused public call of a known request is written in full under its organisation (the finality rules). */
export async function auditRefusal(services: Services, r: RequestRow, action: string, who: Who, err: DomainError): Promise<void> {
  const entry: AuditEntryInput = {
    ...who, orgId: r.org_id, action, targetType: 'filerequest', targetId: r.id,
    ...refusalFacts(err, facts(r)),
  };
  await services.audit.appendStandalone(entry);
}

/** The audit entry of a successful info read. */
export function infoAuditEntry(r: RequestRow, who: Who): AuditEntryInput {
  return { ...who, orgId: r.org_id, action: 'filerequest.info', targetType: 'filerequest', targetId: r.id, outcome: 'success', details: facts(r) };
}

/** For change pages and histories: the grant and receipt of each of `fileIds` created through a request. */
export async function requestUploads(hot: HotReads, fileIds: string[]): Promise<Record<string, RequestUploadView>> {
  const out: Record<string, RequestUploadView> = {};
  for (let i = 0; i < fileIds.length; i += 512) {
    const { marks, bindings } = inList(fileIds.slice(i, i + 512));
    const rows = await hot.all<{ file_id: string; receipt: string; grant: string }>(
      `SELECT u.file_id, u.receipt, r."grant" FROM request_uploads u JOIN file_requests r ON r.id = u.request_id WHERE u.file_id IN (${marks})`, bindings);
    for (const row of rows) out[row.file_id] = { grant: JSON.parse(row.grant), receipt: JSON.parse(row.receipt) };
  }
  return out;
}
