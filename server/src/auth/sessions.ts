// Per-device sessions: a bearer token per device, stored only as a hash, with sliding expiry and revocation.
import { ErrorCode, newId, newSecretToken, tokenHash, type OrgRole } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller, Services } from '../context.js';
import type { Tx } from '../db/db.js';
import type { KCtx } from '../http.js';
import type { CachedSession } from './access-cache.js';

/** A session lives 30 days from its last use. */
export const SESSION_TTL_MS = 30 * 24 * 3600 * 1000;
/** last_seen/expiry are written at most this often per session, so reads stay reads. */
const TOUCH_EVERY_MS = 60 * 1000;

export interface NewSession {
  token: string;
  deviceId: string;
  expiresAt: number;
}

/** Creates a session (a device) for a user inside the caller's transaction. */
export async function createSession(trx: Tx, userId: string, deviceName: string, client: string | null, now = Date.now()): Promise<NewSession> {
  const token = newSecretToken();
  const deviceId = newId();
  const expiresAt = now + SESSION_TTL_MS;
  await trx('sessions').insert({ id: deviceId, user_id: userId, device_name: deviceName, token_hash: tokenHash(token), created_at: now, last_seen_at: now, expires_at: expiresAt, revoked_at: null, client });
  return { token, deviceId, expiresAt };
}

export function bearer(ctx: KCtx): string | null {
  const header = ctx.get('authorization');
  const m = /^Bearer ([A-Za-z0-9_-]{43})$/.exec(header);
  return m ? m[1]! : null;
}

interface SessionRow {
  deviceId: string; userId: string; expiresAt: number | string; revokedAt: number | string | null; lastSeenAt: number | string;
  orgId: string; role: string; email: string; disabledAt: number | string | null; signPublicKey: string;
}
const SESSION_SQL = 'SELECT s.id AS "deviceId", s.user_id AS "userId", s.expires_at AS "expiresAt", s.revoked_at AS "revokedAt", s.last_seen_at AS "lastSeenAt", '
  + 'u.org_id AS "orgId", u.role AS "role", u.email AS "email", u.disabled_at AS "disabledAt", u.sign_public_key AS "signPublicKey" '
  + 'FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? LIMIT 1';

/**
 * Resolves the caller from the bearer token, or answers 401 (the denial is audited by the error middleware). A session
 * cached under the generation this request read is trusted (auth/access-cache.ts); anything else, and any refusal, is
 * decided on its row read now.
 */
export async function authenticate(services: Services, ctx: KCtx): Promise<Caller> {
  const token = bearer(ctx);
  if (!token) throw new DomainError(ErrorCode.Unauthenticated, ctx.get('authorization') ? 'malformed bearer token' : 'a session token is required');
  const hash = tokenHash(token);
  const { generation, heads } = await services.access.current();
  const now = Date.now();
  let session = services.access.session(hash, generation);
  if (!session || session.expiresAt <= now) session = await readSession(services, ctx, hash, generation, now);
  ctx.state.orgId = session.orgId;
  if (now - session.lastSeenAt > TOUCH_EVERY_MS) {
    // Through the group committer: the many concurrent requests of one session that all see it stale share a COMMIT.
    await services.tx((trx) => trx('sessions').where({ id: session.deviceId }).update({ last_seen_at: now, expires_at: now + SESSION_TTL_MS }));
    session.lastSeenAt = now;
    session.expiresAt = now + SESSION_TTL_MS;
  }
  return { userId: session.userId, orgId: session.orgId, role: session.role as OrgRole, deviceId: session.deviceId, email: session.email, signPublicKey: session.signPublicKey, generation, heads };
}

async function readSession(services: Services, ctx: KCtx, hash: string, generation: number, now: number): Promise<CachedSession> {
  const row = await services.hot.first<SessionRow>(SESSION_SQL, [hash]);
  if (!row) throw new DomainError(ErrorCode.Unauthenticated, 'unknown session');
  // Attribute the denial to the session's user, so a revoked device's attempts show up in their trail.
  ctx.state.orgId = row.orgId;
  if (row.revokedAt !== null) throw new DomainError(ErrorCode.Unauthenticated, 'this device was signed out');
  if (Number(row.expiresAt) <= now) throw new DomainError(ErrorCode.Unauthenticated, 'the session expired: log in again');
  if (row.disabledAt !== null) throw new DomainError(ErrorCode.Unauthenticated, 'the account is disabled');
  const session: CachedSession = {
    deviceId: row.deviceId, userId: row.userId, orgId: row.orgId, role: row.role, email: row.email, signPublicKey: row.signPublicKey,
    expiresAt: Number(row.expiresAt), lastSeenAt: Number(row.lastSeenAt),
  };
  services.access.putSession(hash, generation, session);
  return session;
}
