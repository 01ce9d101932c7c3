// The sync engine (docs/architecture.md §4): one synced folder bound to one space. It orchestrates; each step has its
// own module, and they share one pass context (context.ts: index, folder, server, keys, the report being gathered).
// A cycle pulls the change log into the index (pull.ts), finishes what a crash interrupted (journal.ts), scans the
// folder (scan.ts: trusting size + mtime + inode, hashing only what changed), reconciles base/local/remote three ways
// (reconcile.ts) and carries out the actions (act.ts): local moves and deletions guarded by content checks, downloads
// through verified temp files (download.ts; a new version of a large file reuses the chunks its local copy holds),
// uploads through a batched, bounded pipeline (upload.ts, transfer.ts: read -> FastCDC -> encrypt -> framed batch
// upload) and journalled batched commits (commit.ts).
//
// Crash safety. Every step is either idempotent when replayed from the disk and the server, or journalled:
// - local writes are atomic (temp file, verify, fsync, rename); a kill leaves the old file or the new one, plus a
//   `.kluis-tmp-*` file that the next start removes;
// - downloads and local moves of a pass, and each commit batch, are journalled before they are done; the next start
//   gives what is found done its base rows (journal.ts), so nothing is taken for a local edit or a conflict;
// - chunks are uploaded before the commit that names them; unreferenced chunks of an interrupted upload cost
//   space only.
//
// States: idle / scanning / uploading / downloading / paused / error (with a reason) / stopped. Transient errors
// (server or object store away, network) are retried with backoff 1 s .. 30 s (retry.ts); others stop the cycle
// with a reason. One engine per folder (lock.ts).
import { EventEmitter } from 'node:events';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import type { Manifest } from '@kluis/shared';
import type { ApiClient } from '../api/client.js';
import type { Account } from '../account/state.js';
import { completePendingRemovals } from '../account/spaces.js';
import { act } from './act.js';
import { cleanTemp } from './atomic-write.js';
import { commitBatch, makeVersion } from './commit.js';
import { SyncContext, errText, type SyncReport } from './context.js';
import type { FolderRecord, IndexDb } from './index-db.js';
import { recoverJournal } from './journal.js';
import { pull } from './pull.js';
import { collectAfterBusyPass } from './heap-growth.js';
import { traceMemory } from './memory-trace.js';
import { reconcile } from './reconcile.js';
import { isTransient, type FileKeys, type SpaceCrypto } from './remote.js';
import { Backoff, sleep } from './retry.js';
import { scanFolder, unknownPaths, type ScanResult } from './scan.js';
import { HASH_LATER_MIN, hashNow, pathsToHashNow } from './hash-later.js';
import { RateLimiter } from './transfer.js';
import { READ_WHOLE_MAX, type BaseEntry, type EngineState, type RemoteEntry, type SyncAction } from './types.js';

// The engine's API as it was before the split (door.ts, the CLI, the desktop app import these from here).
export type { Progress, SyncReport } from './context.js';
export { alive, folderLockHolder, lockFolder } from './lock.js';

export interface EngineOptions {
  db: IndexDb;
  folder: FolderRecord;
  client: ApiClient;
  account: Account;
  /** this device's name, for conflict copies; a function is asked once, when a pass first makes a conflict copy */
  device: string | (() => Promise<string>);
  /** a file modified less than this long ago waits (default 1000 ms) */
  settleMs?: number;
  /** bytes per second for uploads + downloads together (0 = unlimited) */
  bwlimit?: number;
  /** give up retrying transient errors after this long in runOnce (default: never) */
  giveUpMs?: number;
  /**
   * The caller has just read the space's summary (GET /spaces) and it named no removal an admin asked for: the first
   * pass does not ask again (one request less on an unchanged folder, issue 22). Hints and polls ask as before.
   */
  noRemovalsPending?: boolean;
  /** new or changed files of at least this size are hashed by their upload (hash-later.ts; default HASH_LATER_MIN) */
  hashLaterMin?: number;
  /** new or changed files of 1 to this many bytes too (hash-later.ts; default READ_WHOLE_MAX, 0: none) */
  hashLaterSmallMax?: number;
}

const MAX_CYCLES_ONCE = 30;

export class SyncEngine extends EventEmitter {
  readonly db: IndexDb;
  readonly folder: FolderRecord;
  readonly client: ApiClient;
  readonly account: Account;
  private deviceName: string | (() => Promise<string>);
  readonly settleMs: number;
  private readonly hashLaterMin: number;
  private readonly hashLaterSmallMax: number;
  readonly limiter: RateLimiter;
  private readonly ctx: SyncContext;
  private stateValue: EngineState = 'idle';
  private paused = false;
  private firstCycle = true;
  private readonly refusedVersions = new Set<string>();
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
    this.deviceName = options.device;
    this.settleMs = options.settleMs ?? 1000;
    this.hashLaterMin = options.hashLaterMin ?? HASH_LATER_MIN;
    this.hashLaterSmallMax = options.hashLaterSmallMax ?? READ_WHOLE_MAX;
    this.limiter = new RateLimiter(options.bwlimit ?? 0);
    this.giveUpMs = options.giveUpMs;
    this.removalsDue = !options.noRemovalsPending;
    this.ctx = new SyncContext(this.db, this.folder, this.client, this.account, this.limiter, {
      emit: (event, ...args) => this.emit(event, ...args),
      setState: (state) => this.setState(state),
    });
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
    const r = this.ctx.report;
    r.seq = this.folder.lastSeq;
    this.ctx.report = this.ctx.emptyReport();
    return r;
  }

  /** Brings the index's remote state up to the server's head. Returns how many versions changed. */
  pull(): Promise<number> {
    return pull(this.ctx, this.refusedVersions);
  }

  /** The space's keys as this engine holds them (a restore, ./door-versions.ts, makes its version with them). */
  spaceCrypto(): Promise<SpaceCrypto> {
    return this.ctx.crypto();
  }

  /** Commits one version made outside a cycle (a restore) through the journalled commit path; false: refused as stale. */
  async commitOne(keys: FileKeys, m: Omit<Manifest, 'v' | 'versionId'>): Promise<{ versionId: string; committed: boolean }> {
    const p = makeVersion(this.ctx, await this.ctx.crypto(), keys, m, 'upload', {});
    await commitBatch(this.ctx, [p]);
    return { versionId: p.version.versionId, committed: this.ctx.ownCommits.has(p.version.versionId) };
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
      this.ctx.forgetCrypto(); // a new key epoch: load the space's keys again
      for (const d of done) {
        this.ctx.report.removedMembers.push({ email: d.email, keyEpoch: d.keyEpoch });
        this.emit('warning', `removed ${d.email} from the space as an admin asked (key epoch ${d.keyEpoch})`);
      }
    } catch (err) {
      if (isTransient(err)) this.removalsDue = true;
      else this.emit('warning', `could not complete a removal an admin asked for: ${errText(err)}`);
    }
  }

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
    const options = { settleMs: this.settleMs, hashLaterMin: this.hashLaterMin, hashLaterSmallMax: this.hashLaterSmallMax, ...(signal ? { signal } : {}) };
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

  /** This device's name (conflict copies), asked for the first time it is needed. */
  async device(): Promise<string> {
    if (typeof this.deviceName !== 'string') this.deviceName = await this.deviceName();
    return this.deviceName;
  }

  /**
   * Reconciles (reconcile.ts). The device name is looked up only when a conflict copy needs it: most passes have
   * none, and reconcile is a pure function of its inputs, so it runs once more with the name when one does.
   */
  private async reconciled(base: Map<string, BaseEntry>, scan: ScanResult, remote: Map<string, RemoteEntry>): Promise<SyncAction[]> {
    const options = { now: new Date(), unknown: unknownPaths(scan) };
    const known = typeof this.deviceName === 'string' ? this.deviceName : null;
    const actions = reconcile(base, scan.entries, remote, { ...options, device: known ?? 'device' });
    if (known !== null || !actions.some((a) => a.type === 'conflict')) return actions;
    return reconcile(base, scan.entries, remote, { ...options, device: await this.device() });
  }

  /** The base rows and a scan of the folder against them. */
  private async readLocal(signal?: AbortSignal): Promise<{ base: Map<string, BaseEntry>; scan: ScanResult }> {
    const base = await this.db.baseAll(this.folder.id);
    return { base, scan: await this.scan(base, signal) };
  }

  /**
   * One pass: pull, scan, reconcile, act. Returns whether anything was done, whether another pass must confirm it
   * (act.ts: not after a pass that only committed local changes, all of them) and whether files are still waiting
   * (settling).
   */
  async cycle(signal?: AbortSignal, options: { full?: boolean } = {}): Promise<{ busy: boolean; again: boolean; waiting: boolean }> {
    this.setState('scanning');
    if (options.full) this.lastScan = null;
    // With no journal to finish (the usual case) nothing changes the base rows before act: the folder is read and
    // scanned while the server answers (the scan yields between batches of stats). Otherwise the journal is finished
    // first, with the pulled remote state, and the scan follows.
    const early = (await this.db.journalPending(this.folder.id)).length === 0 ? this.readLocal(signal) : null;
    // Awaited below, or dropped when the pull fails; meanwhile a stop (the scan aborted) must not be an unhandled
    // rejection: in CI it crashed `kluis sync` on SIGTERM while the pull was waiting for a server that was down.
    early?.catch(() => undefined);
    try {
      await this.completeRemovals();
      await this.pull();
    } catch (err) {
      await early?.catch(() => undefined);
      throw err;
    }
    traceMemory('pulled');
    let remote = await this.db.remoteAll(this.folder.id);
    traceMemory('remote rows read');
    let local = early;
    if (this.ctx.takeRebound()) { // the pull bound the folder afresh (rollback.ts): read and scan again
      await early?.catch(() => undefined);
      [local, this.lastScan] = [null, null];
    }
    if (local === null) {
      if (await recoverJournal(this.ctx, remote)) remote = await this.db.remoteAll(this.folder.id);
      local = this.readLocal(signal);
    }
    const { base, scan } = await local;
    traceMemory('scanned');
    // Large files the scan left to their upload are hashed now where the remote side needs their content compared.
    await hashNow(scan, pathsToHashNow(scan.entries, base, remote), (p) => this.ctx.abs(p));
    if (this.firstCycle) {
      await cleanTemp(this.folder.root, scan.temps).catch(() => 0);
      this.firstCycle = false;
    }
    const waiting = scan.skipped.some((s) => s.reason === 'settling' || s.reason === 'changing');
    for (const s of scan.skipped) {
      if (s.reason === 'settling' || s.reason === 'changing') continue;
      if (!this.ctx.report.skipped.some((x) => x.path === s.path)) {
        this.ctx.report.skipped.push({ path: s.path, reason: s.reason === 'symlink' ? 'symbolic link: not synced' : s.detail ?? s.reason });
        this.emit('warning', `${s.path}: skipped (${s.reason === 'symlink' ? 'symbolic links are not synced' : s.detail ?? s.reason})`);
      }
    }
    for (const r of scan.refused) {
      if (!this.ctx.report.refused.some((x) => x.path === r.path)) this.ctx.report.refused.push({ path: r.path, reason: r.detail ?? r.reason });
    }
    const actions = await this.reconciled(base, scan, remote);
    traceMemory('reconciled');
    // Settling files are looked at again next pass (their folders are rescanned).
    for (const sk of scan.skipped) if (sk.reason === 'settling' || sk.reason === 'changing') this.noteChange(this.ctx.abs(scan.diskPaths.get(sk.path) ?? sk.path));
    this.lastScan = scan;
    const { busy, again } = await act(this.ctx, actions, base, scan, signal);
    traceMemory('acted');
    // The disk changed under the scan's feet (our own writes): the next pass scans everything again.
    if (busy) this.lastScan = null;
    await this.db.setStatus(this.folder.id, { lastSyncAt: Date.now(), lastError: null });
    this.setState(this.paused ? 'paused' : 'idle');
    return { busy, again, waiting };
  }

  /** Cycles until nothing is left to do (a file still being written is waited for). Retries transient errors. */
  async runOnce(signal?: AbortSignal): Promise<SyncReport> {
    const started = Date.now();
    const backoff = new Backoff();
    for (let n = 0; n < MAX_CYCLES_ONCE && !signal?.aborted;) {
      try {
        const { again, waiting } = await this.cycle(signal, { full: true });
        backoff.reset();
        n++;
        if (!again && !waiting) break;
        if (again) collectAfterBusyPass(); // the next pass on a clean heap (heap-growth.ts)
        if (!again && waiting) await sleep(Math.min(this.settleMs, 1000), signal);
      } catch (err) {
        if (!isTransient(err)) {
          this.setState('error', errText(err));
          throw err;
        }
        this.setState('error', errText(err));
        this.emit('retry', { reason: errText(err), inMs: backoff.current });
        if (this.giveUpMs !== undefined && Date.now() - started > this.giveUpMs) throw err;
        await sleep(backoff.next(), signal);
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
    // Set when a scheduled pass falls due while a pass runs (no one is waiting to be woken then): the loop goes on at
    // once instead of waiting. A pass that leaves nothing to do schedules no other (act.ts `again`), so an edit seen by
    // the watcher during a long upload was otherwise left until the next event or poll.
    let due = false;
    let dueAt = 0;
    let timer: NodeJS.Timeout | null = null;
    const schedule = (delayMs: number): void => {
      const at = Date.now() + delayMs;
      if (timer && dueAt <= at) return;
      if (timer) clearTimeout(timer);
      dueAt = at;
      timer = setTimeout(() => {
        timer = null;
        due = true;
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
    const backoff = new Backoff();
    // One abort listener for the whole watch (one per turn piled up on the signal: a leak Node warned of).
    const onAbort = (): void => wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal.aborted) {
        if (!due) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
        wake = null;
        due = false;
        if (signal.aborted) break;
        if (this.paused) continue;
        try {
          const { busy, again, waiting } = await this.cycle(signal);
          backoff.reset();
          const report = this.takeReport();
          if (busy || report.refused.length || report.errors.length) this.emit('synced', report);
          if (again) schedule(0);
          else if (waiting) schedule(Math.min(this.settleMs, 1000));
        } catch (err) {
          this.setState('error', errText(err));
          if (!isTransient(err)) this.emit('failure', err);
          this.emit('retry', { reason: errText(err), inMs: backoff.current });
          schedule(backoff.next());
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
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
    const backoff = new Backoff();
    while (!signal.aborted) {
      try {
        for await (const e of this.client.events(signal)) {
          backoff.reset();
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
      await sleep(backoff.next(), signal);
    }
  }
}
