// The one contract between the desktop app's renderer and its main process (docs/desktop.md "IPC"). Every request
// is a `domain:verb` channel with a request schema and a response schema; main parses each request with the
// schema before any handler runs, and answers `{ok: true, value}` or `{ok: false, error: {code, message}}`.
// Events flow the other way on the `event` channel, typed by AppEvent. The preload exposes exactly these
// channels and nothing else. This module imports only zod and the wire schemas (no crypto), so the renderer's
// bundle stays small and the same schemas run on both sides.
import * as z from 'zod';
import { Classification, Email, Id, SpaceRole } from '@kluis/shared/schemas';
import { CHANNEL_NAMES, EVENT_CHANNEL, IPC_ERRORS, type Channel } from './channels.js';

export { CHANNEL_NAMES, EVENT_CHANNEL, IPC_ERRORS, type Channel };

/** A path inside a synced folder, relative, `/`-separated (the sync engine's own rules apply in main). */
const RelPath = z.string().min(1).max(4096);
const FolderId = z.string().min(1).max(64);
const ServerUrl = z.string().url().max(2000).refine((u) => /^https?:\/\//.test(u), 'an http(s) address');
const Password = z.string().min(1).max(1024);

export const FolderState = z.enum(['up-to-date', 'syncing', 'paused', 'error', 'offline']);
export type FolderState = z.infer<typeof FolderState>;

export const FolderStatus = z.object({
  folderId: FolderId,
  path: z.string(),
  spaceId: Id,
  spaceName: z.string(),
  state: FolderState,
  /** Files waiting to go up or come down, and their bytes (live progress). */
  pendingFiles: z.number().int().min(0),
  pendingBytes: z.number().min(0),
  /** Bytes per second over the last few seconds; null when idle. */
  rate: z.number().min(0).nullable(),
  /** Seconds left at that rate; null when unknown. */
  etaSeconds: z.number().min(0).nullable(),
  conflicts: z.number().int().min(0),
  lastSyncedAt: z.number().int().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});
export type FolderStatus = z.infer<typeof FolderStatus>;

export const AccountView = z.object({
  server: z.string(),
  email: z.string(),
  /** Safety number of the account's identity key (docs/crypto.md §3), in groups for reading aloud. */
  fingerprint: z.string(),
  recoveryKeyConfirmed: z.boolean(),
});

export const Settings = z.object({
  language: z.enum(['nl', 'fr', 'en']),
  startAtLogin: z.boolean(),
  /** Upload limit in bytes per second; null: unlimited. */
  uploadLimit: z.number().int().min(16 * 1024).max(10 * 1024 ** 3).nullable(),
  downloadLimit: z.number().int().min(16 * 1024).max(10 * 1024 ** 3).nullable(),
  notifications: z.boolean(),
}).strict();
export type Settings = z.infer<typeof Settings>;

const Empty = z.object({}).strict();
const Ok = z.object({ ok: z.literal(true) });

/** Every channel: request and response schemas. Adding one here is the only way to add one to the preload. */
export const CHANNELS = {
  'app:status': { request: Empty, response: z.object({ version: z.string(), account: AccountView.nullable(), folders: z.array(FolderStatus), keysProtected: z.enum(['os-keychain', 'file-only']) }) },

  'account:signup': {
    request: z.object({ server: ServerUrl, email: Email, invite: z.string().min(1).max(200), password: Password, deviceName: z.string().min(1).max(100) }).strict(),
    response: z.object({ account: AccountView, recoveryKey: z.string() }),
  },
  'account:login': {
    request: z.object({ server: ServerUrl, email: Email, password: Password, deviceName: z.string().min(1).max(100) }).strict(),
    response: z.object({ account: AccountView }),
  },
  /** The user typed back words of the recovery key shown once at sign-up: proof that it was written down. */
  'account:confirmRecovery': { request: z.object({ words: z.array(z.object({ index: z.number().int().min(0), word: z.string().max(64) })).min(2).max(8) }).strict(), response: Ok },
  'account:logout': { request: Empty, response: Ok },

  'spaces:list': { request: Empty, response: z.object({ spaces: z.array(z.object({ spaceId: Id, name: z.string(), role: SpaceRole, classification: Classification })) }) },
  'folders:add': {
    request: z.object({ path: z.string().min(1).max(4096), space: z.union([z.object({ spaceId: Id }), z.object({ newSpaceName: z.string().min(1).max(200), classification: Classification })]) }).strict(),
    response: FolderStatus,
  },
  'folders:pause': { request: z.object({ folderId: FolderId }).strict(), response: FolderStatus },
  'folders:resume': { request: z.object({ folderId: FolderId }).strict(), response: FolderStatus },
  /** Stops syncing the folder; its files stay on disk. */
  'folders:remove': { request: z.object({ folderId: FolderId }).strict(), response: Ok },
  'folders:open': { request: z.object({ folderId: FolderId, path: RelPath.optional() }).strict(), response: Ok },
  /** Opens the system's folder picker (main owns dialogs). */
  'folders:choose': { request: Empty, response: z.object({ path: z.string().nullable() }) },

  'conflicts:list': { request: z.object({ folderId: FolderId }).strict(), response: z.object({ conflicts: z.array(z.object({ path: RelPath, copyPath: RelPath, at: z.number().int(), otherAuthor: z.string() })) }) },
  /**
   * "keep this one": `keep` names the copy that stays at the path; the other goes to the version history. Added for
   * the main-process handlers: `keep: 'both'` (the copy stays as a plain file beside it) and `copyPath` (which copy,
   * when a path has several; optional when it has one).
   */
  'conflicts:resolve': { request: z.object({ folderId: FolderId, path: RelPath, keep: z.enum(['mine', 'theirs', 'both']), copyPath: RelPath.optional() }).strict(), response: Ok },

  'share:link': {
    request: z.object({ folderId: FolderId, path: RelPath, expiresDays: z.number().int().min(1).max(90), maxDownloads: z.number().int().min(1).max(10_000).nullable(), password: Password.nullable(), purpose: z.string().trim().min(3).max(500) }).strict(),
    response: z.object({ link: z.string(), linkId: Id, expiresAt: z.number().int(), maxDownloads: z.number().int().nullable() }),
  },
  /** Looks a colleague up before sharing: their key's fingerprint, and whether it is the pinned one. */
  'share:colleague': { request: z.object({ email: Email }).strict(), response: z.object({ email: z.string(), fingerprint: z.string(), pinned: z.enum(['new', 'same', 'changed']) }) },
  'share:file': { request: z.object({ folderId: FolderId, path: RelPath, email: Email, role: z.literal('viewer') }).strict(), response: z.object({ shareId: Id, fingerprint: z.string() }) },
  /** A colleague made a member of the folder's space with a role (`kluis space add-member`): every file, not one. */
  'share:member': { request: z.object({ folderId: FolderId, email: Email, role: SpaceRole }).strict(), response: z.object({ spaceName: z.string(), role: SpaceRole, fingerprint: z.string() }) },

  'versions:list': { request: z.object({ folderId: FolderId, path: RelPath }).strict(), response: z.object({ versions: z.array(z.object({ versionId: Id, at: z.number().int(), size: z.number().int().min(0), author: z.string(), deleted: z.boolean(), current: z.boolean() })) }) },
  'versions:restore': { request: z.object({ folderId: FolderId, path: RelPath, versionId: Id }).strict(), response: Ok },

  'devices:list': { request: Empty, response: z.object({ devices: z.array(z.object({ deviceId: Id, name: z.string(), lastSeenAt: z.number().int(), current: z.boolean(), revoked: z.boolean() })) }) },
  'devices:revoke': { request: z.object({ deviceId: Id }).strict(), response: Ok },

  'settings:get': { request: Empty, response: Settings },
  'settings:set': { request: Settings.partial().strict(), response: Settings },
} as const satisfies Record<Channel, { request: z.ZodType; response: z.ZodType }>; // both ways: a name per schema, a schema per name
export type Request<C extends Channel> = z.input<(typeof CHANNELS)[C]['request']>;
export type Response<C extends Channel> = z.infer<(typeof CHANNELS)[C]['response']>;

export interface IpcError {
  /** A stable code (shared ErrorCode values, or one of IPC_ERRORS). */
  code: string;
  /** A sentence the renderer may show. Never a secret, a stack or a path outside the user's folders. */
  message: string;
}
export type Result<T> = { ok: true; value: T } | { ok: false; error: IpcError };


/** Main → renderer, on the single `event` channel. Progress is coalesced to at most 10 a second. */
export const AppEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('status'), folders: z.array(FolderStatus) }),
  z.object({ type: z.literal('activity'), at: z.number().int(), folderId: FolderId, kind: z.enum(['uploaded', 'downloaded', 'deleted', 'moved', 'conflict', 'refused', 'shared-with-me', 'error']), path: z.string().nullable(), detail: z.string().nullable(), count: z.number().int().nonnegative().optional() }),
  z.object({ type: z.literal('wiped'), removed: z.object({ folders: z.number().int(), files: z.number().int(), unsynced: z.array(z.string()) }) }),
]);
export type AppEvent = z.infer<typeof AppEvent>;
