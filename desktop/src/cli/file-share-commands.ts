// `kluis share file`, `kluis shared` and `kluis shared get` (docs/cli.md "Direct shares"): one file of a synced
// folder shared with a colleague of the same organisation, and the colleague's side. Registered by
// ./share-commands.ts; `share revoke` there revokes these shares as well as links.
import { Option, type Command } from 'commander';
import { accountClient } from '../account/spaces.js';
import { shareSyncedFileWith } from '../account/share-file.js';
import { downloadShared, listShared } from '../account/shared.js';
import { CliError, emit, safeText, table } from './io.js';
import { human } from './sync-commands.js';
import { openAccount, when, withSyncedFile } from './synced-file.js';

const size = (n: number | null): string => (n === null ? '-' : human(n));

/** `share file` on the `share` command; `shared` and `shared get` on the program. */
export function registerFileShareCommands(program: Command, share: Command): void {
  share.command('file')
    .description('share a file of a synced folder with a colleague (or a person of another organisation, where the space\'s class allows it): its key is sealed to their public key (later versions too); run again to add a key the share lacks')
    .argument('<path>', 'the file')
    .argument('<email>', 'the colleague')
    .addOption(new Option('--role <role>', 'what the colleague may do with it').choices(['viewer']).default('viewer'))
    .action(async (file: string, email: string, _o, cmd: Command) => {
      await withSyncedFile(file, 'files are shared by editors and managers of the space; you may only read it', async (f) => {
        const r = await shareSyncedFileWith(f, email);
        const what = r.created ? 'Shared' : r.added.length ? `Added key epoch(s) ${r.added.join(', ')} to the share of` : 'Already shared:';
        emit(cmd, `${what} ${safeText(f.rel)} with ${safeText(r.recipientEmail)}${r.org ? ` of ${safeText(r.org.name)} (another organisation)` : ''} (share ${r.shareId}, key epochs ${r.keyEpochs.join(', ')}).`, r);
      });
    });

  const shared = program.command('shared')
    .description('files colleagues shared with you (kluis shared get ID downloads one)')
    .action(async (_o, cmd: Command) => {
      const account = await openAccount();
      const items = await listShared(accountClient(account), account);
      emit(cmd, () => items.length === 0 ? 'Nothing is shared with you.' : table(['ID', 'NAME', 'SIZE', 'SHARED BY', 'SHARED', 'NOTE'], items.map((s) => [
        s.shareId, safeText(s.name ?? '?', 60), size(s.size), safeText(s.sharedBy, 60), when(s.sharedAt),
        s.refused ? safeText(s.refused, 120) : s.deleted ? 'deleted' : s.newerNotShared ? 'a newer version is not shared with you yet' : '',
      ])), { shared: items });
    });

  shared.command('get')
    .description('download the newest shared version of a file into DIR (default: the current folder); an existing file is not overwritten')
    .argument('<id>', 'the share id (kluis shared)')
    .argument('[dir]', 'where to write it', '.')
    .action(async (id: string, dir: string, _o, cmd: Command) => {
      if (!/^[A-Za-z0-9_-]{22}$/.test(id)) throw new CliError('the share id is 22 characters (kluis shared shows it)');
      const account = await openAccount();
      const r = await downloadShared(accountClient(account), account, id, dir);
      emit(cmd, `Wrote ${safeText(r.path)} (${size(r.size)}, shared by ${safeText(r.sharedBy)}).`, r);
    });
}
