// Shared by the chunk store suites and the crash child: a minimal org / user / space in a fresh database,
// and an index-versus-objects consistency check (the invariants in server/src/storage/chunks.ts).
import { randomBytes, randomInt } from 'node:crypto';
import type { Knex } from 'knex';
import type { OrgBlobStore } from '../../server/dist/blobstore/index.js';
import { chunkKey, packKey } from '../../server/dist/storage/chunks.js';

export interface SpaceFixture {
  orgId: string;
  userId: string;
  spaceId: string;
}

/** A value for a NOT NULL column this helper does not know (other engineers add columns to these tables). */
function filler(type: string, maxLength: string | number | null): string | number {
  if (/int|real|num|dec|double|float/i.test(type)) return 0;
  if (/bool/i.test(type)) return 0;
  const max = maxLength === null ? 16 : Number(maxLength);
  return 'x'.repeat(Math.max(1, Math.min(max, 16)));
}

async function insertRow(db: Knex, table: string, known: Record<string, unknown>): Promise<void> {
  const columns = (await db(table).columnInfo()) as unknown as Record<string, { type: string; maxLength: string | number | null; nullable: boolean; defaultValue: unknown }>;
  const row: Record<string, unknown> = { ...known };
  for (const [name, info] of Object.entries(columns)) {
    if (name in row || info.nullable || info.defaultValue !== null) continue;
    row[name] = filler(info.type, info.maxLength);
  }
  for (const name of Object.keys(row)) if (!(name in columns)) delete row[name];
  await db(table).insert(row);
}

/** Inserts an organisation, a user and a space (ids: lower-case hex, valid as blob-store org ids). */
export async function createSpace(db: Knex, ids: Partial<SpaceFixture> = {}): Promise<SpaceFixture> {
  const orgId = ids.orgId ?? `o${randomBytes(8).toString('hex')}`;
  const userId = ids.userId ?? `u${randomBytes(8).toString('hex')}`;
  const spaceId = ids.spaceId ?? `s${randomBytes(8).toString('hex')}`;
  const now = Date.now();
  if (!(await db('orgs').where({ id: orgId }).first('id'))) {
    await insertRow(db, 'orgs', { id: orgId, name: 'Test org', enterprise_number: String(randomInt(1e9, 1e10 - 1)).padStart(10, '0'), created_at: now });
  }
  if (!(await db('users').where({ id: userId }).first('id'))) {
    await insertRow(db, 'users', {
      id: userId,
      org_id: orgId,
      email: `${userId}@example.test`,
      role: 'member',
      kdf_salt: 'salt',
      kdf_ops: 2,
      kdf_mem: 67108864,
      auth_verifier: 'v',
      enc_public_key: 'e',
      sign_public_key: 's',
      identity_sig: 'sig',
      key_bundle: '{}',
      created_at: now,
    });
  }
  await insertRow(db, 'spaces', {
    id: spaceId,
    org_id: orgId,
    name: 'Test space',
    classification: 'internal',
    key_epoch: 1,
    seq: 0,
    retention_days: 30,
    created_by: userId,
    created_at: now,
  });
  return { orgId, userId, spaceId };
}

export interface IndexSnapshot {
  chunks: number;
  packs: number;
}

export async function countRows(db: Knex, spaceId: string): Promise<IndexSnapshot> {
  const c = (await db('chunks').where({ space_id: spaceId }).count({ n: '*' }).first()) as { n: number | string };
  const p = (await db('packs').where({ space_id: spaceId }).count({ n: '*' }).first()) as { n: number | string };
  return { chunks: Number(c.n), packs: Number(p.n) };
}

export async function listObjects(org: OrgBlobStore, prefix = ''): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const e of org.list(prefix)) out.set(e.key, e.size);
  return out;
}

/**
 * Problems in the index of a space versus its objects (empty = consistent):
 *  - a chunk row pointing at a missing object, a pack too short for it, or a standalone object of another size;
 *  - a live pack whose dead_bytes is not size - sum(live chunk lengths);
 *  - retired packs (should be gone after a finished compaction or a sweep);
 *  - with `orphans`: objects under spaces/<id>/packs|chunks that no row references.
 */
export async function checkIndex(db: Knex, org: OrgBlobStore, spaceId: string, options: { orphans?: boolean } = {}): Promise<string[]> {
  const problems: string[] = [];
  const objects = await listObjects(org, `spaces/${spaceId}/`);
  const packs = (await db('packs').where({ space_id: spaceId }).select('id', 'size', 'dead_bytes', 'state')) as { id: string; size: number; dead_bytes: number; state: string }[];
  const rows = (await db('chunks').where({ space_id: spaceId }).select('id', 'length', 'pack_id', 'offset', 'live')) as { id: string; length: number; pack_id: string | null; offset: number | null; live: number | boolean }[];
  const packById = new Map(packs.map((p) => [p.id, p]));
  const liveBytes = new Map<string, number>();
  const referenced = new Set<string>();
  for (const r of rows) {
    if (r.pack_id === null) {
      const key = chunkKey(spaceId, r.id);
      referenced.add(key);
      const size = objects.get(key);
      if (size === undefined) problems.push(`chunk ${r.id}: standalone object missing`);
      else if (size !== Number(r.length)) problems.push(`chunk ${r.id}: standalone object has ${size} bytes, row says ${r.length}`);
      continue;
    }
    const pack = packById.get(r.pack_id);
    if (!pack) {
      problems.push(`chunk ${r.id}: pack row ${r.pack_id} missing`);
      continue;
    }
    if (pack.state !== 'live') problems.push(`chunk ${r.id}: points at ${pack.state} pack ${pack.id}`);
    const key = packKey(spaceId, pack.id);
    const size = objects.get(key);
    if (size === undefined) problems.push(`chunk ${r.id}: pack object ${pack.id} missing`);
    else if (size !== Number(pack.size)) problems.push(`pack ${pack.id}: object has ${size} bytes, row says ${pack.size}`);
    if (Number(r.offset) + Number(r.length) > Number(pack.size)) problems.push(`chunk ${r.id}: beyond the end of pack ${pack.id}`);
    if (r.live) liveBytes.set(pack.id, (liveBytes.get(pack.id) ?? 0) + Number(r.length));
  }
  for (const p of packs) {
    if (p.state === 'retired') {
      problems.push(`pack ${p.id}: retired row left`);
      continue;
    }
    referenced.add(packKey(spaceId, p.id));
    if (!objects.has(packKey(spaceId, p.id))) problems.push(`pack ${p.id}: object missing`);
    const expectDead = Number(p.size) - (liveBytes.get(p.id) ?? 0);
    if (Number(p.dead_bytes) !== expectDead) problems.push(`pack ${p.id}: dead_bytes ${p.dead_bytes}, expected ${expectDead}`);
  }
  if (options.orphans) {
    for (const key of objects.keys()) if (!referenced.has(key)) problems.push(`object ${key}: not referenced by any row`);
  }
  return problems;
}
