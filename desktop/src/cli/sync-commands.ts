// `kluis sync`, `status`, `versions` and `restore` (docs/architecture.md §10; docs/cli.md "Sync"), registered on the program built
// by ./main.ts. The engine is desktop/src/sync/engine.ts; these commands only bind folders, drive it and print.
import { mkdirSync, realpathSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { ErrorCode, KluisError, initCrypto, newId, sealManifest, toBase64Url } from '@kluis/shared';
import { api } from '../api/endpoints.js';
import { ApiRequestError } from '../api/client.js';
import { kluisHome, loadAccount, type Account } from '../account/state.js';
import { accountClient, resolveSpace } from '../account/spaces.js';
import { IndexDb, type FolderRecord } from '../sync/index-db.js';
import { SyncEngine, folderLockHolder, lockFolder, type Progress, type SyncReport } from '../sync/engine.js';
import { SpaceCrypto, fileHistory, isTransient } from '../sync/remote.js';
import { ChunkUploader, encryptStream, fileContent, parseRate } from '../sync/transfer.js';
import { watchFolder } from '../sync/watcher.js';
import { CliError, emit, isJson, safeText, table } from './io.js';
import { ensureDeviceKey, flushPendingWipeReport } from '../account/wipe.js';

async function openAccount(): Promise<Account> {
  await initCrypto();
  return loadAccount(kluisHome());
}

/** This device's name as the server knows it (for conflict copies); the host name if the server is away. */
async function deviceName(account: Account): Promise<string> {
  try {
    const devices = await api.devices(accountClient(account));
    return devices.find((d) => d.current)?.name ?? hostname();
  } catch {
    return hostname();
  }
}

function absDir(dir: string): string {
  const abs = path.resolve(dir);
  try {
    return realpathSync(abs);
  } catch {
    return abs;
  }
}

/** The folder record binding DIR to SPACE; one folder is bound to one space, for good. */
async function bindFolder(db: IndexDb, spaceId: string, dir: string): Promise<FolderRecord> {
  const root = absDir(dir);
  const other = (await db.folders()).find((f) => f.root === root && f.spaceId !== spaceId);
  if (other) throw new CliError(`${root} is already synced with another space (${other.spaceId}); choose another folder`);
  return db.folder(spaceId, root);
}

/** The synced folder holding `file`, and the file's path inside it (NFC, POSIX). Also used by share-commands.ts. */
export async function locate(db: IndexDb, file: string): Promise<{ folder: FolderRecord; rel: string }> {
  const abs = path.resolve(file);
  let real = abs;
  try {
    real = path.join(realpathSync(path.dirname(abs)), path.basename(abs));
  } catch {
    // a deleted file's folder may be gone too: use the path as given
  }
  for (const folder of await db.folders()) {
    for (const candidate of [real, abs]) {
      if (candidate.startsWith(folder.root + path.sep)) {
        return { folder, rel: candidate.slice(folder.root.length + 1).split(path.sep).join('/').normalize('NFC') };
      }
    }
  }
  throw new CliError(`${file} is not inside a synced folder (kluis status lists them)`);
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
      mkdirSync(path.resolve(dir), { recursive: true });
      if (!statSync(path.resolve(dir)).isDirectory()) throw new CliError(`${dir} is not a folder`);
      const home = kluisHome();
      const db = await IndexDb.open(home);
      let unlock: (() => Promise<void>) | null = null;
      try {
        const folder = await bindFolder(db, space.spaceId, dir);
        unlock = await lockFolder(home, folder.id);
        await db.setStatus(folder.id, { pid: process.pid });
        const engine = new SyncEngine({ db, folder, client, account, device: await deviceName(account), settleMs, bwlimit, ...(giveUp ? { giveUpMs: giveUp } : {}) });
        // Progress when a person watches (stdout is a terminal); drawn on stderr so it never mixes with results.
        const tty = Boolean(process.stdout.isTTY) && Boolean(process.stderr.isTTY) && !json && !o.quiet;
        const bar = progressLine();
        if (tty) engine.on('progress', (p: Progress) => bar.update(p));
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        const onPause = () => engine.pause();
        const onResume = () => engine.resume();
        process.on('SIGUSR1', onPause);
        process.on('SIGUSR2', onResume);
        const line = (value: Record<string, unknown>, text: string) => {
          bar.clear();
          if (json) process.stdout.write(`${JSON.stringify(value)}\n`);
          else process.stdout.write(`${text}\n`);
        };
        engine.on('warning', (msg: string) => {
          if (!o.once) line({ event: 'warning', message: msg }, `warning: ${safeText(msg)}`);
        });
        engine.on('retry', (r: { reason: string; inMs: number }) => {
          bar.clear();
          process.stderr.write(`kluis: ${safeText(r.reason)}; retrying in ${Math.round(r.inMs / 1000)} s\n`);
        });
        try {
          if (o.once) {
            const report = await engine.runOnce(ac.signal);
            bar.clear();
            emit(cmd, () => summary(report), report);
          } else {
            engine.on('state', (state: string, reason?: string) => {
              // people see only what needs them (an error, a pause); scripts get every state change
              if (json || state === 'error' || state === 'paused') line({ event: 'state', state, ...(reason ? { reason } : {}) }, `${new Date().toISOString()} ${state}${reason ? `: ${safeText(reason)}` : ''}`);
            });
            engine.on('synced', (r: SyncReport) => line({ event: 'synced', ...r }, summary(r)));
            engine.on('failure', (err: Error) => line({ event: 'failure', message: err.message }, `error: ${safeText(err.message)}`));
            // The session was ended (revoked, perhaps with a wipe order): stop watching; the CLI's error path asks about a wipe.
            let ended: Error | null = null;
            engine.on('failure', (err: Error) => {
              if (err instanceof ApiRequestError && err.status === 401) {
                ended = err;
                ac.abort();
              }
            });
            if (!json) process.stdout.write(`Watching ${folder.root} <-> "${safeText(space.name)}" (Ctrl-C stops; kill -USR1 ${process.pid} pauses, -USR2 resumes)\n`);
            await engine.watch(ac.signal, { pollMs: pollSeconds * 1000, watcher: watchFolder });
            if (ended) throw ended;
          }
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          process.off('SIGUSR1', onPause);
          process.off('SIGUSR2', onResume);
          await db.setStatus(folder.id, { pid: null, state: 'stopped' }).catch(() => undefined);
        }
      } finally {
        await unlock?.();
        await db.close();
      }
    });

  program.command('status')
    .description('the synced folders of this account and their state')
    .action(async (_o, cmd: Command) => {
      const home = kluisHome();
      const db = await IndexDb.open(home);
      try {
        let names = new Map<string, string>();
        try {
          const account = await openAccount();
          names = new Map((await api.spaces(accountClient(account))).map((s) => [s.spaceId, s.name]));
        } catch {
          // offline or logged out: show what the index knows
        }
        const folders: { folder: string; spaceId: string; spaceName: string | null; seq: number; state: string; running: boolean; pid: number | null; pendingJournal: number; lastSyncAt: string | null; lastError: string | null }[] = [];
        for (const f of await db.folders()) {
          const s = await db.status(f.id);
          const holder = await folderLockHolder(home, f.id);
          folders.push({
            folder: f.root, spaceId: f.spaceId, spaceName: names.get(f.spaceId) ?? null, seq: f.lastSeq,
            state: holder ? s.state : 'stopped', running: holder !== null, pid: holder, pendingJournal: s.pendingJournal,
            lastSyncAt: s.lastSyncAt ? new Date(s.lastSyncAt).toISOString() : null, lastError: s.lastError,
          });
        }
        emit(cmd, () => folders.length === 0 ? 'No synced folders yet (kluis sync DIR --space NAME).' : table(['FOLDER', 'SPACE', 'STATE', 'CHANGE', 'LAST SYNC', 'LAST ERROR'], folders.map((f) => [
          f.folder, safeText(f.spaceName ?? f.spaceId), f.state, String(f.seq), f.lastSyncAt ?? '-', f.lastError ? safeText(f.lastError, 80) : '-',
        ])), { folders });
      } finally {
        await db.close();
      }
    });

  program.command('versions')
    .description('the versions of a file in a synced folder (also of a deleted file)')
    .argument('<path>', 'the file')
    .action(async (file: string, _o, cmd: Command) => {
      const r = await history(file);
      emit(cmd, () => table(['VERSION', 'CHANGE', 'DATE', 'SIZE', 'BY', ''], r.versions.map((v) => [
        v.versionId, String(v.seq), v.createdAt, v.deleted ? 'deleted' : human(v.size), safeText(v.author ?? '?'), v.current ? 'current' : v.refused ? `refused: ${v.refused}` : '',
      ])), r);
    });

  program.command('restore')
    .description('make an earlier version of a file the current one (also brings back a deleted file)')
    .argument('<path>', 'the file')
    .requiredOption('--version <id>', 'the version (kluis versions PATH lists them; a unique prefix of 6+ characters is enough)')
    .action(async (file: string, o, cmd: Command) => {
      const account = await openAccount();
      const client = accountClient(account);
      const home = kluisHome();
      const db = await IndexDb.open(home);
      try {
        const { folder, rel } = await locate(db, file);
        const sc = await SpaceCrypto.load(client, account, folder.spaceId);
        if (!sc.canWrite) throw new KluisError(ErrorCode.Forbidden, 'you may only read this space');
        const fileId = await fileIdOf(db, folder, rel);
        sc.open(fileId, (await db.wraps(folder.id, [fileId])).get(fileId) ?? []);
        const list = await fileHistory(client, sc, fileId);
        const want = String(o.version);
        if (want.length < 6) throw new CliError('--version: give at least 6 characters of the version id');
        const matches = list.filter((h) => h.version.versionId.startsWith(want));
        if (matches.length !== 1) throw new CliError(matches.length ? `--version ${want} matches ${matches.length} versions: give more characters` : `no version ${want} of ${rel} (kluis versions lists them)`);
        const chosen = matches[0]!;
        if (!chosen.manifest) throw new KluisError(ErrorCode.BadSignature, `version ${chosen.version.versionId} was refused: ${chosen.refused ?? 'does not open'}`);
        if (chosen.manifest.deleted) throw new CliError(`version ${chosen.version.versionId} is a deletion: choose a version with content`);
        if (chosen.version.expired) throw new CliError(`version ${chosen.version.versionId} has expired (the space's retention) and cannot be restored`);
        const head = list[0]!.version;
        const versionId = newId();
        let content = { chunks: chosen.manifest.chunks, size: chosen.manifest.size, hash: chosen.manifest.hash };
        const { keys, fresh } = sc.writeKeys(fileId);
        if (chosen.version.keyEpoch !== keys.epoch || fresh) {
          // Written under another key (the space key was rotated since): the content goes up again, re-encrypted.
          const readKeys = sc.keyFor(fileId, chosen.version.keyEpoch);
          if (!readKeys) throw new KluisError(ErrorCode.BadKey, `no key of epoch ${chosen.version.keyEpoch} of this file opens for you`);
          const uploader = new ChunkUploader(client, folder.spaceId);
          content = await encryptStream(fileContent(client, folder.spaceId, chosen.manifest.chunks, readKeys.subkeys), keys.subkeys, uploader, !fresh);
          await uploader.flush();
          if (content.hash !== chosen.manifest.hash) throw new KluisError(ErrorCode.BadManifest, 'the old version\'s content does not match its manifest');
        }
        const manifest = { ...chosen.manifest, ...content, v: 2 as const, memberSeq: sc.memberSeq, versionId, parent: head.versionId, path: rel, deleted: false };
        const wrap = keys.pendingWrap;
        await client.json('POST', `/api/v1/spaces/${encodeURIComponent(folder.spaceId)}/commits`, {
          versions: [{ fileId, versionId, parent: head.versionId, keyEpoch: sc.keyEpoch, manifest: toBase64Url(sealManifest(manifest, keys.subkeys, account.keys)), chunks: manifest.chunks.map(([id]) => id), deleted: false, ...(wrap ? { fileKeyWrap: wrap } : {}) }],
        });
        if (wrap) await db.apply(folder.id, { putWraps: [{ fileId, keyEpoch: wrap.keyEpoch, wrap }] });
        // Bring it down now unless a running `kluis sync` owns the folder (it gets the push and does it).
        let written = false;
        if ((await folderLockHolder(home, folder.id)) === null) {
          const unlock = await lockFolder(home, folder.id);
          try {
            const engine = new SyncEngine({ db, folder, client, account, device: await deviceName(account), giveUpMs: 60_000 });
            await engine.runOnce();
            written = true;
          } finally {
            await unlock();
          }
        }
        emit(cmd, `Restored ${safeText(rel)} to version ${chosen.version.versionId} (new version ${versionId})${written ? '' : '; the running sync will write it'}.`, { path: rel, versionId, restoredFrom: chosen.version.versionId, written });
      } finally {
        await db.close();
      }
    });
}

export async function fileIdOf(db: IndexDb, folder: FolderRecord, rel: string): Promise<string> {
  const base = await db.baseAll(folder.id);
  const b = base.get(rel);
  if (b) return b.fileId;
  const candidates = [...(await db.remoteAll(folder.id)).values()].filter((r) => r.path === rel).sort((x, y) => Number(x.deleted) - Number(y.deleted) || y.seq - x.seq);
  if (!candidates.length) throw new CliError(`${rel} is not known in this space (never synced)`);
  return candidates[0]!.fileId;
}

async function history(file: string) {
  const account = await openAccount();
  const client = accountClient(account);
  const db = await IndexDb.open(kluisHome());
  try {
    const { folder, rel } = await locate(db, file);
    const sc = await SpaceCrypto.load(client, account, folder.spaceId);
    const fileId = await fileIdOf(db, folder, rel);
    sc.open(fileId, (await db.wraps(folder.id, [fileId])).get(fileId) ?? []);
    const list = await fileHistory(client, sc, fileId);
    const versions = list.map((h, i) => ({
      versionId: h.version.versionId, seq: h.version.seq, createdAt: new Date(h.version.createdAt).toISOString(), size: h.manifest?.size ?? 0,
      deleted: h.version.deleted, path: h.manifest?.path ?? null, author: h.signer ? (sc.authors.get(h.signer) ?? null) : null, device: h.version.authorDeviceId,
      current: i === 0, expired: h.version.expired, ...(h.refused ? { refused: h.refused } : {}),
    }));
    return { path: rel, fileId, versions };
  } finally {
    await db.close();
  }
}
