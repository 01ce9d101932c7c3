// `kluis sync`, `status`, `versions` and `restore` (docs/architecture.md §10; docs/cli.md "Sync"), registered on the program built
// by ./main.ts. They are a shell over the engine's front door (desktop/src/sync/door.ts): parse, drive it and print.
import type { Command } from 'commander';
import { initCrypto } from '@kluis/shared';
import { api } from '../api/endpoints.js';
import { ApiRequestError } from '../api/client.js';
import { kluisHome, loadAccount, type Account } from '../account/state.js';
import { accountClient, resolveSpace } from '../account/spaces.js';
import { READ_WHOLE_MAX, fileHistoryAt, folderStatuses, isTransient, openFolder, parseRate, restoreAt, type Progress, type SyncReport } from '../sync/door.js';
import { behindText } from '../sync/rollback.js';
import { CliError, emit, isJson, safeText, table } from './io.js';
import { ensureDeviceKey, flushPendingWipeReport } from '../account/wipe.js';

async function openAccount(): Promise<Account> {
  await initCrypto({ wasm: 'lazy' });
  return loadAccount(kluisHome());
}

/** Bytes for people: B, KiB, MiB … with one decimal above 1 KiB. */
export function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

function summary(r: SyncReport): string {
  const lines = [`${r.folder}: in step at change ${r.seq}. Uploaded ${r.uploaded} (${human(r.bytesUploaded)} sent), downloaded ${r.downloaded} (${human(r.bytesDownloaded)} received${r.bytesReused ? `, ${human(r.bytesReused)} reused from local copies` : ''}), deleted ${r.deletedLocal} here and ${r.deletedRemote} on the server, moved ${r.moved}.`];
  for (const c of r.conflicts) lines.push(`conflict: kept your version as ${safeText(c)}`);
  for (const x of r.refused) lines.push(`refused: ${safeText(x.path)}: ${safeText(x.reason)}`);
  for (const x of r.skipped) lines.push(`skipped: ${safeText(x.path)}: ${safeText(x.reason)}`);
  for (const x of r.errors) lines.push(`error: ${safeText(x.path)}: ${safeText(x.reason)}`);
  if (r.serverBehind) lines.push(behindText(r.serverBehind));
  for (const x of r.removedMembers ?? []) lines.push(`removed ${safeText(x.email)} as an admin asked; the space key rotated (epoch ${x.keyEpoch})`);
  return lines.join('\n');
}

/** A one-line progress display on stderr (terminals only): files and bytes done, rate, time left. */
function progressLine(): { update(p: Progress): void; clear(): void } {
  let started = 0;
  let phase = '';
  let last = 0;
  let shown = false;
  return {
    update(p) {
      const now = Date.now();
      if (p.phase !== phase) {
        phase = p.phase;
        started = now;
      }
      if (now - last < 200 && p.filesDone !== p.filesTotal) return;
      last = now;
      const secs = Math.max(0.001, (now - started) / 1000);
      const rate = p.bytesDone / secs;
      const left = rate > 0 ? Math.max(0, (p.bytesTotal - p.bytesDone) / rate) : 0;
      const eta = left >= 60 ? `${Math.floor(left / 60)}m${String(Math.round(left % 60)).padStart(2, '0')}s` : `${Math.round(left)}s`;
      process.stderr.write(`\r\x1b[K${p.phase} ${p.filesDone}/${p.filesTotal} files, ${human(p.bytesDone)}/${human(p.bytesTotal)}, ${human(rate)}/s, ${eta} left`);
      shown = true;
    },
    clear() {
      if (shown) process.stderr.write('\r\x1b[K');
      shown = false;
    },
  };
}

/** Runs `fn`, retrying while the server is away (1 s .. 30 s apart), like the engine does, until `giveUpMs`. */
async function retrying<T>(fn: () => Promise<T>, giveUpMs?: number): Promise<T> {
  const started = Date.now();
  let backoff = 1000;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || (giveUpMs !== undefined && Date.now() - started > giveUpMs)) throw err;
      process.stderr.write(`kluis: ${safeText((err as Error).message)}; retrying in ${Math.round(backoff / 1000)} s\n`);
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, 30_000);
    }
  }
}

export function registerSyncCommands(program: Command): void {
  program.command('sync')
    .description('keep DIR in step with a space (without --once it keeps watching); SIGUSR1 pauses, SIGUSR2 resumes')
    .argument('<dir>', 'the local folder (created if missing)')
    .requiredOption('--space <space>', 'the space, by name or id')
    .option('--once', 'sync until nothing is left to do, then exit')
    .option('--bwlimit <rate>', 'cap transfer speed, e.g. 500K, 10M (bytes per second)')
    .option('--poll <seconds>', 'ask the server for changes this often when its push connection is down', '30')
    .option('--settle <ms>', 'wait until a file has been unchanged this long before uploading it', undefined)
    .option('--quiet', 'no progress display')
    .action(async (dir: string, o, cmd: Command) => {
      const json = isJson(cmd);
      let bwlimit = 0;
      if (o.bwlimit !== undefined) {
        try {
          bwlimit = parseRate(o.bwlimit);
        } catch (err) {
          throw new CliError((err as Error).message);
        }
      }
      const pollSeconds = Number(o.poll);
      if (!Number.isFinite(pollSeconds) || pollSeconds < 1) throw new CliError('--poll: a number of seconds, at least 1');
      const settleMs = o.settle === undefined ? (o.once ? 1000 : 250) : Number(o.settle);
      if (!Number.isInteger(settleMs) || settleMs < 0) throw new CliError('--settle: milliseconds, an integer');
      // Remote wipe (account/wipe.ts): a report an earlier wipe could not send goes first; this session's device key
      // is registered so that a wipe ordered later can be reported with it.
      await flushPendingWipeReport(kluisHome()).catch(() => undefined);
      const account = await openAccount();
      await ensureDeviceKey(account);
      const client = accountClient(account);
      const giveUp = process.env.KLUIS_SYNC_GIVE_UP_MS ? Number(process.env.KLUIS_SYNC_GIVE_UP_MS) : undefined;
      const space = await retrying(() => resolveSpace(client, o.space), giveUp);
      // The summary just read names the removals an admin asked for (managers only; others have none to send): when
      // there are none, the first pass does not ask for the space's details again.
      const noRemovalsPending = space.role !== 'manager' || (space.pendingRemovals !== undefined && space.pendingRemovals.length === 0);
      const hashLater = process.env.KLUIS_SYNC_HASH_LATER_MIN;
      const hashLaterMin = hashLater ? Number(hashLater) : undefined;
      if (hashLaterMin !== undefined && !(Number.isInteger(hashLaterMin) && hashLaterMin >= 1)) throw new CliError('KLUIS_SYNC_HASH_LATER_MIN: bytes, an integer of at least 1');
      const hashLaterSmall = process.env.KLUIS_SYNC_HASH_LATER_SMALL;
      const hashLaterSmallMax = hashLaterSmall ? Number(hashLaterSmall) : undefined;
      if (hashLaterSmallMax !== undefined && !(Number.isInteger(hashLaterSmallMax) && hashLaterSmallMax >= 0 && hashLaterSmallMax <= READ_WHOLE_MAX)) {
        throw new CliError(`KLUIS_SYNC_HASH_LATER_SMALL: bytes, an integer from 0 to ${READ_WHOLE_MAX}`);
      }
      const folder = await openFolder(account, dir, {
        spaceId: space.spaceId, home: kluisHome(), settleMs, bwlimit, noRemovalsPending, ...(giveUp ? { giveUpMs: giveUp } : {}), ...(hashLaterMin ? { hashLaterMin } : {}),
        ...(hashLaterSmallMax !== undefined ? { hashLaterSmallMax } : {}),
      });
      try {
        // Progress when a person watches (stdout is a terminal); drawn on stderr so it never mixes with results.
        const tty = Boolean(process.stdout.isTTY) && Boolean(process.stderr.isTTY) && !json && !o.quiet;
        const bar = progressLine();
        if (tty) folder.on('progress', (p) => bar.update(p));
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        const onPause = () => folder.pause();
        const onResume = () => folder.resume();
        process.on('SIGUSR1', onPause);
        process.on('SIGUSR2', onResume);
        const line = (value: Record<string, unknown>, text: string) => {
          bar.clear();
          if (json) process.stdout.write(`${JSON.stringify(value)}\n`);
          else process.stdout.write(`${text}\n`);
        };
        folder.on('warning', (msg) => {
          if (!o.once) line({ event: 'warning', message: msg }, `warning: ${safeText(msg)}`);
        });
        folder.on('retry', (r) => {
          bar.clear();
          process.stderr.write(`kluis: ${safeText(r.reason)}; retrying in ${Math.round(r.inMs / 1000)} s\n`);
        });
        try {
          if (o.once) {
            const report = await folder.runOnce(ac.signal);
            bar.clear();
            emit(cmd, () => summary(report), report);
          } else {
            folder.on('state', (state, reason) => {
              // people see only what needs them (an error, a pause); scripts get every state change
              if (json || state === 'error' || state === 'paused') line({ event: 'state', state, ...(reason ? { reason } : {}) }, `${new Date().toISOString()} ${state}${reason ? `: ${safeText(reason)}` : ''}`);
            });
            // A server that went back was a warning line already (once): the pass's summary does not repeat it.
            folder.on('synced', ({ serverBehind: _said, ...r }) => line({ event: 'synced', ...r }, summary(r)));
            folder.on('failure', (err) => line({ event: 'failure', message: err.message }, `error: ${safeText(err.message)}`));
            // The session was ended (revoked, perhaps with a wipe order): stop watching; the CLI's error path asks about a wipe.
            let ended: Error | null = null;
            folder.on('failure', (err) => {
              if (err instanceof ApiRequestError && err.status === 401) {
                ended = err;
                ac.abort();
              }
            });
            ac.signal.addEventListener('abort', () => void folder.stop());
            if (!json) process.stdout.write(`Watching ${folder.folder.root} <-> "${safeText(space.name)}" (Ctrl-C stops; kill -USR1 ${process.pid} pauses, -USR2 resumes)\n`);
            await folder.start({ pollMs: pollSeconds * 1000 });
            if (ended) throw ended;
          }
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          process.off('SIGUSR1', onPause);
          process.off('SIGUSR2', onResume);
        }
      } finally {
        await folder.close();
      }
    });

  program.command('status')
    .description('the synced folders of this account and their state')
    .action(async (_o, cmd: Command) => {
      let names = new Map<string, string>();
      try {
        const account = await openAccount();
        names = new Map((await api.spaces(accountClient(account))).map((s) => [s.spaceId, s.name]));
      } catch {
        // offline or logged out: show what the index knows
      }
      const folders = (await folderStatuses(kluisHome())).map(({ folderId: _id, ...f }) => ({ ...f, spaceName: names.get(f.spaceId) ?? null }));
      emit(cmd, () => folders.length === 0 ? 'No synced folders yet (kluis sync DIR --space NAME).' : table(['FOLDER', 'SPACE', 'STATE', 'CHANGE', 'LAST SYNC', 'LAST ERROR'], folders.map((f) => [
        f.folder, safeText(f.spaceName ?? f.spaceId), f.state, String(f.seq), f.lastSyncAt ?? '-', f.lastError ? safeText(f.lastError, 80) : '-',
      ])), { folders });
    });

  program.command('versions')
    .description('the versions of a file in a synced folder (also of a deleted file)')
    .argument('<path>', 'the file')
    .action(async (file: string, _o, cmd: Command) => {
      const r = await fileHistoryAt(await openAccount(), kluisHome(), file);
      emit(cmd, () => table(['VERSION', 'CHANGE', 'DATE', 'SIZE', 'BY', ''], r.versions.map((v) => [
        v.versionId, String(v.seq), v.createdAt, v.deleted ? 'deleted' : human(v.size), safeText(v.author ?? '?'), v.current ? 'current' : v.refused ? `refused: ${v.refused}` : '',
      ])), r);
    });

  program.command('restore')
    .description('make an earlier version of a file the current one (also brings back a deleted file)')
    .argument('<path>', 'the file')
    .requiredOption('--version <id>', 'the version (kluis versions PATH lists them; a unique prefix of 6+ characters is enough)')
    .action(async (file: string, o, cmd: Command) => {
      const r = await restoreAt(await openAccount(), kluisHome(), file, String(o.version));
      emit(cmd, `Restored ${safeText(r.path)} to version ${r.restoredFrom} (new version ${r.versionId})${r.written ? '' : '; the running sync will write it'}.`, r);
    });
}
