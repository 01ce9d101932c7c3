// Device administration and remote wipe (docs/api.md "Device administration and remote wipe", docs/admin.md
// "Devices"). An organisation's main and backup admins see and revoke every device of it; a domain admin those of
// the people in its domains' spaces (never an admin's). Revoking ends the device's session; with `wipe` it also
// records an order that the device learns at its next contact, through its own token (revoked or expired, the token
// still names the device, and only the device holds it). The device answers with a report signed by the key it
// registered (docs/crypto.md §14). Nothing here knows HTTP: errors are DomainErrors the routes pass on.
import { ErrorCode, newId, tokenHash, verifyWipeReport, type OrgDevice, type OrgRole, type WipeReport, type WipeReportRecord } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Db, Tx } from '../db/db.js';
import type { AuditLog } from '../audit/types.js';

/** Who acts: a signed-in admin, or the operator (kluis-admin: null user, full rights in every organisation). */
export type DeviceAdmin = { userId: string; role: OrgRole } | null;

/** The request facts of an audit entry (actor, ip, client ...). */
export interface AuditWho {
  actorUserId?: string | null;
  actorDeviceId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  client?: string | null;
}

const FULL: OrgRole[] = ['main_admin', 'backup_admin'];
const DEVICE_ROLES: OrgRole[] = [...FULL, 'domain_admin'];

/** Refuses (403) a caller whose role administers no devices. */
export function requireDeviceAdmin(admin: DeviceAdmin): void {
  if (admin && !DEVICE_ROLES.includes(admin.role)) throw new DomainError(ErrorCode.Forbidden, `this needs one of the roles: ${DEVICE_ROLES.join(', ')}`);
}

/**
 * The devices of `orgId` that `admin` may see, as a query on sessions `s` joined with users `u`. A domain admin sees the
 * devices of members of the spaces of its domains, except those of main and backup admins (who outrank it).
 */
function scoped(db: Db | Tx, orgId: string, admin: DeviceAdmin) {
  const q = db('sessions as s').join('users as u', 'u.id', 's.user_id').where('u.org_id', orgId);
  if (admin && admin.role === 'domain_admin') {
    q.whereNotIn('u.role', FULL).whereIn('s.user_id', db('space_members as m').join('spaces as sp', 'sp.id', 'm.space_id')
      .join('domain_admins as da', 'da.domain_id', 'sp.domain_id').where('da.user_id', admin.userId).andWhere('sp.org_id', orgId).select('m.user_id'));
  }
  return q;
}

const COLUMNS = [
  's.id', 's.device_name', 's.user_id', 'u.email', 's.client', 's.created_at', 's.last_seen_at', 's.expires_at', 's.revoked_at',
  'w.ordered_at', 'o.email as ordered_by_email', 'w.delivered_at', 'w.reported_at', 'w.report',
];

function withWipes<T extends ReturnType<typeof scoped>>(q: T): T {
  return q.leftJoin('device_wipes as w', 'w.device_id', 's.id').leftJoin('users as o', 'o.id', 'w.ordered_by') as T;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function toDevice(r: Record<string, unknown>, now: number): OrgDevice {
  const report = typeof r.report === 'string' ? (JSON.parse(r.report) as WipeReport) : null;
  const ordered = r.ordered_at !== null && r.ordered_at !== undefined;
  const status = ordered ? (r.reported_at !== null ? 'wiped' : 'wipe-ordered') : r.revoked_at !== null ? 'revoked' : Number(r.expires_at) <= now ? 'expired' : 'active';
  return {
    deviceId: String(r.id), name: String(r.device_name), userId: String(r.user_id), ownerEmail: String(r.email), client: (r.client as string | null) ?? null,
    createdAt: Number(r.created_at), lastSeenAt: Number(r.last_seen_at), expiresAt: Number(r.expires_at), revokedAt: num(r.revoked_at), status,
    wipe: ordered ? {
      orderedAt: Number(r.ordered_at), orderedByEmail: (r.ordered_by_email as string | null) ?? null, deliveredAt: num(r.delivered_at), reportedAt: num(r.reported_at),
      folders: report ? report.folders.length : null, filesRemoved: report?.filesRemoved ?? null, bytesRemoved: report?.bytesRemoved ?? null,
      unsynced: report?.unsynced ?? null, failed: report?.failed ?? null,
    } : null,
  };
}

/** Every device of the organisation the admin may see, newest contact first. */
export async function listOrgDevices(db: Db, orgId: string, admin: DeviceAdmin): Promise<OrgDevice[]> {
  const rows = await withWipes(scoped(db, orgId, admin)).orderBy([{ column: 's.last_seen_at', order: 'desc' }, { column: 's.id' }]).select(COLUMNS);
  const now = Date.now();
  return rows.map((r: Record<string, unknown>) => toDevice(r, now));
}

async function oneDevice(trx: Db | Tx, orgId: string, admin: DeviceAdmin, deviceId: string): Promise<OrgDevice | null> {
  const row = await withWipes(scoped(trx, orgId, admin)).where('s.id', deviceId).first(COLUMNS);
  return row ? toDevice(row, Date.now()) : null;
}

/**
 * Revokes a device (its session ends; the caller ends its event streams after the commit) and, with `wipe`, orders it
 * to wipe itself. A device already revoked (by its user, say) can still be ordered to wipe; ordering twice keeps the
 * first order; a device that reported its wipe answers 409. Unknown or out-of-scope devices are 404 alike.
 */
export async function revokeDevice(trx: Tx, audit: AuditLog, input: { orgId: string; deviceId: string; wipe: boolean; admin: DeviceAdmin }, who: AuditWho): Promise<OrgDevice> {
  const { orgId, deviceId, wipe, admin } = input;
  const before = await oneDevice(trx, orgId, admin, deviceId);
  if (!before) throw new DomainError(ErrorCode.NotFound, 'no such device in this organisation');
  if (before.status === 'wiped') throw new DomainError(ErrorCode.Conflict, 'this device reported its wipe already');
  const now = Date.now();
  const wasRevoked = before.revokedAt !== null;
  if (!wasRevoked) await trx('sessions').where({ id: deviceId }).whereNull('revoked_at').update({ revoked_at: now });
  await audit.append(trx, { orgId, ...who, action: 'device.admin.revoke', targetType: 'device', targetId: deviceId, outcome: 'success', details: { ownerUserId: before.userId, wipe, alreadyRevoked: wasRevoked } });
  if (wipe && !before.wipe) {
    const orderId = newId();
    await trx('device_wipes').insert({ id: orderId, device_id: deviceId, org_id: orgId, user_id: before.userId, ordered_by: admin?.userId ?? null, ordered_at: now, delivered_at: null, reported_at: null, report: null, signature: null });
    await audit.append(trx, { orgId, ...who, action: 'device.wipe.order', targetType: 'device', targetId: deviceId, outcome: 'success', details: { ownerUserId: before.userId, orderId } });
  }
  return (await oneDevice(trx, orgId, admin, deviceId))!;
}

interface DeviceSession {
  id: string;
  user_id: string;
  org_id: string;
  device_public_key: string | null;
}

/** The session a device token belongs to, whatever its state (revoked, expired, the account disabled); 401 if none. */
async function sessionOfToken(trx: Db | Tx, token: string | null): Promise<DeviceSession> {
  if (!token) throw new DomainError(ErrorCode.Unauthenticated, 'the device\'s session token is required');
  const row = await trx('sessions as s').join('users as u', 'u.id', 's.user_id').where('s.token_hash', tokenHash(token)).first('s.id', 's.user_id', 'u.org_id', 's.device_public_key');
  if (!row) throw new DomainError(ErrorCode.Unauthenticated, 'unknown session');
  return row as DeviceSession;
}

/** Registers the device key of an active session, once: the same key again is fine, another one is 409. */
export async function registerDeviceKey(trx: Tx, audit: AuditLog, input: { orgId: string; deviceId: string; publicKey: string }, who: AuditWho): Promise<void> {
  const row = await trx('sessions').where({ id: input.deviceId }).first('device_public_key');
  if (row.device_public_key === input.publicKey) return;
  if (row.device_public_key !== null) throw new DomainError(ErrorCode.Conflict, 'this device registered another key already');
  await trx('sessions').where({ id: input.deviceId }).whereNull('device_public_key').update({ device_public_key: input.publicKey });
  await audit.append(trx, { orgId: input.orgId, ...who, action: 'device.key.register', targetType: 'device', targetId: input.deviceId, outcome: 'success' });
}

/** What the device with this token must do: wipe (an order not yet reported) or nothing. Each delivery is audited. */
export async function checkWipe(trx: Tx, audit: AuditLog, token: string | null, who: AuditWho, setOrg: (orgId: string, deviceId: string) => void): Promise<{ wipe: false } | { wipe: true; orderId: string; orderedAt: number }> {
  const s = await sessionOfToken(trx, token);
  setOrg(s.org_id, s.id);
  const order = await trx('device_wipes').where({ device_id: s.id }).whereNull('reported_at').first('id', 'ordered_at', 'delivered_at');
  const actor = { orgId: s.org_id, ...who, actorUserId: s.user_id, actorDeviceId: s.id, targetType: 'device', targetId: s.id, outcome: 'success' as const };
  if (!order) {
    await audit.append(trx, { ...actor, action: 'device.wipe.check', details: { wipe: false } });
    return { wipe: false };
  }
  if (order.delivered_at === null) await trx('device_wipes').where({ id: order.id }).update({ delivered_at: Date.now() });
  await audit.append(trx, { ...actor, action: 'device.wipe.deliver', details: { orderId: order.id, first: order.delivered_at === null } });
  return { wipe: true, orderId: order.id, orderedAt: Number(order.ordered_at) };
}

/**
 * Records a device's wipe report: the token must be the device's, the order its own and open, and the signature the
 * registered device key's over exactly this report. Anyone else's token, order or key is refused.
 */
export async function recordWipeReport(trx: Tx, audit: AuditLog, input: { token: string | null; report: WipeReport; signature: string }, who: AuditWho, setOrg: (orgId: string, deviceId: string) => void): Promise<{ reportedAt: number }> {
  const s = await sessionOfToken(trx, input.token);
  setOrg(s.org_id, s.id);
  const { report } = input;
  const order = await trx('device_wipes').where({ id: report.orderId, device_id: s.id }).first('id', 'reported_at', 'user_id');
  if (!order || report.deviceId !== s.id || report.userId !== s.user_id) throw new DomainError(ErrorCode.NotFound, 'no such wipe order for this device');
  if (order.reported_at !== null) throw new DomainError(ErrorCode.Conflict, 'this wipe was reported already');
  if (s.device_public_key === null) throw new DomainError(ErrorCode.Conflict, 'this device registered no key: its report cannot be verified');
  try {
    verifyWipeReport(report, input.signature, s.device_public_key);
  } catch {
    throw new DomainError(ErrorCode.BadSignature, 'the report is not signed by this device\'s key');
  }
  const reportedAt = Date.now();
  await trx('device_wipes').where({ id: order.id }).update({ reported_at: reportedAt, report: JSON.stringify(report), signature: input.signature, delivered_at: trx.raw('coalesce(delivered_at, ?)', [reportedAt]) });
  await audit.append(trx, {
    orgId: s.org_id, ...who, actorUserId: s.user_id, actorDeviceId: s.id, action: 'device.wipe.report', targetType: 'device', targetId: s.id, outcome: 'success',
    details: { orderId: order.id, folders: report.folders.length, filesRemoved: report.filesRemoved, bytesRemoved: report.bytesRemoved, unsynced: report.unsynced, failed: report.failed },
  });
  return { reportedAt };
}

/** A recorded wipe report, for the device's owner or an admin who may see the device; 404 otherwise or if none. */
export async function wipeReportOf(db: Db, viewer: { userId: string; orgId: string; role: OrgRole }, deviceId: string): Promise<WipeReportRecord> {
  const own = await db('sessions').where({ id: deviceId, user_id: viewer.userId }).first('id');
  const visible = own ?? (DEVICE_ROLES.includes(viewer.role) ? await scoped(db, viewer.orgId, viewer).where('s.id', deviceId).first('s.id') : undefined);
  const row = visible ? await db('device_wipes as w').join('sessions as s', 's.id', 'w.device_id').where('w.device_id', deviceId).whereNotNull('w.reported_at').first('w.report', 'w.signature', 'w.reported_at', 's.device_public_key') : undefined;
  if (!row) throw new DomainError(ErrorCode.NotFound, 'no wipe report for such a device');
  return { report: JSON.parse(row.report) as WipeReport, signature: row.signature, devicePublicKey: row.device_public_key, reportedAt: Number(row.reported_at) };
}
