// The index's schema (index-db.ts), as numbered in-code migrations run by Knex.
import type { Knex } from 'knex';

interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

// A migration, once released, is never edited: add the next number. Times are integer ms since 1970 UTC; local
// mtimes and inodes are doubles (fractional ms; inodes beyond 2^53 round the same way on every read).
const m001: Migration = {
  name: '001_index',
  async up(knex) {
    await knex.schema.createTable('folders', (t) => {
      t.increments('id').primary();
      t.string('space_id', 32).notNullable();
      t.text('root').notNullable();
      t.bigInteger('last_seq').notNullable().defaultTo(0);
      t.bigInteger('created_at').notNullable();
      t.unique(['space_id', 'root']);
    });
    await knex.schema.createTable('base', (t) => {
      t.integer('folder_id').notNullable().references('folders.id').onDelete('CASCADE');
      t.text('path').notNullable();
      t.string('kind', 8).notNullable();
      t.string('file_id', 32).notNullable();
      t.string('version_id', 32).notNullable();
      t.string('hash', 64).notNullable();
      t.bigInteger('size').notNullable();
      t.double('mtime_ms').notNullable();
      t.bigInteger('local_size').notNullable();
      t.double('local_mtime_ms').notNullable();
      t.double('local_ino').notNullable();
      t.primary(['folder_id', 'path']);
      t.index(['folder_id', 'file_id']);
    });
    await knex.schema.createTable('remote', (t) => {
      t.integer('folder_id').notNullable().references('folders.id').onDelete('CASCADE');
      t.string('file_id', 32).notNullable();
      t.string('version_id', 32).notNullable();
      t.bigInteger('seq').notNullable();
      t.text('path').notNullable();
      t.string('kind', 8).notNullable();
      t.bigInteger('size').notNullable();
      t.double('mtime_ms').notNullable();
      t.string('hash', 64).notNullable();
      t.boolean('deleted').notNullable();
      t.text('chunks').notNullable(); // JSON [[chunkId, size], ...]
      t.integer('key_epoch').notNullable();
      t.primary(['folder_id', 'file_id']);
      t.index(['folder_id', 'path']);
    });
    await knex.schema.createTable('journal', (t) => {
      t.increments('id').primary();
      t.integer('folder_id').notNullable().references('folders.id').onDelete('CASCADE');
      t.string('op', 40).notNullable();
      t.text('payload').notNullable(); // JSON
      t.string('state', 8).notNullable().defaultTo('pending'); // pending | done
      t.bigInteger('created_at').notNullable();
      t.bigInteger('done_at');
      t.index(['folder_id', 'state']);
    });
  },
  async down(knex) {
    await knex.schema.dropTable('journal');
    await knex.schema.dropTable('remote');
    await knex.schema.dropTable('base');
    await knex.schema.dropTable('folders');
  },
};

// File-key wraps (sealed to a space key: as safe to keep as on the server) so a new version of a known file can
// reuse its file key, and the engine's status for `kluis status`.
const m002: Migration = {
  name: '002_wraps_status',
  async up(knex) {
    await knex.schema.createTable('file_wraps', (t) => {
      t.integer('folder_id').notNullable().references('folders.id').onDelete('CASCADE');
      t.string('file_id', 32).notNullable();
      t.integer('key_epoch').notNullable();
      t.text('wrap').notNullable(); // JSON FileKeyWrap
      t.primary(['folder_id', 'file_id', 'key_epoch']);
    });
    await knex.schema.alterTable('folders', (t) => {
      t.string('state', 16).notNullable().defaultTo('idle');
      t.text('last_error');
      t.bigInteger('last_sync_at');
      t.integer('pid');
    });
  },
  async down(knex) {
    await knex.schema.dropTable('file_wraps');
  },
};

// The chunk list of each large synced file (download.ts keepChunks), apart from `base` so that loading the base rows
// every pass stays small. Keyed by path like `base`; a row whose version_id is not the base row's is stale and ignored.
const m003: Migration = {
  name: '003_base_chunks',
  async up(knex) {
    await knex.schema.createTable('base_chunks', (t) => {
      t.integer('folder_id').notNullable().references('folders.id').onDelete('CASCADE');
      t.text('path').notNullable();
      t.string('version_id', 32).notNullable();
      t.text('chunks').notNullable(); // JSON [[chunkId, size], ...]
      t.primary(['folder_id', 'path']);
    });
  },
  async down(knex) {
    await knex.schema.dropTable('base_chunks');
  },
};

const all: Migration[] = [m001, m002, m003];

export const migrations: Knex.MigrationSource<Migration> = {
  getMigrations: async () => all,
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m,
};

/** Whether `done` (the names in schema_migrations) are exactly the migrations above. */
export function upToDate(done: readonly string[]): boolean {
  return done.length === all.length && all.every((m) => done.includes(m.name));
}
