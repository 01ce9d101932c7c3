// Wire types of 2-step verification (TOTP, RFC 6238) and of the admin console's read endpoints (docs/api.md
// "Two-step verification" and "Admin views"). The console (web/admin/) parses every answer with these.
import * as z from 'zod';
import { Classification, Email, Id, OrgRole, SpaceRole } from './schemas.js';
import { LinkInfo } from './links.js';

/** A 6-digit code from an authenticator app (RFC 6238, SHA-1, 30 s). */
export const TotpCodeRequest = z.object({ code: z.string().regex(/^\d{6}$/, 'a code is 6 digits') }).strict();
export type TotpCodeRequest = z.infer<typeof TotpCodeRequest>;

/** GET /api/v1/auth/totp: where the caller stands. */
export const TotpStatus = z.object({
  /** the caller has a confirmed authenticator */
  enrolled: z.boolean(),
  /** the organisation's policy asks the caller's role for 2-step verification */
  required: z.boolean(),
  /** this session passed 2-step verification */
  verified: z.boolean(),
});
export type TotpStatus = z.infer<typeof TotpStatus>;

/** POST /api/v1/auth/totp/enrol: a new secret, to be confirmed with a code before it counts. */
export const TotpEnrolment = z.object({
  /** base32 (RFC 4648, no padding), for typing into an authenticator */
  secret: z.string().regex(/^[A-Z2-7]{32}$/),
  /** otpauth://totp/... for authenticator apps that read a link or a QR code */
  uri: z.string().startsWith('otpauth://totp/'),
  period: z.literal(30),
  digits: z.literal(6),
  algorithm: z.literal('SHA1'),
});
export type TotpEnrolment = z.infer<typeof TotpEnrolment>;

/** GET/PUT /api/v1/orgs/:orgId/security: the organisation's 2-step policy. */
export const SecurityPolicy = z.object({ totpRequiredForAdmins: z.boolean() }).strict();
export type SecurityPolicy = z.infer<typeof SecurityPolicy>;

/** Roles the 2-step policy applies to: every role with admin or audit rights. */
export const TOTP_ROLES: readonly OrgRole[] = ['main_admin', 'backup_admin', 'domain_admin', 'auditor'];

/** One person as the console lists them (GET /api/v1/orgs/:orgId/users, with 2-step state). */
export const OrgUser = z.object({
  userId: Id,
  email: Email,
  role: OrgRole,
  createdAt: z.number().int(),
  disabled: z.boolean(),
  /** has a confirmed authenticator (absent from servers before 2-step verification) */
  totp: z.boolean().optional(),
});
export type OrgUser = z.infer<typeof OrgUser>;

/** GET /api/v1/orgs/:orgId/admin/spaces: every space of the organisation, with class and members (no file names). */
export const AdminSpace = z.object({
  spaceId: Id,
  name: z.string(),
  classification: Classification,
  createdAt: z.number().int(),
  createdBy: Email,
  keyEpoch: z.number().int(),
  members: z.array(z.object({ userId: Id, email: Email, role: SpaceRole })),
});
export type AdminSpace = z.infer<typeof AdminSpace>;

/** GET /api/v1/orgs/:orgId/admin/links: every link of the organisation, with its maker and space named. */
export const AdminLink = LinkInfo.extend({ createdByEmail: Email, spaceName: z.string() });
export type AdminLink = z.infer<typeof AdminLink>;

/** GET /api/v1/orgs/:orgId/audit/status: the last verification of the whole chain (docs/crypto.md §12). */
export const AuditChainStatus = z.object({
  ok: z.boolean(),
  verifiedAt: z.number().int(),
  entries: z.number().int(),
  lastCheckpointSeq: z.number().int(),
  /** the first entry that does not verify, when not ok */
  firstBroken: z.object({ seq: z.number().int(), reason: z.string() }).nullable(),
});
export type AuditChainStatus = z.infer<typeof AuditChainStatus>;
