// Typed calls of the account, directory, space and recovery endpoints (docs/api.md) over ApiClient. Every answer
// is parsed with a schema here, at the boundary: the server is trusted to serve, not to be well-formed.
// NOTE: desktop/ uses zod through @kluis/shared's dependency; it should be declared in desktop/package.json.
import * as z from 'zod';
import {
  Classification, DirectoryEntry, ErrorCode, Id, Key32, KeyBundleSchema, KluisError, MembershipEntrySchema, OrgRole, SessionResponse, Sig, SpaceKeyWrapSchema, SpaceRole, b64u,
  type KeyBundle, type MembershipEntry, type SpaceKeyWrap,
} from '@kluis/shared';
import type { ApiClient } from './client.js';

/** The server answered something that does not have the documented shape. */
export class ProtocolError extends KluisError {
  override name = 'ProtocolError';
  constructor(message: string) {
    super(ErrorCode.BadRequest, message);
  }
}

function check<T extends z.ZodTypeAny>(schema: T, value: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ProtocolError(`unexpected answer from the server (${what}: ${issue.path.join('.') || 'body'}: ${issue.message})`);
  }
  return r.data;
}

const KdfLimits = z.object({ opsLimit: z.number().int(), memLimit: z.number().int() });

export const InfoResponse = z.object({ name: z.string(), version: z.string(), env: z.string(), apiVersion: z.number().int(), kdf: KdfLimits });
export type InfoResponse = z.infer<typeof InfoResponse>;
/** prelogin answers exactly what a client needs to derive its keys; the limits are checked by the caller. */
const PreloginAnswer = z.object({ kdf: z.object({ salt: b64u(16), opsLimit: z.number().int(), memLimit: z.number().int() }) });

export const MeResponse = z.object({
  userId: Id, email: z.string(), role: OrgRole, orgId: Id, orgName: z.string(), deviceId: Id,
  encPublicKey: Key32, signPublicKey: Key32, identitySig: Sig, keyBundle: KeyBundleSchema,
});
export type MeResponse = z.infer<typeof MeResponse>;

export const Device = z.object({
  deviceId: Id, name: z.string(), client: z.string().nullable(), createdAt: z.number(), lastSeenAt: z.number(), expiresAt: z.number(),
  revokedAt: z.number().nullable(), current: z.boolean(),
});
export type Device = z.infer<typeof Device>;

export const SpaceSummary = z.object({
  spaceId: Id, name: z.string(), classification: Classification, keyEpoch: z.number().int().min(1), seq: z.number().int(), retentionDays: z.number().int(), role: SpaceRole,
  /** Managers only: members an admin asked to remove, whose signed removal this client may send (docs/admin.md). */
  pendingRemovals: z.array(Id).optional(),
});
export type SpaceSummary = z.infer<typeof SpaceSummary>;

export const SpaceMember = z.object({ userId: Id, email: z.string(), role: SpaceRole, encPublicKey: Key32, signPublicKey: Key32, identitySig: Sig, addedBy: Id, addedAt: z.number() });
export type SpaceMember = z.infer<typeof SpaceMember>;

export const SpaceDetails = SpaceSummary.extend({
  members: z.array(SpaceMember),
  epochs: z.array(z.object({ keyEpoch: z.number().int().min(1), publicKey: Key32, createdBy: Id, prevSealed: b64u(80).nullable() })),
  myWraps: z.array(SpaceKeyWrapSchema),
  /** The membership log (docs/crypto.md §4.1), verified by the client before anything else of this answer is used. */
  log: z.array(MembershipEntrySchema),
  /** True when no remaining manager can complete a pending removal: the space takes no new versions (docs/admin.md). */
  frozen: z.boolean().optional(),
});
export type SpaceDetails = z.infer<typeof SpaceDetails>;

export const RecoveryStartResponse = z.object({ challenge: b64u(32), sealedByRecovery: b64u().min(100).max(200), encPublicKey: Key32, signPublicKey: Key32 });
export type RecoveryStartResponse = z.infer<typeof RecoveryStartResponse>;

export interface SignupBody {
  inviteToken: string;
  email: string;
  kdf: { salt: string; opsLimit: number; memLimit: number };
  authKey: string;
  encPublicKey: string;
  signPublicKey: string;
  identitySig: string;
  keyBundle: KeyBundle;
  deviceName: string;
}

export interface RecoveryFinishBody {
  email: string;
  challenge: string;
  kdf: { salt: string; opsLimit: number; memLimit: number };
  authKey: string;
  keyBundle: KeyBundle;
  signature: string;
  deviceName: string;
}

export const api = {
  info: async (c: ApiClient) => check(InfoResponse, await c.json('GET', '/api/v1/info'), 'info'),
  prelogin: async (c: ApiClient, email: string) => check(PreloginAnswer, await c.json('POST', '/api/v1/auth/prelogin', { email }), 'prelogin'),
  signup: async (c: ApiClient, body: SignupBody) => check(SessionResponse, await c.json('POST', '/api/v1/auth/signup', body), 'signup'),
  login: async (c: ApiClient, body: { email: string; authKey: string; deviceName: string }) => check(SessionResponse, await c.json('POST', '/api/v1/auth/login', body), 'login'),
  logout: async (c: ApiClient): Promise<void> => {
    await c.json('POST', '/api/v1/auth/logout');
  },
  me: async (c: ApiClient) => check(MeResponse, await c.json('GET', '/api/v1/me'), 'me'),
  devices: async (c: ApiClient) => check(z.object({ devices: z.array(Device) }), await c.json('GET', '/api/v1/devices'), 'devices').devices,
  revokeDevice: async (c: ApiClient, deviceId: string): Promise<void> => {
    await c.json('DELETE', `/api/v1/devices/${encodeURIComponent(deviceId)}`);
  },
  /** With `spaceId`, a person of another organisation is found too, where the space's class allows external people. */
  directoryByEmail: async (c: ApiClient, email: string, spaceId?: string) => check(DirectoryEntry, await c.json('GET', `/api/v1/directory?email=${encodeURIComponent(email)}${spaceId === undefined ? '' : `&space=${encodeURIComponent(spaceId)}`}`), 'directory'),
  directoryById: async (c: ApiClient, userId: string) => check(DirectoryEntry, await c.json('GET', `/api/v1/directory?userId=${encodeURIComponent(userId)}`), 'directory'),
  spaces: async (c: ApiClient) => check(z.object({ spaces: z.array(SpaceSummary) }), await c.json('GET', '/api/v1/spaces'), 'spaces').spaces,
  space: async (c: ApiClient, spaceId: string) => check(SpaceDetails, await c.json('GET', `/api/v1/spaces/${encodeURIComponent(spaceId)}`), 'space'),
  createSpace: async (c: ApiClient, body: { id: string; name: string; classification: Classification; publicKey: string; wrap: SpaceKeyWrap; entry: MembershipEntry }) =>
    check(SpaceSummary.omit({ retentionDays: true }), await c.json('POST', '/api/v1/spaces', body), 'space'),
  addMember: async (c: ApiClient, spaceId: string, body: { userId: string; role: SpaceRole; wrap: SpaceKeyWrap; entry: MembershipEntry }): Promise<void> => {
    await c.json('POST', `/api/v1/spaces/${encodeURIComponent(spaceId)}/members`, body);
  },
  setRole: async (c: ApiClient, spaceId: string, userId: string, body: { role: SpaceRole; entry: MembershipEntry }): Promise<void> => {
    await c.json('PATCH', `/api/v1/spaces/${encodeURIComponent(spaceId)}/members/${encodeURIComponent(userId)}`, body);
  },
  removeMember: async (c: ApiClient, spaceId: string, userId: string, body: { newEpoch: { keyEpoch: number; publicKey: string; prevSealed: string; wraps: { userId: string; wrap: SpaceKeyWrap }[] }; entry: MembershipEntry }): Promise<void> => {
    await c.json('DELETE', `/api/v1/spaces/${encodeURIComponent(spaceId)}/members/${encodeURIComponent(userId)}`, body);
  },
  recoveryStart: async (c: ApiClient, email: string) => check(RecoveryStartResponse, await c.json('POST', '/api/v1/auth/recovery/start', { email }), 'recovery/start'),
  recoveryFinish: async (c: ApiClient, body: RecoveryFinishBody) => check(SessionResponse, await c.json('POST', '/api/v1/auth/recovery/finish', body), 'recovery/finish'),
} as const;
