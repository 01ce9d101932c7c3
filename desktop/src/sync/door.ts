// The sync engine's front door (docs/architecture.md §10, docs/desktop.md): the one API its shells use. The CLI
// (cli/sync-commands.ts) and the desktop app's main process (electron/main/) compose the engine only through this
// module: bind and lock a folder, start/stop/pause/resume it, read its status, listen to typed events, list a file's
// versions and restore one (./door-versions.ts, through the engine's journalled commit path), and export a space's files and
// history into a new folder (./door-export.ts, `kluis export`).
import { EventEmitter } from 'node:events';
import { mkdirSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { ErrorCode, KluisError } from '@kluis/shared';
import type { Account } from '../account/state.js';
import { accountClient } from '../account/spaces.js';
import { SyncEngine, folderLockHolder, lockFolder, type Progress, type SyncReport } from './engine.js';
import { IndexDb, type FolderRecord } from './index-db.js';
import { parseRate } from './transfer.js';
import type { EngineState } from './types.js';
import { watchFolder } from './watcher.js';
import { deviceName } from './door-files.js';
import { fileVersions, restoreVersion, type FileHistory, type Restored } from './door-versions.js';

export { isTransient } from './remote.js';
export { READ_WHOLE_MAX } from './types.js';
export { parseRate };
export type { EngineState, FileHistory, Progress, Restored, SyncReport };
export type { VersionInfo } from './door-versions.js';

/** Every event of a synced folder and its arguments. */
export interface SyncFolderEvents {
  progress: [Progress];
  /** a pass that changed something (or refused or failed something) */
  synced: [SyncReport];
  /** both sides changed a file: the local version was kept under this name */
  conflict: [{ copyPath: string }];
  /** a version or a file was refused (policy, bad signature, ...) */
  refused: [{ path: string; reason: string }];
  warning: [string];
  state: [EngineState, string | undefined];
  /** a transient error; the engine tries again in `inMs` */
  retry: [{ reason: string; inMs: number }];
  /** a pass failed for good (e.g. the session was ended: an ApiRequestError with status 401) */
  failure: [Error];
}

export interface FolderStatusView {
  folderId: number;
  folder: string;
  spaceId: string;
  seq: number;
  state: string;
  /** a process holds the folder's lock (this one or another) */
  running: boolean;
  pid: number | null;
  pendingJournal: number;
  lastSyncAt: string | null;
  lastError: string | null;
}

export interface OpenOptions {
  spaceId: string;
  home: string;
  /** this device's name (conflict copies); default: as the server knows it, else the host name */
  device?: string;
  settleMs?: number;
  /** bytes per second, or a rate such as 500K */
  bwlimit?: number | string;
  giveUpMs?: number;
  /** the space's summary, read just now, named no removal pending (SyncEngine's option of that name) */
  noRemovalsPending?: boolean;
  /** SyncEngine's option of that name (hash-later.ts) */
  hashLaterMin?: number;
  /** SyncEngine's option of that name (hash-later.ts) */
  hashLaterSmallMax?: number;
}

/** The folder's root as the index records it (real path when it exists). */
export function absDir(dir: string): string {
  const abs = path.resolve(dir);
  try {
    return realpathSync(abs);
  } catch {
    return abs;
  }
}

/** Folders open in this process (`home\0id`): the lock file names the process, so it cannot tell two opens apart. */
const openHere = new Set<string>();

/** The typed events of a synced folder: the door's SyncFolder, and the desktop app's proxy of one in a thread. */
export class FolderEvents {
  private readonly events = new EventEmitter();

  on<E extends keyof SyncFolderEvents>(event: E, listener: (...args: SyncFolderEvents[E]) => void): this {
    this.events.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  off<E extends keyof SyncFolderEvents>(event: E, listener: (...args: SyncFolderEvents[E]) => void): this {
    this.events.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  protected emit<E extends keyof SyncFolderEvents>(event: E, ...args: SyncFolderEvents[E]): void {
    this.events.emit(event, ...args);
  }
}

/** A synced folder opened by this process: bound to its space for good, and locked (one engine per folder). */
export class SyncFolder extends FolderEvents {
  private running: { ac: AbortController; done: Promise<void> } | null = null;
  private closed = false;

  private constructor(private readonly db: IndexDb, private readonly engine: SyncEngine, private readonly unlock: () => Promise<void>) {
    super();
    engine.on('progress', (p: Progress) => this.emit('progress', p));
    engine.on('warning', (m: string) => this.emit('warning', m));
    engine.on('state', (s: EngineState, reason?: string) => this.emit('state', s, reason));
    engine.on('retry', (r: { reason: string; inMs: number }) => this.emit('retry', r));
    engine.on('failure', (err: Error) => this.emit('failure', err));
    engine.on('synced', (r: SyncReport) => this.passed(r));
  }

  /** Binds DIR (created if missing) to the space and locks it; refused when another space or process has it. */
  static async open(account: Account, dir: string, o: OpenOptions): Promise<SyncFolder> {
    mkdirSync(path.resolve(dir), { recursive: true });
    if (!statSync(path.resolve(dir)).isDirectory()) throw new KluisError(ErrorCode.BadRequest, `${dir} is not a folder`);
    const bwlimit = typeof o.bwlimit === 'string' ? parseRate(o.bwlimit) : (o.bwlimit ?? 0);
    const db = await IndexDb.open(o.home);
    let unlock: (() => Promise<void>) | null = null;
    try {
      const root = absDir(dir);
      const other = (await db.folders()).find((f) => f.root === root && f.spaceId !== o.spaceId);
      if (other) throw new KluisError(ErrorCode.Conflict, `${root} is already synced with another space (${other.spaceId}); choose another folder`);
      const folder = await db.folder(o.spaceId, root);
      const key = `${o.home}\u0000${folder.id}`;
      if (openHere.has(key)) throw new KluisError(ErrorCode.Conflict, `${root} is already being synced by this process`);
      const unlockFile = await lockFolder(o.home, folder.id);
      openHere.add(key);
      unlock = async () => {
        openHere.delete(key);
        await unlockFile();
      };
      await db.setStatus(folder.id, { pid: process.pid });
      const engine = new SyncEngine({
        db, folder, client: accountClient(account), account, device: o.device ?? (() => deviceName(account)), bwlimit,
        ...(o.settleMs !== undefined ? { settleMs: o.settleMs } : {}), ...(o.giveUpMs !== undefined ? { giveUpMs: o.giveUpMs } : {}),
        ...(o.noRemovalsPending ? { noRemovalsPending: true } : {}), ...(o.hashLaterMin !== undefined ? { hashLaterMin: o.hashLaterMin } : {}),
        ...(o.hashLaterSmallMax !== undefined ? { hashLaterSmallMax: o.hashLaterSmallMax } : {}),
      });
      return new SyncFolder(db, engine, unlock);
    } catch (err) {
      await unlock?.();
      await db.close();
      throw err;
    }
  }

  get folder(): FolderRecord {
    return this.engine.folder;
  }

  private passed(r: SyncReport): void {
    for (const copyPath of r.conflicts) this.emit('conflict', { copyPath });
    for (const x of r.refused) this.emit('refused', x);
    this.emit('synced', r);
  }

  /** Syncs until nothing is left to do, then answers what was done. */
  async runOnce(signal?: AbortSignal): Promise<SyncReport> {
    const r = await this.engine.runOnce(signal);
    for (const copyPath of r.conflicts) this.emit('conflict', { copyPath });
    for (const x of r.refused) this.emit('refused', x);
    return r;
  }

  /** Keeps the folder in step (watcher, server pushes, a poll every `pollMs`) until stop(); the promise ends with it. */
  start(o: { pollMs?: number } = {}): Promise<void> {
    if (this.running) return this.running.done;
    const ac = new AbortController();
    const done = this.engine.watch(ac.signal, { pollMs: o.pollMs ?? 30_000, watcher: watchFolder }).finally(() => {
      this.running = null;
    });
    this.running = { ac, done };
    return done;
  }

  async stop(): Promise<void> {
    const r = this.running;
    if (!r) return;
    r.ac.abort();
    await r.done.catch(() => undefined);
  }

  pause(): void {
    this.engine.pause();
  }

  resume(): void {
    this.engine.resume();
  }

  /** The transfer limit in bytes per second, both ways together (0: none); applies from the next chunk. */
  setBandwidth(bytesPerSecond: number): void {
    this.engine.limiter.setRate(bytesPerSecond);
  }

  async status(): Promise<FolderStatusView> {
    return statusOf(this.db, this.folder, process.pid);
  }

  async history(rel: string): Promise<FileHistory> {
    return fileVersions(this.engine, rel);
  }

  /** Restores a version of `rel` (see ./door-versions.ts); a started folder brings it down on its next pass. */
  async restore(rel: string, version: string): Promise<Restored & { written: boolean }> {
    const r = await restoreVersion(this.engine, rel, version);
    if (this.running) {
      this.engine.noteChange();
      this.engine.emit('wake');
      return { ...r, written: false };
    }
    await this.engine.runOnce();
    return { ...r, written: true };
  }

  /** Stops, marks the folder stopped and unlocks it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.stop();
    await this.db.setStatus(this.folder.id, { pid: null, state: 'stopped' }).catch(() => undefined);
    await this.unlock();
    await this.db.close();
  }
}

export const openFolder = SyncFolder.open.bind(SyncFolder);

async function statusOf(db: IndexDb, f: FolderRecord, holder: number | null): Promise<FolderStatusView> {
  const s = await db.status(f.id);
  return {
    folderId: f.id, folder: f.root, spaceId: f.spaceId, seq: f.lastSeq, state: holder ? s.state : 'stopped', running: holder !== null, pid: holder,
    pendingJournal: s.pendingJournal, lastSyncAt: s.lastSyncAt ? new Date(s.lastSyncAt).toISOString() : null, lastError: s.lastError,
  };
}

/** Every synced folder of this KLUIS_HOME and its state (read from the index; a folder is running while locked). */
export async function folderStatuses(home: string): Promise<FolderStatusView[]> {
  const db = await IndexDb.open(home);
  try {
    const out: FolderStatusView[] = [];
    for (const f of await db.folders()) out.push(await statusOf(db, f, await folderLockHolder(home, f.id)));
    return out;
  } finally {
    await db.close();
  }
}

export { deviceName, locateFile, fileHistoryAt, restoreAt } from './door-files.js';
export { fileIdOf } from './door-versions.js';
export { exportSpace, EXPORT_METADATA, EXPORT_VERSIONS, type ExportReport, type ExportMetadata, type ExportedFile, type ExportedVersion } from './door-export.js';
