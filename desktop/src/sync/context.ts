// What one engine lends the steps of its passes (journal.ts, download.ts, upload.ts, commit.ts, act.ts, pull.ts): the
// index, the folder, the server, the account, the bandwidth limit, the report being gathered and the space's keys,
// loaded once and dropped when they go stale (a key rotation). The steps report through it (counters, warnings,
// state), so none of them needs the engine itself; the engine (engine.ts) only orchestrates.
import path from 'node:path';
import type { ApiClient } from '../api/client.js';
import type { Account } from '../account/state.js';
import type { FolderRecord, IndexDb } from './index-db.js';
import { LocalFsError } from './local-paths.js';
import { SpaceCrypto, isTransient, type FileKeys } from './remote.js';
import type { RateLimiter } from './transfer.js';
import type { EngineState, RemoteEntry } from './types.js';

/** Why local changes of a frozen space stay local (docs/admin.md "Offboarding"). */
export const FROZEN = 'this space has no manager left to renew its key (its only manager was offboarded): the server takes no new versions, so this local change stays here; copy it into another space';

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
  /** the server's change log was behind this device's (restored from a backup): the folder was bound afresh (rollback.ts) */
  serverBehind?: { head: number; seen: number };
}

export interface Progress {
  phase: 'uploading' | 'downloading';
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** How the context reaches its engine: events for the shells, and the engine's state. */
export interface EngineHooks {
  emit(event: string, ...args: unknown[]): void;
  setState(state: EngineState): void;
}

export class SyncContext {
  report: SyncReport;
  /** versions this engine committed (their remote rows are written at commit): not opened again when pulled */
  readonly ownCommits = new Set<string>();
  /** the change-log seqs of those versions past the index's position, until it moves over them (commit.ts ownRunEnd) */
  readonly ownSeqs = new Set<number>();
  /** files whose commit the server refused for missing chunks: their next upload sends every chunk (upload.ts) */
  readonly chunksMissing = new Set<string>();
  /** set when a pull bound the folder afresh (rollback.ts): base rows read before it are stale */
  rebound = false;

  /** Whether a pull bound the folder afresh since the last call. */
  takeRebound(): boolean {
    const r = this.rebound;
    this.rebound = false;
    return r;
  }
  private sc: SpaceCrypto | null = null;

  constructor(
    readonly db: IndexDb,
    readonly folder: FolderRecord,
    readonly client: ApiClient,
    readonly account: Account,
    readonly limiter: RateLimiter,
    private readonly hooks: EngineHooks,
  ) {
    this.report = this.emptyReport();
  }

  emptyReport(): SyncReport {
    return {
      folder: this.folder.root, spaceId: this.folder.spaceId, seq: this.folder.lastSeq, uploaded: 0, downloaded: 0, deletedLocal: 0, deletedRemote: 0, moved: 0,
      conflicts: [], refused: [], skipped: [], errors: [], bytesUploaded: 0, bytesDownloaded: 0, bytesReused: 0, removedMembers: [],
    };
  }

  emit(event: string, ...args: unknown[]): void {
    this.hooks.emit(event, ...args);
  }

  setState(state: EngineState): void {
    this.hooks.setState(state);
  }

  /** The space's keys, loaded on first use. */
  async crypto(): Promise<SpaceCrypto> {
    this.sc ??= await SpaceCrypto.load(this.client, this.account, this.folder.spaceId);
    return this.sc;
  }

  /** The space's keys changed (a new key epoch): load them again when next needed. */
  forgetCrypto(): void {
    this.sc = null;
  }

  /** Opens the file keys of `fileIds` not opened yet (from the wraps the index holds). */
  async keysFor(fileIds: readonly string[]): Promise<void> {
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

  /** The key a remote version was written with; null (reported as an error of `p`) when none opens. */
  keysOrReport(r: RemoteEntry, p: string): FileKeys | null {
    const k = this.sc?.keyFor(r.fileId, r.keyEpoch);
    if (k) return k;
    this.report.errors.push({ path: p, reason: `no key of epoch ${r.keyEpoch} of this file opens for you` });
    return null;
  }

  /** The absolute path of a path relative to the folder. */
  abs(rel: string): string {
    return path.join(this.folder.root, ...rel.split('/'));
  }

  /** Reports `p` as refused (once). */
  refuse(p: string, reason: string): void {
    if (!this.report.refused.some((x) => x.path === p)) this.report.refused.push({ path: p, reason });
  }

  /** `p` changed here in a space this client may not write: a viewer's, or a frozen one (docs/admin.md "Offboarding"). */
  readOnly(p: string, frozen = false): void {
    this.refuse(p, frozen ? FROZEN : 'you may only read this space (viewer): local changes are not uploaded');
  }

  /** A local step failed: changed or gone meanwhile (the next pass decides), refused, or an error of `p`. */
  localFailure(p: string, err: unknown): void {
    if (err instanceof LocalFsError && err.code === 'changed') return; // edited meanwhile: the next pass decides
    if (err instanceof LocalFsError && (err.code === 'unsafe_path' || err.code === 'exists')) {
      this.refuse(p, err.message);
      return;
    }
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // gone meanwhile
    if (isTransient(err)) throw err;
    this.report.errors.push({ path: p, reason: errText(err) });
    this.emit('warning', `${p}: ${errText(err)}`);
  }
}
