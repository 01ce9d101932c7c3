// The main process's synced folders (docs/desktop.md "Main process"): one engine per folder, each in its own thread
// (./engine-proxy.ts, ./engine-worker.ts) opened through the engine's front door (../../sync/door.ts), and the IPC
// handlers that the door can serve: app:status, folders:pause/resume, versions:list/restore. Plain functions of the
// parsed request (./ipc.ts validates before they run); a folder the request names but this process does not hold is
// `not_found`.
import { ErrorCode, KluisError, fingerprint, publicIdentity } from '@kluis/shared';
import type { Account } from '../../account/state.js';
import { absDir, type EngineState, type Progress } from '../../index.js';
import type { FolderState, FolderStatus } from '../ipc/contract.js';
import { FolderThread } from './engine-proxy.js';
import type { Handlers } from './ipc.js';
import { Throughput } from './rate.js';

interface Held {
  folder: FolderThread;
  spaceName: string;
  state: EngineState;
  progress: Progress | null;
  /** the pass's bytes over the last seconds: rate and time left */
  meter: Throughput;
  conflicts: number;
  lastSyncedAt: number | null;
  error: { code: string; message: string } | null;
}

export interface FolderHostOptions {
  home: string;
  account: Account;
  /** the app's version, for app:status */
  version: string;
  keysProtected: 'os-keychain' | 'file-only';
  recoveryKeyConfirmed: () => boolean;
  /** a file modified less than this long ago waits (the engine's default when absent) */
  settleMs?: number;
  /** told whenever a folder's status changes (the tray, the renderer's status event) */
  onChange?: (folderId: string) => void;
}

/**
 * What the tray and the renderer see of an engine state. A folder that was up to date stays so while the engine
 * merely looks for changes (every poll and every file event): it shows "syncing" once there is something to move,
 * not a flash on each look.
 */
export function folderState(state: EngineState, hasError: boolean, wasUpToDate = false): FolderState {
  if (state === 'paused') return 'paused';
  if (state === 'error' || hasError) return 'error';
  if (state === 'scanning') return wasUpToDate ? 'up-to-date' : 'syncing';
  if (state === 'uploading' || state === 'downloading') return 'syncing';
  if (state === 'stopped') return 'offline';
  return 'up-to-date';
}

export class FolderHost {
  private readonly held = new Map<string, Held>();
  /** roots being opened: the door's "open twice in this process" check cannot see across threads (see add) */
  private readonly opening = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(private readonly o: FolderHostOptions) {}

  /** Opens DIR for the space (bind + lock through the door) and starts keeping it in step. */
  async add(dir: string, spaceId: string, spaceName: string, options: { pollMs?: number; bwlimit?: number } = {}): Promise<FolderStatus> {
    // Each thread loads the door anew, and the lock file names the process, not the thread: a folder open twice here
    // is refused here, before a second thread takes the lock file over.
    const root = absDir(dir);
    if (this.opening.has(root) || [...this.held.values()].some((x) => x.folder.folder.root === root)) {
      throw new KluisError(ErrorCode.Conflict, `${root} is already being synced by this process`);
    }
    if (this.closed) throw new KluisError(ErrorCode.Conflict, 'the app is closing');
    const opened = FolderThread.open(this.o.account, dir, { spaceId, home: this.o.home, ...(this.o.settleMs !== undefined ? { settleMs: this.o.settleMs } : {}), ...(options.bwlimit ? { bwlimit: options.bwlimit } : {}) });
    this.opening.set(root, opened.catch(() => undefined));
    let folder: FolderThread;
    try {
      folder = await opened;
    } finally {
      this.opening.delete(root);
    }
    // closed while the thread opened the folder (quit, logout): its thread ends too
    if (this.closed) {
      await folder.close();
      throw new KluisError(ErrorCode.Conflict, 'the app is closing');
    }
    const id = String(folder.folder.id);
    const h: Held = { folder, spaceName, state: 'idle', progress: null, meter: new Throughput(), conflicts: 0, lastSyncedAt: null, error: null };
    const changed = () => this.o.onChange?.(id);
    folder.on('state', (state, reason) => {
      h.state = state;
      if (state !== 'uploading' && state !== 'downloading') h.meter.reset();
      if (state === 'error') h.error = { code: 'sync_error', message: reason ?? 'error' };
      else if (state === 'idle') {
        h.error = null;
        h.progress = null;
        h.lastSyncedAt = Date.now();
      }
      changed();
    });
    folder.on('progress', (p) => {
      h.progress = p;
      h.meter.add(p.phase, p.bytesDone);
      changed();
    });
    folder.on('conflict', () => {
      h.conflicts++;
      changed();
    });
    this.held.set(id, h);
    void folder.start(options).catch((err: unknown) => {
      h.error = { code: err instanceof KluisError ? err.code : 'sync_error', message: err instanceof Error ? err.message : String(err) };
      changed();
    });
    return this.status(id);
  }

  private get(folderId: string): Held {
    const h = this.held.get(folderId);
    if (!h) throw new KluisError(ErrorCode.NotFound, 'this folder is not synced on this computer');
    return h;
  }

  async status(folderId: string): Promise<FolderStatus> {
    const h = this.get(folderId);
    const p = h.progress;
    const pendingBytes = p ? Math.max(0, p.bytesTotal - p.bytesDone) : 0;
    const now = Date.now();
    return {
      folderId, path: h.folder.folder.root, spaceId: h.folder.folder.spaceId, spaceName: h.spaceName, state: folderState(h.state, h.error !== null, h.lastSyncedAt !== null && h.progress === null),
      pendingFiles: p ? Math.max(0, p.filesTotal - p.filesDone) : 0, pendingBytes,
      rate: p ? h.meter.rate(now) : null, etaSeconds: p ? h.meter.eta(pendingBytes, now) : null, conflicts: h.conflicts, lastSyncedAt: h.lastSyncedAt, error: h.error,
    };
  }

  async statuses(): Promise<FolderStatus[]> {
    return Promise.all([...this.held.keys()].map((id) => this.status(id)));
  }

  folder(folderId: string): FolderThread {
    return this.get(folderId).folder;
  }

  /** Stops syncing one folder (its files stay on disk) and unlocks it. */
  async remove(folderId: string): Promise<void> {
    const h = this.get(folderId);
    this.held.delete(folderId);
    await h.folder.close();
    this.o.onChange?.(folderId);
  }

  /**
   * The number of conflict copies in the folder, counted on disk by the conflicts handlers (./conflicts.ts) when they
   * list or resolve: the engine's `conflict` events only add, so without this a resolved conflict stayed counted.
   */
  setConflicts(folderId: string, n: number): void {
    const h = this.get(folderId);
    if (h.conflicts === n) return;
    h.conflicts = n;
    this.o.onChange?.(folderId);
  }

  /** Every folder's transfer limit (bytes per second, 0: none). */
  async setBandwidth(bytesPerSecond: number): Promise<void> {
    await Promise.all([...this.held.values()].map((h) => h.folder.setBandwidth(bytesPerSecond)));
  }

  /** Stops every engine and unlocks its folder (quit, logout, wipe). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.opening.values());
    const all = [...this.held.values()];
    this.held.clear();
    await Promise.all(all.map((h) => h.folder.close()));
  }

  get options(): FolderHostOptions {
    return this.o;
  }
}

type DoorChannels = 'app:status' | 'folders:pause' | 'folders:resume' | 'versions:list' | 'versions:restore';

/** The IPC handlers the front door serves today. */
export function folderHandlers(host: FolderHost): Pick<Handlers, DoorChannels> {
  const o = host.options;
  return {
    'app:status': async () => ({
      version: o.version,
      account: { server: o.account.session.server, email: o.account.session.email, fingerprint: fingerprint(publicIdentity(o.account.keys)), recoveryKeyConfirmed: o.recoveryKeyConfirmed() },
      folders: await host.statuses(),
      keysProtected: o.keysProtected,
    }),
    'folders:pause': async ({ folderId }) => {
      await host.folder(folderId).pause();
      return host.status(folderId);
    },
    'folders:resume': async ({ folderId }) => {
      await host.folder(folderId).resume();
      return host.status(folderId);
    },
    'versions:list': async ({ folderId, path }) => {
      const h = await host.folder(folderId).history(path);
      return {
        versions: h.versions.map((v) => ({ versionId: v.versionId, at: Date.parse(v.createdAt), size: v.size, author: v.author ?? 'unknown', deleted: v.deleted, current: v.current })),
      };
    },
    'versions:restore': async ({ folderId, path, versionId }) => {
      await host.folder(folderId).restore(path, versionId);
      return { ok: true as const };
    },
  };
}
