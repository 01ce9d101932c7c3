// Files that came through a file request (docs/crypto.md §9.2; rows of docs/storage.md §3.5): their first version is
// signed by the request's key, not a member's, and counts only under the grant a writer signed and the receipt of its
// slot. The independent reader judges them here, from `file_requests.grant` and `request_uploads.receipt`.
import { writerAt, type VerifiedLog } from './membership.js';
import { b64u, canonical, equal, sodium, utf8, verifySigned } from './primitives.js';

export interface UploadRule {
  requestPublicKey: string;
  keyEpoch: number;
  memberSeq: number;
  folder: string;
  expiresAt: number;
  versionId: string;
}

interface Grant {
  v: number; kind: string; requestId: string; spaceId: string; keyEpoch: number; spacePublicKey: string; memberSeq: number; expiresAt: number;
  maxFiles: number; requestPublicKey: string; folderSealed: string; signer: string; sig: string;
}

/** fileId -> the rule its upload is judged by, for every upload whose grant and receipt verify (others are left out). */
export function uploadRules(spaceId: string, log: VerifiedLog, pairs: Map<number, { pk: Uint8Array; sk: Uint8Array }>, rows: { file_id: string; version_id: string; receipt: string; grant: string }[]): Map<string, UploadRule> {
  const rules = new Map<string, UploadRule>();
  const slots = new Set<string>();
  for (const row of rows) {
    const grant = JSON.parse(row.grant) as Grant;
    const { sig, ...unsigned } = grant;
    if (grant.v !== 1 || grant.kind !== 'upload-grant' || grant.spaceId !== spaceId) continue;
    if (!verifySigned('kluis/upload-grant/v1', utf8(canonical(unsigned)), b64u(sig), b64u(grant.signer)) || !writerAt(log, grant.signer, grant.memberSeq)) continue;
    const pair = pairs.get(grant.keyEpoch);
    const logKey = log.epochKeys.get(grant.keyEpoch);
    if (!pair || !logKey || !equal(logKey, b64u(grant.spacePublicKey))) continue;
    const folder = new TextDecoder('utf-8', { fatal: true }).decode(sodium.crypto_box_seal_open(b64u(grant.folderSealed), pair.pk, pair.sk));
    const receipt = JSON.parse(row.receipt) as { v: number; kind: string; requestId: string; spaceId: string; fileId: string; versionId: string; slot: number; sig: string };
    const { sig: rsig, ...runsigned } = receipt;
    if (receipt.v !== 1 || receipt.kind !== 'request-upload' || receipt.requestId !== grant.requestId || receipt.spaceId !== spaceId) continue;
    if (receipt.fileId !== row.file_id || receipt.versionId !== row.version_id || receipt.slot < 1 || receipt.slot > grant.maxFiles) continue;
    if (!verifySigned('kluis/request-upload/v1', utf8(canonical(runsigned)), b64u(rsig), b64u(grant.requestPublicKey))) continue;
    const slot = `${grant.requestId}/${receipt.slot}`;
    if (slots.has(slot)) continue;
    slots.add(slot);
    rules.set(row.file_id, { requestPublicKey: grant.requestPublicKey, keyEpoch: grant.keyEpoch, memberSeq: grant.memberSeq, folder, expiresAt: grant.expiresAt, versionId: row.version_id });
  }
  return rules;
}

/** Whether a manifest signed by `signer` is the upload its rule allows (crypto.md §9.2, point 2). */
export function uploadManifestOk(rule: UploadRule | undefined, signer: string, m: { versionId: string; v: number; memberSeq?: number; parent: string | null; kind: string; deleted: boolean; path: string }, createdAt: number): boolean {
  if (!rule || rule.requestPublicKey !== signer || rule.versionId !== m.versionId) return false;
  const slash = m.path.lastIndexOf('/');
  const folder = slash < 0 ? '' : m.path.slice(0, slash);
  return m.v === 2 && m.memberSeq === rule.memberSeq && m.parent === null && m.kind === 'file' && !m.deleted && folder === rule.folder && createdAt <= rule.expiresAt;
}
