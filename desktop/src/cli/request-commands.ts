// `kluis share request FOLDER` (docs/cli.md "File requests"): an upload-only link into a folder of a synced space. The
// secret exists only in the printed URL's fragment (account/requests.ts); `share list` and `share revoke` (./share-commands.ts)
// cover requests too.
import path from 'node:path';
import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { ErrorCode, KluisError } from '@kluis/shared';
import { kluisHome } from '../account/state.js';
import { accountClient } from '../account/spaces.js';
import { parseExpiry } from '../account/links.js';
import { createRequest, listRequests, parseMaxFiles } from '../account/requests.js';
import { IndexDb } from '../sync/index-db.js';
import { SpaceCrypto } from '../sync/remote.js';
import { CliError, emit, safeText, table } from './io.js';
import { openAccount, when } from './synced-file.js';
import { locateFile as locate } from '../sync/door.js';
import type { FileRequestInfo } from '@kluis/shared';

export function registerRequestCommands(share: Command): void {
  share.command('request')
    .description('make an upload-only link into a folder of a synced space: anyone with it can add files (encrypted in their browser), never read any; prints <url>#<secret>')
    .argument('<folder>', 'the folder, inside a synced folder (the synced folder itself for its top)')
    .requiredOption('--purpose <text>', 'why files are asked for (the finality): stored and shown in the audit entry of every upload')
    .option('--expires <duration>', 'life of the request: 1h, 7d, 30d … (at most 90d, and what the space\'s class allows)', '7d')
    .option('--max-files <n>', 'how many files may be uploaded through it', '20')
    .action(async (folderArg: string, o, cmd: Command) => {
      const expiresInMs = parseExpiry(String(o.expires));
      const maxFiles = parseMaxFiles(String(o.maxFiles));
      const abs = path.resolve(folderArg);
      let isDir = false;
      try {
        isDir = statSync(abs).isDirectory();
      } catch {
        // reported below
      }
      if (!isDir) throw new CliError(`${folderArg} is not a folder`);
      const account = await openAccount();
      const client = accountClient(account);
      const db = await IndexDb.open(kluisHome());
      try {
        const top = (await db.folders()).find((f) => f.root === abs);
        const { folder, rel } = top ? { folder: top, rel: '' } : await locate(db, abs);
        const sc = await SpaceCrypto.load(client, account, folder.spaceId);
        if (!sc.canWrite) throw new KluisError(ErrorCode.Forbidden, 'file requests are made by editors and managers of the space; you may only read it');
        const r = await createRequest(client, { sc, folder: rel, expiresInMs, maxFiles, purpose: String(o.purpose) });
        emit(cmd, r.link, r);
        if (!cmd.optsWithGlobals().json) {
          process.stderr.write(`Request ${r.requestId} into ${safeText(rel === '' ? '(top folder)' : rel)}: until ${when(r.expiresAt)}, at most ${r.maxFiles} file(s). Anyone with the link can add files there (never read any): this is the only time it is shown.\n`);
        }
      } finally {
        await db.close();
      }
    });
}

/** The requests of `share list`, or an empty list from a server without them. */
export async function requestRows(spaceId?: string): Promise<FileRequestInfo[]> {
  return listRequests(accountClient(await openAccount()), spaceId);
}

/** `share list` lines for requests. */
export function requestTable(rows: FileRequestInfo[]): string {
  return table(['ID', 'STATE', 'EXPIRES', 'FILES', 'PURPOSE'], rows.map((r) => [r.requestId, r.state, when(r.expiresAt), `${r.files}/${r.maxFiles}`, safeText(r.purpose, 60)]));
}
