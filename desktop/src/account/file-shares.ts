// Direct shares, the sharer's side (docs/crypto.md §5 "Direct shares", docs/api.md "Direct shares"): the file's key
// of every epoch this account holds is sealed to the colleague's encPublicKey, taken from the directory with a
// verified identity signature and checked against the key pinned on first use. The server keeps one share per file
// and colleague and adds only the epochs it lacks, so sharing again is how a missing epoch is added.
import type * as z from 'zod';
import {
  CreateFileShareResponse, ErrorCode, KluisError, SpaceSharesResponse, verifyIdentity, wrapFileKey,
  type DirectoryEntry, type FileKeyWrap,
} from '@kluis/shared';
import type { ApiClient } from '../api/client.js';
import { ApiRequestError } from '../api/client.js';
import { ProtocolError } from '../api/endpoints.js';
import type { Account } from './state.js';
import { checkPins } from './pins.js';
import { verifiedColleague } from './spaces.js';

function parsed<T extends z.ZodTypeAny>(schema: T, value: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ProtocolError(`unexpected answer from the server (${what}: ${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message})`);
  return r.data;
}

/** The file's keys this account holds, by key epoch. */
export type EpochKeys = ReadonlyMap<number, Uint8Array>;

/** Signed wraps of each key of the file, sealed to `recipient` (an X25519 public key, b64u). */
export function shareWraps(account: Account, target: { spaceId: string; fileId: string; recipient: string }, keys: EpochKeys): FileKeyWrap[] {
  return [...keys].sort(([a], [b]) => a - b).map(([keyEpoch, fileKey]) => wrapFileKey(fileKey, { ...target, keyEpoch }, account.keys));
}

async function postShare(c: ApiClient, spaceId: string, fileId: string, recipientUserId: string, wraps: FileKeyWrap[]): Promise<CreateFileShareResponse> {
  const path = `/api/v1/spaces/${encodeURIComponent(spaceId)}/files/${encodeURIComponent(fileId)}/shares`;
  const answer = parsed(CreateFileShareResponse, await c.json('POST', path, { recipientUserId, role: 'viewer', wraps }), 'share');
  if (answer.fileId !== fileId || answer.recipientUserId !== recipientUserId) throw new ProtocolError('the server answered for another file or colleague');
  return answer;
}

/**
 * Shares a file with the colleague at `email`: every key epoch in `keys`. Idempotent: an existing share gets the
 * epochs it lacks (`added`), and nothing else changes.
 */
export async function shareFileWith(c: ApiClient, account: Account, file: { spaceId: string; fileId: string }, email: string, keys: EpochKeys): Promise<CreateFileShareResponse & { fingerprintEmail: string; org: { orgId: string; name: string } | null }> {
  const colleague = await verifiedColleague(c, { email, spaceId: file.spaceId }, account);
  if (colleague.userId === account.session.userId) throw new KluisError(ErrorCode.ValidationFailed, 'you cannot share a file with yourself');
  const wraps = shareWraps(account, { ...file, recipient: colleague.encPublicKey }, keys);
  return { ...(await postShare(c, file.spaceId, file.fileId, colleague.userId, wraps)), fingerprintEmail: colleague.email, org: colleague.org ?? null };
}

/** A recipient as the server lists it, accepted only with a valid identity signature and the pinned keys. */
function verifiedRecipient(account: Account, entry: DirectoryEntry): DirectoryEntry {
  verifyIdentity(entry, entry.email, entry.identitySig);
  checkPins(account, [entry]);
  return entry;
}

/**
 * After commits that brought fresh file keys (a key rotation), seals each new key to the recipients of the file's
 * active shares. Returns what was added and, per share, why it could not be (a changed key, a refusal): those
 * shares keep their older epochs and `kluis share file` adds the missing one later.
 */
export async function addShareWraps(c: ApiClient, account: Account, spaceId: string, fresh: { fileId: string; keyEpoch: number; fileKey: Uint8Array }[]): Promise<{ added: number; problems: string[] }> {
  const out = { added: 0, problems: [] as string[] };
  if (fresh.length === 0) return out;
  const byFile = new Map(fresh.map((f) => [f.fileId, f]));
  const { shares } = parsed(SpaceSharesResponse, await c.json('GET', `/api/v1/spaces/${encodeURIComponent(spaceId)}/shares`), 'shares');
  for (const s of shares) {
    const f = byFile.get(s.fileId);
    if (!f || s.keyEpochs.includes(f.keyEpoch)) continue;
    try {
      const who = verifiedRecipient(account, s.recipient);
      if (who.userId !== s.recipientUserId) throw new ProtocolError('the server listed another recipient');
      const wraps = shareWraps(account, { spaceId, fileId: f.fileId, recipient: who.encPublicKey }, new Map([[f.keyEpoch, f.fileKey]]));
      out.added += (await postShare(c, spaceId, f.fileId, who.userId, wraps)).added.length;
    } catch (err) {
      if (err instanceof ApiRequestError && err.status >= 500) throw err;
      out.problems.push(`share ${s.shareId} (${s.recipient.email}): ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return out;
}

/** Revokes a direct share; false when the server knows no share of this id for the caller (maybe it is a link). */
export async function revokeFileShare(c: ApiClient, shareId: string): Promise<boolean> {
  try {
    await c.json('DELETE', `/api/v1/shares/${encodeURIComponent(shareId)}`);
    return true;
  } catch (err) {
    if (err instanceof ApiRequestError && err.status === 404) return false;
    throw err;
  }
}
