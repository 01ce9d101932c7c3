// The cache generation (issue 21 §1; docs/architecture.md "Caches of sessions and memberships"): one counter row that
// every transaction changing what the access caches hold bumps, through triggers, in the same transaction. A server
// reads it once per request and trusts its cached sessions and memberships only while it is unchanged, so a change made
// by any process (another API node, kluis-admin, a restore) is seen by the next request everywhere. Triggers rather
// than application code: no writer can forget them.
//
// What bumps it: sessions revoked, moved or deleted (not the sliding expiry, written every minute per session); any
// change of a users row; any change of space_members and pending_removals; a space deleted.
import type { Knex } from 'knex';

const isSqlite = (knex: Knex) => String((knex.client as { dialect?: string }).dialect).startsWith('sqlite');

/** Table -> the events that bump (sqlite: one trigger per event; PostgreSQL: one statement trigger per table). */
const WATCHED: [table: string, events: string[]][] = [
  ['sessions', ['UPDATE OF revoked_at, user_id, token_hash', 'DELETE']],
  ['users', ['UPDATE', 'DELETE']],
  ['space_members', ['INSERT', 'UPDATE', 'DELETE']],
  ['pending_removals', ['INSERT', 'UPDATE', 'DELETE']],
  ['spaces', ['DELETE']],
];

const BUMP = 'UPDATE cache_generation SET n = n + 1 WHERE id = 1';

export const m018CacheGeneration = {
  name: '018_cache_generation',
  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable('cache_generation', (t) => {
      t.integer('id').primary();
      t.bigInteger('n').notNullable();
    });
    await knex('cache_generation').insert({ id: 1, n: 1 });
    if (isSqlite(knex)) {
      for (const [table, events] of WATCHED) {
        for (const event of events) {
          const name = `${table}_cache_${event.split(' ')[0]!.toLowerCase()}`;
          await knex.raw(`CREATE TRIGGER ${name} AFTER ${event} ON ${table} BEGIN ${BUMP}; END`);
        }
      }
    } else {
      await knex.raw(`CREATE FUNCTION kluis_cache_bump() RETURNS trigger AS $$ BEGIN ${BUMP}; RETURN NULL; END $$ LANGUAGE plpgsql`);
      for (const [table, events] of WATCHED) {
        // Statement triggers: one bump per statement, even one that changed no row (harmless: a cache refill).
        await knex.raw(`CREATE TRIGGER ${table}_cache AFTER ${[...events, 'TRUNCATE'].join(' OR ')} ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION kluis_cache_bump()`);
      }
    }
  },
  async down(knex: Knex): Promise<void> {
    if (isSqlite(knex)) {
      for (const [table, events] of WATCHED) for (const event of events) await knex.raw(`DROP TRIGGER ${table}_cache_${event.split(' ')[0]!.toLowerCase()}`);
    } else {
      for (const [table] of WATCHED) await knex.raw(`DROP TRIGGER ${table}_cache ON ${table}`);
      await knex.raw('DROP FUNCTION kluis_cache_bump()');
    }
    await knex.schema.dropTable('cache_generation');
  },
};
