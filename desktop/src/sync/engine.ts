// The sync engine (docs/architecture.md §4): one synced folder bound to one space. A cycle pulls the change log into the index,
// scans the folder (trusting size + mtime + inode, hashing only what changed), reconciles base/local/remote three
// ways (conflict.ts) and carries out the actions: local moves and deletions guarded by content checks, downloads
// through verified temp files (download.ts; a new version of a large file reuses the chunks its local copy holds),
// uploads through a batched, bounded pipeline (read -> FastCDC -> encrypt -> framed batch upload -> batched commit).
//
// Crash safety. Every step is either idempotent when replayed from the disk and the server, or journalled:
// - local writes are atomic (temp file, verify, fsync, rename); a kill leaves the old file or the new one, plus a
//   `.kluis-tmp-*` file that the next start removes;
// - downloads and local moves of a pass are journalled ('local', with the base rows they produce) before any is
//   done; at start, each one found done on disk (same hash at its target) gets its base row, so a later remote
//   change is an ordinary update, never a conflict with our own download or a re-upload of a moved file;
// - a commit is journalled ('commit', with the base rows it will produce) before it is sent; at start, a pending
//   commit whose version the server holds gets its base rows, so a later local edit is an ordinary edit and never
//   a conflict with ourselves; a commit the server never got is simply redone by the next cycle;
// - chunks are uploaded before the commit that names them; unreferenced chunks of an interrupted upload cost
//   space only.
//
// States: idle / scanning / uploading / downloading / paused / error (with a reason) / stopped. Transient errors
// (server or object store away, network) are retried with backoff 1 s .. 30 s; others stop the cycle with a reason.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { lstat, open, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  ErrorCode, KluisError, newId, sealManifest, toBase64Url, type CommitVersion, type FileKeyWrap, type Manifest,
} from '@kluis/shared';
import { ApiRequestError, type ApiClient } from '../api/client.js';
import type { Account } from '../account/state.js';
import { conflictStamp, reconcile, taggedName, uploadTarget } from './conflict.js';
import { EMPTY_HASH, hashFile, scanFolder, unknownPaths, type ScanResult } from './scan.js';
import { cleanTemp, moveLocal, removeLocal, type LocalFacts } from './atomic-write.js';
import { baseOf, downloadAll, keepChunks, type DownloadItem } from './download.js';
import { LocalFsError } from './local-paths.js';
import type { FolderRecord, IndexChanges, IndexDb } from './index-db.js';
import { SpaceCrypto, fileHistory, isTransient, pullChanges, type FileKeys } from './remote.js';
import { shareFreshKeys } from './share-wraps.js';
import { completePendingRemovals } from '../account/spaces.js';
import { ChunkUploader, RateLimiter, each, readAndEncrypt } from './transfer.js';
import type { BaseEntry, EngineState, LocalEntry, RemoteEntry, SyncAction } from './types.js';

export interface SyncReport {
  folder: string;
  spaceId: string;
  seq: number;
  uploaded: number;
  downloaded: number;
  deletedLocal: number;
  deletedRemote: number;
  moved: number;
  conflicts: string[];
  refused: { path: string; reason: string }[];
  skipped: { path: string; reason: string }[];
  errors: { path: string; reason: string }[];
  /** chunk ciphertext bytes sent to the server */
  bytesUploaded: number;
  /** chunk ciphertext bytes received from the server */
  bytesDownloaded: number;
  /** plaintext bytes of new versions taken from the local copy of the previous version instead (delta download) */
  bytesReused: number;
  /** members this client removed (signed removal + key rotation) because an admin asked for it (docs/admin.md) */
  removedMembers: { email: string; keyEpoch: number }[];
}

export interface EngineOptions {
  db: IndexDb;
  folder: FolderRecord;
  client: ApiClient;
  account: Account;
  /** this device's name, for conflict copies */
  device: string;
  /** a file modified less than this long ago waits (default 1000 ms) */
  settleMs?: number;
  /** bytes per second for uploads + downloads together (0 = unlimited) */
  bwlimit?: number;
  /** give up retrying transient errors after this long in runOnce (default: never) */
  giveUpMs?: number;
}

export interface Progress {
  phase: 'uploading' | 'downloading';
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

const COMMIT_BATCH = 500;
const READ_CONCURRENCY = 4;
const MAX_CYCLES_ONCE = 30;
/** Why local changes of a frozen space stay local (docs/admin.md "Offboarding"). */
const FROZEN = 'this space has no manager left to renew its key (its only manager was offboarded): the server takes no new versions, so this local change stays here; copy it into another space';

interface PendingCommit {
  version: CommitVersion;
  /** index changes once committed (the remote entry's seq is filled in from the answer) */
  putBase?: BaseEntry;
  deleteBase?: string;
  remote: RemoteEntry;
  wrap?: FileKeyWrap;
  kind: 'upload' | 'delete' | 'move';
}

/** A file to upload as a new version: of `fileId` on top of `parent`, or a new file (fileId null). */
interface UploadItem {
  path: string;
  local: LocalEntry;
  fileId: string | null;
  parent: string | null;
  /** a move re-uploaded under a fresh key: the old path's base row goes */
  deleteBase?: string;
}

/** Local writes and moves about to happen: after a kill, the ones found done on disk get their base rows. */
interface JournalLocal {
  steps: { path: string; disk: string; from?: string; base: Omit<BaseEntry, 'localSize' | 'localMtimeMs' | 'localIno'> }[];
}

interface JournalCommit {
  versions: { fileId: string; versionId: string; putBase?: BaseEntry; deleteBase?: string }[];
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> => new Promise((resolve) => {
  if (signal?.aborted) return resolve();
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => {
    clearTimeout(t);
    resolve();
  }, { once: true });
});

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class SyncEngine extends EventEmitter {
  readonly db: IndexDb;
  readonly folder: FolderRecord;
  readonly client: ApiClient;
  readonly account: Account;
  readonly device: string;
  readonly settleMs: number;
  readonly limiter: RateLimiter;
  private sc: SpaceCrypto | null = null;
  private stateValue: EngineState = 'idle';
  private paused = false;
  private firstCycle = true;
  private readonly refusedVersions = new Set<string>();
  /** versions this engine committed (their remote rows are written at commit): not opened again when pulled */
  private readonly ownCommits = new Set<string>();
  private report: SyncReport;
  private readonly giveUpMs: number | undefined;
  /** The last scan, reused by partial rescans while watching (null: the next scan is a full one). */
  private lastScan: ScanResult | null = null;
  /** Folders (relative, as on disk) the watcher saw change since the last scan. */
  private dirty = new Set<string>();
  /** Whether to look for removals an admin asked for (at start, on a server hint, on each poll). */
  private removalsDue = true;

  constructor(options: EngineOptions) {
    super();
    this.db = options.db;
    this.folder = options.folder;
    this.client = options.client;
    this.account = options.account;
    this.device = options.device;
    this.settleMs = options.settleMs ?? 1000;
    this.limiter = new RateLimiter(options.bwlimit ?? 0);
    this.giveUpMs = options.giveUpMs;
    this.report = this.emptyReport();
  }

  private emptyReport(): SyncReport {
    return {
      folder: this.folder.root, spaceId: this.folder.spaceId, seq: this.folder.lastSeq, uploaded: 0, downloaded: 0, deletedLocal: 0, deletedRemote: 0, moved: 0,
      conflicts: [], refused: [], skipped: [], errors: [], bytesUploaded: 0, bytesDownloaded: 0, bytesReused: 0, removedMembers: [],
    };
  }

  get state(): EngineState {
    return this.stateValue;
  }

  private setState(state: EngineState, reason?: string): void {
    if (state === this.stateValue && reason === undefined) return;
    this.stateValue = state;
    this.emit('state', state, reason);
    void this.db.setStatus(this.folder.id, { state, ...(state === 'error' ? { lastError: reason ?? 'error' } : {}) }).catch(() => undefined);
  }

  pause(): void {
    this.paused = true;
    this.setState('paused');
  }

  resume(): void {
    this.paused = false;
    this.setState('idle');
    this.emit('wake');
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Takes (and returns) the counters gathered since the last call. */
  takeReport(): SyncReport {
    const r = this.report;
    r.seq = this.folder.lastSeq;
    this.report = this.emptyReport();
    return r;
  }

  private async crypto(): Promise<SpaceCrypto> {
    this.sc ??= await SpaceCrypto.load(this.client, this.account, this.folder.spaceId);
    return this.sc;
  }

  private async keysFor(fileIds: readonly string[]): Promise<void> {
    const sc = await this.crypto();
    const unknown = fileIds.filter((id) => !sc.knows(id));
    if (unknown.length === 0) return;
    const wraps = await this.db.wraps(this.folder.id, unknown);
    for (const id of unknown) {
      try {
        sc.open(id, wraps.get(id) ?? []);
      } catch {
        // Maybe a file that came through a file request: its wrap is signed by the request key, trusted only
        // under the grant its history names. Otherwise reported where the key is needed.
        await sc.learnUploads(this.client, id).then(() => sc.open(id, wraps.get(id) ?? [])).catch(() => undefined);
      }
    }
  }

  /** The key a remote version was written with. */
  private readKeys(r: RemoteEntry): FileKeys {
    const k = this.sc?.keyFor(r.fileId, r.keyEpoch);
    if (!k) throw new KluisError(ErrorCode.BadKey, `no key of epoch ${r.keyEpoch} of this file opens for you`);
    return k;
  }

  private abs(rel: string): string {
    return path.join(this.folder.root, ...rel.split('/'));
  }

  // ------------------------------------------------------------------------------------------- pulling

  /** Brings the index's remote state up to the server's head. Returns how many versions changed. */
  async pull(): Promise<number> {
    const sc = await this.crypto();
    let changed = 0;
    for await (const page of pullChanges(this.client, sc, this.folder.lastSeq, 1000, (versionId) => this.ownCommits.has(versionId))) {
      if (page.uploads.size > 0) await this.placeUploads(page.entries, page.uploads);
      await this.db.apply(this.folder.id, { putRemote: page.entries, putWraps: page.wraps, lastSeq: page.next });
      this.folder.lastSeq = page.next;
      changed += page.entries.length;
      for (const r of page.refused) {
        if (this.refusedVersions.has(r.versionId)) continue;
        this.refusedVersions.add(r.versionId);
        this.report.refused.push({ path: `(file ${r.fileId}, version ${r.versionId})`, reason: r.reason });
        this.emit('warning', `a version from the server was refused: ${r.reason}`);
      }
    }
    return changed;
  }

  /**
   * A manager's client signs the removals an admin asked for and rotates the space key (docs/admin.md "Offboarding"):
   * the server cannot. A failure (a colleague's keys that do not verify, a race with another manager) is reported and
   * tried again at the next hint or poll; it never stops the sync.
   */
  private async completeRemovals(): Promise<void> {
    if (!this.removalsDue) return;
    this.removalsDue = false;
    try {
      const done = await completePendingRemovals(this.account, this.folder.spaceId);
      if (done.length === 0) return;
      this.sc = null; // a new key epoch: load the space's keys again
      for (const d of done) {
        this.report.removedMembers.push({ email: d.email, keyEpoch: d.keyEpoch });
        this.emit('warning', `removed ${d.email} from the space as an admin asked (key epoch ${d.keyEpoch})`);
      }
    } catch (err) {
      if (isTransient(err)) this.removalsDue = true;
      else this.emit('warning', `could not complete a removal an admin asked for: ${errText(err)}`);
    }
  }

  /**
   * A file that came through a file request never takes the place of another (docs/crypto.md §9.2): the uploader
   * cannot see the folder's names. If its path is held by another file (on the server, in the index, or on disk),
   * it is kept as `name (upload <YYYY-MM-DD HHmm>).ext`, stamped with the server's commit time (UTC), so every
   * device picks the same name. The index keeps that path as the file's remote path; a member's next edit or move
   * commits it.
   */
  private async placeUploads(entries: RemoteEntry[], uploads: Map<string, number>): Promise<void> {
    const remote = await this.db.remoteAll(this.folder.id);
    const base = await this.db.baseAll(this.folder.id);
    const held = new Map<string, string>();
    for (const r of remote.values()) if (!r.deleted) held.set(r.path, r.fileId);
    for (const [p, b] of base) held.set(p, b.fileId);
    for (const e of entries) if (!e.deleted && !uploads.has(e.versionId)) held.set(e.path, e.fileId);
    for (const e of entries) {
      const at = uploads.get(e.versionId);
      if (at === undefined) continue;
      const taken = (p: string) => {
        const owner = held.get(p);
        return owner === undefined ? existsSync(this.abs(p)) : owner !== e.fileId;
      };
      if (taken(e.path)) e.path = taggedName(e.path, `upload ${conflictStamp(new Date(at))}`, taken);
      held.set(e.path, e.fileId);
    }
  }

  /** Finishes commits a crash interrupted: a version the server holds gets its base rows (see the top). */
  private async recoverJournal(remote: Map<string, RemoteEntry>): Promise<void> {
    const pending = await this.db.journalPending(this.folder.id);
    if (pending.length === 0) return;
    const sc = await this.crypto();
    for (const j of pending) {
      const changes: IndexChanges = { journalDone: [j.id] };
      if (j.op === 'local') {
        const putBase: BaseEntry[] = [];
        const deleteBase: string[] = [];
        for (const step of (j.payload as JournalLocal).steps) {
          const facts = await this.onDisk(step.disk, step.base.kind, step.base.hash);
          if (!facts) continue;
          putBase.push({ ...step.base, localSize: facts.size, localMtimeMs: facts.mtimeMs, localIno: facts.ino });
          if (step.from !== undefined && step.from !== step.path) deleteBase.push(step.from);
        }
        changes.putBase = putBase;
        changes.deleteBase = deleteBase;
      } else if (j.op === 'commit') {
        const payload = j.payload as JournalCommit;
        const putBase: BaseEntry[] = [];
        const deleteBase: string[] = [];
        for (const v of payload.versions) {
          let committed = remote.get(v.fileId)?.versionId === v.versionId;
          if (!committed && remote.has(v.fileId)) {
            try {
              await this.keysFor([v.fileId]);
              committed = (await fileHistory(this.client, sc, v.fileId)).some((h) => h.version.versionId === v.versionId);
            } catch (err) {
              if (isTransient(err)) throw err;
            }
          }
          if (!committed) continue;
          if (v.deleteBase !== undefined) deleteBase.push(v.deleteBase);
          if (v.putBase) putBase.push(v.putBase);
        }
        changes.deleteBase = deleteBase;
        changes.putBase = putBase;
      }
      await this.db.apply(this.folder.id, changes);
    }
    await this.db.journalPrune(this.folder.id);
  }

  /** The local facts of `rel` if it holds exactly `hash` (a folder: if it is a folder), else null. */
  private async onDisk(rel: string, kind: 'file' | 'dir', hash: string): Promise<LocalFacts | null> {
    let st;
    try {
      st = await lstat(this.abs(rel));
    } catch {
      return null;
    }
    if (kind === 'dir') return st.isDirectory() ? { size: 0, mtimeMs: st.mtimeMs, ino: st.ino } : null;
    if (!st.isFile() || st.size === undefined) return null;
    const h = await hashFile(this.abs(rel), { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino }).catch(() => null);
    return h && h.hash === hash ? { size: h.size, mtimeMs: h.mtimeMs, ino: h.ino } : null;
  }

  // ------------------------------------------------------------------------------------------- one cycle

  /**
   * The watcher saw `absPath` change: its folder is rescanned next pass (the path itself is walked as part of it).
   * Without a path (or one outside the folder) the next scan is a full one.
   */
  noteChange(absPath?: string): void {
    if (absPath === undefined) {
      this.lastScan = null;
      return;
    }
    const rel = path.relative(this.folder.root, absPath);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
      this.lastScan = null;
      return;
    }
    const parent = path.dirname(rel);
    this.dirty.add(parent === '.' ? '' : parent);
  }

  /** A full scan, or a rescan of the folders the watcher named (each walked up to one that still exists). */
  private async scan(base: Map<string, BaseEntry>, signal?: AbortSignal): Promise<ScanResult> {
    const dirty = [...this.dirty];
    this.dirty = new Set();
    const options = { settleMs: this.settleMs, ...(signal ? { signal } : {}) };
    if (!this.lastScan || dirty.includes('')) return scanFolder(this.folder.root, base, options);
    if (dirty.length === 0) return this.lastScan;
    const dirs = new Set<string>();
    for (let d of dirty) {
      for (;;) {
        try {
          if ((await lstat(path.join(this.folder.root, d))).isDirectory()) break;
        } catch {
          // gone: look at its parent
        }
        const up = path.dirname(d);
        d = up === '.' ? '' : up;
        if (d === '') break;
      }
      dirs.add(d);
    }
    return scanFolder(this.folder.root, base, { ...options, only: { previous: this.lastScan, dirs: [...dirs] } });
  }

  /**
   * One pass: pull, scan, reconcile, act. Returns whether anything was done or is still waiting (settling files),
   * i.e. whether another pass may find more.
   */
  async cycle(signal?: AbortSignal, options: { full?: boolean } = {}): Promise<{ busy: boolean; waiting: boolean }> {
    this.setState('scanning');
    if (options.full) this.lastScan = null;
    await this.completeRemovals();
    await this.pull();
    let remote = await this.db.remoteAll(this.folder.id);
    await this.recoverJournal(remote);
    const base = await this.db.baseAll(this.folder.id);
    remote = await this.db.remoteAll(this.folder.id);
    const scan = await this.scan(base, signal);
    if (this.firstCycle) {
      await cleanTemp(this.folder.root, scan.temps).catch(() => 0);
      this.firstCycle = false;
    }
    const waiting = scan.skipped.some((s) => s.reason === 'settling' || s.reason === 'changing');
    for (const s of scan.skipped) {
      if (s.reason === 'settling' || s.reason === 'changing') continue;
      if (!this.report.skipped.some((x) => x.path === s.path)) {
        this.report.skipped.push({ path: s.path, reason: s.reason === 'symlink' ? 'symbolic link: not synced' : s.detail ?? s.reason });
        this.emit('warning', `${s.path}: skipped (${s.reason === 'symlink' ? 'symbolic links are not synced' : s.detail ?? s.reason})`);
      }
    }
    for (const r of scan.refused) {
      if (!this.report.refused.some((x) => x.path === r.path)) this.report.refused.push({ path: r.path, reason: r.detail ?? r.reason });
    }
    const actions = reconcile(base, scan.entries, remote, { device: this.device, now: new Date(), unknown: unknownPaths(scan) });
    // Settling files are looked at again next pass (their folders are rescanned).
    for (const sk of scan.skipped) if (sk.reason === 'settling' || sk.reason === 'changing') this.noteChange(this.abs(scan.diskPaths.get(sk.path) ?? sk.path));
    this.lastScan = scan;
    const busy = await this.act(actions, base, scan, signal);
    // The disk changed under the scan's feet (our own writes): the next pass scans everything again.
    if (busy) this.lastScan = null;
    await this.db.setStatus(this.folder.id, { lastSyncAt: Date.now(), lastError: null });
    this.setState(this.paused ? 'paused' : 'idle');
    return { busy, waiting };
  }

  private async act(actions: SyncAction[], base: Map<string, BaseEntry>, scan: ScanResult, signal?: AbortSignal): Promise<boolean> {
    const sc = await this.crypto();
    const disk = (p: string): string => scan.diskPaths.get(p) ?? p;
    const index: IndexChanges & { putBase: BaseEntry[]; deleteBase: string[] } = { putBase: [], deleteBase: [] };
    const flushIndex = async (): Promise<void> => {
      if (!index.putBase.length && !index.deleteBase.length) return;
      await this.db.apply(this.folder.id, { deleteBase: index.deleteBase.splice(0), putBase: index.putBase.splice(0) });
    };
    const commits: PendingCommit[] = [];
    const uploads: UploadItem[] = [];
    const downloads: DownloadItem[] = [];
    const localDeletes: Extract<SyncAction, { type: 'delete-local' }>[] = [];
    let busy = false;

    const fileIds = new Set<string>();
    for (const a of actions) {
      if ('remote' in a && a.remote) fileIds.add(a.remote.fileId);
      if ('base' in a && a.base) fileIds.add(a.base.fileId);
    }
    await this.keysFor([...fileIds]);

    // Journal the local writes and moves first: a kill between writing a file and recording it must not make the
    // next start take our own download for a local edit (a conflict copy, or an upload of a duplicate).
    const steps: JournalLocal['steps'] = [];
    const target = (r: RemoteEntry): JournalLocal['steps'][number]['base'] => {
      const chunks = keepChunks(r); // so a recovered step also records the chunk list (the next delta's source)
      return { path: r.path, kind: r.kind, fileId: r.fileId, versionId: r.versionId, hash: r.hash, size: r.size, mtimeMs: r.mtimeMs, ...(chunks ? { chunks } : {}) };
    };
    for (const a of actions) {
      if (a.type === 'download' || a.type === 'conflict') steps.push({ path: a.path, disk: disk(a.path), base: target(a.remote) });
      else if (a.type === 'move-local') steps.push({ path: a.to, disk: a.to, from: a.from, base: target(a.remote) });
    }
    const localJournal = steps.length ? await this.db.journalAdd(this.folder.id, 'local', { steps } satisfies JournalLocal) : null;

    for (const a of actions) {
      if (signal?.aborted) break;
      switch (a.type) {
        case 'none': {
          // Refresh the local facts of unchanged entries (touched, copied back): no re-hash next time.
          const b = base.get(a.path);
          const l = scan.entries.get(a.path);
          if (b && l && l.hash === b.hash && (l.size !== b.localSize || l.mtimeMs !== b.localMtimeMs || l.ino !== b.localIno)) {
            index.putBase.push({ ...b, localSize: l.size, localMtimeMs: l.mtimeMs, localIno: l.ino });
          }
          break;
        }
        case 'refuse':
          if (!this.report.refused.some((x) => x.path === a.path)) this.report.refused.push({ path: a.path, reason: a.reason });
          break;
        case 'record':
          if (a.remote && !a.remote.deleted && a.local) index.putBase.push(baseOf(a.remote, a.local));
          else index.deleteBase.push(a.path);
          break;
        case 'move-local':
          busy = true;
          try {
            const facts = await moveLocal(this.folder.root, disk(a.from), a.to, a.base.hash);
            index.deleteBase.push(a.from);
            index.putBase.push(baseOf(a.remote, facts));
            this.report.moved++;
          } catch (err) {
            this.localFailure(a.from, err);
          }
          break;
        case 'move-remote': {
          if (!sc.canWrite || sc.frozen) {
            this.readOnly(sc, a.to);
            break;
          }
          busy = true;
          const r = a.remote;
          if (r.keyEpoch !== sc.keyEpoch || !sc.keyFor(r.fileId, r.keyEpoch)) {
            // The space key was rotated since: the moved file goes up again under a fresh key (no chunk reuse).
            uploads.push({ path: a.to, local: a.local, fileId: r.fileId, parent: r.versionId, deleteBase: a.from });
            break;
          }
          const keys = sc.keyFor(r.fileId, r.keyEpoch)!;
          commits.push(this.version(sc, keys, {
            fileId: r.fileId, parent: r.versionId, path: a.to, kind: r.kind, size: r.size, mtimeMs: r.mtimeMs, chunks: r.chunks, hash: r.hash, deleted: false,
          }, 'move', { local: a.local, deleteBase: a.from }));
          break;
        }
        case 'upload':
          if (!sc.canWrite || sc.frozen) {
            this.readOnly(sc, a.path);
            break;
          }
          busy = true;
          uploads.push({ path: a.path, local: a.local, ...uploadTarget(a) });
          break;
        case 'download':
          busy = true;
          downloads.push({ remote: a.remote, path: a.path, current: currentFacts(scan.entries.get(a.path)), base: a.base });
          break;
        case 'conflict':
          busy = true;
          try {
            await moveLocal(this.folder.root, disk(a.path), a.conflictPath, a.local.hash);
            this.report.conflicts.push(a.conflictPath);
            this.emit('warning', `${a.path}: changed here and on the server; your version is kept as "${a.conflictPath}"`);
            downloads.push({ remote: a.remote, path: a.path, current: null, base: null });
          } catch (err) {
            this.localFailure(a.path, err);
          }
          break;
        case 'delete-local':
          busy = true;
          localDeletes.push(a);
          break;
        case 'delete-remote': {
          if (!sc.canWrite || sc.frozen) {
            this.readOnly(sc, a.path);
            break;
          }
          busy = true;
          if (!sc.knows(a.base.fileId)) {
            this.report.errors.push({ path: a.path, reason: 'no key of this file opens for you' });
            break;
          }
          const { keys } = sc.writeKeys(a.base.fileId);
          commits.push(this.version(sc, keys, {
            fileId: a.base.fileId, parent: a.remote.versionId, path: a.path, kind: a.base.kind, size: 0, mtimeMs: Math.trunc(a.base.mtimeMs), chunks: [], hash: EMPTY_HASH, deleted: true,
          }, 'delete', { deleteBase: a.path }));
          break;
        }
      }
    }
    await flushIndex();

    if (downloads.length) {
      this.setState('downloading');
      await downloadAll({
        client: this.client, db: this.db, folder: this.folder, spaceId: sc.spaceId, limiter: this.limiter, report: this.report, signal,
        keys: (r, p) => this.keysOrReport(r, p),
        localFailure: (p, err) => this.localFailure(p, err),
        progress: (p) => this.emit('progress', p),
        diskPath: disk,
      }, downloads, index.putBase);
      await flushIndex();
    }
    if (localJournal !== null) await this.db.apply(this.folder.id, { journalDone: [localJournal] });
    if (uploads.length || commits.length) {
      this.setState('uploading');
      await this.upload(uploads, commits, scan, signal);
    }
    for (const a of localDeletes) {
      if (signal?.aborted) break;
      try {
        const removed = await removeLocal(this.folder.root, disk(a.path), a.base.kind === 'dir' ? EMPTY_HASH : a.base.hash);
        index.deleteBase.push(a.path);
        if (removed) this.report.deletedLocal++;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOTEMPTY') this.emit('warning', `${a.path}: deleted on the server, but the folder still holds files that are not synced; kept`);
        else this.localFailure(a.path, err);
      }
    }
    await flushIndex();
    return busy;
  }

  private readOnly(sc: SpaceCrypto, p: string): void {
    if (!this.report.refused.some((x) => x.path === p)) this.report.refused.push({ path: p, reason: sc.frozen ? FROZEN : 'you may only read this space (viewer): local changes are not uploaded' });
  }

  private keysOrReport(r: RemoteEntry, p: string): FileKeys | null {
    try {
      return this.readKeys(r);
    } catch (err) {
      this.report.errors.push({ path: p, reason: errText(err) });
      return null;
    }
  }

  private localFailure(p: string, err: unknown): void {
    if (err instanceof LocalFsError && err.code === 'changed') return; // edited meanwhile: the next pass decides
    if (err instanceof LocalFsError && (err.code === 'unsafe_path' || err.code === 'exists')) {
      if (!this.report.refused.some((x) => x.path === p)) this.report.refused.push({ path: p, reason: err.message });
      return;
    }
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // gone meanwhile
    if (isTransient(err)) throw err;
    this.report.errors.push({ path: p, reason: errText(err) });
    this.emit('warning', `${p}: ${errText(err)}`);
  }

  /** A signed, sealed version ready to commit. */
  private version(sc: SpaceCrypto, keys: FileKeys, m: Omit<Manifest, 'v' | 'versionId'>, kind: PendingCommit['kind'], after: { local?: LocalEntry | LocalFacts; deleteBase?: string }): PendingCommit {
    const versionId = newId();
    const manifest: Manifest = { v: 2, ...m, memberSeq: sc.memberSeq, versionId };
    const sealed = sealManifest(manifest, keys.subkeys, this.account.keys);
    const wrap = keys.pendingWrap;
    const remote: RemoteEntry = {
      fileId: m.fileId, versionId, seq: 0, path: m.path, kind: m.kind, size: m.size, mtimeMs: m.mtimeMs, hash: m.hash, deleted: m.deleted, chunks: m.chunks, keyEpoch: sc.keyEpoch,
    };
    const pc: PendingCommit = {
      version: { fileId: m.fileId, versionId, parent: m.parent, keyEpoch: sc.keyEpoch, manifest: toBase64Url(sealed), chunks: m.chunks.map(([id]) => id), deleted: m.deleted, ...(wrap ? { fileKeyWrap: wrap } : {}) },
      remote,
      kind,
      ...(wrap ? { wrap } : {}),
      ...(after.deleteBase !== undefined ? { deleteBase: after.deleteBase } : {}),
    };
    if (!m.deleted && after.local) pc.putBase = baseOf(remote, after.local);
    return pc;
  }

  // ------------------------------------------------------------------------------------------- uploading

  private async upload(uploads: UploadItem[], commits: PendingCommit[], scan: ScanResult, signal?: AbortSignal): Promise<void> {
    const sc = await this.crypto();
    const uploader = new ChunkUploader(this.client, sc.spaceId, { limiter: this.limiter });
    const total = uploads.reduce((n, a) => n + a.local.size, 0);
    let filesDone = 0;
    let bytesDone = 0;
    let committing: Promise<void> = Promise.resolve();
    const commitNow = async (batch: PendingCommit[]): Promise<void> => {
      if (!batch.length) return;
      await uploader.flush();
      await this.commit(batch);
    };
    const queue = commits;
    const maybeCommit = async (): Promise<void> => {
      if (queue.length < COMMIT_BATCH) return;
      const batch = queue.splice(0, queue.length);
      // one commit at a time, in order, while reading goes on
      await committing;
      committing = commitNow(batch);
      await committing;
    };

    const emitProgress = (): void => {
      this.emit('progress', { phase: 'uploading', filesDone, filesTotal: uploads.length, bytesDone, bytesTotal: total } satisfies Progress);
    };
    // Bytes count as they are read (and so, through the uploader's backpressure, about as they are sent).
    const onRead = (bytes: number): void => {
      bytesDone += bytes;
      emitProgress();
    };
    await each(uploads, READ_CONCURRENCY, async (a) => {
      if (signal?.aborted) return;
      const l = a.local;
      let keys: FileKeys;
      let fileId: string;
      let known = false;
      if (a.fileId === null) {
        ({ fileId, keys } = sc.newFile());
      } else {
        if (!sc.knows(a.fileId)) {
          this.report.errors.push({ path: a.path, reason: 'no key of this file opens for you' });
          return;
        }
        fileId = a.fileId;
        const w = sc.writeKeys(fileId);
        keys = w.keys;
        known = !w.fresh;
      }
      let content = { hash: EMPTY_HASH, size: 0, chunks: [] as [string, number][] };
      if (l.kind === 'file') {
        try {
          content = await readAndEncrypt(this.abs(scan.diskPaths.get(a.path) ?? a.path), keys.subkeys, uploader, known, onRead, l.size);
        } catch (err) {
          if (isTransient(err)) throw err;
          this.localFailure(a.path, err);
          return;
        }
        // Changed since the scan (still being written): not uploaded half-written; the next pass takes it.
        if (content.hash !== l.hash || content.size !== l.size) return;
      }
      queue.push(this.version(sc, keys, {
        fileId, parent: a.parent, path: a.path, kind: l.kind, size: content.size, mtimeMs: Math.trunc(l.mtimeMs), chunks: content.chunks, hash: content.hash, deleted: false,
      }, a.deleteBase !== undefined ? 'move' : 'upload', { local: l, ...(a.deleteBase !== undefined ? { deleteBase: a.deleteBase } : {}) }));
      filesDone++;
      emitProgress();
      await maybeCommit();
    });
    await committing;
    await commitNow(queue.splice(0, queue.length));
    this.report.bytesUploaded += uploader.sentBytes;
  }

  /** Commits one batch (journalled); drops versions the server refuses as stale (the next pass reconciles them). */
  private async commit(batch: PendingCommit[]): Promise<void> {
    const sc = await this.crypto();
    const journal: JournalCommit = {
      versions: batch.map((p) => ({ fileId: p.version.fileId, versionId: p.version.versionId, ...(p.putBase ? { putBase: p.putBase } : {}), ...(p.deleteBase !== undefined ? { deleteBase: p.deleteBase } : {}) })),
    };
    const journalId = await this.db.journalAdd(this.folder.id, 'commit', journal);
    let pending = batch;
    const done: { p: PendingCommit; seq: number }[] = [];
    for (let attempt = 0; pending.length && attempt < 5; attempt++) {
      try {
        const answer = await this.client.json<{ seq: number; versions: { fileId: string; versionId: string; seq: number }[] }>('POST', `/api/v1/spaces/${encodeURIComponent(sc.spaceId)}/commits`, { versions: pending.map((p) => p.version) });
        const seqOf = new Map(answer.versions.map((v) => [v.versionId, v.seq]));
        for (const p of pending) done.push({ p, seq: seqOf.get(p.version.versionId) ?? 0 });
        pending = [];
      } catch (err) {
        if (!(err instanceof ApiRequestError) || err.status !== 409) throw err;
        if (err.code === ErrorCode.SpaceFrozen) {
          // Frozen since this engine read the space: nothing is committed, the local files stay as they are and are
          // reported; the space is read again at the next pass (then its local changes are refused before any upload).
          for (const p of pending) if (!this.report.refused.some((x) => x.path === p.remote.path)) this.report.refused.push({ path: p.remote.path, reason: FROZEN });
          this.sc = null;
          break;
        }
        const body = err.body as { conflicts?: { versionId: string; reason: string; seq?: number }[]; missing?: string[] };
        if (body.conflicts) {
          const byVersion = new Map(body.conflicts.map((c) => [c.versionId, c]));
          const keep: PendingCommit[] = [];
          for (const p of pending) {
            const c = byVersion.get(p.version.versionId);
            if (!c) keep.push(p);
            else if (c.reason === 'already_committed') done.push({ p, seq: c.seq ?? 0 }); // a replay after a lost answer
            // parent_not_head: someone committed first; the next pass pulls it and reconciles (conflict copy if needed)
          }
          pending = keep;
        } else if (body.missing) {
          const missing = new Set(body.missing);
          pending = pending.filter((p) => !p.version.chunks.some((id) => missing.has(id)));
        } else {
          // e.g. the key epoch changed under us: reload the space's keys and let the next pass redo it
          this.sc = null;
          break;
        }
      }
    }
    const putBase: BaseEntry[] = [];
    const deleteBase: string[] = [];
    const putRemote: RemoteEntry[] = [];
    const putWraps: { fileId: string; keyEpoch: number; wrap: unknown }[] = [];
    for (const { p, seq } of done) {
      if (p.deleteBase !== undefined) deleteBase.push(p.deleteBase);
      if (p.putBase) putBase.push(p.putBase);
      putRemote.push({ ...p.remote, seq });
      this.ownCommits.add(p.version.versionId);
      if (p.wrap) {
        putWraps.push({ fileId: p.version.fileId, keyEpoch: p.wrap.keyEpoch, wrap: p.wrap });
        sc.committed(p.version.fileId, p.wrap.keyEpoch);
      }
      if (p.kind === 'upload') this.report.uploaded++;
      else if (p.kind === 'delete') this.report.deletedRemote++;
      else this.report.moved++;
    }
    await this.db.apply(this.folder.id, { deleteBase, putBase, putRemote, putWraps, journalDone: [journalId] });
    // A fresh key after a rotation: the colleagues a file is shared with get it too (sync/share-wraps.ts).
    await shareFreshKeys(this, sc, putWraps);
  }

  /** The space's keys as this engine holds them (a restore, ./door-versions.ts, makes its version with them). */
  spaceCrypto(): Promise<SpaceCrypto> {
    return this.crypto();
  }

  /** Commits one version made outside a cycle (a restore) through the journalled commit path; false: refused as stale. */
  async commitOne(keys: FileKeys, m: Omit<Manifest, 'v' | 'versionId'>): Promise<{ versionId: string; committed: boolean }> {
    const p = this.version(await this.crypto(), keys, m, 'upload', {});
    await this.commit([p]);
    return { versionId: p.version.versionId, committed: this.ownCommits.has(p.version.versionId) };
  }

  // ------------------------------------------------------------------------------------------- driving

  /** Cycles until nothing is left to do (a file still being written is waited for). Retries transient errors. */
  async runOnce(signal?: AbortSignal): Promise<SyncReport> {
    const started = Date.now();
    let backoff = 1000;
    for (let n = 0; n < MAX_CYCLES_ONCE && !signal?.aborted;) {
      try {
        const { busy, waiting } = await this.cycle(signal, { full: true });
        backoff = 1000;
        n++;
        if (!busy && !waiting) break;
        if (!busy && waiting) await sleep(Math.min(this.settleMs, 1000), signal);
      } catch (err) {
        if (!isTransient(err)) {
          this.setState('error', errText(err));
          throw err;
        }
        this.setState('error', errText(err));
        this.emit('retry', { reason: errText(err), inMs: backoff });
        if (this.giveUpMs !== undefined && Date.now() - started > this.giveUpMs) throw err;
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
    this.setState('idle');
    return this.takeReport();
  }

  /**
   * Keeps the folder in step until `signal` aborts: file-system events and server pushes schedule cycles; the
   * server is also polled every `pollMs` in case the push connection is down.
   */
  async watch(signal: AbortSignal, options: { pollMs?: number; watcher?: (root: string, onChange: (absPath?: string) => void) => Promise<() => Promise<void>> } = {}): Promise<void> {
    const pollMs = options.pollMs ?? 30_000;
    let wake: (() => void) | null = null;
    let dueAt = 0;
    let timer: NodeJS.Timeout | null = null;
    const schedule = (delayMs: number): void => {
      const at = Date.now() + delayMs;
      if (timer && dueAt <= at) return;
      if (timer) clearTimeout(timer);
      dueAt = at;
      timer = setTimeout(() => {
        timer = null;
        wake?.();
      }, delayMs);
    };
    const onWake = (): void => schedule(0);
    this.on('wake', onWake);
    const stopWatcher = options.watcher
      ? await options.watcher(this.folder.root, (absPath) => {
        this.noteChange(absPath);
        schedule(this.settleMs + 20);
      })
      : async () => undefined;
    // The poll also rescans everything: a change the watcher missed (event overflow) is found within pollMs.
    const poll = setInterval(() => {
      this.noteChange();
      this.removalsDue = true;
      schedule(0);
    }, pollMs);
    const events = this.listen(signal, () => schedule(0));
    schedule(0);
    let backoff = 1000;
    try {
      while (!signal.aborted) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
        wake = null;
        if (signal.aborted) break;
        if (this.paused) continue;
        try {
          const { busy, waiting } = await this.cycle(signal);
          backoff = 1000;
          const report = this.takeReport();
          if (busy || report.refused.length || report.errors.length) this.emit('synced', report);
          if (busy) schedule(0);
          else if (waiting) schedule(Math.min(this.settleMs, 1000));
        } catch (err) {
          this.setState('error', errText(err));
          if (!isTransient(err)) this.emit('failure', err);
          this.emit('retry', { reason: errText(err), inMs: backoff });
          schedule(backoff);
          backoff = Math.min(backoff * 2, 30_000);
        }
      }
    } finally {
      clearInterval(poll);
      if (timer) clearTimeout(timer);
      this.off('wake', onWake);
      await stopWatcher();
      await events;
      this.setState('stopped');
    }
  }

  /** Server push: reconnects with backoff; every change of this space (or a reconnect) schedules a cycle. */
  private async listen(signal: AbortSignal, onChange: () => void): Promise<void> {
    let backoff = 1000;
    while (!signal.aborted) {
      try {
        for await (const e of this.client.events(signal)) {
          backoff = 1000;
          if (e.event === 'change') {
            const d = e.data as { spaceId?: string; seq?: number };
            if (d.spaceId === this.folder.spaceId && (d.seq ?? 0) > this.folder.lastSeq) onChange();
          } else if (e.event === 'removal-pending') {
            if ((e.data as { spaceId?: string }).spaceId === this.folder.spaceId) {
              this.removalsDue = true;
              onChange();
            }
          } else if (e.event === 'hello') {
            this.removalsDue = true;
            onChange();
          }
        }
      } catch {
        // the push connection broke: polling carries on; reconnect after a while
      }
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 30_000);
    }
  }
}

function currentFacts(l: LocalEntry | undefined): LocalFacts | null {
  return l ? { size: l.size, mtimeMs: l.mtimeMs, ino: l.ino } : null;
}

// ------------------------------------------------------------------------------------------- folder lock

/** One engine per folder: a lock file in KLUIS_HOME naming the process; a dead process's lock is taken over. */
export async function lockFolder(home: string, folderId: number): Promise<() => Promise<void>> {
  const file = path.join(home, `folder-${folderId}.lock`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const h = await open(file, 'wx', 0o600);
      await h.writeFile(String(process.pid));
      await h.close();
      return async () => {
        await unlink(file).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new KluisError(ErrorCode.Conflict, `this folder is already being synced by process ${pid} (stop it first)`);
      }
      await unlink(file).catch(() => undefined);
    }
  }
  await writeFile(file, String(process.pid), { mode: 0o600 });
  return async () => {
    await unlink(file).catch(() => undefined);
  };
}

/** Whether a folder's lock is held by a live process (for `kluis status` and `restore`). */
export async function folderLockHolder(home: string, folderId: number): Promise<number | null> {
  const pid = Number((await readFile(path.join(home, `folder-${folderId}.lock`), 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : null;
}

/** Whether a process with this pid exists (EPERM: it does, as another user's). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

