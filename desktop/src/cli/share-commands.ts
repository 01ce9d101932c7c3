// `kluis share link`, `share list` and `share revoke` (docs/cli.md "Share links"), registered on the program built by
// ./main.ts. A link shows the current version of one file of a synced folder; the secret exists only in the printed
// URL's fragment (account/links.ts), so a lost link cannot be printed again: make a new one.
import { Option, type Command } from 'commander';
import { kluisHome } from '../account/state.js';
import { accountClient } from '../account/spaces.js';
import { listLinks, parseExpiry, parseMaxDownloads, revokeLink } from '../account/links.js';
import { IndexDb } from '../sync/index-db.js';
import { CliError, emit, readStdinLines, safeText, table } from './io.js';
import { openAccount, when, withSyncedFile } from './synced-file.js';
import { registerFileShareCommands } from './file-share-commands.js';
import { revokeFileShare } from '../account/file-shares.js';
import { linkToSyncedFile } from '../account/share-file.js';
import { revokeRequest } from '../account/requests.js';
import { registerRequestCommands, requestRows, requestTable } from './request-commands.js';


/** fileId → path of the files this device syncs (to name the files of `share list`; the server knows no names). */
async function knownPaths(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const db = await IndexDb.open(kluisHome());
  try {
    for (const folder of await db.folders()) for (const [rel, b] of await db.baseAll(folder.id)) out.set(b.fileId, rel);
  } finally {
    await db.close();
  }
  return out;
}

export function registerShareCommands(program: Command): void {
  const share = program.command('share').description('share links (a file for anyone who has the link; the key is in the link, never on the server) and files shared with a colleague');
  registerFileShareCommands(program, share);
  registerRequestCommands(share);

  share.command('link')
    .description('make a link to the current version of a file, or to a folder as it is now (every file under it), in a synced folder; prints <url>#<secret>')
    .argument('<path>', 'the file or folder')
    .requiredOption('--purpose <text>', 'why the file is shared (the finality): stored and shown in the audit entry of every access')
    .option('--expires <duration>', 'life of the link: 1h, 7d, 30d … (at most 90d)', '7d')
    .option('--max-downloads <n>', 'how many times the file may be downloaded through the link')
    .option('--password-stdin', 'protect the link with a password read from the first line of standard input')
    .addOption(new Option('--password <value>').hideHelp())
    .action(async (file: string, o, cmd: Command) => {
      if (o.password !== undefined) throw new CliError('secrets are never accepted on the command line (--password): pipe the password in with --password-stdin');
      const expiresInMs = parseExpiry(String(o.expires));
      const maxDownloads = o.maxDownloads === undefined ? null : parseMaxDownloads(String(o.maxDownloads));
      let password: string | null = null;
      if (o.passwordStdin) {
        const [line] = await readStdinLines(1);
        if (!line) throw new CliError('no password on standard input (expected it on the first line)');
        password = line;
      }
      await withSyncedFile(file, 'links are made by editors and managers of the space; you may only read it', async (f) => {
        const notes: string[] = [];
        const r = await linkToSyncedFile(f, { expiresInMs, maxDownloads, password, purpose: String(o.purpose) }, notes);
        for (const n of notes) process.stderr.write(`kluis: note: ${n}\n`);
        const { kind, files, ...out } = r;
        emit(cmd, r.link, kind === 'folder' ? { ...out, files } : out);
        if (cmd.optsWithGlobals().json) return;
        const what = kind === 'folder' ? `the folder ${safeText(f.rel)} (${files} file(s) as they are now)` : safeText(f.rel);
        process.stderr.write(`Link ${r.linkId} to ${what}: until ${when(r.expiresAt)}, ${r.maxDownloads === null ? 'no download limit' : `${r.maxDownloads} ${kind === 'folder' ? 'opening(s)' : 'download(s)'}`}${r.password ? ', password' : ''}. Anyone with the link can open ${kind === 'folder' ? 'these files' : 'the file'}: this is the only time it is shown.\n`);
      });
    });

  share.command('list')
    .description('your links and file requests, and every one of the spaces you manage')
    .option('--space <id>', 'only the links of this space (by id)')
    .action(async (o, cmd: Command) => {
      const account = await openAccount();
      const links = await listLinks(accountClient(account), o.space);
      const paths = await knownPaths().catch(() => new Map<string, string>());
      const rows = links.map((l) => ({ ...l, path: paths.get(l.fileId) ?? null }));
      const requests = await requestRows(o.space);
      const linkText = () => rows.length === 0 ? 'No links (kluis share link PATH --purpose TEXT makes one).' : table(['ID', 'STATE', 'EXPIRES', 'DOWNLOADS', 'PASSWORD', 'FILE', 'PURPOSE'], rows.map((l) => [
        l.linkId, l.state, when(l.expiresAt), l.maxDownloads === null ? String(l.downloads) : `${l.downloads}/${l.maxDownloads}`, l.password ? 'yes' : 'no',
        safeText((l.path ?? l.fileId) + (l.kind === 'folder' ? '/' : ''), 60), safeText(l.purpose, 60),
      ]));
      emit(cmd, () => requests.length === 0 ? linkText() : `${linkText()}\n\nFile requests (upload-only links):\n${requestTable(requests)}`, { links: rows, requests });
    });

  share.command('revoke')
    .description('revoke a link, a file request or a direct share (kluis share file): it stops at once, also for downloads in progress')
    .argument('<id>', 'the link id (kluis share list) or the share id (printed by kluis share file)')
    .action(async (id: string, _o, cmd: Command) => {
      if (!/^[A-Za-z0-9_-]{22}$/.test(id)) throw new CliError('the link or share id is 22 characters (kluis share list shows links)');
      const account = await openAccount();
      const client = accountClient(account);
      // Ids are 16 random bytes, global on the server: asking for a direct share first, then a link, finds the one.
      if (await revokeFileShare(client, id)) return emit(cmd, `Share ${id} revoked: the colleague can no longer list or download the file (a copy already downloaded stays theirs).`, { revoked: id, kind: 'share' });
      if (await revokeRequest(client, id)) return emit(cmd, `Request ${id} revoked: nobody can upload through it any more (files already uploaded stay).`, { revoked: id, kind: 'request' });
      await revokeLink(client, id);
      emit(cmd, `Link ${id} revoked.`, { revoked: id, kind: 'link' });
    });
}
