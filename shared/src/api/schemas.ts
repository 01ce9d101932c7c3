// Wire types of the HTTP API (docs/api.md) with their runtime schemas. The server parses every request with
// these at the boundary; the client parses responses with them. Binary values are base64url, ids 16 bytes.
import * as z from 'zod';
import { nameSchema } from './names.js';

const B64U = /^[A-Za-z0-9_-]*$/;
/** base64url text of exactly `bytes` bytes (no padding). */
export const b64u = (bytes?: number) => {
  const s = z.string().regex(B64U, 'must be base64url');
  return bytes === undefined ? s : s.length(Math.ceil((bytes * 4) / 3));
};
export const Id = b64u(16);
export const Key32 = b64u(32);
export const Sig = b64u(64);
export const ChunkId = z.string().regex(/^[0-9a-f]{64}$/, 'a chunk id is 64 lower-case hex digits');
export const Email = z.string().trim().toLowerCase().max(320).email();
export const DeviceName = nameSchema();
/** A space's name (shown to every member): the rules of ./names.ts. */
export const SpaceName = nameSchema();
export const OrgRole = z.enum(['main_admin', 'backup_admin', 'domain_admin', 'auditor', 'member']);
export type OrgRole = z.infer<typeof OrgRole>;
export const SpaceRole = z.enum(['viewer', 'editor', 'manager']);
export type SpaceRole = z.infer<typeof SpaceRole>;
export const Classification = z.enum(['public', 'internal', 'confidential', 'personal', 'social-personal', 'medical']);
export type Classification = z.infer<typeof Classification>;

export const KdfParamsSchema = z.object({
  salt: b64u(16),
  opsLimit: z.number().int().min(1).max(16),
  memLimit: z.number().int().min(8192).max(1_073_741_824),
});

export const KeyBundleSchema = z.object({
  v: z.literal(1),
  encPublicKey: Key32,
  signPublicKey: Key32,
  sealedByPassword: b64u().min(100).max(200),
  sealedByRecovery: b64u().min(100).max(200),
});

const WrapCommon = {
  v: z.literal(1),
  spaceId: Id,
  keyEpoch: z.number().int().min(1),
  recipient: Key32,
  sealed: b64u(80),
  signer: Key32,
  sig: Sig,
};
export const SpaceKeyWrapSchema = z.object({ ...WrapCommon, kind: z.literal('space-key'), spacePublicKey: Key32 }).strict();
const FileKeyWrapV1Schema = z.object({ ...WrapCommon, kind: z.literal('file-key'), fileId: Id }).strict();
/** A file-key wrap made in a batch (docs/crypto.md §5.2): one signed statement per batch, a Merkle proof per wrap. */
const FileKeyWrapV2Schema = z.object({
  v: z.literal(2),
  kind: z.literal('file-key'),
  spaceId: Id,
  keyEpoch: z.number().int().min(1),
  fileId: Id,
  recipient: Key32,
  ephemeral: Key32,
  sealed: b64u(73),
  signer: Key32,
  index: z.number().int().min(0),
  size: z.number().int().min(1),
  proof: z.array(Key32).max(64),
  root: Key32,
  sig: Sig,
}).strict();
export const FileKeyWrapSchema = z.discriminatedUnion('v', [FileKeyWrapV1Schema, FileKeyWrapV2Schema]);

// ----- auth

export const PreloginRequest = z.object({ email: Email }).strict();
export const PreloginResponse = z.object({ kdf: KdfParamsSchema });

export const SignupRequest = z.object({
  inviteToken: b64u(32),
  email: Email,
  kdf: KdfParamsSchema,
  authKey: Key32,
  encPublicKey: Key32,
  signPublicKey: Key32,
  identitySig: Sig,
  keyBundle: KeyBundleSchema,
  deviceName: DeviceName,
}).strict();

export const LoginRequest = z.object({ email: Email, authKey: Key32, deviceName: DeviceName }).strict();

export const SessionResponse = z.object({
  userId: Id,
  orgId: Id,
  role: OrgRole,
  deviceId: Id,
  token: b64u(32),
  expiresAt: z.number().int(),
  keyBundle: KeyBundleSchema,
});
export type SessionResponse = z.infer<typeof SessionResponse>;

export const InviteRequest = z.object({ email: Email, role: OrgRole.default('member') }).strict();
export const RoleChangeRequest = z.object({ role: OrgRole }).strict();

export const DirectoryEntry = z.object({
  userId: Id, email: z.string(), encPublicKey: Key32, signPublicKey: Key32, identitySig: Sig,
  /** Only for a person of another organisation than the caller's (docs/api.md "External people"). */
  org: z.object({ orgId: Id, name: z.string() }).optional(),
});
export type DirectoryEntry = z.infer<typeof DirectoryEntry>;

// ----- spaces

/** One signed entry of a space's membership log (docs/crypto.md §4.1); every rule is checked by verifying it. */
export const MembershipEntrySchema = z.object({
  v: z.literal(1),
  kind: z.literal('membership'),
  spaceId: Id,
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  prev: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits'),
  op: z.enum(['create', 'add', 'remove', 'role', 'rotate']),
  ts: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  user: z.object({ userId: Id, email: z.string().max(320), encPublicKey: Key32, signPublicKey: Key32, identitySig: Sig }).strict().nullable(),
  role: SpaceRole.nullable(),
  keyEpoch: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  spacePublicKey: Key32.nullable(),
  signer: Key32,
  sig: Sig,
}).strict();

export const CreateSpaceRequest = z.object({
  id: Id,
  name: SpaceName,
  classification: Classification.default('internal'),
  publicKey: Key32,
  wrap: SpaceKeyWrapSchema,
  /** The log's first entry: op "create", signed by the creator. */
  entry: MembershipEntrySchema,
  retentionDays: z.number().int().min(1).max(36500).optional(),
}).strict();

export const AddMemberRequest = z.object({ userId: Id, role: SpaceRole, wrap: SpaceKeyWrapSchema, entry: MembershipEntrySchema }).strict();
export const ChangeMemberRequest = z.object({ role: SpaceRole, entry: MembershipEntrySchema }).strict();
/**
 * Removing a member rotates the space key: the new epoch's public key, a wrap for every remaining member, the
 * previous epoch's secret key sealed to the new public key (the epoch chain), and the log entry.
 */
export const RemoveMemberRequest = z.object({
  newEpoch: z.object({
    keyEpoch: z.number().int().min(2),
    publicKey: Key32,
    prevSealed: b64u(80),
    wraps: z.array(z.object({ userId: Id, wrap: SpaceKeyWrapSchema }).strict()).min(1).max(10_000),
  }).strict(),
  entry: MembershipEntrySchema,
}).strict();

// ----- commits and changes

export const MAX_COMMIT_VERSIONS = 1000;
export const MAX_CHUNKS_PER_VERSION = 1_000_000;

/**
 * The signed statement of a batch of version-2 file-key wraps, sent once for all its wraps (docs/api.md "A batch of
 * wraps sent whole"; docs/crypto.md §5.2).
 */
export const WrapBatchSchema = z.object({
  v: z.literal(2),
  kind: z.literal('file-key'),
  spaceId: Id,
  keyEpoch: z.number().int().min(1),
  recipient: Key32,
  ephemeral: Key32,
  signer: Key32,
  size: z.number().int().min(1).max(MAX_COMMIT_VERSIONS),
  root: Key32,
  sig: Sig,
}).strict();

/** A version's wrap as a member of `wrapBatches[batch]`: the server rebuilds the rest (the proof from the batch's tree). */
export const BatchWrapRef = z.object({
  batch: z.number().int().min(0).max(MAX_COMMIT_VERSIONS - 1),
  index: z.number().int().min(0).max(MAX_COMMIT_VERSIONS - 1),
  sealed: b64u(73),
}).strict();

export const CommitVersion = z.object({
  fileId: Id,
  versionId: Id,
  parent: Id.nullable(),
  keyEpoch: z.number().int().min(1),
  manifest: b64u().min(1).max(64 * 1024 * 1024),
  chunks: z.array(ChunkId).max(MAX_CHUNKS_PER_VERSION),
  deleted: z.boolean(),
  /** required for the first version of a file and for the first version under a new key epoch */
  fileKeyWrap: FileKeyWrapSchema.optional(),
  /** instead of fileKeyWrap: the version's wrap as a member of one of the request's wrapBatches */
  batchWrap: BatchWrapRef.optional(),
}).strict();
export type CommitVersion = z.infer<typeof CommitVersion>;

export const CommitRequest = z.object({
  versions: z.array(CommitVersion).min(1).max(MAX_COMMIT_VERSIONS),
  wrapBatches: z.array(WrapBatchSchema).min(1).max(MAX_COMMIT_VERSIONS).optional(),
}).strict();
export type CommitRequest = z.infer<typeof CommitRequest>;

/** Most ids in one chunks/missing or chunks/download request (their JSON body may be up to 1 MiB). */
export const MAX_CHUNK_IDS = 10_000;
export const ChunkIdsRequest = z.object({ ids: z.array(ChunkId).min(1).max(MAX_CHUNK_IDS, `at most ${MAX_CHUNK_IDS} ids per request`) }).strict();
