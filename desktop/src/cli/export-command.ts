// `kluis export --space S DIR` (docs/cli.md "Export"; issue 20 §4 "No lock-in"): a shell over the front door's
// exportSpace (desktop/src/sync/door-export.ts): parse, drive it and print.
import type { Command } from 'commander';
import { initCrypto } from '@kluis/shared';
import { kluisHome, loadAccount } from '../account/state.js';
import { accountClient, resolveSpace } from '../account/spaces.js';
import { exportSpace, type ExportReport } from '../sync/door.js';
import { emit, safeText } from './io.js';
import { human } from './sync-commands.js';

function summary(r: ExportReport): string {
  const lines = [`Exported ${r.files} file(s) and ${r.folders} folder(s) (${human(r.bytes)}) of the space at change ${r.seq} into ${r.dir}${r.olderVersions ? `, and ${r.olderVersions} older version(s)` : ''}; versions are described in ${r.metadata}.`];
  for (const x of r.skipped) lines.push(`skipped: ${safeText(x.path)}: ${safeText(x.reason)}`);
  for (const x of r.refused) lines.push(`refused: version ${x.versionId} of file ${x.fileId}: ${safeText(x.reason)}`);
  return lines.join('\n');
}

export function registerExportCommand(program: Command): void {
  program.command('export')
    .description('write the current files of a space, decrypted, into a new or empty folder DIR, with every version\'s metadata in DIR/.kluis-export.json')
    .argument('<dir>', 'a folder that does not exist yet or is empty')
    .requiredOption('--space <space>', 'the space, by name or id')
    .option('--all-versions', 'also write the content of older versions, under DIR/.kluis-versions/<versionId>/<path>')
    .action(async (dir: string, o, cmd: Command) => {
      await initCrypto({ wasm: 'lazy' });
      const account = await loadAccount(kluisHome());
      const space = await resolveSpace(accountClient(account), String(o.space));
      const r = await exportSpace(account, space.spaceId, dir, { allVersions: o.allVersions === true });
      emit(cmd, () => summary(r), r);
    });
}
