// Migration 010 (server/src/db/migration-010-admin.ts): a database where an organisation had two main admins (two main
// admin invites, both used, before 010) migrates with the earliest kept as main admin and the other made a backup
// admin; afterwards the database itself refuses a second main admin, in any organisation.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import * as k from '@kluis/shared';
import { migrations } from '../../server/dist/db/migrations.js';
import { openServerDb } from '../helpers/server.js';

const dirs: string[] = [];
test.before(() => k.initCrypto());
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The migrations before 010, as a database made by the previous release has them. */
const before010: Knex.MigrationSource<unknown> = {
  getMigrations: async (loadExtensions) => (await migrations.getMigrations(loadExtensions)).filter((m) => migrations.getMigrationName(m) < '010'),
  getMigrationName: (m) => migrations.getMigrationName(m as never),
  getMigration: (m) => migrations.getMigration(m as never),
};

function user(orgId: string, role: string, createdAt: number) {
  const id = k.newId();
  return {
    id, org_id: orgId, email: `${id.toLowerCase()}@example.be`, role, kdf_salt: 's', kdf_ops: 1, kdf_mem: 8192, auth_verifier: 'v', enc_public_key: 'e', sign_public_key: 's',
    identity_sig: 'i', key_bundle: '{}', created_at: createdAt, disabled_at: null,
  };
}

test('an organisation with two main admins keeps the earliest; after 010 the database refuses a second one', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kluis-m010-'));
  dirs.push(dir);
  const db = await openServerDb(dir);
  try {
    await db.migrate.latest({ migrationSource: before010, tableName: 'schema_migrations' });
    const orgId = k.newId();
    await db('orgs').insert({ id: orgId, name: 'Twee hoofden', enterprise_number: '0123456749', created_at: 1 });
    const first = user(orgId, 'main_admin', 1000);
    const second = user(orgId, 'main_admin', 2000);
    const member = user(orgId, 'member', 500);
    await db('users').insert([second, first, member]);

    await db.migrate.latest({ migrationSource: migrations, tableName: 'schema_migrations' });
    const roles = Object.fromEntries((await db('users').where({ org_id: orgId }).select('id', 'role')).map((r) => [r.id, r.role]));
    t.deepEqual(roles, { [first.id]: 'main_admin', [second.id]: 'backup_admin', [member.id]: 'member' });
    await t.throwsAsync(db('users').where({ id: member.id }).update({ role: 'main_admin' }));
    await t.throwsAsync(db('users').insert(user(orgId, 'main_admin', 3000)));
    // One per organisation, not one in all: another organisation has its own.
    const otherOrg = k.newId();
    await db('orgs').insert({ id: otherOrg, name: 'Ander', enterprise_number: '0212345668', created_at: 1 });
    await t.notThrowsAsync(db('users').insert(user(otherOrg, 'main_admin', 3000)));
  } finally {
    await db.destroy();
  }
});
