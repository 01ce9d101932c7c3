// Wire types of direct shares (docs/api.md "Direct shares", docs/crypto.md §5 "Direct shares"): one file of a space
// shared with one colleague of the same organisation by sealing the file's key (each key epoch of it) to the
// colleague's encPublicKey, in file-key wraps signed by whoever adds them. The colleague is not a member of the
// space: they see that file's newest version they hold a key for, and fetch only its chunks.
import * as z from 'zod';
import { ChunkId, DirectoryEntry, FileKeyWrapSchema, Id, MAX_CHUNK_IDS } from './schemas.js';

/** Most key epochs one request may add (a file has one key per epoch it was written in). */
export const MAX_SHARE_WRAPS = 1000;

/**
 * POST /api/v1/spaces/:spaceId/files/:fileId/shares (an editor or manager of the space). Idempotent per
 * (file, recipient): an active share gets the epochs it lacks; wraps of epochs it holds already are ignored.
 */
export const CreateFileShareRequest = z.object({
  recipientUserId: Id,
  /** The only role a direct share gives: read the file. */
  role: z.literal('viewer').default('viewer'),
  /** One per key epoch; each sealed to the recipient's listed encPublicKey and signed by the caller. */
  wraps: z.array(FileKeyWrapSchema).min(1).max(MAX_SHARE_WRAPS),
}).strict();
export type CreateFileShareRequest = z.infer<typeof CreateFileShareRequest>;

/** A share as the sharer (or any writer of the space) sees it. */
export const FileShareInfo = z.object({
  shareId: Id,
  spaceId: Id,
  fileId: Id,
  recipientUserId: Id,
  recipientEmail: z.string(),
  role: z.literal('viewer'),
  createdBy: Id,
  createdAt: z.number().int(),
  revokedAt: z.number().int().nullable(),
  /** The key epochs the recipient holds a wrap of. */
  keyEpochs: z.array(z.number().int().min(1)),
});
export type FileShareInfo = z.infer<typeof FileShareInfo>;

/** The answer of POST …/shares: the share, whether it is new, and the epochs this request added. */
export const CreateFileShareResponse = FileShareInfo.extend({ created: z.boolean(), added: z.array(z.number().int().min(1)) });
export type CreateFileShareResponse = z.infer<typeof CreateFileShareResponse>;

/** GET /api/v1/spaces/:spaceId/shares[?fileId=]: the active shares of the space (writers), with the recipients' keys. */
export const SpaceSharesResponse = z.object({
  shares: z.array(FileShareInfo.extend({ recipient: DirectoryEntry })),
});
export type SpaceSharesResponse = z.infer<typeof SpaceSharesResponse>;

/** One wrap of a share with the account that added it (the recipient checks that account's identity). */
export const ShareWrap = z.object({ signerUserId: Id, wrap: FileKeyWrapSchema });

/** One item of GET /api/v1/shared: a share made to the caller, with the newest version they hold a key for. */
export const SharedItem = z.object({
  shareId: Id,
  spaceId: Id,
  fileId: Id,
  role: z.literal('viewer'),
  sharedBy: Id,
  createdAt: z.number().int(),
  wraps: z.array(ShareWrap),
  /** The newest retained version whose key epoch the share covers; null if there is none. */
  version: z.object({
    versionId: Id,
    keyEpoch: z.number().int().min(1),
    deleted: z.boolean(),
    /** b64u of the sealed manifest (docs/crypto.md §8) */
    manifest: z.string().regex(/^[A-Za-z0-9_-]*$/),
    authorUserId: Id,
    createdAt: z.number().int(),
  }).nullable(),
  /** A newer version exists under a key epoch the share does not cover yet (a writer has to add its wrap). */
  newerNotShared: z.boolean(),
});
export type SharedItem = z.infer<typeof SharedItem>;

/** GET /api/v1/shared: the items, and the directory entries of everyone they name (sharers, wrap signers, authors). */
export const SharedResponse = z.object({ shares: z.array(SharedItem), people: z.array(DirectoryEntry) });
export type SharedResponse = z.infer<typeof SharedResponse>;

/** POST /api/v1/shared/:shareId/chunks/download {ids}: frames, as chunks/download. */
export const SharedChunksRequest = z.object({ ids: z.array(ChunkId).min(1).max(MAX_CHUNK_IDS) }).strict();
