// What the desktop app keeps beside the account's state in its home (docs/desktop.md "State"): app.json 0600 holds
// the settings, whether the recovery key was confirmed, and the folders to open at start. Written atomically with
// the same helpers as the CLI's state files (account/state.ts); a damaged file is refused, never guessed at.
import path from 'node:path';
import * as z from 'zod';
import { Id } from '@kluis/shared';
import { Settings } from '../ipc/contract.js';
import { parseFile, readPrivate, writeAtomic } from '../../account/state.js';

export const DEFAULT_SETTINGS: Settings = { language: 'nl', startAtLogin: false, uploadLimit: null, downloadLimit: null, notifications: true };

const SyncedFolder = z.object({ root: z.string().min(1), spaceId: Id, spaceName: z.string() }).strict();
export type SyncedFolderRecord = z.infer<typeof SyncedFolder>;

const AppFile = z.object({
  v: z.literal(1),
  settings: Settings,
  /** the user of this account typed words of the recovery key back (account:confirmRecovery) */
  recoveryConfirmed: z.record(z.string(), z.boolean()),
  /** per user id: the folders the app syncs */
  folders: z.record(z.string(), z.array(SyncedFolder)),
}).strict();
type AppFile = z.infer<typeof AppFile>;

const FILE = 'app.json';

export class AppStore {
  private data: AppFile;

  constructor(private readonly home: string) {
    const file = path.join(home, FILE);
    const text = readPrivate(file);
    this.data = text === null ? { v: 1, settings: DEFAULT_SETTINGS, recoveryConfirmed: {}, folders: {} } : parseFile(AppFile, file, text);
  }

  private save(): void {
    writeAtomic(path.join(this.home, FILE), `${JSON.stringify(this.data)}\n`);
  }

  get settings(): Settings {
    return { ...this.data.settings };
  }

  setSettings(next: Settings): void {
    this.data.settings = Settings.parse(next);
    this.save();
  }

  recoveryConfirmed(userId: string): boolean {
    return this.data.recoveryConfirmed[userId] === true;
  }

  confirmRecovery(userId: string): void {
    this.data.recoveryConfirmed[userId] = true;
    this.save();
  }

  folders(userId: string): SyncedFolderRecord[] {
    return [...(this.data.folders[userId] ?? [])];
  }

  addFolder(userId: string, f: SyncedFolderRecord): void {
    this.data.folders[userId] = [...this.folders(userId).filter((x) => x.root !== f.root), f];
    this.save();
  }

  removeFolder(userId: string, root: string): void {
    this.data.folders[userId] = this.folders(userId).filter((x) => x.root !== root);
    this.save();
  }

  /** Forgets an account's folders and confirmation (logout, wipe); the settings stay (they are the machine's). */
  forget(userId: string): void {
    delete this.data.folders[userId];
    delete this.data.recoveryConfirmed[userId];
    this.save();
  }
}
