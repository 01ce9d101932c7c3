// The desktop app's account and its folders over time (docs/desktop.md "Main process"): nobody logged in, then an
// account whose keys are opened from the app's home (sealed by the OS keychain where it can, ./keystore.ts) and
// whose folders (app.json, ./store.ts) each run an engine in a FolderHost; until logout, or until the server ends
// the session, when the app asks whether an administrator ordered a wipe and, if so, carries it out
// (account/wipe.ts) and tells the renderer with a `wiped` event. The handlers (./handlers.ts) read and change it.
import { ErrorCode, KluisError, initCrypto } from '@kluis/shared';
import { ApiRequestError } from '../../api/client.js';
import { clearAccount, loadAccount, loadSession, StateError, type Account } from '../../account/state.js';
import { ensureDeviceKey, wipeIfOrdered } from '../../account/wipe.js';
import { logout } from '../../account/auth.js';
import { accountClient } from '../../account/spaces.js';
import { listShared } from '../../account/shared.js';
import type { AppEvent, FolderStatus } from '../ipc/contract.js';
import { FolderHost } from './folders.js';
import type { KeyProtection } from './keystore.js';
import type { Notifier } from './notifications.js';
import { AppStore, type SyncedFolderRecord } from './store.js';
import { StatusRelay, relayActivity, watchShares, type Send } from './events.js';

export interface CoreOptions {
  /** the app's state directory (session, keys, index, app.json) */
  home: string;
  version: string;
  protection: KeyProtection;
  send: Send;
  notifier: Notifier;
  /** KLUIS_KDF and the like (tests); default process.env */
  env?: NodeJS.ProcessEnv;
  settleMs?: number;
  /** the engines' poll interval (default 30 s) */
  pollMs?: number;
  /** how often files shared with the user are looked for (default 60 s) */
  sharesPollMs?: number;
  /** how often the status event may go out (default 100 ms) */
  statusIntervalMs?: number;
}

/** Bytes per second of the engines' one limiter: the lower of the two settings (0: none). */
export function bandwidthOf(s: { uploadLimit: number | null; downloadLimit: number | null }): number {
  const limits = [s.uploadLimit, s.downloadLimit].filter((x): x is number => x !== null);
  return limits.length ? Math.min(...limits) : 0;
}

export class AppCore {
  readonly store: AppStore;
  private account: Account | null = null;
  private host: FolderHost | null = null;
  private detach: (() => void)[] = [];
  private relay: StatusRelay | null = null;
  /** the recovery key of a sign-up in this run, until the user confirms it (never written anywhere) */
  recoveryKey: string | null = null;

  constructor(readonly o: CoreOptions) {
    this.store = new AppStore(o.home);
  }

  get env(): NodeJS.ProcessEnv {
    return this.o.env ?? process.env;
  }

  /** Opens the saved account and its folders, if any. A sealed key the keychain no longer opens means: log in again. */
  async start(): Promise<void> {
    await initCrypto({ wasm: 'lazy' });
    if (this.o.protection.mode === 'file-only') {
      this.o.notifier.add({ kind: 'keys', scope: 'keys', detail: 'This computer offers no system keychain to Kluis: your keys are kept in a file only you can read. Encrypt your disk.' });
    }
    if (!loadSession(this.o.home)) return;
    let account: Account;
    try {
      account = loadAccount(this.o.home, this.o.protection.opener);
    } catch (err) {
      if (!(err instanceof StateError)) throw err;
      // Keys the keychain no longer opens (another OS user, a reset keyring) are of no use: the session is ended
      // and the state removed, so that a new login can open the account again (its folders are remembered by id).
      await logout({ home: this.o.home, env: this.env }).catch(() => clearAccount(this.o.home));
      this.o.notifier.add({ kind: 'error', scope: 'Kluis', detail: `${err.message}` });
      return;
    }
    await this.signedIn(account);
  }

  /** After signup, login or start: the folders of this account start syncing. */
  async signedIn(account: Account): Promise<void> {
    this.account = account;
    await ensureDeviceKey(account);
    const host = new FolderHost({
      home: this.o.home, account, version: this.o.version, keysProtected: this.o.protection.mode,
      recoveryKeyConfirmed: () => this.store.recoveryConfirmed(account.session.userId),
      ...(this.o.settleMs !== undefined ? { settleMs: this.o.settleMs } : {}),
      onChange: () => this.relay?.changed(),
    });
    this.host = host;
    this.relay = new StatusRelay(() => host.statuses(), this.o.send, this.o.statusIntervalMs);
    const c = accountClient(account);
    this.detach.push(watchShares(() => listShared(c, account), this.o.send, this.o.notifier, this.o.sharesPollMs ?? 60_000));
    for (const f of this.store.folders(account.session.userId)) {
      await this.openFolder(f).catch((err: unknown) => {
        this.o.notifier.add({ kind: 'error', scope: f.spaceName, detail: err instanceof Error ? err.message : String(err) });
      });
    }
  }

  /** Starts syncing a folder and remembers it for the next start. */
  async openFolder(f: SyncedFolderRecord): Promise<FolderStatus> {
    const host = this.requireHost();
    const account = this.requireAccount();
    const status = await host.add(f.root, f.spaceId, f.spaceName, { ...(this.o.pollMs ? { pollMs: this.o.pollMs } : {}), bwlimit: bandwidthOf(this.store.settings) });
    const folder = host.folder(status.folderId);
    this.detach.push(relayActivity(folder, status.folderId, () => f.spaceName, this.o.send, this.o.notifier));
    folder.on('failure', (err) => void this.sessionEnded(err));
    this.store.addFolder(account.session.userId, { root: status.path, spaceId: f.spaceId, spaceName: f.spaceName });
    this.relay?.changed();
    return status;
  }

  requireAccount(): Account {
    if (!this.account) throw new KluisError(ErrorCode.Unauthenticated, 'log in first');
    return this.account;
  }

  requireHost(): FolderHost {
    if (!this.host) throw new KluisError(ErrorCode.Unauthenticated, 'log in first');
    return this.host;
  }

  get current(): { account: Account | null; host: FolderHost | null } {
    return { account: this.account, host: this.host };
  }

  /** Stops the engines and forgets the open account (its state on disk is the caller's business). */
  async endSession(): Promise<void> {
    for (const d of this.detach.splice(0)) d();
    this.relay?.stop();
    this.relay = null;
    const host = this.host;
    this.host = null;
    this.account = null;
    this.recoveryKey = null;
    await host?.close();
    this.o.send({ type: 'status', folders: [] });
  }

  /**
   * The server refused the session (401): an administrator may have ordered a wipe, which the app carries out at
   * once (files the engine manages, keys, index, session; account/wipe.ts) and reports to the renderer. Without an
   * order the session simply ended: the local session and keys go, and the renderer shows the login.
   * Returns true when the session was ended.
   */
  async sessionEnded(err: unknown): Promise<boolean> {
    if (!(err instanceof ApiRequestError) || err.status !== 401 || err.code !== ErrorCode.Unauthenticated || !this.account) return false;
    const userId = this.account.session.userId;
    await this.endSession();
    if (!(await this.wipeIfOrdered(userId))) {
      clearAccount(this.o.home);
      this.store.forget(userId);
      this.o.notifier.add({ kind: 'error', scope: 'Kluis', detail: 'Your session ended: log in again.' });
    }
    return true;
  }

  /** After a 401 with the engines stopped: carries out a wipe order if there is one; true when it did. */
  async wipeIfOrdered(userId: string): Promise<boolean> {
    const outcome = await wipeIfOrdered(this.o.home).catch(() => null);
    if (!outcome) return false;
    this.store.forget(userId);
    const removed = { folders: outcome.folders.length, files: outcome.filesRemoved, unsynced: outcome.unsynced };
    this.o.send({ type: 'wiped', removed } satisfies AppEvent);
    this.o.notifier.add({ kind: 'wiped', scope: 'wipe', detail: `An administrator revoked this device: Kluis removed ${outcome.filesRemoved} synced file(s) and your keys from it.` });
    this.o.notifier.flush();
    return true;
  }

  /** Quit: the engines stop and unlock their folders; what is gathered for notification is shown. */
  async close(): Promise<void> {
    await this.endSession();
    this.o.notifier.flush();
  }
}
