// Delegated administration (docs/api.md "Administration", docs/admin.md "Roles"): domains, the people of an
// organisation, the admins and the two-step replacement of the main access admin. One module for the server, the
// clients and the admin console.
import * as z from 'zod';
import { nameSchema } from './names.js';
import { Classification, Id, OrgRole, SpaceRole } from './schemas.js';

/** A proposal to replace the main access admin lapses after 72 hours unless a second admin confirms it. */
export const SUCCESSION_TTL_MS = 72 * 3600 * 1000;

// ----- requests

export const DomainRequest = z.object({ name: nameSchema() }).strict();
export const DomainAdminRequest = z.object({ userId: Id }).strict();
/** Puts a space in a domain, or (null) in none. */
export const SpaceDomainRequest = z.object({ domainId: Id.nullable() }).strict();
/** Asks the space's managers' clients to remove a member (they sign the removal and rotate the key). */
export const RemovalRequest = z.object({ userId: Id }).strict();
export const SuccessionRequest = z.object({ successorUserId: Id }).strict();

// ----- answers

export const PersonStatus = z.enum(['active', 'blocked', 'offboarded']);
export type PersonStatus = z.infer<typeof PersonStatus>;

export const DomainView = z.object({ domainId: Id, name: z.string(), spaces: z.number().int(), admins: z.array(z.object({ userId: Id, email: z.string() })) });
export type DomainView = z.infer<typeof DomainView>;

export const PersonView = z.object({
  userId: Id,
  email: z.string(),
  role: OrgRole,
  status: PersonStatus,
  /** the domains this person administers */
  domains: z.array(z.object({ domainId: Id, name: z.string() })),
  /** devices with a live session */
  devices: z.number().int(),
  /** last use of any of their sessions (ms), null when never */
  lastSeenAt: z.number().nullable(),
  createdAt: z.number(),
});
export type PersonView = z.infer<typeof PersonView>;

export const AdminSpaceView = z.object({
  spaceId: Id,
  name: z.string(),
  classification: Classification,
  domainId: Id.nullable(),
  members: z.number().int(),
  keyEpoch: z.number().int(),
  /** members an admin asked to remove whose signed removal (and key rotation) a manager's client has not sent yet */
  pendingRemovals: z.array(Id),
});
export type AdminSpaceView = z.infer<typeof AdminSpaceView>;

export const AdminMemberView = z.object({ userId: Id, email: z.string(), role: SpaceRole, status: PersonStatus, addedAt: z.number(), removalPending: z.boolean() });
export type AdminMemberView = z.infer<typeof AdminMemberView>;

export const SuccessionView = z.object({
  proposalId: Id,
  successorUserId: Id,
  proposedBy: Id,
  proposedAt: z.number(),
  expiresAt: z.number(),
  state: z.enum(['open', 'confirmed', 'cancelled', 'expired']),
  confirmedBy: Id.nullable(),
});
export type SuccessionView = z.infer<typeof SuccessionView>;

export const OffboardAnswer = z.object({
  userId: Id,
  sessionsEnded: z.number().int(),
  /** spaces whose removal (signed by a manager's client, with a key rotation) is now pending */
  spaces: z.array(z.object({ spaceId: Id, managers: z.number().int() })),
});
export type OffboardAnswer = z.infer<typeof OffboardAnswer>;
