// Folder links (docs/api.md "Folder links", docs/crypto.md §9.1): a link row gets its kind and, for a folder, the
// sealed listing (names, sizes and file keys under linkKey: unreadable here); link_versions holds the versions of
// the snapshot, the only ones whose chunks the link's download tokens may read.
import type { Knex } from 'knex';

export const m007FolderLinks = {
  name: '007_folder_links',
  async up(knex: Knex): Promise<void> {
    await knex.schema.alterTable('links', (t) => {
      t.string('kind', 8).notNullable().defaultTo('file'); // file | folder
      t.text('listing'); // b64u sealed listing, folder links only
    });
    await knex.schema.createTable('link_versions', (t) => {
      t.string('link_id', 32).notNullable().references('links.id');
      t.string('version_id', 32).notNullable().references('versions.id');
      t.string('file_id', 32).notNullable();
      t.primary(['link_id', 'version_id']);
      t.index(['version_id']);
    });
  },
  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTable('link_versions');
    await knex.schema.alterTable('links', (t) => {
      t.dropColumn('listing');
      t.dropColumn('kind');
    });
  },
};
