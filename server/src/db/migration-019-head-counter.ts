// The heads counter (issue 21 §1; docs/architecture.md "Heads of spaces cached"): a second counter in the cache
// generation's row, bumped by triggers in every transaction that moves a space's head (its `seq`), creates a space or
// deletes one, whoever runs it. A server reads it with the cache generation (the one statement every authenticated
// request makes) and keeps each space's head under it, so that `GET changes` of a client that is up to date answers
// "nothing new" from memory, exactly: a commit bumps it in its own transaction, so a request that starts after the
// commit's answer reads the new value and reads the page afresh. A separate counter, so that commits (frequent) do not
// empty the caches of sessions and memberships (migration 018).
import type { Knex } from 'knex';

const isSqlite = (knex: Knex) => String((knex.client as { dialect?: string }).dialect).startsWith('sqlite');

const EVENTS = ['INSERT', 'UPDATE OF seq', 'DELETE'];
const BUMP = 'UPDATE cache_generation SET heads = heads + 1 WHERE id = 1';

export const m019HeadCounter = {
  name: '019_head_counter',
  async up(knex: Knex): Promise<void> {
    await knex.schema.alterTable('cache_generation', (t) => {
      t.bigInteger('heads').notNullable().defaultTo(1);
    });
    if (isSqlite(knex)) {
      for (const event of EVENTS) await knex.raw(`CREATE TRIGGER spaces_heads_${event.split(' ')[0]!.toLowerCase()} AFTER ${event} ON spaces BEGIN ${BUMP}; END`);
    } else {
      await knex.raw(`CREATE FUNCTION kluis_heads_bump() RETURNS trigger AS $$ BEGIN ${BUMP}; RETURN NULL; END $$ LANGUAGE plpgsql`);
      await knex.raw(`CREATE TRIGGER spaces_heads AFTER ${[...EVENTS, 'TRUNCATE'].join(' OR ')} ON spaces FOR EACH STATEMENT EXECUTE FUNCTION kluis_heads_bump()`);
    }
  },
  async down(knex: Knex): Promise<void> {
    if (isSqlite(knex)) {
      for (const event of EVENTS) await knex.raw(`DROP TRIGGER spaces_heads_${event.split(' ')[0]!.toLowerCase()}`);
    } else {
      await knex.raw('DROP TRIGGER spaces_heads ON spaces');
      await knex.raw('DROP FUNCTION kluis_heads_bump()');
    }
    await knex.schema.alterTable('cache_generation', (t) => {
      t.dropColumn('heads');
    });
  },
};
